"""Max, average and adaptive-average pooling with PyTorch's semantics.

Max and average pooling run on the Cython kernels of ``minidl._ext.pool``, which work on the
3-D form: 1-D pooling is lifted to ``(N, C, 1, 1, W)`` and 2-D pooling to ``(N, C, 1, H, W)``.
Arguments are validated here, once, with messages that name the shapes and the rule; the
kernels re-check cheaply. Adaptive average pooling is separable, so it is two small matrix
products with PyTorch's window rule ``floor(i*in/out) .. ceil((i+1)*in/out)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .._ext import pool as _kernels
from .._geometry import _cached, as_int, int_tuple
from ..tensor import Tensor, _result

IntOrTuple = int | Sequence[int]


# ---- argument handling ---------------------------------------------------------------------
def _check_input(op: str, input: Any, nd: int) -> tuple[np.ndarray, bool]:
    """The input's array and whether it is unbatched; PyTorch's rank and size rules."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a minidl Tensor, got {type(input).__name__}")
    x = input._data
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"{op}: input must be float32 or float64, got dtype {x.dtype}")
    if x.ndim not in (nd + 1, nd + 2) or 0 in x.shape[-nd - 1 :]:
        raise ValueError(
            f"{op}: expected a {nd + 1}-D (C, {_dims(nd)}) or {nd + 2}-D (N, C, {_dims(nd)}) "
            f"input with non-zero channel and spatial sizes (the batch may be 0), "
            f"got input of shape {x.shape}"
        )
    return x, x.ndim == nd + 1


def _dims(nd: int) -> str:
    return ", ".join(("D", "H", "W")[3 - nd :])


