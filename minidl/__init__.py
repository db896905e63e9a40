"""minidl: a small deep-learning framework whose convolutions run in Cython."""

from . import (
    data,
    nn,
    optim,
    profiles,
    runtime,  # first: what importing minidl changes in the process (see there)
)
from .profiles import *  # noqa: F403  (set_profile, use_profile, ...)
from .profiles import __all__ as _profiles_all
from .random import manual_seed
from .runtime import get_num_threads, set_num_threads, show_config
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

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "cat",
    "data",
    "float32",
    "float64",
    "get_num_threads",
    "int64",
    "is_grad_enabled",
    "manual_seed",
    "matmul",
    "nn",
    "no_grad",
    "optim",
    "profiles",
    "runtime",
    "set_num_threads",
    "show_config",
    "stack",
    "tensor",
    "where",
    *_profiles_all,
    *_serialization_all,
]
