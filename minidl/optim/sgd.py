"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._ext import optim as _kernels
from .optimizer import (
    Optimizer,
    _check_nonnegative,
    _is_number,
    _param_arrays,
    _state_array,
)


class SGD(Optimizer):
    """``torch.optim.SGD``'s update, per parameter ``p`` with gradient ``g``::

        g = -g if maximize
        g = g + weight_decay * p                        (if weight_decay != 0)
        b = g on the first step, else momentum * b + (1 - dampening) * g   (if momentum != 0)
        g = g + momentum * b if nesterov else b         (if momentum != 0)
        p = p - lr * g

    State per parameter: ``momentum_buffer`` (only when momentum != 0)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_nonnegative(group, "lr", "learning rate")
        _check_nonnegative(group, "momentum", "momentum value")
        _check_nonnegative(group, "weight_decay", "weight_decay value")
        if "dampening" in group and not _is_number(group["dampening"]):
            raise TypeError(f"Invalid dampening value: {group['dampening']!r} (expected a number)")
        if group.get("nesterov") and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov, maximize = bool(group["nesterov"]), bool(group["maximize"])
        for p in group["params"]:
            if p.grad is None:
                continue
            data, grad = _param_arrays(p)
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                first = state.get("momentum_buffer") is None
                buf = _state_array(state, "momentum_buffer", data)
            _kernels.sgd(data, grad, buf, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                         first=first)


__all__ = ["SGD"]
