"""One seeded generator for initialisation, shuffling and dropout (``minidl.manual_seed``)."""

from __future__ import annotations

import numpy as np

from . import _state


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed minidl's generator so initialisation, shuffling and dropout repeat exactly.

    ``seed`` is an int; negative ones are taken modulo 2**64, as PyTorch takes them."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r}")
    _state.rng = np.random.default_rng(int(seed) % 2**64)
    return _state.rng


def generator() -> np.random.Generator:
    """The generator every random op draws from."""
    return _state.rng
