"""Optimizers (SGD, Adam, AdamW, Adadelta, Adagrad, RMSprop) and learning-rate schedulers, with
``torch.optim``'s update rules, parameter groups and state_dict layout. Parameters are updated
in place on their numpy arrays with vectorised numpy; no graph is recorded.

Numerics follow torch's CPU kernels operation by operation, including their fused
multiply-adds (see ``optimizer._fma``): float32 SGD weights equal torch's bit for bit; the
adaptive optimizers differ only where torch's vectorised ``sqrt`` is not correctly rounded (a
few ulps). ``foreach``, ``fused``, ``capturable`` and ``differentiable`` are not accepted: there
is one numpy implementation."""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "MultiStepLR",
    "OneCycleLR",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "lr_scheduler",
]
