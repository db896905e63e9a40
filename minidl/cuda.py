"""``minidl.cuda``: what PyTorch scripts ask about CUDA. minidl has no GPU backend, so there is
never a CUDA device; the seeding calls are accepted and do nothing, as in PyTorch without CUDA."""

from __future__ import annotations


def is_available() -> bool:
    """False: minidl runs on the CPU only."""
    return False


def device_count() -> int:
    """0: minidl runs on the CPU only."""
    return 0


def manual_seed(seed: int) -> None:
    """Nothing to seed without CUDA (PyTorch ignores the call there too)."""


def manual_seed_all(seed: int) -> None:
    """Nothing to seed without CUDA (PyTorch ignores the call there too)."""
