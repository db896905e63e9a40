"""Tensor factories with PyTorch's names, arguments and default dtypes: float32 for floating
values, int64 for integers (``arange`` of ints, ``randint``), bool for bools.

Random factories draw from minidl's generator, so ``minidl.manual_seed`` repeats them (the
values differ from PyTorch's: the generators differ). ``empty`` returns zeros. ``device`` must
name the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dtypes
from ._device import cpu_device
from .random import generator
from .tensor import Tensor, _as_array, _leaf, _shape_args

Size = tuple[int, ...]


def _size(size: tuple) -> Size:
    shape = _shape_args(size)
    if not all(isinstance(n, (int, np.integer)) for n in shape):
        raise TypeError(f"size must be a tuple of ints, got {shape!r}")
    if any(n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(shape)}")
    return tuple(int(n) for n in shape)


def _make(array: np.ndarray, device: Any, requires_grad: bool) -> Tensor:
    if device is not None:
        cpu_device(device)
    return _leaf(array, requires_grad)


def _dtype(dtype: Any, default: np.dtype) -> np.dtype:
    return default if dtype is None else _dtypes.as_dtype(dtype)


def _float_dtype(dtype: Any, kernel: str) -> np.dtype:
    dtype = _dtype(dtype, _dtypes.float32)
    if dtype.kind != "f":
        raise NotImplementedError(f'"{kernel}" not implemented for {dtype} (a random float '
                                  "factory needs a floating dtype)")
    return dtype


def _default_dtype(value: Any) -> np.dtype:
    """PyTorch's dtype for a Python scalar: bool, int64 for ints, float32 for floats."""
    if isinstance(value, (bool, np.bool_)):
        return _dtypes.bool_
    if isinstance(value, (int, np.integer)):
        return _dtypes.int64
    if isinstance(value, (float, np.floating)):
        return _dtypes.float32
    raise TypeError(f"fill value must be a bool, int or float, got {type(value).__name__}")


# ---- filled ----------------------------------------------------------------------------------
def zeros(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_size(size), _dtype(dtype, _dtypes.float32)), device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_size(size), _dtype(dtype, _dtypes.float32)), device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Like PyTorch's ``empty``, but the values are zeros (never leftover memory)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """``size`` filled with ``fill_value``; the dtype follows the value (bool, int64, float32)
    unless given."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dtype = _dtype(dtype, _default_dtype(fill_value))
    return _make(np.full(_size((size,)), fill_value, dtype), device, requires_grad)


# ---- random ----------------------------------------------------------------------------------
def randn(*size: Any, generator: np.random.Generator | None = None, dtype: Any = None,
          device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from minidl's generator (``minidl.manual_seed``)."""
    dtype = _float_dtype(dtype, "normal_kernel_cpu")
    values = _generator(generator).standard_normal(_size(size)).astype(dtype)
    return _make(values, device, requires_grad)


def rand(*size: Any, generator: np.random.Generator | None = None, dtype: Any = None,
         device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1) from minidl's generator."""
    dtype = _float_dtype(dtype, "check_uniform_bounds")
    values = _generator(generator).random(_size(size)).astype(dtype)
    return _make(values, device, requires_grad)


def randint(*args: Any, size: Any = None, generator: np.random.Generator | None = None,
            dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high)."""
    args = list(args)
    if size is None:
        if not args:
            raise TypeError("randint() missing the size argument")
        size = args.pop()
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint() takes (high, size) or (low, high, size)")
    if not low < high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    values = _generator(generator).integers(low, high, _size((size,)))
    return _make(values.astype(_dtype(dtype, _dtypes.int64)), device, requires_grad)


def _generator(given: np.random.Generator | None) -> np.random.Generator:
    return generator() if given is None else given


# ---- ranges ----------------------------------------------------------------------------------
def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """``arange(end)``, ``arange(start, end, step)``: int64 when all three are integers, else
    float32; ``ceil((end - start) / step)`` values ``start + i * step``."""
    if end is None:
        start, end = 0, start
    values = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = values
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    integral = all(isinstance(v, (int, np.integer)) for v in values)
    dtype = _dtype(dtype, _dtypes.int64 if integral else _dtypes.float32)
    count = math.ceil((end - start) / step)
    if integral:
        array = start + step * np.arange(count, dtype=np.int64)
    else:
        array = start + step * np.arange(count, dtype=np.float64)
    return _make(array.astype(dtype), device, requires_grad)


def linspace(start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` (both included), float32 by
    default; computed from both ends towards the middle, as PyTorch does."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dtype = _dtype(dtype, _dtypes.float32)
    compute = dtype if dtype.kind == "f" else np.dtype(np.float64)  # PyTorch computes in dtype
    first, last = compute.type(start), compute.type(end)
    i = np.arange(steps).astype(compute)
    if steps > 1:
        step = (last - first) / compute.type(steps - 1)
        array = np.where(i < steps // 2, first + step * i, last - step * (steps - 1 - i))
    else:
        array = np.full(steps, first)
    return _make(array.astype(dtype), device, requires_grad)


# ---- like another tensor ---------------------------------------------------------------------
def _like(input: Any) -> tuple[Size, np.dtype]:
    data = input._data if isinstance(input, Tensor) else np.asarray(input)
    return data.shape, data.dtype


def zeros_like(input: Any, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    shape, own = _like(input)
    return zeros(shape, dtype=_dtype(dtype, own), device=device, requires_grad=requires_grad)


def ones_like(input: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, own = _like(input)
    return ones(shape, dtype=_dtype(dtype, own), device=device, requires_grad=requires_grad)


def empty_like(input: Any, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, own = _like(input)
    return full(shape, fill_value, dtype=_dtype(dtype, own), device=device,
                requires_grad=requires_grad)


def randn_like(input: Any, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False) -> Tensor:
    shape, own = _like(input)
    return randn(shape, dtype=_dtype(dtype, own), device=device, requires_grad=requires_grad)


def rand_like(input: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    shape, own = _like(input)
    return rand(shape, dtype=_dtype(dtype, own), device=device, requires_grad=requires_grad)


def randint_like(input: Any, low: int = 0, high: int | None = None, *, dtype: Any = None,
                 device: Any = None, requires_grad: bool = False) -> Tensor:
    """``randint_like(input, high)`` or ``randint_like(input, low, high)``; input's dtype."""
    if high is None:
        low, high = 0, low
    shape, own = _like(input)
    return randint(low, high, shape, dtype=_dtype(dtype, own), device=device,
                   requires_grad=requires_grad)


# ---- from numpy ------------------------------------------------------------------------------
_NUMPY_KINDS = "fiub"


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing ``ndarray``'s memory and dtype: writes to either show in the other."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype.kind not in _NUMPY_KINDS or ndarray.dtype == np.float16:
        raise TypeError(f"can't convert np.ndarray of type {ndarray.dtype}: minidl supports "
                        "float64, float32, int64, int32, int16, int8, uint8 and bool")
    return _leaf(ndarray)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor without a copy where possible: a tensor of the same dtype comes
    back as it is, a numpy array of a supported dtype is shared (as :func:`from_numpy`)."""
    if device is not None:
        cpu_device(device)
    dtype = None if dtype is None else _dtypes.as_dtype(dtype)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and data.dtype.kind in _NUMPY_KINDS \
            and data.dtype != np.float16 and dtype in (None, data.dtype):
        return _leaf(data)
    return _leaf(_as_array(data, dtype))
