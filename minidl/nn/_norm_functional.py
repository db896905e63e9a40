"""Batch and layer normalisation, each one fused op with the analytic backward.

Training normalises with the biased batch variance and folds the *unbiased* variance into
``running_var`` (PyTorch's rule); evaluation normalises with the running statistics. With
``xhat = (x - mean) * invstd``, the backward in training is

    dx = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))

(means over every axis but the channel axis 1), and in evaluation ``dx = g * weight * invstd``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import runtime
from .._ext import norm as _kernels
from ..tensor import Tensor, _result


def _channel_vector(name: str, t: Tensor | None, channels: int, x: np.ndarray, param: bool):
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: {name} must be a minidl Tensor, got {type(t).__name__}")
    if t.shape != (channels,):
        raise ValueError(
            f"batch_norm: {name} has shape {t.shape}, expected ({channels},) for input of "
            f"shape {x.shape} (one value per channel, dim 1)"
        )
    if param and t.dtype != x.dtype:
        raise TypeError(
            f"batch_norm: {name} has dtype {t.dtype} but the input has dtype {x.dtype}"
        )
    return t._data


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Per-channel sum of (N, C, *) in float64: a pairwise float sum along the contiguous
    trailing dims, then float64 across the batch (accurate and about as fast as a plain sum)."""
    n, c = a.shape[:2]
    return a.reshape(n, c, int(np.prod(a.shape[2:]))).sum(axis=2).sum(axis=0, dtype=np.float64)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise (N, C, *) over every dim but C; updates the running stats in place when
    training (``running = (1 - momentum) * running + momentum * batch_stat``)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a minidl Tensor, got {type(input).__name__}")
    x = input._data
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"batch_norm: input must be float32 or float64, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, *), got shape {x.shape}")
    channels = x.shape[1]
    rm = _channel_vector("running_mean", running_mean, channels, x, False)
    rv = _channel_vector("running_var", running_var, channels, x, False)
    w = _channel_vector("weight", weight, channels, x, True)
    b = _channel_vector("bias", bias, channels, x, True)
    bshape = (1, channels) + (1,) * (x.ndim - 2)
    count = x.size // channels if channels else 0
    dtype = x.dtype.type

    if training:
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input "
                f"of shape {x.shape}"
            )
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], channels, -1)
        y3, xhat3, mean, var, invstd = _kernels.batch_norm_train_forward(
            x3, w, b, float(eps), runtime.threads_in_use(), runtime.get_num_threads()
        )
        xhat = xhat3.reshape(x.shape)
        if rm is not None or rv is not None:
            if momentum is None or isinstance(momentum, bool):
                raise TypeError(f"batch_norm: momentum must be a float, got {momentum!r}")
            m = float(momentum)
            if rm is not None:  # in place, as PyTorch updates the buffers
                rm *= 1 - m
                rm += m * mean
            if rv is not None:
                rv *= 1 - m
                rv += (m * count / (count - 1)) * var  # the unbiased batch variance
    else:
        if rm is None or rv is None:
            raise ValueError("batch_norm: running_mean and running_var must be given in "
                             "evaluation mode (training=False)")
        invstd = (1.0 / np.sqrt(rv.astype(x.dtype) + dtype(eps))).astype(x.dtype)
        xhat = (x - rm.astype(x.dtype).reshape(bshape)) * invstd.reshape(bshape)

    if training:
        y = y3.reshape(x.shape)
    else:
        y = xhat if w is None else xhat * w.reshape(bshape)
        if b is not None:
            y = y + b.reshape(bshape)
    scale = invstd if w is None else invstd * w

    def backward(g):
        need_gb = bias is not None and bias.requires_grad
        need_gw = weight is not None and weight.requires_grad
        gx = None
        if training:
            g3 = np.ascontiguousarray(g, dtype=x.dtype).reshape(xhat3.shape)
            gx, gb, gw = _kernels.batch_norm_train_backward(
                g3, xhat3, scale, input.requires_grad, runtime.threads_in_use(),
                runtime.get_num_threads()
            )
            gx = None if gx is None else gx.reshape(x.shape)
        else:
            gb = _channel_sum(g).astype(dtype) if need_gb else None
            gw = _channel_sum(g * xhat).astype(dtype) if need_gw else None
            if input.requires_grad:
                gx = g * scale.reshape(bshape)
        grads = [gx]
        if weight is not None:
            grads.append(gw if need_gw else None)
        if bias is not None:
            grads.append(gb if need_gb else None)
        return grads

    parents = (input,) + tuple(t for t in (weight, bias) if t is not None)
    return _result(y, parents, backward)


def _normalized_dims(input: Tensor, normalized_shape: Any) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(
        normalized_shape
    )
    k = len(shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape={list(shape)} needs input of shape [*, "
            f"{', '.join(map(str, shape))}], got input of shape {list(input.shape)}"
        )
    return shape


def _affine_vector(name: str, t: Tensor | None, shape: tuple[int, ...], x: np.ndarray):
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"layer_norm: {name} must be a minidl Tensor, got {type(t).__name__}")
    if t.shape != shape:
        raise ValueError(
            f"layer_norm: {name} has shape {list(t.shape)}, expected normalized_shape "
            f"{list(shape)}"
        )
    if t.dtype != x.dtype:
        raise TypeError(f"layer_norm: {name} has dtype {t.dtype} but the input has {x.dtype}")
    return t._data


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims of each sample: ``(x - mean) /
    sqrt(var + eps) * weight + bias`` with the biased variance (statistics in float64). The
    backward, with ``xhat`` the normalised input and ``gh = g * weight``::

        dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"layer_norm: input must be a minidl Tensor, got {type(input).__name__}")
    x = input._data
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"layer_norm: input must be float32 or float64, got dtype {x.dtype}")
    shape = _normalized_dims(input, normalized_shape)
    w = _affine_vector("weight", weight, shape, x)
    b = _affine_vector("bias", bias, shape, x)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    wide = x.astype(np.float64)
    mean = wide.mean(axis=axes, keepdims=True)
    centered = wide - mean
    rstd = 1.0 / np.sqrt(np.square(centered).mean(axis=axes, keepdims=True) + eps)
    xhat = (centered * rstd).astype(x.dtype)
    y = xhat if w is None else xhat * w
    if b is not None:
        y = y + b
    lead = tuple(range(x.ndim - len(shape)))

    def backward(g):
        gh = g if w is None else g * w
        gx = None
        if input.requires_grad:
            gh64 = gh.astype(np.float64)
            xhat64 = centered * rstd
            gx = rstd * (gh64 - gh64.mean(axis=axes, keepdims=True)
                         - xhat64 * (gh64 * xhat64).mean(axis=axes, keepdims=True))
            gx = gx.astype(x.dtype)
        grads = [gx]
        if weight is not None:
            grads.append((g * xhat).sum(axis=lead) if weight.requires_grad else None)
        if bias is not None:
            grads.append(g.sum(axis=lead) if bias.requires_grad else None)
        return grads

    parents = (input,) + tuple(t for t in (weight, bias) if t is not None)
    return _result(y, parents, backward)


__all__ = ["batch_norm", "layer_norm"]
