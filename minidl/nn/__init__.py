"""Neural-network layers. ``minidl.nn.functional`` holds the stateless ops.

Each submodule lists its public names in ``__all__``; they are all re-exported here.
"""

from . import functional, init, utils
from .conv import *  # noqa: F403
from .conv import __all__ as _conv_all
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .loss import *  # noqa: F403
from .loss import __all__ as _loss_all
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = [
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "Sequential",
    "functional",
    "init",
    "utils",
    *_conv_all,
    *_layers_all,
    *_loss_all,
]
