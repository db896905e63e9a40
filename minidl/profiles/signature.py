"""Constructor signatures as data: the layer kinds, each framework's arguments (:class:`Arg`,
:class:`LayerDef`), a call bound to them (:class:`Bound`), the hints for a foreign argument
name, and how a framework keeps its arguments as layer attributes (``stored`` forms).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .profile import Profile

REQUIRED = inspect.Parameter.empty
LAYER_KINDS = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
)
# the other layers of a small CNN (minidl/profiles/modules.py)
MODULE_KINDS = (
    "Linear",
    "BatchNorm1d",
    "BatchNorm2d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "Dropout",
    "Flatten",
)
KERNEL_SYMBOLS = {1: ("k",), 2: ("kh", "kw"), 3: ("kd", "kh", "kw")}
# arguments no framework keeps as a plain attribute: the bias flag (``bias`` is the parameter),
# the initialisers and the placement
NOT_ATTRIBUTES = ("bias", "weight_init", "bias_init", "device", "dtype")


def kind_info(kind: str) -> tuple[int, bool]:
    """``'ConvTranspose2d'`` -> ``(2, True)``."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {LAYER_KINDS}")
    return int(kind[-2]), "Transpose" in kind


@dataclass(frozen=True)
class Arg:
    """One constructor argument: the framework's ``name``, its ``default`` (``REQUIRED`` for
    none) and its ``meaning``, the name shared by every profile for the same concept."""

    name: str
    default: Any = REQUIRED
    meaning: str = ""
    keyword_only: bool = False

    @property
    def key(self) -> str:
        return self.meaning or self.name

    def __str__(self) -> str:
        return self.name if self.default is REQUIRED else f"{self.name}={self.default!r}"


def args(*specs: str | tuple) -> tuple[Arg, ...]:
    """Compact signature tables: ``"in_channels"`` (required), ``("stride", 1)``,
    ``("group", 1, "groups")`` (name, default, meaning)."""
    return tuple(Arg(s) if isinstance(s, str) else Arg(*s) for s in specs)


# ---- attributes: how a framework keeps an argument on the layer ---------------------------------
def _as_tuple(value: Any, nd: int) -> Any:
    """PyTorch's ``_ntuple`` (and MegEngine's ``_pair``/``_triple``): an int repeated ``nd``
    times, a sequence as a tuple, a string (``padding='same'``) as given."""
    if isinstance(value, str):
        return value
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


def _from_as_2d(value: Any) -> Any:
    return value[1] if isinstance(value, tuple) and len(value) == 2 and value[0] == 1 else value


def _from_as_2d_padding(value: Any) -> Any:
    pads = isinstance(value, tuple) and len(value) == 4 and value[:2] == (0, 0)
    return value[2] if pads and value[2] == value[3] else value


# form -> (argument -> attribute, attribute -> argument): MindSpore's Conv1d runs a 2-D conv and
# keeps ``kernel_size=3`` as ``(1, 3)`` and ``padding=1`` as ``(0, 0, 1, 1)``
STORED_FORMS: dict[str, tuple[Callable[[Any, int], Any], Callable[[Any], Any]]] = {
    "tuple": (_as_tuple, lambda value: value),
    "as_2d": (lambda value, nd: (1, value), _from_as_2d),
    "as_2d_padding": (lambda value, nd: (0, 0, value, value), _from_as_2d_padding),
}


