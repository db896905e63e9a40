"""``minidl.accelerator``: PyTorch's device-neutral accelerator queries. minidl runs on the CPU
only, so there is no accelerator."""

from __future__ import annotations


def is_available() -> bool:
    """False: minidl runs on the CPU only."""
    return False


def device_count() -> int:
    """0: minidl runs on the CPU only."""
    return 0


def current_accelerator(check_available: bool = False) -> None:
    """None: there is no accelerator (PyTorch returns None too when none is present)."""
    return None
