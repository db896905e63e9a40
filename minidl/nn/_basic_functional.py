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
    return t.data


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


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

    The mask comes from minidl's generator (``minidl.manual_seed`` repeats it). Identity when
    ``training`` is false. ``inplace`` is accepted and ignored (the result is a new tensor).
    """
    check_dropout_probability(p)
    x = _check_float("dropout", "input", input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        scale = np.zeros(x.shape, x.dtype)
    else:
        keep = generator().random(x.shape, dtype=x.dtype.type) >= x.dtype.type(p)
        scale = keep.astype(x.dtype)
        scale *= x.dtype.type(1.0 / (1.0 - p))
    return _result(x * scale, (input,), lambda g: (g * scale,))


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
