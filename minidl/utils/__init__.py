"""Utilities with PyTorch's names: ``minidl.utils.data`` is ``torch.utils.data``."""

from . import data

__all__ = ["data"]
