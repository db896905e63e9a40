"""The Profile: everything a framework's layers do differently, as data.

The other layers of a small CNN (``Linear``, ``BatchNorm1d/2d``, the pools, ``Dropout``,
``Flatten``) are :class:`~minidl.profiles.modules.ModuleDef` entries of ``modules``. For the
conv layers, a profile says, per layer kind (``Conv1d`` ... ``ConvTranspose3d``):

* the constructor signature and the attributes it leaves on the layer
  (:mod:`~minidl.profiles.signature`);
* how the arguments are checked and resolved into a :class:`~minidl.profiles.spec.ConvSpec`,
  whose padding is one of the rules of :mod:`~minidl.profiles.padding`;
* how parameters are stored (:mod:`~minidl.profiles.layout`) and initialised
  (:mod:`~minidl.profiles.init`).

The layers (``minidl/nn/conv.py``) read it; nothing here computes with tensors. Built in
``torch.py``, ``megengine.py`` and ``mindspore.py``; the facts, with their sources, are in
docs/conventions.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .init import InitPolicy
from .layout import Layout
from .modules import ModuleDef
from .padding import ConvPadding, SamePadding, TransposeWindow
from .signature import MODULE_KINDS, Bound, LayerDef, bind, foreign_hint, kind_info
from .spec import ConvSpec, NotExpressible, common_spec

# the canonical attributes every profile's layers have, whatever the framework calls them
CANONICAL_ATTRIBUTES = (
    "in_channels", "out_channels", "kernel_size", "stride", "dilation", "groups"
)


def _no_encoding(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    raise NotExpressible("this profile defines no argument encoding")


@dataclass(frozen=True)
class Profile:
    """A framework's conventions (see the module docstring).

    ``conv_padding(bound, spec)`` and ``transpose_padding(bound, spec)`` resolve the padding
    arguments into a canonical rule (raising what the framework rejects); ``encode_padding``
    is their inverse (used by :func:`minidl.profiles.convert`); ``checks`` validate the other
    framework-only arguments; ``hints`` explain foreign argument names; ``notes`` are the
    padding rows of :func:`minidl.profiles.diff`.
    """

    name: str
    framework: str
    layers: Mapping[str, LayerDef]
    layout: Layout
    init: InitPolicy
    conv_padding: Callable[[Bound, ConvSpec], ConvPadding | SamePadding]
    transpose_padding: Callable[[Bound, ConvSpec], TransposeWindow]
    encode_padding: Callable[[ConvSpec, LayerDef], dict[str, Any]] = _no_encoding
    checks: tuple[Callable[[Bound], None], ...] = ()
    hints: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)  # kind -> why it does not exist
    repr_always: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)
    modules: Mapping[str, ModuleDef] = field(default_factory=dict)  # Linear, BatchNorm2d, ...

    def __repr__(self) -> str:
        return f"<Profile {self.name!r}: {self.framework}>"

    def __deepcopy__(self, memo: dict) -> Profile:
        return self  # immutable: copied models share it

    def __reduce__(self):
        from . import get_profile  # pickled by name, found again in the registry

        return get_profile, (self.name,)

    # ---- signatures -----------------------------------------------------------------------------
    def layer(self, kind: str) -> LayerDef:
        if kind in MODULE_KINDS:
            return self.module(kind).layer
        kind_info(kind)
        if kind not in self.layers:
            reason = self.missing.get(kind, f"{self.framework} has no {kind}")
            raise NotImplementedError(
                f"{kind} does not exist under the {self.name} profile: {reason}"
            )
        return self.layers[kind]

    def module(self, kind: str) -> ModuleDef:
        """The definition of a non-conv layer kind (NotImplementedError where it is missing)."""
        if kind not in MODULE_KINDS:
            raise ValueError(f"unknown layer kind {kind!r}; expected one of {MODULE_KINDS}")
        if kind not in self.modules:
            reason = self.missing.get(kind, f"{self.framework} has no {kind}")
            raise NotImplementedError(
                f"{kind} does not exist under the {self.name} profile: {reason}"
            )
        return self.modules[kind]

    def configure_module(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Bound]:
        """Bind and resolve a non-conv constructor call: its canonical spec and the bound call."""
        bound = self.bind(kind, args, kwargs)
        return self.modules[kind].resolve(bound), bound

    def bind(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> Bound:
        return bind(self, kind, args, kwargs)

    def foreign_hint(self, name: str, kind: str) -> str:
        """Why ``name`` is not an argument here, and what to use instead."""
        from . import registered  # the other profiles say what ``name`` means

        return foreign_hint(self, name, kind, registered())

    # ---- configuration --------------------------------------------------------------------------
    def configure(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> tuple[ConvSpec, Bound]:
        """Bind and validate a constructor call: the canonical spec and the bound arguments."""
        bound = self.bind(kind, args, kwargs)
        for check in self.checks:
            check(bound)
        spec = common_spec(bound)
        resolve = self.transpose_padding if spec.transposed else self.conv_padding
        return replace(spec, padding=resolve(bound, spec)), bound

    def arguments_for(self, spec: ConvSpec) -> dict[str, Any]:
        """Constructor keyword arguments (this profile's names) that build ``spec``; raises
        :class:`NotExpressible` when this profile's arguments cannot say it."""
        layer = self.layer(spec.kind)
        by_meaning: dict[str, Any] = {
            "in_channels": spec.in_channels,
            "out_channels": spec.out_channels,
            "kernel_size": spec.kernel_size,
            "stride": spec.stride,
            "dilation": spec.dilation,
            "groups": spec.groups,
            "bias": spec.bias,
        }
        by_meaning.update(self.encode_padding(spec, layer))
        out = {}
        for meaning, value in by_meaning.items():
            arg = layer.arg(meaning)
            if arg is None:
                raise NotExpressible(f"{layer.cls_name} has no argument for {meaning}")
            if layer.int_only and isinstance(value, tuple):
                if len(set(value)) != 1:
                    raise NotExpressible(f"{layer.cls_name} takes one int {arg.name}, not {value}")
                value = value[0]
            out[arg.name] = value
        return out

    # ---- attributes -----------------------------------------------------------------------------
    def attributes(self, bound: Bound, spec: ConvSpec) -> dict[str, tuple[str | None, Any]]:
        """The attributes a layer built from ``bound`` has: name -> (the meaning of the
        argument behind it, or None for a constant; its value as the framework keeps it),
        plus the canonical ones (``groups`` beside MindSpore's ``group``)."""
        layer = bound.layer
        out: dict[str, tuple[str | None, Any]] = {
            arg.name: (arg.key, layer.attribute(arg.name, bound.values[arg.name], spec.nd))
            for arg in layer.attribute_args()
        }
        for name in CANONICAL_ATTRIBUTES:
            out.setdefault(name, (name, getattr(spec, name)))
        for name, value in layer.constants.items():
            out[name] = (None, value)
        return out

    def foreign_attributes(self, kind: str) -> frozenset[str]:
        """Argument names other profiles have for ``kind`` that this one does not: setting
        one on a layer would do nothing, so the layers refuse it (with :meth:`foreign_hint`)."""
        from . import registered

        own = {a.name for a in self.layer(kind).signature}
        names = {
            arg.name
            for other in registered()
            if kind in other.layers
            for arg in other.layers[kind].attribute_args()
            if not arg.keyword_only
        }
        return frozenset(names - own - set(CANONICAL_ATTRIBUTES))

    # ---- storage --------------------------------------------------------------------------------
    def weight_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        return self.layout.weight_shape(spec)

    def bias_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        return self.layout.bias_shape(spec)
