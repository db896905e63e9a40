"""minidl: a small deep-learning framework whose convolutions run in Cython."""

# isort: off
from . import runtime  # first: it sets what the kernels read when they load (see there)
# isort: on
from . import accelerator, cuda, data, nn, optim, profiles, utils
from ._device import device
from ._dtypes import bool_ as bool
from ._dtypes import float32, float64, int8, int16, int32, int64, uint8
from ._dtypes import float32 as float
from ._dtypes import float64 as double
from ._dtypes import int16 as short
from ._dtypes import int32 as int
from ._dtypes import int64 as long
from ._factories import (
    arange,
    as_tensor,
    empty,
    empty_like,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    zeros,
    zeros_like,
)
from ._functions import FUNCTIONS as _FUNCTIONS
from ._functions import is_floating_point, is_tensor, max, min, pow
from ._generator import Generator
from ._grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .profiles import *  # noqa: F403  (set_profile, use_profile, ...)
from .profiles import __all__ as _profiles_all
from .random import manual_seed
from .runtime import get_num_threads, set_num_threads, show_config
from .serialization import *  # noqa: F403  (save, load)
from .serialization import __all__ as _serialization_all
from .tensor import Tensor, cat, matmul, stack, tensor, where

globals().update(_FUNCTIONS)  # minidl.sum, minidl.flatten, ...: see minidl/_functions.py

__version__ = "0.1.0"

__all__ = [
    "Generator",
    "Tensor",
    "accelerator",
    "cuda",
    "device",
    "cat",
    "data",
    "enable_grad",
    "get_num_threads",
    "inference_mode",
    "is_inference_mode_enabled",
    "is_grad_enabled",
    "manual_seed",
    "matmul",
    "nn",
    "no_grad",
    "optim",
    "profiles",
    "runtime",
    "set_grad_enabled",
    "set_num_threads",
    "show_config",
    "stack",
    "tensor",
    "utils",
    "where",
    # factories
    "arange",
    "as_tensor",
    "empty",
    "empty_like",
    "from_numpy",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "zeros",
    "zeros_like",
    # top-level functions for Tensor methods
    "is_floating_point",
    "is_tensor",
    "max",
    "min",
    "pow",
    *sorted(_FUNCTIONS),
    # dtypes under PyTorch's names
    "bool",
    "double",
    "float",
    "float32",
    "float64",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "long",
    "short",
    "uint8",
    *_profiles_all,
    *_serialization_all,
]
