"""One seeded generator for initialisation, shuffling and dropout (``minidl.manual_seed``)."""

from __future__ import annotations

import numpy as np

from . import _state


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed minidl's generator so initialisation, shuffling and dropout repeat exactly."""
    _state.rng = np.random.default_rng(seed)
    return _state.rng


def generator() -> np.random.Generator:
    """The generator every random op draws from."""
    return _state.rng
