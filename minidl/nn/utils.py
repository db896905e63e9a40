"""Gradient clipping and parameter <-> vector conversion, as ``torch.nn.utils``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor, cat


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """One tensor or an iterable of tensors -> a list; TypeError for anything else."""
    if isinstance(parameters, Tensor):
        return [parameters]
    if not isinstance(parameters, Iterable):
        raise TypeError(
            f"expected a minidl Tensor or an iterable of them, got {type(parameters).__name__}"
        )
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(
                f"parameters must be minidl Tensors (model.parameters()), got a "
                f"{type(p).__name__}"
            )
    return params


def _vector_norm(x: np.ndarray, p: float) -> np.float64:
    """``torch.linalg.vector_norm(x, p)`` of a flat array, accumulated in float64."""
    if x.size == 0:
        return np.float64(0.0)
    a = np.abs(x.astype(np.float64, copy=False)).ravel()
    if p == np.inf:
        return a.max()
    if p == -np.inf:
        return a.min()
    if p == 0:
        return np.float64(np.count_nonzero(a))
    if p == 1:
        return a.sum()
    if p == 2:
        return np.sqrt(np.dot(a, a))
    return np.sum(a**p) ** (1.0 / p)


def get_total_norm(
    tensors: Iterable[Tensor | np.ndarray],
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """The ``norm_type``-norm of the norms of ``tensors`` (their concatenation's norm) as a
    0-d Tensor in the tensors' dtype (float32 for none)."""
    p = float(norm_type)
    arrays = [t._data if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
    if not arrays:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*arrays)
    if dtype.kind != "f":
        dtype = np.dtype(np.float32)
    # one norm per tensor, rounded to the tensor's dtype as torch does, then the norm of those
    norms = np.array(
        [
            np.asarray(_vector_norm(a, p), dtype=a.dtype if a.dtype.kind == "f" else np.float32)
            for a in arrays
        ],
        dtype=np.float64,
    )
    total = np.asarray(_vector_norm(norms, p), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor(total)


def clip_grads_with_norm_(
    parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: Tensor | float
) -> None:
    """Scale every gradient by ``min(1, max_norm / (total_norm + 1e-6))``, in place."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    norm = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    dtype = norm.dtype if norm.dtype.kind == "f" else np.dtype(np.float32)
    norm = norm.astype(dtype)
    # torch: clamp(max_norm / (total_norm + 1e-6), max=1), where scalar / tensor is
    # tensor.reciprocal() * scalar, all in the norm's dtype
    coef = (dtype.type(1) / (norm + dtype.type(1e-6))) * dtype.type(max_norm)
    coef = np.minimum(coef, dtype.type(1.0))
    for g in grads:
        factor = coef.astype(g._data.dtype) if g._data.dtype.kind == "f" else coef
        if g._data.flags.writeable and g._data.dtype.kind == "f":
            g._data *= factor
        else:
            g._data = g._data * factor


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: Any = None,
) -> Tensor:
    """Rescale the gradients in place so that their total ``norm_type``-norm (all gradients
    concatenated; ``'inf'``/``float('inf')`` for the max-abs norm) is at most ``max_norm``.
    Returns the total norm before clipping, a 0-d Tensor. ``foreach`` is accepted and ignored.
    """
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(
    parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: Any = None
) -> None:
    """Clamp every gradient into ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is None:
            continue
        g = p.grad
        if g._data.flags.writeable:
            np.clip(g._data, -clip_value, clip_value, out=g._data)
        else:
            g._data = np.clip(g._data, -clip_value, clip_value)


def parameters_to_vector(parameters: Tensor | Iterable[Tensor]) -> Tensor:
    """Concatenate the flattened parameters into one 1-d Tensor (differentiable)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector got no parameters")
    return cat([p.reshape(-1) for p in params], 0)


def vector_to_parameters(vec: Tensor, parameters: Tensor | Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-d ``vec`` into the parameters' data (no graph)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected a minidl Tensor, but got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"expected a 1-d vector, got shape {vec.shape}")
    params = _as_list(parameters)
    total = sum(int(np.prod(p.shape)) for p in params)
    if vec.shape[0] != total:
        raise ValueError(f"vector has {vec.shape[0]} elements, the parameters have {total}")
    offset = 0
    for p in params:
        n = int(np.prod(p.shape))
        p._data = vec._data[offset : offset + n].reshape(p.shape).astype(p.dtype, copy=True)
        offset += n


__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
    "parameters_to_vector",
    "vector_to_parameters",
]
