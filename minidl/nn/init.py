"""Initialisers with PyTorch's names and fan rules, drawing from minidl's seeded generator.

Each fills the tensor's values in place (keeping its dtype) and returns the tensor. The ones that
depend on fans take them from the tensor's shape, as PyTorch does, unless given explicitly as
``fans=(fan_in, fan_out)`` (keyword only): a layer whose framework counts fans otherwise
(MegEngine ignores the groups), or a bias, whose fans are its weight's.
"""

from __future__ import annotations

import math

import numpy as np

from ..random import generator
from ..tensor import Tensor


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """PyTorch's rule: fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive
    field. For a transposed conv's (in, out/g, *k) weight that makes fan_in = out/g * prod(k)."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dims, got shape {tensor.shape}"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity in ("linear", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor._data = np.asarray(values, dtype=tensor.dtype).reshape(tensor.shape)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _fill(tensor, generator().uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _fill(tensor, generator().normal(mean, std, tensor.shape))


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Tensor:
    """Normal(mean, std) redrawn until inside [a, b]."""
    values = generator().normal(mean, std, tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = generator().normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor: Tensor, value: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


Fans = tuple[int, int]


def _fans(tensor: Tensor, fans: Fans | None) -> Fans:
    """``fans`` if given (checked), else the tensor's own."""
    if fans is None:
        return calculate_fan_in_and_fan_out(tensor)
    if len(fans) != 2 or any(not isinstance(f, (int, np.integer)) or f < 0 for f in fans):
        raise ValueError(f"fans must be (fan_in, fan_out), two ints >= 0, got {fans!r}")
    return int(fans[0]), int(fans[1])


def _fan(tensor: Tensor, mode: str, fans: Fans | None) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, fans)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    fans: Fans | None = None,
) -> Tensor:
    """U(-bound, bound), bound = gain(nonlinearity, a) * sqrt(3 / fan), fan by ``mode``."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode, fans))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    fans: Fans | None = None,
) -> Tensor:
    """N(0, std^2), std = gain(nonlinearity, a) / sqrt(fan), fan by ``mode``."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode, fans))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, *, fans: Fans | None = None) -> Tensor:
    fan_in, fan_out = _fans(tensor, fans)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, *, fans: Fans | None = None) -> Tensor:
    fan_in, fan_out = _fans(tensor, fans)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def fan_in_uniform_(tensor: Tensor, *, fans: Fans | None = None) -> Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), zeros when fan_in is 0: the bias rule of PyTorch's
    Conv and Linear ``reset_parameters`` (and MindSpore >= 2.1's default bias). A bias has no
    fans of its own: pass its weight's as ``fans``."""
    fan_in, _ = _fans(tensor, fans)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(tensor, -bound, bound)
