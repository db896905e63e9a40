"""Conv1d/2d/3d and ConvTranspose1d/2d/3d, as the active profile defines them.

``Conv2d(10, 20, 3, groups=2)`` is PyTorch's layer under the default 'torch' profile,
MegEngine's under ``profile='megengine'`` (weight ``(2, 10, 5, 3, 3)``, bias ``(1, 20, 1, 1)``)
and MindSpore's under ``profile='mindspore'``, where it is spelled ``group=2``. One
:class:`_ConvNd` reads the profile (``minidl/profiles``) for everything that differs: the
signature, the stored parameter shapes, the initialisation and the padding rule. The
parameters are held in the profile's stored shape (what ``.weight``, ``.bias`` and
``state_dict()`` show) and reshaped to PyTorch's canonical shape in ``forward``: a view, so
the gradients flow back into the stored shape.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .. import profiles as _profiles
from ..tensor import Tensor
from . import _conv_rules, _init_rules
from .module import Module, Parameter

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Conv1dTranspose",
    "Conv2dTranspose",
    "Conv3dTranspose",
]

# arguments not kept as attributes: the bias flag (``bias`` is the parameter), init values,
# placement
_NOT_ATTRIBUTES = ("bias", "weight_init", "bias_init", "device", "dtype")


class _ConvNd(Module):
    """The one conv layer. ``kind`` names the PyTorch class it stands for."""

    kind = ""

    def __init__(self, *args: Any, profile: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        owner = _profiles.get_profile(profile)
        spec, bound = owner.configure(self.kind, args, kwargs)
        self._profile, self._spec, self._bound = owner, spec, bound
        self._run = _conv_rules.runner(spec)  # the functional call, its arguments fixed
        self.profile = owner.name
        self._set_attributes()
        dtype = spec.dtype
        self.weight = Parameter(np.zeros(owner.weight_shape(spec), dtype))
        if spec.bias:
            self.bias = Parameter(np.zeros(owner.bias_shape(spec), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _set_attributes(self) -> None:
        """The framework's attributes (``groups`` or ``group``, ``pad_mode``, ...) plus the
        canonical ones every profile shares, as tuples where PyTorch has tuples."""
        spec, bound = self._spec, self._bound
        for arg in bound.layer.signature:
            if arg.name not in _NOT_ATTRIBUTES:
                setattr(self, arg.name, bound.values[arg.name])
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "dilation", "groups"):
            setattr(self, name, getattr(spec, name))

    def reset_parameters(self) -> None:
        """Initialise as the profile's framework does (fans, groups quirks and all)."""
        spec, policy = self._spec, self._profile.init
        weight_init, bias_init = policy.initializers(self._bound, spec)
        fans = _init_rules.layer_fans(policy, spec, self.weight)
        _init_rules.fill(weight_init, self.weight, fans)
        if self.bias is not None:
            _init_rules.fill(bias_init, self.bias, fans)

    # ---- computation ----------------------------------------------------------------------------
    def _canonical(self) -> tuple[Tensor, Tensor | None]:
        spec = self._spec
        weight = self.weight
        if weight.shape != spec.weight_shape:
            weight = weight.reshape(spec.weight_shape)
        bias = self.bias
        if bias is not None and bias.ndim != 1:
            bias = bias.reshape(spec.out_channels)
        return weight, bias

    def forward(self, input: Tensor) -> Tensor:
        weight, bias = self._canonical()
        return self._run(input, weight, bias)

    # ---- checkpoints in any profile's layout ----------------------------------------------------
    def _canonical_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        spec = self._spec
        bias = None if self.bias is None else self.bias.data.reshape(spec.out_channels)
        return self.weight.data.reshape(spec.weight_shape), bias

    def _export_state(self, profile: str | None) -> OrderedDict[str, np.ndarray]:
        target = self._profile if profile is None else _profiles.get_profile(profile)
        target.layer(self.kind)  # a layout only exists where the layer does
        return target.layout.export(*self._canonical_arrays(), self._spec)

    def _import_state(self, entries: dict[str, np.ndarray], profile: str | None) -> None:
        spec = self._spec
        for name, param in self._parameters.items():
            canonical = spec.weight_shape if name == "weight" else (spec.out_channels,)
            values = np.asarray(entries[name]).reshape(canonical).reshape(param.shape)
            param.data = np.array(values, dtype=param.dtype)

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        spec, bound = self._spec, self._bound
        parts = [
            f"{spec.in_channels}, {spec.out_channels}",
            f"kernel_size={spec.kernel_size}",
            f"stride={spec.stride}",
            f"profile={self.profile!r}",
        ]
        shown = ("in_channels", "out_channels", "kernel_size", "stride", "device", "dtype")
        for arg in bound.layer.signature:
            value = bound.values[arg.name]
            if arg.key in shown or (
                _same(value, arg.default) and arg.name not in self._profile.repr_always
            ):
                continue
            parts.append(f"{arg.name}={_short(value)}")
        return ", ".join(parts)


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (np.ndarray, Tensor)) or isinstance(default, (np.ndarray, Tensor)):
        return False
    if isinstance(value, (tuple, list)) and isinstance(default, int):
        return all(v == default for v in value)
    return type(value) is type(default) and value == default


def _short(value: Any) -> str:
    if isinstance(value, (np.ndarray, Tensor)) or hasattr(value, "detach"):
        return f"<array of shape {tuple(value.shape)}>"
    return repr(value)


_DOC = """

Arguments as each profile's framework takes them::

{signatures}

``.weight`` / ``.bias`` have that framework's stored shapes and initialisation, padding
follows its rules; ``state_dict(profile=...)`` / ``load_state_dict(..., profile=...)``
convert between the layouts.
"""


def _document(cls: type[_ConvNd]) -> type[_ConvNd]:
    lines = []
    for profile in _profiles.registered():
        layer = profile.layers.get(cls.kind)
        text = layer.describe() if layer else "(none) " + profile.missing.get(cls.kind, "")
        lines.append(f"    {profile.name:14} {text}")
    cls.__doc__ = (cls.__doc__ or "") + _DOC.format(signatures="\n".join(lines))
    return cls


@_document
class Conv1d(_ConvNd):
    """1-D convolution over ``(N, C, W)`` input, under the active profile (or ``profile=``)."""

    kind = "Conv1d"


@_document
class Conv2d(_ConvNd):
    """2-D convolution over ``(N, C, H, W)`` input, under the active profile (or ``profile=``)."""

    kind = "Conv2d"


@_document
class Conv3d(_ConvNd):
    """3-D convolution over ``(N, C, D, H, W)`` input, under the active profile."""

    kind = "Conv3d"


@_document
class ConvTranspose1d(_ConvNd):
    """1-D transposed convolution (MindSpore: Conv1dTranspose), under the active profile."""

    kind = "ConvTranspose1d"


@_document
class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (MindSpore: Conv2dTranspose), under the active profile."""

    kind = "ConvTranspose2d"


@_document
class ConvTranspose3d(_ConvNd):
    """3-D transposed convolution (MindSpore: Conv3dTranspose), under the active profile."""

    kind = "ConvTranspose3d"


# MindSpore's names, for people porting MindSpore code: the same classes
Conv1dTranspose = ConvTranspose1d
Conv2dTranspose = ConvTranspose2d
Conv3dTranspose = ConvTranspose3d
