"""Linear, activations, dropout and flatten with PyTorch's semantics.

Each op is one graph node whose backward sits right beside its forward.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.special import erf

from ..random import generator
from ..tensor import Tensor, _result


def _check_tensor(op: str, name: str, t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(t).__name__}")
    return t


def _check_float(op: str, name: str, t: Any) -> np.ndarray:
    _check_tensor(op, name, t)
    if t.dtype != np.float32 and t.dtype != np.float64:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {t.dtype}")
    return t._data


def _check_int(op: str, name: str, value: Any) -> int:
    """A Python or numpy int (not a bool), as PyTorch's int arguments."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def _check_number(op: str, name: str, value: Any) -> float:
    """A real number (not a bool or a string), as PyTorch's float arguments."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    return float(value)


# ---- linear ----------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` for input (*, in_features), weight (out, in), bias (out,)."""
    x = _check_float("linear", "input", input)
    w = _check_float("linear", "weight", weight)
    b = None if bias is None else _check_float("linear", "bias", bias)
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} cannot be multiplied with weight of shape "
            f"{w.shape}: input.shape[-1] must equal in_features = {w.shape[1]}"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(
            f"linear: bias has shape {b.shape}, expected ({w.shape[0]},) (out_features)"
        )
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        dtypes = (x.dtype, w.dtype, None if b is None else b.dtype)
        raise TypeError(f"linear: input, weight and bias must share a dtype, got {dtypes}")
    y = x @ w.T
    if b is not None:
        y += b
    out_features, in_features = w.shape

    def backward(g):
        gx = g @ w if input.requires_grad else None
        g2 = g.reshape(-1, out_features)
        gw = g2.T @ x.reshape(-1, in_features) if weight.requires_grad else None
        if b is None:
            return gx, gw
        return gx, gw, g2.sum(axis=0)

    parents = (input, weight) if b is None else (input, weight, bias)
    return _result(y, parents, backward)


# ---- activations -----------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as in PyTorch. ``inplace`` is accepted and ignored."""
    return _check_tensor("relu", "input", input).relu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0 else ``negative_slope * x`` (the gradient at 0 is ``negative_slope``)."""
    x = _check_float("leaky_relu", "input", input)
    positive = x > 0
    slope = x.dtype.type(_check_number("leaky_relu", "negative_slope", negative_slope))
    return _result(
        np.where(positive, x, x * slope),
        (input,),
        lambda g: (np.where(positive, g, g * slope),),
    )


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (``approximate='none'``) or its tanh approximation (``'tanh'``)."""
    x = _check_float("gelu", "input", input)
    if approximate == "none":
        cdf = 0.5 * (1.0 + erf(x * x.dtype.type(_SQRT1_2)))

        def backward(g):
            pdf = np.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT_2PI)
            return (g * (cdf + x * pdf),)

        return _result(x * cdf, (input,), backward)
    if approximate == "tanh":
        beta, kappa = x.dtype.type(_TANH_BETA), x.dtype.type(_TANH_KAPPA)
        t = np.tanh(beta * (x + kappa * x * x * x))

        def backward_tanh(g):
            d_inner = beta * (1 + 3 * kappa * x * x)
            return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner),)

        return _result(0.5 * x * (1 + t), (input,), backward_tanh)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def sigmoid(input: Tensor) -> Tensor:
    return _check_tensor("sigmoid", "input", input).sigmoid()


def tanh(input: Tensor) -> Tensor:
    return _check_tensor("tanh", "input", input).tanh()


def _softmax_dim(op: str, ndim: int, dim: int | None) -> int:
    if dim is None:  # PyTorch's legacy implicit choice
        warnings.warn(
            f"Implicit dimension choice for {op} has been deprecated. "
            "Change the call to include dim=X as an argument.",
            stacklevel=3,
        )
        return 0 if ndim in (0, 1, 3) else 1
    dim = _check_int(op, "dim", dim)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} out of range for a tensor of {ndim} dims")
    return dim


def _softmax_like(op: str, input: Tensor, dim: int | None, dtype: Any) -> Tensor:
    _check_float(op, "input", input)
    if dtype is not None:
        input = input.to(dtype)
    dim = _softmax_dim(op, input.ndim, dim)
    if input.ndim == 0:
        return getattr(input.reshape(1), op)(0).reshape(())
    return getattr(input, op)(dim)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (cast to ``dtype`` first if given)."""
    return _softmax_like("softmax", input, dim, dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed stably (cast to ``dtype`` first if given)."""
    return _softmax_like("log_softmax", input, dim, dtype)


