"""RMSprop (with momentum and the centered variant), as ``torch.optim.RMSprop``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .optimizer import Optimizer, _check_nonnegative, _fma, _lerp, _param_arrays


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``'s update, per parameter ``p`` with gradient ``g``::

        g = -g if maximize
        g = g + weight_decay * p                      (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g           (square_avg)
        m = lerp(m, g, 1 - alpha)                     (grad_avg, if centered)
        avg = sqrt(v - m * m) if centered else sqrt(v), then avg + eps
        b = momentum * b + g / avg; p = p - lr * b    (if momentum > 0)
        p = p - lr * g / avg                          (otherwise)

    State per parameter: ``step`` (a float32 scalar array), ``square_avg``, and
    ``momentum_buffer`` (momentum > 0) and ``grad_avg`` (centered) when used."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_nonnegative(group, "lr", "learning rate")
        _check_nonnegative(group, "eps", "epsilon value")
        _check_nonnegative(group, "momentum", "momentum value")
        _check_nonnegative(group, "weight_decay", "weight_decay value")
        _check_nonnegative(group, "alpha", "alpha value")

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        momentum, weight_decay = float(group["momentum"]), float(group["weight_decay"])
        centered, maximize = bool(group["centered"]), bool(group["maximize"])
        for p in group["params"]:
            if p.grad is None:
                continue
            data, grad = _param_arrays(p)
            state = self.state[p]
            if not state:
                state["step"] = np.zeros((), dtype=np.float32)
                state["square_avg"] = np.zeros_like(data)
                if momentum > 0:
                    state["momentum_buffer"] = np.zeros_like(data)
                if centered:
                    state["grad_avg"] = np.zeros_like(data)
            if maximize:
                grad = -grad
            state["step"] += 1
            if weight_decay != 0:
                grad = _fma(data, weight_decay, grad)
            square_avg = state["square_avg"]
            square_avg *= alpha
            _fma((1 - alpha) * grad, grad, square_avg, out=square_avg)
            if centered:
                grad_avg = state["grad_avg"]
                _lerp(grad_avg, grad, 1 - alpha)
                avg = np.sqrt(_fma(-grad_avg, grad_avg, square_avg))
            else:
                avg = np.sqrt(square_avg)
            avg += eps
            if momentum > 0:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += grad / avg
                _fma(buf, -lr, data, out=data)
            else:
                data += (-lr * grad) / avg


__all__ = ["RMSprop"]
