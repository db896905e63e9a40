"""Losses with PyTorch's semantics, each one fused op in numerically stable numpy.

``cross_entropy`` is log_softmax + nll in one node. Every variant (class indices or class
probabilities, class weights, ``ignore_index``, label smoothing) is written as

    loss_i = -sum_c q_ic * log_softmax(x)_ic

for per-sample class coefficients ``q``, so the input gradient is always
``(softmax(x) * sum_c q_ic - q_ic) * dloss_i``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..tensor import Tensor, _result, _sigmoid, _unbroadcast

REDUCTIONS = ("none", "mean", "sum")


# ---- argument handling -----------------------------------------------------------------------
def _reduction(op: str, reduction: str, size_average: Any = None, reduce: Any = None) -> str:
    """PyTorch's rule, including the deprecated ``size_average`` / ``reduce`` pair."""
    if size_average is not None or reduce is not None:
        warnings.warn(
            "size_average and reduce args will be deprecated, please use reduction=... instead.",
            stacklevel=3,
        )
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction "
                         f"(expected one of {REDUCTIONS})")
    return reduction


def _input(op: str, input: Any) -> np.ndarray:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a minidl Tensor, got {type(input).__name__}")
    if input.dtype != np.float32 and input.dtype != np.float64:
        raise TypeError(f"{op}: input must be float32 or float64, got dtype {input.dtype}")
    return input._data


def _array(t: Any) -> np.ndarray:
    return t._data if isinstance(t, Tensor) else np.asarray(t)


def _float_like(op: str, name: str, t: Any, x: np.ndarray) -> tuple[Tensor | None, np.ndarray]:
    """A float tensor (or array) argument in ``x``'s dtype; the Tensor (for grads) too."""
    a = _array(t)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{op}: {name} must be a float tensor, got dtype {a.dtype}")
    return (t if isinstance(t, Tensor) else None), a.astype(x.dtype, copy=False)


def _class_weight(op: str, weight: Any, channels: int, x: np.ndarray) -> np.ndarray | None:
    if weight is None:
        return None
    w = _array(weight)
    if w.dtype.kind not in "fiu":
        raise TypeError(f"{op}: weight must be a float tensor of class weights, got {weight!r}")
    if w.shape != (channels,):
        raise ValueError(
            f"{op}: weight has shape {w.shape}, expected ({channels},): one weight per class "
            f"for input of shape {x.shape}"
        )
    return w.astype(x.dtype, copy=False)


def _check_ignore_index(op: str, ignore_index: Any) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def _class_targets(op: str, target: np.ndarray, x: np.ndarray, ignore_index: int):
    """Check class-index targets; return (targets safe to gather, valid mask or None)."""
    expected = x.shape[:1] + x.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: class-index target has shape {target.shape} but input of shape {x.shape} "
            f"needs target of shape {expected} (input (N, C, d1, ...) -> target (N, d1, ...))"
        )
    valid = None
    safe = target
    ignored = target == ignore_index
    if ignored.any():
        valid = ~ignored
        safe = np.where(ignored, 0, target)
    if safe.size:
        low, high = safe.min(), safe.max()
        if low < 0 or high >= x.shape[1]:
            bad = low if low < 0 else high
            raise ValueError(
                f"{op}: target {bad} is out of bounds: class indices must be in "
                f"[0, {x.shape[1] - 1}] for input with {x.shape[1]} classes (dim 1), or equal "
                f"ignore_index={ignore_index}"
            )
    return safe, valid


def _batched(x: np.ndarray, target: np.ndarray, probabilities: bool):
    """PyTorch's unbatched form (C,) with target () or (C,) -> a batch of one."""
    if x.ndim == 1:
        return x[None], (target[None] if probabilities or target.ndim == 0 else target), True
    return x, target, False


def _reduce(loss: np.ndarray, reduction: str, denominator: Any) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / denominator)


def _grad_scale(g: np.ndarray, reduction: str, denominator: Any, shape: tuple) -> np.ndarray:
    """The gradient of the reduced loss w.r.t. each unreduced element, broadcastable.

    A 'mean' over no element (every target ignored) is NaN, but its gradient is 0 (PyTorch)."""
    if reduction == "none":
        return g.reshape(shape)
    if reduction == "mean":
        if denominator == 0:
            return np.zeros_like(g)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = g / denominator
    return g


