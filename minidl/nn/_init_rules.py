"""Applying a profile's initialisation data (``minidl/profiles/init.py``) by calling
``minidl.nn.init``."""

from __future__ import annotations

from ..profiles.init import ArrayInit, Init, InitPolicy
from ..tensor import Tensor
from . import init


def layer_fans(policy: InitPolicy, spec, weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a layer: PyTorch's rule on the stored weight, with the profile's
    own fan_in where it has one (MegEngine's ignores the groups)."""
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(weight)
    return (fan_in if policy.fan_in is None else policy.fan_in(spec)), fan_out


def fill(initializer: Init, tensor: Tensor, fans: tuple[int, int]) -> None:
    """Fill ``tensor`` in place as ``initializer`` says."""
    if isinstance(initializer, ArrayInit):
        tensor._data = initializer.array(tensor.shape, tensor.dtype)
        return
    function = getattr(init, initializer.function)
    extra = {"fans": fans} if initializer.uses_fans else {}
    function(tensor, **dict(initializer.arguments), **extra)