def _geometry(
    op: str,
    size: tuple[int, ...],
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> tuple[tuple[int, ...], ...]:
    """Validate the pooling arguments; return (kernel, stride, padding, dilation, out size)."""
    nd = len(size)
    k = int_tuple(kernel_size, nd, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else int_tuple(stride, nd, "stride", op)
    p = int_tuple(padding, nd, "padding", op)
    d = int_tuple(dilation, nd, "dilation", op)
    for name, values, low in (("kernel_size", k, 1), ("stride", s, 1), ("dilation", d, 1),
                              ("padding", p, 0)):
        if min(values) < low:
            raise ValueError(f"{op}: {name} must be >= {low} in every dim, got {values}")
    if any(pi > ki // 2 for pi, ki in zip(p, k, strict=True)):
        raise ValueError(
            f"{op}: padding must be at most half of the kernel size (padding <= "
            f"kernel_size // 2 in every dim), got padding={p}, kernel_size={k}"
        )
    out = tuple(
        _kernels.pool_output_size(n, ki, si, pi, di, ceil_mode)
        for n, ki, si, pi, di in zip(size, k, s, p, d, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"{op}: input of spatial size {size} gives output size {out}, which is too small "
            f"(kernel_size={k}, stride={s}, padding={p}, dilation={d}, ceil_mode={ceil_mode}; "
            f"out = (in + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1)"
        )
    return k, s, p, d, out


def _lift(values: tuple[int, ...], fill: int) -> tuple[int, int, int]:
    return (fill,) * (3 - len(values)) + tuple(values)  # type: ignore[return-value]


def _to5d(x: np.ndarray, nd: int, unbatched: bool) -> np.ndarray:
    lead = (1,) + x.shape[:1] if unbatched else x.shape[:2]
    return x.reshape(lead + (1,) * (3 - nd) + x.shape[-nd:])


# ---- max pooling ---------------------------------------------------------------------------
def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, unbatched = _check_input(op, input, nd)
    k, s, p, d, _ = _cached(_geometry, op, x.shape[-nd:], kernel_size, stride, padding,
                            dilation, bool(ceil_mode))
    x5 = _to5d(x, nd, unbatched)
    y5, indices = _kernels.max_pool_forward(
        x5, _lift(k, 1), _lift(s, 1), _lift(p, 0), _lift(d, 1), bool(ceil_mode)
    )
    out_shape = x.shape[:-nd] + y5.shape[5 - nd :]
    in_size, in_shape = x5.shape[2:], x.shape

    def backward(g):
        dx = _kernels.max_pool_backward(g.reshape(indices.shape), indices, in_size)
        return (dx.reshape(in_shape),)

    out = _result(y5.reshape(out_shape), (input,), backward)
    if return_indices:
        return out, Tensor(indices.reshape(out_shape))
    return out


def max_pool1d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling of (N, C, L) or (C, L); ``return_indices`` adds flat L indices."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling of (N, C, H, W) or (C, H, W); indices are flat H*W offsets."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """3-D max pooling of (N, C, D, H, W) or (C, D, H, W); indices are flat D*H*W offsets."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


# ---- average pooling -----------------------------------------------------------------------
def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    x, unbatched = _check_input(op, input, nd)
    k, s, p, _, _ = _cached(_geometry, op, x.shape[-nd:], kernel_size, stride, padding, 1,
                            bool(ceil_mode))
    if divisor_override is not None:
        divisor = as_int(divisor_override)
        if divisor is None:
            raise TypeError(f"{op}: divisor_override must be an int, got {divisor_override!r}")
        if divisor == 0:
            raise ValueError(f"{op}: divisor_override must be non-zero, got 0")
    if nd == 3 and any(n < ki for n, ki in zip(x.shape[-3:], k, strict=True)):
        raise ValueError(  # PyTorch's avg_pool3d (only) checks this, padding aside
            f"{op}: input of spatial size {x.shape[-3:]} is smaller than kernel_size {k}"
        )
    x5 = _to5d(x, nd, unbatched)
    args = (_lift(k, 1), _lift(s, 1), _lift(p, 0), bool(ceil_mode), bool(count_include_pad),
            divisor_override)
    y5 = _kernels.avg_pool_forward(x5, *args)
    out_shape = x.shape[:-nd] + y5.shape[5 - nd :]
    in_size, in_shape = x5.shape[2:], x.shape

    def backward(g):
        dx = _kernels.avg_pool_backward(np.reshape(g, y5.shape), in_size, *args)
        return (dx.reshape(in_shape),)

    return _result(y5.reshape(out_shape), (input,), backward)


def avg_pool1d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling of (N, C, L) or (C, L)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """2-D average pooling of (N, C, H, W) or (C, H, W)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """3-D average pooling of (N, C, D, H, W) or (C, D, H, W)."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# ---- adaptive average pooling ----------------------------------------------------------------
@lru_cache(maxsize=256)
def _adaptive_matrix(size: int, out: int, dtype: str) -> np.ndarray:
    """(out, size) averaging matrix: row i averages [floor(i*size/out), ceil((i+1)*size/out))."""
    matrix = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    matrix = matrix.astype(dtype)
    matrix.flags.writeable = False
    return matrix


def _adaptive_output_size(op: str, output_size: Any, size: tuple[int, ...]) -> tuple[int, ...]:
    nd = len(size)
    single = as_int(output_size)
    if single is not None:
        values: list = [single] * nd
    elif isinstance(output_size, (tuple, list)) and len(output_size) in (1, nd):
        values = list(output_size) * (nd if len(output_size) == 1 else 1)
        values = [n if v is None else as_int(v) for v, n in zip(values, size, strict=True)]
        if None in values:
            raise TypeError(f"{op}: output_size entries must be ints or None, got {output_size!r}")
    else:
        raise TypeError(
            f"{op}: output_size must be an int or a tuple of {nd} ints/None, got {output_size!r}"
        )
    if min(values) < 0:
        raise ValueError(f"{op}: output_size must be >= 0 in every dim, got {tuple(values)}")
    return tuple(values)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive windows; ``None`` in ``output_size`` keeps that size."""
    op = "adaptive_avg_pool2d"
    x, _ = _check_input(op, input, 2)
    (out_h, out_w) = _adaptive_output_size(op, output_size, x.shape[-2:])
    rows = _adaptive_matrix(x.shape[-2], out_h, x.dtype.str)
    cols_t = _adaptive_matrix(x.shape[-1], out_w, x.dtype.str).T

    def backward(g):
        return (rows.T @ g @ cols_t.T,)

    return _result(rows @ x @ cols_t, (input,), backward)


__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
]
