"""Dtypes under PyTorch's names. minidl's dtypes are numpy dtypes, so ``t.dtype == minidl.float32``
and ``t.dtype == np.float32`` both hold; half precision is not supported (minidl computes in
float32 or float64)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

ALIASES = {
    "float32": float32, "float": float32, "float64": float64, "double": float64,
    "int64": int64, "long": int64, "int32": int32, "int": int32, "int16": int16,
    "short": int16, "int8": int8, "uint8": uint8, "bool": bool_,
}
"""The names ``minidl`` exports, as ``torch.<name>``."""

_TYPE_NAMES = {
    float32: "torch.FloatTensor", float64: "torch.DoubleTensor", int64: "torch.LongTensor",
    int32: "torch.IntTensor", int16: "torch.ShortTensor", int8: "torch.CharTensor",
    uint8: "torch.ByteTensor", bool_: "torch.BoolTensor",
}
_BY_TYPE_NAME = {name: dtype for dtype, name in _TYPE_NAMES.items()}


def type_name(dtype: np.dtype) -> str:
    """PyTorch's ``Tensor.type()`` string: ``'torch.FloatTensor'`` for float32, ..."""
    try:
        return _TYPE_NAMES[dtype]
    except KeyError:
        raise TypeError(f"no PyTorch tensor type for dtype {dtype}") from None


def is_dtype(spec: Any) -> bool:
    """Whether ``spec`` names a dtype (a numpy dtype or scalar type, or Python's int/float/bool);
    strings are devices, as in PyTorch, except numpy's dtype names and 'torch.FloatTensor'."""
    if isinstance(spec, np.dtype):
        return True
    if isinstance(spec, type):
        return issubclass(spec, (np.generic, builtins.int, builtins.float, builtins.bool))
    if isinstance(spec, str):
        if spec in _BY_TYPE_NAME:
            return True
        try:
            np.dtype(spec)
        except TypeError:
            return False
        return True
    return False


def as_dtype(spec: Any) -> np.dtype:
    """The numpy dtype named by ``spec`` (see :func:`is_dtype`)."""
    if isinstance(spec, str) and spec in _BY_TYPE_NAME:
        return _BY_TYPE_NAME[spec]
    if not is_dtype(spec):
        raise TypeError(f"expected a dtype such as minidl.float32, got {spec!r}")
    return np.dtype(spec)
