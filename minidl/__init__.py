"""minidl: a small deep-learning framework whose convolutions run in Cython."""

from . import data, memory, nn, optim, profiles
from ._grad_mode import (
    enable_grad,
    inference_mode,
    is_inference_mode_enabled,
    set_grad_enabled,
)
from .profiles import *  # noqa: F403  (set_profile, use_profile, ...)
from .profiles import __all__ as _profiles_all
from .random import manual_seed
from .serialization import *  # noqa: F403  (save, load)
from .serialization import __all__ as _serialization_all
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
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "cat",
    "data",
    "enable_grad",
    "float32",
    "float64",
    "get_num_threads",
    "inference_mode",
    "int64",
    "is_inference_mode_enabled",
    "is_grad_enabled",
    "manual_seed",
    "matmul",
    "memory",
    "nn",
    "no_grad",
    "optim",
    "profiles",
    "set_grad_enabled",
    "set_num_threads",
    "stack",
    "tensor",
    "where",
    *_profiles_all,
    *_serialization_all,
]
