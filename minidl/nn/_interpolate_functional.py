"""``interpolate`` (nearest, linear, bilinear, trilinear) with PyTorch's index arithmetic.

Both modes are separable: every spatial axis is resampled on its own, innermost first, as
PyTorch's CPU kernel evaluates them.

* ``nearest``: output index ``i`` reads input ``min(floor(i * s), in - 1)``, computed in float32
  as PyTorch does, with ``s = 1 / scale_factor`` when a scale factor is given and
  ``in / out`` otherwise (so both pick the same pixels). Like PyTorch's 2-D kernel, 4-D input
  copies an axis whose size does not change and reads ``i // 2`` on an axis that exactly
  doubles, whatever the scale factor. The gradient sums into the pixels read.
* linear modes: output ``i`` sits at source coordinate ``s * i`` (``align_corners=True``,
  ``s = (in - 1) / (out - 1)``) or ``max(s * (i + 0.5) - 0.5, 0)``; it mixes the two
  neighbouring input pixels with weights ``1 - t`` and ``t`` (an axis whose size does not
  change is copied). The coordinates are computed in the input's precision (float32 or
  float64); float32 values agree with PyTorch's to a few ulps, the pixels used exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor, _result

_LINEAR_MODES = {"linear": 3, "bilinear": 4, "trilinear": 5}
_ALL_MODES = "nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact"


def _nearest_index(in_size: int, out_size: int, scale: float | None,
                   shortcuts: bool) -> np.ndarray:
    if shortcuts and out_size == in_size:
        return np.arange(out_size)
    if shortcuts and out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    if scale is not None and scale > 0:
        step = np.float32(1.0 / scale)
    else:
        step = np.float32(in_size) / np.float32(out_size)
    source = np.floor(np.arange(out_size, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(source, in_size - 1)


def _linear_weights(in_size: int, out_size: int, scale: float | None, align_corners: bool,
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(index0, index1, weight0, weight1) of every output position along one axis."""
    t = dtype.type
    if out_size == in_size:
        same = np.arange(out_size)
        return same, same, np.ones(out_size, dtype), np.zeros(out_size, dtype)
    if align_corners:
        step = t(in_size - 1) / t(out_size - 1) if out_size > 1 else t(0)
        real = step * np.arange(out_size, dtype=dtype)
    else:
        step = t(1.0 / scale) if scale is not None and scale > 0 else t(in_size) / t(out_size)
        # formed in float64 and rounded once (exact for float32 steps, like a fused multiply-add)
        real = (np.float64(step) * (np.arange(out_size) + 0.5) - 0.5).astype(dtype)
        real = np.maximum(real, t(0))
    index0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    weight1 = np.clip(real - index0.astype(dtype), t(0), t(1))
    index1 = index0 + (index0 < in_size - 1)
    return index0, index1, t(1) - weight1, weight1