# ---- dropout and flatten ---------------------------------------------------------------------
def check_dropout_probability(p: Any) -> float:
    """``p`` as a float in [0, 1] (the rule of F.dropout and nn.Dropout)."""
    value = _check_number("dropout", "p", p)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return value


def _dropout(input: Tensor, p: float, training: bool, mask_shape: tuple[int, ...]) -> Tensor:
    """Zero with probability ``p`` on a mask of ``mask_shape`` (broadcast over the input) and
    scale the kept values by ``1 / (1 - p)``, computed as PyTorch does (mask / (1 - p) in the
    input's dtype, then one multiply)."""
    x = input._data
    if not training or p == 0.0 or x.size == 0:
        return input
    if p == 1.0:
        scale = np.zeros(mask_shape, x.dtype)
    else:
        keep = generator().random(mask_shape, dtype=x.dtype.type) >= x.dtype.type(p)
        scale = keep.astype(x.dtype)
        scale /= x.dtype.type(1.0 - p)
    return _result(x * scale, (input,), lambda g: (g * scale,))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

    The mask comes from minidl's generator (``minidl.manual_seed`` repeats it). Identity when
    ``training`` is false. ``inplace`` is accepted and ignored (the result is a new tensor).
    """
    check_dropout_probability(p)
    x = _check_float("dropout", "input", input)
    return _dropout(input, p, training, x.shape)


def _feature_dropout(op: str, input: Tensor, p: float, training: bool) -> Tensor:
    """Zero whole channels: one draw per (sample, channel), dims 0 and 1 of ``input``."""
    x = _check_float(op, "input", input)
    if x.ndim < 2:
        raise ValueError(
            f"{op}: channel-wise dropout needs at least 2 dims (N, C, ...), got shape {x.shape}"
        )
    return _dropout(input, p, training, x.shape[:2] + (1,) * (x.ndim - 2))


def _warn_rank(op: str, ndim: int, ranks: tuple[int, int], spatial: int) -> None:
    warnings.warn(
        f"{op}: Received a {ndim}-D input to {op}, which is deprecated and will result in an "
        "error in a future release. To retain the behavior and silence this warning, please "
        f"use dropout instead. Note that {op} exists to provide channel-wise dropout on "
        f"inputs with {spatial} spatial dimensions, a channel dimension, and an optional "
        f"batch dimension (i.e. {ranks[0]}D or {ranks[1]}D inputs).",
        stacklevel=3,
    )


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Channel-wise dropout of (N, C, L) or unbatched (C, L) input: each channel of each
    sample is zeroed whole with probability ``p``, the rest scaled by 1/(1-p)."""
    check_dropout_probability(p)
    if not isinstance(input, Tensor) or input.ndim not in (2, 3):
        shape = getattr(input, "shape", None)
        raise ValueError(f"dropout1d: expected 2D or 3D input, got shape {shape}")
    if input.ndim == 2 and training and p != 0.0:
        return _feature_dropout("dropout1d", input.unsqueeze(0), p, training).squeeze(0)
    return _feature_dropout("dropout1d", input, p, training)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Channel-wise dropout of (N, C, H, W) input: each channel of each sample is zeroed whole
    with probability ``p``, the rest scaled by 1/(1-p). As PyTorch, a 3-D input is taken as
    (N, C, L) (with PyTorch's warning), other ranks warn and drop per (dim 0, dim 1)."""
    check_dropout_probability(p)
    x = _check_float("dropout2d", "input", input)
    if x.ndim not in (3, 4):
        _warn_rank("dropout2d", x.ndim, (3, 4), 2)
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    return _feature_dropout("dropout2d", input, p, training)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Channel-wise dropout of (N, C, D, H, W) or unbatched (C, D, H, W) input."""
    check_dropout_probability(p)
    x = _check_float("dropout3d", "input", input)
    if x.ndim not in (4, 5):
        _warn_rank("dropout3d", x.ndim, (4, 5), 3)
    if x.ndim == 5 or not training or p == 0.0:
        return _feature_dropout("dropout3d", input, p, training)
    return _feature_dropout("dropout3d", input.unsqueeze(0), p, training).squeeze(0)


# ---- embedding and one_hot -------------------------------------------------------------------
def _check_indices(op: str, input: Any) -> np.ndarray:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a minidl Tensor of indices, got "
                        f"{type(input).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer tensor (int64), got dtype "
                        f"{input.dtype}")
    return input._data


def _renorm_rows(weight: np.ndarray, rows: np.ndarray, max_norm: float,
                 norm_type: float) -> None:
    """``torch.embedding_renorm_``: rows (looked up) whose norm exceeds ``max_norm`` are
    scaled in place to norm ``max_norm`` (with PyTorch's 1e-7 guard)."""
    rows = np.unique(rows)
    norms = np.linalg.norm(weight[rows].astype(np.float64), ord=norm_type, axis=1)
    over = norms > max_norm
    scale = (max_norm / (norms[over] + 1e-7)).astype(weight.dtype)
    weight[rows[over]] *= scale[:, None]


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``input`` of any shape:
    output shape ``input.shape + (dim,)``. ``padding_idx``'s row gets no gradient;
    ``max_norm`` renormalises the looked-up rows of ``weight`` in place first;
    ``scale_grad_by_freq`` divides each row's gradient by its count in the batch."""
    index = _check_indices("embedding", input)
    w = _check_float("embedding", "weight", weight)
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), "
                         f"got shape {w.shape}")
    count = w.shape[0]
    if index.size and (index.min() < 0 or index.max() >= count):
        bad = int(index.min()) if index.min() < 0 else int(index.max())
        raise IndexError(f"embedding: index {bad} is out of range for {count} embeddings "
                         f"(weight shape {w.shape})")
    if sparse:
        raise NotImplementedError("embedding: minidl has no sparse gradients; use sparse=False")
    padding = _padding_index(padding_idx, count)
    if max_norm is not None:
        _renorm_rows(w, index.reshape(-1), max_norm, norm_type)
    flat = index.reshape(-1)

    def backward(g):
        rows = g.reshape(-1, w.shape[1])
        if scale_grad_by_freq:
            counts = np.bincount(flat, minlength=count)
            rows = rows / counts[flat][:, None].astype(rows.dtype)
        if padding is not None:
            rows = rows * (flat != padding)[:, None].astype(rows.dtype)
        grad = np.zeros_like(w)
        np.add.at(grad, flat, rows)
        return (None, grad)

    return _result(w[index], (input, weight), backward)


