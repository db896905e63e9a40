"""The functions PyTorch has at top level for Tensor methods: ``minidl.max(x, 1)`` is
``x.max(1)``, ``minidl.sum(x, dim=0)`` is ``x.sum(dim=0)``, ...

Where PyTorch takes a tensor these also take a numpy array (then shared, not copied), so
``minidl.max(t.numpy(), 1)`` works too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ._factories import from_numpy
from .tensor import Tensor, _wrap

_METHODS = (
    "abs", "add", "argmax", "argmin", "argsort", "chunk", "clamp", "clip", "clone", "div", "eq",
    "equal", "exp", "flatten", "ge", "gt", "le", "log", "log_softmax", "lt", "masked_fill",
    "maximum", "mean", "minimum", "mul", "narrow", "ne", "neg", "numel", "permute", "relu",
    "reshape", "sigmoid", "softmax", "sort", "split", "sqrt", "square", "squeeze", "std", "sub",
    "sum", "t", "tanh", "topk", "transpose", "unbind", "unsqueeze", "var",
)
"""Tensor methods that PyTorch also has as ``torch.<name>(input, ...)``."""


def as_input(value: Any) -> Tensor:
    """``value`` as the tensor argument of a top-level function (numpy arrays are shared)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return from_numpy(value)
    raise TypeError(f"expected a Tensor (or a numpy array) as input, got {type(value).__name__}")


def _function(name: str) -> Callable[..., Any]:
    method = getattr(Tensor, name)

    @functools.wraps(method)
    def function(input: Any, *args: Any, **kwargs: Any) -> Any:
        return method(as_input(input), *args, **kwargs)

    function.__qualname__ = name
    function.__doc__ = f"``minidl.{name}(input, ...)`` is ``input.{name}(...)``." + (
        f"\n\n{method.__doc__}" if method.__doc__ else "")
    return function


FUNCTIONS: dict[str, Callable[..., Any]] = {name: _function(name) for name in _METHODS}


def max(input: Any, dim: int | Tensor | None = None, keepdim: bool = False) -> Any:  # noqa: A001
    """``max(x)`` the largest value; ``max(x, dim)`` a ``(values, indices)`` namedtuple;
    ``max(x, other)`` the elementwise maximum."""
    other = as_input(dim) if isinstance(dim, np.ndarray) else dim
    return as_input(input).max(other, keepdim)


def min(input: Any, dim: int | Tensor | None = None, keepdim: bool = False) -> Any:  # noqa: A001
    """Like :func:`max`, for the smallest values."""
    other = as_input(dim) if isinstance(dim, np.ndarray) else dim
    return as_input(input).min(other, keepdim)


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001
    """``input ** exponent``; ``input`` may be a number when ``exponent`` is a tensor."""
    if isinstance(input, (Tensor, np.ndarray)):
        return as_input(input) ** exponent
    exponent = as_input(exponent)
    return _wrap(input, exponent) ** exponent


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return as_input(input).is_floating_point()