def _expand_class(a: np.ndarray, ndim: int) -> np.ndarray:
    """A per-class vector (C,) shaped to broadcast against (N, C, d1, ...)."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


# ---- cross entropy ---------------------------------------------------------------------------
def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits (N, C, d1, ...) or (C,) against class indices (N, d1, ...)
    or class probabilities (same shape as the input); log_softmax + nll as one op."""
    op = "cross_entropy"
    reduction = _reduction(op, reduction, size_average, reduce)
    x = _input(op, input)
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C,) or (N, C, ...), got ()")
    ignore_index = _check_ignore_index(op, ignore_index)
    if isinstance(label_smoothing, bool) or not isinstance(
        label_smoothing, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{op}: label_smoothing must be a float, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = _array(target)
    probabilities = t.dtype.kind == "f"
    if not probabilities and t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold class indices (an integer dtype) or class probabilities "
            f"(a float dtype), got dtype {t.dtype}"
        )
    xb, tb, unbatched = _batched(x, t, probabilities)
    channels, ndim = xb.shape[1], xb.ndim
    w = _class_weight(op, weight, channels, xb)
    eps = float(label_smoothing)

    shifted = xb - xb.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    logp = shifted
    logp -= np.log(sums)
    wc = None if w is None else _expand_class(w, ndim)

    if probabilities:
        if tb.shape != xb.shape:
            raise ValueError(
                f"{op}: probability target (float dtype) has shape {t.shape} but must have "
                f"the input's shape {x.shape}; class-index targets need an integer dtype"
            )
        if ignore_index != -100:
            raise ValueError(f"{op}: ignore_index is not supported for probability targets")
        target_tensor = target if isinstance(target, Tensor) else None
        tb = tb.astype(xb.dtype, copy=False)
        q = tb * (1 - eps) + eps / channels if eps > 0 else tb
        if wc is not None:
            q = q * wc
        loss = -np.einsum("ij...,ij...->i...", q, logp)
        denominator = xb.size // channels if xb.size else np.nan
        a = None
    else:
        safe, valid = _class_targets(op, tb, xb, ignore_index)
        index = np.expand_dims(safe, 1)
        picked = np.take_along_axis(logp, index, axis=1).squeeze(1)
        a = np.ones(safe.shape, xb.dtype) if w is None else w[safe]  # weight of the target
        if valid is not None:
            a = a * valid
        loss = -(a * picked)
        denominator = a.sum()
        if eps > 0:
            smooth = -(logp.sum(axis=1) if wc is None else np.einsum("ij...,j->i...", logp, w))
            if valid is not None:
                smooth *= valid
            loss = (1 - eps) * loss + (eps / channels) * smooth
        target_tensor = None

    out_shape = () if unbatched else loss.shape
    value = _reduce(loss, reduction, denominator).reshape(
        out_shape if reduction == "none" else ()
    ).astype(xb.dtype, copy=False)

    def backward(g):
        coef = _grad_scale(g, reduction, denominator, loss.shape)
        coef = np.expand_dims(np.broadcast_to(coef, loss.shape), 1)  # (N, 1, d1, ...)
        p = exp
        p /= sums  # softmax, in the buffer exp (backward runs once)
        gx = gt = None
        if probabilities:
            if input.requires_grad:
                gx = (p * q.sum(axis=1, keepdims=True) - q) * coef
            if target_tensor is not None and target_tensor.requires_grad:
                gt = -logp * coef
                if eps > 0:
                    gt *= 1 - eps
                if wc is not None:
                    gt *= wc
                gt = gt.reshape(t.shape)
        elif input.requires_grad:
            hit = (1 - eps) * a[:, None] * coef  # coefficient of the target class
            if eps > 0:
                valid_coef = coef if valid is None else coef * np.expand_dims(valid, 1)
                spread = (eps / channels) * valid_coef  # times each class weight
                w_all = 1.0 if w is None else wc
                w_sum = channels if w is None else w.sum()
                gx = p * (hit + spread * w_sum) - spread * w_all
            else:
                gx = p * hit
            picked_grad = np.take_along_axis(gx, index, axis=1) - hit
            np.put_along_axis(gx, index, picked_grad, axis=1)
        if gx is not None:
            gx = gx.reshape(x.shape).astype(x.dtype, copy=False)
        return (gx, gt) if target_tensor is not None else (gx,)

    parents = (input, target_tensor) if target_tensor is not None else (input,)
    return _result(value, parents, backward)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C, d1, ...) or (C,) at class indices
    (N, d1, ...); ``mean`` divides by the summed weights of the non-ignored targets."""
    op = "nll_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    x = _input(op, input)
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C,) or (N, C, ...), got ()")
    ignore_index = _check_ignore_index(op, ignore_index)
    t = _array(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices (integer dtype), got {t.dtype}")
    xb, tb, unbatched = _batched(x, t, False)
    w = _class_weight(op, weight, xb.shape[1], xb)
    safe, valid = _class_targets(op, tb, xb, ignore_index)
    index = np.expand_dims(safe, 1)
    a = np.ones(safe.shape, xb.dtype) if w is None else w[safe]
    if valid is not None:
        a = a * valid
    loss = -(a * np.take_along_axis(xb, index, axis=1).squeeze(1))
    denominator = a.sum()
    value = _reduce(loss, reduction, denominator)
    value = value.reshape(() if unbatched else loss.shape) if reduction == "none" else value

    def backward(g):
        coef = np.broadcast_to(_grad_scale(g, reduction, denominator, loss.shape), loss.shape)
        gx = np.zeros(xb.shape, xb.dtype)
        np.put_along_axis(gx, index, np.expand_dims(-a * coef, 1), axis=1)
        return (gx.reshape(x.shape),)

    return _result(value.astype(x.dtype, copy=False), (input,), backward)


# ---- regression losses -----------------------------------------------------------------------
def _pointwise_loss(op, input, target, size_average, reduce, reduction, weight, kind):
    reduction = _reduction(op, reduction, size_average, reduce)
    x = _input(op, input)
    target_tensor, t = _float_like(op, "target", target, x)
    if t.shape != x.shape:
        warnings.warn(
            f"{op}: using a target size ({t.shape}) that is different to the input size "
            f"({x.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )
        try:
            np.broadcast_shapes(x.shape, t.shape)
        except ValueError:
            raise ValueError(
                f"{op}: target of shape {t.shape} does not broadcast with input of shape "
                f"{x.shape}"
            ) from None
    diff = x - t
    loss = diff * diff if kind == "mse" else np.abs(diff)
    weight_tensor = None
    if weight is not None:
        weight_tensor, wa = _float_like(op, "weight", weight, x)
        if wa.shape != x.shape:
            raise ValueError(
                f"{op}: weight has shape {wa.shape} but must have the input's shape {x.shape}"
            )
        unweighted, loss = loss, loss * wa
        denominator = wa.sum()
    else:
        denominator = loss.size
    value = _reduce(loss, reduction, denominator)

    def backward(g):
        coef = _grad_scale(g, reduction, denominator, loss.shape)
        d = 2 * diff if kind == "mse" else np.sign(diff)
        d = d * (coef if weight is None else coef * wa)
        gx = _unbroadcast(d, x.shape) if input.requires_grad else None
        grads = [gx]
        if target_tensor is not None:
            need = target_tensor.requires_grad
            grads.append(_unbroadcast(-d, t.shape).astype(t.dtype) if need else None)
        if weight_tensor is not None:
            need = weight_tensor.requires_grad
            grads.append(_unbroadcast(unweighted * coef, wa.shape) if need else None)
        return grads

    parents = tuple(p for p in (input, target_tensor, weight_tensor) if p is not None)
    return _result(value.astype(x.dtype, copy=False), parents, backward)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
             reduce: bool | None = None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """(input - target)^2, reduced; with ``weight`` (input's shape) ``mean`` divides by its
    sum."""
    return _pointwise_loss("mse_loss", input, target, size_average, reduce, reduction, weight,
                           "mse")


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
            reduce: bool | None = None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """|input - target|, reduced (the gradient at 0 is 0)."""
    return _pointwise_loss("l1_loss", input, target, size_average, reduce, reduction, weight,
                           "l1")


# ---- binary cross entropy with logits --------------------------------------------------------
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """``-w * [pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))]``, computed
    as ``(1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)`` (stable for any x)."""
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(op, reduction, size_average, reduce)
    x = _input(op, input)
    target_tensor, t = _float_like(op, "target", target, x)
    if t.shape != x.shape:
        raise ValueError(
            f"{op}: target size {t.shape} must be the same as input size {x.shape}"
        )
    w = pw = None
    if weight is not None:
        w = _float_like(op, "weight", weight, x)[1]
        _check_broadcast(op, "weight", w.shape, x.shape)
    if pos_weight is not None:
        pw = _float_like(op, "pos_weight", pos_weight, x)[1]
        _check_broadcast(op, "pos_weight", pw.shape, x.shape)
    softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)  # softplus(-x)
    log_weight = None if pw is None else 1 + (pw - 1) * t
    loss = (1 - t) * x + (softplus_neg if log_weight is None else log_weight * softplus_neg)
    if w is not None:
        loss = loss * w
    value = _reduce(loss, reduction, loss.size)

    def backward(g):
        coef = _grad_scale(g, reduction, loss.size, loss.shape)
        if w is not None:
            coef = coef * w
        gx = gt = None
        if input.requires_grad:
            sig = _sigmoid(x)  # PyTorch's form: lw * sigmoid(x) - pos_weight * t
            gx = (sig - t if pw is None else log_weight * sig - pw * t) * coef
            gx = np.broadcast_to(gx, x.shape)
        if target_tensor is not None and target_tensor.requires_grad:
            gt = -x if pw is None else (pw - 1) * softplus_neg - x
            gt = np.broadcast_to(gt * coef, x.shape)
        return (gx, gt) if target_tensor is not None else (gx,)

    parents = (input, target_tensor) if target_tensor is not None else (input,)
    return _result(value.astype(x.dtype, copy=False), parents, backward)


def _check_broadcast(op: str, name: str, shape: tuple, input_shape: tuple) -> None:
    try:
        ok = np.broadcast_shapes(shape, input_shape) == input_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{op}: {name} of shape {shape} must broadcast to the input's shape {input_shape}"
        )


__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "l1_loss",
    "mse_loss",
    "nll_loss",
]
