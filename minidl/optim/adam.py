"""Adam and AdamW (Adam with decoupled weight decay), as ``torch.optim``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._ext import optim as _kernels
from .optimizer import (
    Optimizer,
    _check_nonnegative,
    _is_number,
    _param_arrays,
    _state_array,
)


def _check_betas(betas: Any) -> None:
    """A pair of numbers in [0, 1)."""
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"Invalid betas: {betas!r} (expected a pair of floats)")
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (expected a pair of floats)")
    for i, beta in enumerate(betas):
        if not _is_number(beta):
            raise TypeError(f"Invalid beta parameter at index {i}: {beta!r} (expected a number)")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (needs [0, 1))")


class Adam(Optimizer):
    """``torch.optim.Adam``'s update, per parameter ``p`` with gradient ``g`` at step ``t``::

        g = -g if maximize
        p = p * (1 - lr * weight_decay)      if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p             otherwise (if weight_decay != 0)
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    State per parameter: ``step`` (a float32 scalar array, as torch's), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, (tuple, list)) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_nonnegative(group, "lr", "learning rate")
        _check_nonnegative(group, "eps", "epsilon value")
        _check_nonnegative(group, "weight_decay", "weight_decay value")
        if "betas" in group:
            _check_betas(group["betas"])

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        weight_decay = float(group["weight_decay"])
        amsgrad, maximize = bool(group["amsgrad"]), bool(group["maximize"])
        decoupled = bool(group.get("decoupled_weight_decay", False))
        for p in group["params"]:
            if p.grad is None:
                continue
            data, grad = _param_arrays(p)
            state = self.state[p]
            if not state:
                state["step"] = np.zeros((), dtype=np.float32)
            for key in ("exp_avg", "exp_avg_sq"):
                _state_array(state, key, data)
            state["step"] += 1
            step = float(state["step"])
            _kernels.adam(
                data, grad, state["exp_avg"], state["exp_avg_sq"],
                _state_array(state, "max_exp_avg_sq", data) if amsgrad else None,
                lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                decoupled=decoupled, maximize=maximize,
                bias_correction1=1 - beta1**step,
                bias_correction2_sqrt=(1 - beta2**step) ** 0.5,
            )


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the update),
    as ``torch.optim.AdamW``; the default weight_decay is 1e-2."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


__all__ = ["Adam", "AdamW"]
