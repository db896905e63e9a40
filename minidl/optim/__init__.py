"""Optimizers (SGD, Adam, AdamW) and learning-rate schedulers, with ``torch.optim``'s update
rules, parameter groups and state_dict layout. Parameters are updated in place on ``.data``
with vectorised numpy; no graph is recorded.

Numerics follow torch's CPU kernels operation by operation, including their fused
multiply-adds (see ``optimizer._fma``): float32 SGD weights equal torch's bit for bit; Adam/AdamW
differ only where torch's vectorised ``sqrt`` is not correctly rounded (a few ulps)."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "Optimizer",
    "StepLR",
    "lr_scheduler",
]
