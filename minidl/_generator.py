"""``minidl.Generator``: a random generator of its own, as ``torch.Generator``.

``random_split(ds, [0.8, 0.2], generator=Generator().manual_seed(42))`` and
``DataLoader(..., shuffle=True, generator=g)`` draw from it instead of minidl's global
generator (``minidl.manual_seed``). It wraps a numpy ``Generator`` (``.numpy``), so the numbers
differ from PyTorch's; the same seed repeats the same numbers in minidl.
"""

from __future__ import annotations

import numpy as np

# torch.Generator's initial seed: a new generator is deterministic until seeded
DEFAULT_SEED = 67280421310721


class Generator:
    """A seedable source of random numbers for the data utilities (CPU only)."""

    def __init__(self, device: object = "cpu") -> None:
        kind = getattr(device, "type", device)
        if str(kind).split(":")[0] != "cpu":
            raise RuntimeError(
                f"minidl runs on the CPU only: Generator(device={device!r}) is not available"
            )
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Reseed; returns the generator, so ``Generator().manual_seed(42)`` chains."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
        self._seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF  # as torch: the seed modulo 2**64
        self.numpy = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy; returns the new seed."""
        new = int(np.random.SeedSequence().entropy) & 0xFFFF_FFFF_FFFF_FFFF
        self.manual_seed(new)
        return new

    def initial_seed(self) -> int:
        return self._seed

    def __repr__(self) -> str:
        return f"minidl.Generator(initial_seed={self._seed})"


def numpy_generator(generator: object | None) -> np.random.Generator:
    """The numpy generator behind ``generator``: minidl's global one for None, a
    :class:`Generator`'s, or a numpy ``Generator`` itself."""
    if generator is None:
        from .random import generator as global_generator

        return global_generator()
    if isinstance(generator, Generator):
        return generator.numpy
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(
        "generator must be a minidl.Generator or a numpy.random.Generator, got "
        f"{type(generator).__name__}"
    )


__all__ = ["Generator"]
