"""Neural-network layers. ``minidl.nn.functional`` holds the stateless ops."""

from . import functional

__all__ = ["functional"]
