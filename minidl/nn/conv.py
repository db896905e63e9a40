"""Conv1d/2d/3d and ConvTranspose1d/2d/3d, as the active profile defines them.

``Conv2d(10, 20, 3, groups=2)`` is PyTorch's layer under the default 'torch' profile,
MegEngine's under ``profile='megengine'`` (weight ``(2, 10, 5, 3, 3)``, bias ``(1, 20, 1, 1)``)
and MindSpore's under ``profile='mindspore'``, where it is spelled ``group=2``. One
:class:`_ConvNd` reads the profile (``minidl/profiles``) for everything that differs: the
signature, the attributes, the stored parameter shapes, the initialisation and the padding
rule. The parameters are held in the profile's stored shape (what ``.weight``, ``.bias`` and
``state_dict()`` show) and reshaped to PyTorch's canonical shape in ``forward``: a view, so
the gradients flow back into the stored shape.

The attributes are the framework's (``conv.padding`` is ``(1, 1)`` under the torch profile,
``pad_mode`` and ``group`` exist under the mindspore one) and they are live, as in PyTorch:
``conv.stride = (2, 2)`` changes what the next ``forward`` computes. The new configuration is
checked by the profile's rules at that ``forward`` (so related attributes can be set in any
order), with a message naming what was set. Attributes that fix the parameters' shapes
(channels, ``kernel_size``, groups, the bias flag) cannot change: setting a different value
raises ``AttributeError`` (PyTorch would keep the old weight and ignore it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .. import profiles as _profiles
from ..profiles.spec import PARAMETER_MEANINGS, ConvSpec
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


class _ConvNd(Module):
    """The one conv layer. ``kind`` names the PyTorch class it stands for."""

    kind = ""

    def __init__(self, *args: Any, profile: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        owner = _profiles.get_profile(profile)
        spec, bound = owner.configure(self.kind, args, kwargs)
        attributes = owner.attributes(bound, spec)
        internal = {
            "_profile": owner,
            "_bound": bound,  # the last configuration that passed the profile's checks
            "_spec_now": spec,
            "_run": _conv_rules.runner(spec),
            "_pending": {},  # attribute changes not checked yet: argument name -> value
            # attribute -> the meaning of the argument behind it; None: a constant
            "_meanings": {"profile": None, **{n: m for n, (m, _) in attributes.items()}},
            "_foreign": owner.foreign_attributes(self.kind),
            "profile": owner.name,
        }
        self.__dict__.update(internal)
        self.__dict__.update({name: value for name, (_, value) in attributes.items()})
        dtype = spec.dtype
        self.weight = Parameter(np.zeros(owner.weight_shape(spec), dtype))
        if spec.bias:
            self.bias = Parameter(np.zeros(owner.bias_shape(spec), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as the profile's framework does (fans, groups quirks and all)."""
        spec, policy = self._spec_now, self._profile.init
        weight_init, bias_init = policy.initializers(self._bound, spec)
        fans = _init_rules.layer_fans(policy, spec, self.weight)
        _init_rules.fill(weight_init, self.weight, fans)
        if self.bias is not None:
            _init_rules.fill(bias_init, self.bias, fans)

    # ---- live attributes ------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_meanings", ()):
            self._set_attribute(name, value)
        elif name in self.__dict__.get("_foreign", ()):
            raise AttributeError(
                f"{self._bound.op} under the {self.profile} profile has no attribute {name!r}, "
                f"and setting it would change nothing: "
                f"{self._profile.foreign_hint(name, self.kind)}"
            )
        else:
            super().__setattr__(name, value)

    def _set_attribute(self, name: str, value: Any) -> None:
        meaning, bound = self._meanings[name], self._bound
        if meaning is None:
            self._check_constant(name, value)
            return
        argument = bound.layer.argument(name, value)
        if meaning in PARAMETER_MEANINGS:
            self._check_same_parameters(name, value, bound.name(meaning), argument)
        else:
            self._pending[bound.name(meaning)] = argument
        self.__dict__[name] = value

    def _check_constant(self, name: str, value: Any) -> None:
        if _equal(value, self.__dict__[name]):
            return
        if name == "profile":
            raise AttributeError(
                f"a layer keeps the profile it was built with ({self.profile!r}); "
                f"minidl.profiles.convert(layer, {value!r}) rebuilds it under another one"
            )
        raise AttributeError(
            f"{self._bound.op}.{name} is {self.__dict__[name]!r} under the {self.profile} "
            f"profile and cannot be set (to {value!r})"
        )

    def _check_same_parameters(self, name: str, value: Any, arg_name: str, argument: Any) -> None:
        """``name`` decides the parameters' shapes: only a value meaning the same is taken."""
        try:
            spec, _ = self._configured({**self._bound.values, arg_name: argument}, {})
            same = spec.same_parameters(self._spec_now)
        except (TypeError, ValueError):  # not even a valid value: not the same one
            same = False
        if not same:
            raise AttributeError(
                f"{self._bound.op}.{name} cannot change after construction (from "
                f"{self.__dict__[name]!r} to {value!r}): the weight of shape "
                f"{tuple(self.weight.shape)} was made for it. Build a new layer instead"
            )

    def _configured(self, values: dict[str, Any], changes: dict[str, Any]):
        """The profile's checks on ``values``, their errors naming ``changes``."""
        try:
            return self._profile.configure(self.kind, (), values)
        except (TypeError, ValueError) as error:
            what = ", ".join(f"{self._bound.op}.{k} = {v!r}" for k, v in changes.items())
            raise type(error)(f"after setting {what}: {error}") from None

    def _apply_pending(self) -> None:
        pending = self._pending
        spec, bound = self._configured({**self._bound.values, **pending}, pending)
        self.__dict__.update(_bound=bound, _spec_now=spec, _run=_conv_rules.runner(spec))
        pending.clear()

    @property
    def _spec(self) -> ConvSpec:
        """The configuration now, attribute changes checked (what profiles.convert rebuilds)."""
        if self._pending:
            self._apply_pending()
        return self._spec_now

    # ---- computation ----------------------------------------------------------------------------
    def _canonical(self) -> tuple[Tensor, Tensor | None]:
        spec = self._spec_now
        weight = self.weight
        if weight.shape != spec.weight_shape:
            weight = weight.reshape(spec.weight_shape)
        bias = self.bias
        if bias is not None and bias.ndim != 1:
            bias = bias.reshape(spec.out_channels)
        return weight, bias

    def forward(self, input: Tensor) -> Tensor:
        if self._pending:
            self._apply_pending()
        weight, bias = self._canonical()
        return self._run(input, weight, bias)

    # ---- checkpoints in any profile's layout ----------------------------------------------------
    def _canonical_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        spec = self._spec_now  # the parameters: no attribute changes them
        bias = None if self.bias is None else self.bias._data.reshape(spec.out_channels)
        return self.weight._data.reshape(spec.weight_shape), bias

    def _export_state(self, profile: str | None) -> OrderedDict[str, np.ndarray]:
        target = self._profile if profile is None else _profiles.get_profile(profile)
        target.layer(self.kind)  # a layout only exists where the layer does
        return target.layout.export(*self._canonical_arrays(), self._spec_now)

    def _import_state(self, entries: dict[str, np.ndarray], profile: str | None) -> None:
        spec = self._spec_now
        for name, param in self._parameters.items():
            canonical = spec.weight_shape if name == "weight" else (spec.out_channels,)
            values = np.asarray(entries[name]).reshape(canonical).reshape(param.shape)
            param._data = np.array(values, dtype=param.dtype)

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        try:
            spec = self._spec
        except (TypeError, ValueError):  # attributes set to an invalid configuration
            spec = self._spec_now
        bound = self._bound
        values = {**bound.values, **self._pending}
        parts = [
            f"{spec.in_channels}, {spec.out_channels}",
            f"kernel_size={spec.kernel_size}",
            f"stride={spec.stride}",
            f"profile={self.profile!r}",
        ]
        shown = ("in_channels", "out_channels", "kernel_size", "stride", "device", "dtype")
        for arg in bound.layer.signature:
            value = values[arg.name]
            if arg.key in shown or (
                _same(value, arg.default) and arg.name not in self._profile.repr_always
            ):
                continue
            parts.append(f"{arg.name}={_short(value)}")
        return ", ".join(parts)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays
        return False


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
