"""Adadelta, as ``torch.optim.Adadelta``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer, _check_nonnegative, _fma, _param_arrays


class Adadelta(Optimizer):
    """``torch.optim.Adadelta``'s update, per parameter ``p`` with gradient ``g``::

        g = -g if maximize
        g = g + weight_decay * p                      (if weight_decay != 0)
        v = rho * v + (1 - rho) * g * g               (square_avg)
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta       (acc_delta)
        p = p - lr * delta

    State per parameter: ``step`` (a float32 scalar array), ``square_avg``, ``acc_delta``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_nonnegative(group, "lr", "learning rate")
        rho = group.get("rho")
        if rho is not None and not (
            isinstance(rho, (int, float, np.integer, np.floating)) and 0.0 <= rho <= 1.0
        ):
            raise ValueError(f"Invalid rho value: {rho}")
        _check_nonnegative(group, "eps", "epsilon value")
        _check_nonnegative(group, "weight_decay", "weight_decay value")

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        weight_decay, maximize = float(group["weight_decay"]), bool(group["maximize"])
        for p in group["params"]:
            if p.grad is None:
                continue
            data, grad = _param_arrays(p)
            state = self.state[p]
            if not state:
                state["step"] = np.zeros((), dtype=np.float32)
                state["square_avg"] = np.zeros_like(data)
                state["acc_delta"] = np.zeros_like(data)
            state["step"] += 1
            if maximize:
                grad = -grad
            if weight_decay != 0:
                grad = _fma(data, weight_decay, grad)
            square_avg, acc_delta = state["square_avg"], state["acc_delta"]
            square_avg *= rho
            _fma((1 - rho) * grad, grad, square_avg, out=square_avg)
            std = np.sqrt(square_avg + eps)
            delta = np.sqrt(acc_delta + eps)
            delta /= std
            delta *= grad
            acc_delta *= rho
            _fma((1 - rho) * delta, delta, acc_delta, out=acc_delta)
            _fma(delta, -lr, data, out=data)


__all__ = ["Adadelta"]