def _padding_index(padding_idx: int | None, count: int) -> int | None:
    if padding_idx is None:
        return None
    if not -count <= padding_idx < count:
        raise ValueError(f"Padding_idx must be within num_embeddings: padding_idx={padding_idx} "
                         f"for {count} embeddings")
    return padding_idx % count


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape ``tensor.shape + (num_classes,)`` with a 1 at each index;
    ``num_classes=-1`` takes ``max + 1``."""
    index = _check_indices("one_hot", tensor)
    if index.size and index.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(index.min())}")
    if num_classes == -1:
        if not index.size:
            raise ValueError("one_hot: cannot infer the number of classes from an empty tensor")
        num_classes = int(index.max()) + 1
    elif index.size and index.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes="
                         f"{num_classes}, got {int(index.max())}")
    out = np.zeros(index.shape + (num_classes,), np.int64)
    np.put_along_axis(out, index[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (``torch.flatten``); a 0-d input gives (1,)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"flatten: input must be a minidl Tensor, got {type(input).__name__}")
    ndim = max(input.ndim, 1)
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not -ndim <= _check_int("flatten", name, d) < ndim:
            raise IndexError(
                f"flatten: {name}={d} is out of range for a tensor of shape {input.shape} "
                f"(expected to be in range [{-ndim}, {ndim - 1}])"
            )
    start, end = start_dim % ndim, end_dim % ndim
    if start > end:
        raise ValueError(
            f"flatten: start_dim cannot come after end_dim, got start_dim={start_dim}, "
            f"end_dim={end_dim} for a tensor of shape {input.shape}"
        )
    if input.ndim == 0:
        return input.reshape(1)
    if start == end:
        return input
    shape = input.shape
    return input.reshape(shape[:start] + (int(np.prod(shape[start : end + 1])),) + shape[end + 1 :])


__all__ = [
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "embedding",
    "one_hot",
    "flatten",
    "gelu",
    "leaky_relu",
    "linear",
    "log_softmax",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
