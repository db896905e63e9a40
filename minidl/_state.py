"""Shared switches: whether ops record a graph (per thread, as in PyTorch) and the generator.

Kept in one tiny module so that every part of minidl reads the same value.
"""

import threading

import numpy as np


class _GradMode(threading.local):
    """Per-thread grad mode; a new thread starts with autograd on (the class defaults)."""

    enabled: bool = True
    inference: bool = False


grad_mode = _GradMode()
"""Read ``grad_mode.enabled`` on the hot path: one thread-local attribute lookup."""

rng: np.random.Generator = np.random.default_rng()
"""One seeded generator for initialisation, shuffling, dropout and the random factories
(``minidl.manual_seed``); process-wide, like PyTorch's default generator."""
