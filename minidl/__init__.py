"""minidl: a small deep-learning framework whose convolutions run in Cython."""

from . import nn
from .random import manual_seed
from .tensor import (
    Tensor,
    cat,
    float32,
    float64,
    int64,
    is_grad_enabled,
    matmul,
    no_grad,
    stack,
    tensor,
    where,
)

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "cat",
    "float32",
    "float64",
    "int64",
    "is_grad_enabled",
    "manual_seed",
    "matmul",
    "nn",
    "no_grad",
    "stack",
    "tensor",
    "where",
]