@dataclass(frozen=True)
class LayerDef:
    """A framework's class for one layer kind: its name and signature, and the quirks that
    are data rather than code.

    ``stored`` says how the framework keeps an argument as an attribute (a form of
    :data:`STORED_FORMS`; arguments not listed are kept as given); ``constants`` are attributes
    it sets that no argument changes (PyTorch's ``transposed``)."""

    cls_name: str
    signature: tuple[Arg, ...]
    int_only: bool = False  # MindSpore Conv1d/Conv1dTranspose take ints, not tuples
    padding_modes: tuple[str, ...] = ("zeros",)
    output_padding: str = "computed"  # or "zeros": MindSpore Conv2dTranspose appends zeros
    stored: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)

    def arg(self, meaning: str) -> Arg | None:
        return next((a for a in self.signature if a.key == meaning), None)

    def python_signature(self) -> inspect.Signature:
        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [
                inspect.Parameter(
                    a.name,
                    inspect.Parameter.KEYWORD_ONLY if a.keyword_only else positional,
                    default=a.default,
                )
                for a in self.signature
            ]
        )

    def describe(self) -> str:
        return f"{self.cls_name}({', '.join(str(a) for a in self.signature)})"

    def attribute_args(self) -> tuple[Arg, ...]:
        """The arguments the framework keeps as attributes of the same name."""
        return tuple(a for a in self.signature if a.name not in NOT_ATTRIBUTES)

    def attribute(self, name: str, value: Any, nd: int) -> Any:
        """Argument ``name``'s value as the framework keeps it on the layer."""
        form = self.stored.get(name)
        return value if form is None else STORED_FORMS[form][0](value, nd)

    def argument(self, name: str, value: Any) -> Any:
        """The inverse of :meth:`attribute`: an attribute value in the stored form -> the
        argument that gives it (other values unchanged, for the constructor's checks)."""
        form = self.stored.get(name)
        return value if form is None else STORED_FORMS[form][1](value)


@dataclass
class Bound:
    """A call's arguments bound to a profile's signature (defaults applied)."""

    profile: Profile
    kind: str
    layer: LayerDef
    values: dict[str, Any]  # by the framework's names, in signature order

    def __getitem__(self, meaning: str) -> Any:
        arg = self.layer.arg(meaning)
        if arg is None:
            raise KeyError(f"{self.layer.cls_name} has no argument meaning {meaning!r}")
        return self.values[arg.name]

    def get(self, meaning: str, default: Any = None) -> Any:
        arg = self.layer.arg(meaning)
        return default if arg is None else self.values[arg.name]

    def name(self, meaning: str) -> str:
        """The framework's spelling of ``meaning`` (``'groups'`` -> ``'group'``)."""
        arg = self.layer.arg(meaning)
        return meaning if arg is None else arg.name

    @property
    def op(self) -> str:
        return self.layer.cls_name


def bind(profile: Profile, kind: str, args: tuple, kwargs: dict[str, Any]) -> Bound:
    """Bind a constructor call to ``profile``'s signature for ``kind``, defaults applied;
    TypeError for an unknown keyword (with the hint for it) or a call that does not fit."""
    layer = profile.layer(kind)
    names = {a.name for a in layer.signature}
    for key in kwargs:
        if key not in names:
            raise TypeError(
                f"{layer.cls_name}() got an unexpected keyword argument {key!r}: "
                f"{profile.foreign_hint(key, kind)}. Under the {profile.name} profile it takes "
                f"{layer.describe()}"
            )
    try:
        call = layer.python_signature().bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(
            f"{layer.cls_name}(): {error}. Under the {profile.name} profile it takes "
            f"{layer.describe()}"
        ) from None
    call.apply_defaults()
    return Bound(profile, kind, layer, dict(call.arguments))


def foreign_hint(profile: Profile, name: str, kind: str, others: Iterable[Profile]) -> str:
    """Why ``name`` is not an argument of ``kind`` under ``profile``, and what to use instead:
    the profile's own hint, or what ``others`` call it."""
    for key in (f"{kind}.{name}", name):  # a hint for this layer kind, or for any
        if key in profile.hints:
            return profile.hints[key]
    meaning, owners = None, []
    for other in others:
        for layer_kind, layer in all_layers(other).items():
            arg = next((a for a in layer.signature if a.name == name), None)
            if arg is not None and (layer_kind == kind or meaning is None):
                meaning = arg.key
                if other.framework not in owners:
                    owners.append(other.framework)
    if meaning is None:
        return f"no profile knows an argument {name!r}"
    own = profile.layer(kind).arg(meaning)
    if own is not None:
        return f"{name!r} is spelled {own.name!r} under the {profile.name} profile"
    return (
        f"{name!r} ({', '.join(owners)}) has no equivalent in "
        f"{profile.layer(kind).cls_name} under the {profile.name} profile"
    )


def all_layers(profile: Profile) -> dict[str, LayerDef]:
    """The conv layers and the other modules of ``profile``, by kind."""
    return {**profile.layers, **{kind: m.layer for kind, m in profile.modules.items()}}
