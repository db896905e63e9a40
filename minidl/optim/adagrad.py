"""Adagrad, as ``torch.optim.Adagrad``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer, _check_nonnegative, _fma, _param_arrays


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``'s update, per parameter ``p`` with gradient ``g`` at step ``t``::

        g = -g if maximize
        g = g + weight_decay * p                      (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                                 (sum)
        p = p - clr * g / (sqrt(s) + eps)

    State per parameter: ``step`` (a float32 scalar array) and ``sum``, which starts at
    ``initial_accumulator_value`` (taken from the constructor's defaults, as torch does)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_nonnegative(group, "lr", "learning rate")
        _check_nonnegative(group, "lr_decay", "lr_decay value")
        _check_nonnegative(group, "weight_decay", "weight_decay value")
        _check_nonnegative(group, "initial_accumulator_value", "initial_accumulator_value value")
        _check_nonnegative(group, "eps", "epsilon value")

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay, maximize = float(group["weight_decay"]), bool(group["maximize"])
        initial = float(self.defaults["initial_accumulator_value"])
        for p in group["params"]:
            if p.grad is None:
                continue
            data, grad = _param_arrays(p)
            state = self.state[p]
            if not state:
                state["step"] = np.zeros((), dtype=np.float32)
                state["sum"] = np.full_like(data, initial)
            state["step"] += 1
            step = float(state["step"])
            if maximize:
                grad = -grad
            if weight_decay != 0:
                grad = _fma(data, weight_decay, grad)
            clr = lr / (1 + (step - 1) * lr_decay)
            total = state["sum"]
            _fma(grad, grad, total, out=total)
            std = np.sqrt(total)
            std += eps
            data += (-clr * grad) / std


__all__ = ["Adagrad"]