def _along(a: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    return np.take(a, index, axis=axis)


def _scatter(g: np.ndarray, axis: int, index: np.ndarray, in_size: int) -> np.ndarray:
    """The transpose of ``_along``: sum the gradient of each output position into its source."""
    moved = np.moveaxis(g, axis, 0)
    out = np.zeros((in_size,) + moved.shape[1:], g.dtype)
    np.add.at(out, index, moved)
    return np.moveaxis(out, 0, axis)


def _weighted(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return w.reshape(shape)


def _nearest(input: Tensor, sizes: list[int], scales: list[float | None]) -> Tensor:
    x = input._data
    axes = list(range(2, x.ndim))
    plans = [
        (axis, _nearest_index(x.shape[axis], size, scale, shortcuts=x.ndim == 4))
        for axis, size, scale in zip(axes, sizes, scales, strict=True)
    ]
    y = x
    for axis, index in reversed(plans):
        y = _along(y, axis, index)

    def backward(g):
        for axis, index in plans:
            g = _scatter(g, axis, index, x.shape[axis])
        return (g,)

    return _result(np.ascontiguousarray(y), (input,), backward)


def _linear(input: Tensor, sizes: list[int], scales: list[float | None],
            align_corners: bool) -> Tensor:
    x = input._data
    ndim = x.ndim
    plans = [
        (axis, *_linear_weights(x.shape[axis], size, scale, align_corners, x.dtype))
        for axis, size, scale in zip(range(2, ndim), sizes, scales, strict=True)
    ]
    y = x
    for axis, i0, i1, w0, w1 in reversed(plans):  # innermost axis first, as PyTorch
        y = _along(y, axis, i0) * _weighted(w0, axis, ndim) + _along(y, axis, i1) * _weighted(
            w1, axis, ndim
        )

    def backward(g):
        for axis, i0, i1, w0, w1 in plans:
            size = x.shape[axis]
            g = _scatter(g * _weighted(w0, axis, ndim), axis, i0, size) + _scatter(
                g * _weighted(w1, axis, ndim), axis, i1, size
            )
        return (g,)

    return _result(y, (input,), backward)


def _output_sizes(input: Tensor, size: Any, scale_factor: Any,
                  recompute_scale_factor: bool | None) -> tuple[list[int], list[float | None]]:
    """PyTorch's argument rules: exactly one of size / scale_factor, one value or one per
    spatial dim; the output size of a scale factor is ``floor(in * scale)``."""
    dim = input.ndim - 2
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dim
        if len(sizes) != dim:
            raise ValueError(
                "Input and output must have the same number of spatial dimensions, but got "
                f"input with spatial dimensions of {spatial} and output size of {size}. Please "
                "provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                "(o1, o2, ...,oK) format."
            )
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
            raise TypeError(
                "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                f"Tuple[int, int, int], but got size with types {[type(s) for s in sizes]}"
            )
        return [int(s) for s in sizes], [None] * dim
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    many = isinstance(scale_factor, (list, tuple))
    factors = list(scale_factor) if many else [scale_factor] * dim
    if len(factors) != dim:
        raise ValueError(
            "Input and scale_factor must have the same number of spatial dimensions, but got "
            f"input with spatial dimensions of {spatial} and scale_factor of shape "
            f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
            "scale_factor in (s1, s2, ...,sK) format."
        )
    sizes = [math.floor(float(n) * float(f)) for n, f in zip(spatial, factors, strict=True)]
    scales = [None] * dim if recompute_scale_factor else [float(f) for f in factors]
    return sizes, scales


def interpolate(
    input: Tensor,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to ``size``
    or by ``scale_factor``, with ``mode`` 'nearest', 'linear' (3-D), 'bilinear' (4-D) or
    'trilinear' (5-D). PyTorch's argument checks and errors; 'area', 'bicubic',
    'nearest-exact' and ``antialias=True`` are not implemented (NotImplementedError)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a minidl Tensor, got {type(input).__name__}")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    elif align_corners is None:
        align_corners = False
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    if antialias and not (mode in ("bilinear", "bicubic") and input.ndim == 4):
        raise ValueError(
            "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and "
            "requires a 4-D tensor as input"
        )
    _check_mode(mode, input.ndim, antialias)
    if input.dtype != np.float32 and input.dtype != np.float64:
        raise TypeError(f"interpolate: input must be float32 or float64, got {input.dtype}")
    if any(s <= 0 for s in sizes):
        raise ValueError(
            f"interpolate: input and output sizes should be greater than 0, but got input "
            f"{list(input.shape[2:])} and output {sizes}"
        )
    if mode == "nearest":
        return _nearest(input, sizes, scales)
    return _linear(input, sizes, scales, bool(align_corners))


def _check_mode(mode: str, ndim: int, antialias: bool) -> None:
    if ndim not in (3, 4, 5):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {ndim}D) for the "
            f"modes: {_ALL_MODES} (got {mode})"
        )
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != ndim:
        needs = {3: "linear", 4: "bilinear", 5: "trilinear"}[ndim]
        raise NotImplementedError(
            f"Got {ndim}D input, but {mode} mode needs {_LINEAR_MODES[mode]}D input "
            f"(use '{needs}' for {ndim}D input)"
        )
    if mode != "nearest" and mode not in _LINEAR_MODES:
        raise NotImplementedError(
            f"interpolate: mode {mode!r} is not implemented in minidl (nearest, linear, "
            "bilinear and trilinear are)"
        )
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not implemented in minidl")


__all__ = ["interpolate"]
