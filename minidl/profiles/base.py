"""The Profile data structure: everything a framework's conv layers do differently, as data.

A profile says, per layer kind (``Conv1d`` ... ``ConvTranspose3d``):

* the constructor signature (:class:`Arg`: the framework's spelling, order and default, plus a
  *meaning* shared across frameworks, so ``group`` and ``groups`` are known to be the same);
* how parameters are stored (:class:`Layout`; every foreign layout is a reshape of the
  canonical PyTorch one, so a conversion is a view and gradients flow through it);
* how they are initialised (an :class:`InitPolicy` handing out :class:`Initializer` objects);
* how the padding arguments resolve into one of three canonical rules: :class:`ConvPadding`
  (fixed before/after amounts and a pad mode), :class:`SamePadding` (TF-style, depends on the
  input size) or :class:`TransposeWindow` (the part of the full transposed conv that is kept).

The layers (``minidl/nn/conv.py``) only ask the profile; they hold no framework logic.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..nn import functional as F
from ..nn import init as _init
from ..tensor import Tensor

REQUIRED = inspect.Parameter.empty
LAYER_KINDS = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
)
KERNEL_SYMBOLS = {1: ("k",), 2: ("kh", "kw"), 3: ("kd", "kh", "kw")}


def kind_info(kind: str) -> tuple[int, bool]:
    """``'ConvTranspose2d'`` -> ``(2, True)``."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {LAYER_KINDS}")
    return int(kind[-2]), "Transpose" in kind


# ---- signatures ---------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class LayerDef:
    """A framework's class for one layer kind: its name and signature, and the quirks that
    are data rather than code."""

    cls_name: str
    signature: tuple[Arg, ...]
    int_only: bool = False  # MindSpore Conv1d/Conv1dTranspose take ints, not tuples
    padding_modes: tuple[str, ...] = ("zeros",)
    output_padding: str = "computed"  # or "zeros": MindSpore Conv2dTranspose appends zeros

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


# ---- canonical configuration --------------------------------------------------------------------
@dataclass(frozen=True)
class ConvSpec:
    """The framework-independent description of a conv layer. The weight it describes is
    PyTorch's: ``(out, in/g, *k)`` for a conv, ``(in, out/g, *k)`` for a transposed conv."""

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    bias: bool
    padding: Any = None  # ConvPadding | SamePadding | TransposeWindow
    dtype: np.dtype = np.dtype(np.float32)

    @property
    def nd(self) -> int:
        return kind_info(self.kind)[0]

    @property
    def transposed(self) -> bool:
        return kind_info(self.kind)[1]

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def same_as(self, other: ConvSpec) -> bool:
        """Same convolution (initialisation and dtype aside)."""
        return replace(self, dtype=other.dtype) == other


def same_split(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """'same' at stride 1: total d*(k-1), the odd extra after (PyTorch and MindSpore agree)."""
    total = tuple(d * (k - 1) for d, k in zip(spec.dilation, spec.kernel_size, strict=True))
    before = tuple(t // 2 for t in total)
    return before, tuple(t - b for t, b in zip(total, before, strict=True))


def _flat_pad(before: tuple[int, ...], after: tuple[int, ...]) -> list[int]:
    """Per-dim (before, after) -> F.pad's list, which starts from the last dim."""
    return [v for b, a in zip(reversed(before), reversed(after), strict=True) for v in (b, a)]


def _add_bias(y: Tensor, bias: Tensor | None, nd: int) -> Tensor:
    return y if bias is None else y + bias.reshape((-1,) + (1,) * nd)


@dataclass(frozen=True)
class ConvPadding:
    """Fixed padding: ``before``/``after`` per spatial dim, filled by ``mode`` ('zeros',
    'reflect', 'replicate', 'circular'). Non-zero modes are an F.pad in front of the conv."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    mode: str = "zeros"

    def amounts(self, size: tuple[int, ...], spec: ConvSpec):
        return self.before, self.after

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None, spec: ConvSpec) -> Tensor:
        nd = spec.nd
        before, after = self.amounts(tuple(x.shape[-nd:]), spec)
        if self.mode != "zeros":
            x = F.pad(x, _flat_pad(before, after), mode=self.mode)
            before = after = (0,) * nd
        conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        pairs = tuple(zip(before, after, strict=True))
        return conv(x, w, b, spec.stride, pairs, spec.dilation, spec.groups)

    def describe(self) -> str:
        if self.before == self.after:
            return f"{self.before} both sides, {self.mode}"
        return f"before {self.before}, after {self.after}, {self.mode}"


@dataclass(frozen=True)
class SamePadding(ConvPadding):
    """TF-style 'same' for any stride (MindSpore): out = ceil(in / s), the padding needed to
    get there split with the odd extra after. It depends on the input size, so it is
    resolved at every forward."""

    before: tuple[int, ...] = ()
    after: tuple[int, ...] = ()

    def amounts(self, size: tuple[int, ...], spec: ConvSpec):
        before, after = [], []
        for n, k, s, d in zip(size, spec.kernel_size, spec.stride, spec.dilation, strict=True):
            out = -(-n // s)
            needed = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
            before.append(needed // 2)
            after.append(needed - needed // 2)
        return tuple(before), tuple(after)

    def describe(self) -> str:
        return "TF 'same': out = ceil(in / stride), depends on the input size"


@dataclass(frozen=True)
class TransposeWindow:
    """Which part of the full transposed conv (size (in-1)*s + d*(k-1) + 1 per dim) is the
    output: ``before`` positions cropped at the start and ``after`` at the end (a negative
    ``after`` extends the output with positions that only get the bias), then ``zeros``
    positions appended after the bias (MindSpore Conv2dTranspose's ``output_padding``).

    PyTorch's ``padding=p, output_padding=op`` is ``TransposeWindow(p, p - op, 0)``."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    zeros: tuple[int, ...]

    def torch_arguments(self, spec: ConvSpec) -> tuple[tuple, tuple] | None:
        """``(padding, output_padding)`` when F.conv_transpose can compute this window."""
        if any(self.zeros) or any(b < 0 for b in self.before):
            return None
        output_padding = tuple(b - a for b, a in zip(self.before, self.after, strict=True))
        limits = (max(s, d) for s, d in zip(spec.stride, spec.dilation, strict=True))
        if all(0 <= o < m for o, m in zip(output_padding, limits, strict=True)):
            return self.before, output_padding
        return None

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None, spec: ConvSpec) -> Tensor:
        nd = spec.nd
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
        direct = self.torch_arguments(spec)
        if direct is not None:
            padding, output_padding = direct
            return conv(x, w, b, spec.stride, padding, output_padding, spec.groups, spec.dilation)
        y = conv(x, w, None, spec.stride, 0, 0, spec.groups, spec.dilation)
        neg = tuple(-v for v in self.before), tuple(-v for v in self.after)
        y = F.pad(y, _flat_pad(*neg))  # negative amounts crop, positive ones extend with zeros
        y = _add_bias(y, b, nd)
        if any(self.zeros):
            y = F.pad(y, _flat_pad((0,) * nd, self.zeros))
        return y

    def describe(self) -> str:
        text = f"crop {self.before} at the start, {self.after} at the end"
        return text + (f", then {self.zeros} zeros appended" if any(self.zeros) else "")


# ---- storage layouts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How a framework stores the weight and bias, as reshapes of the canonical shapes."""

    grouped_weight: bool = False  # (g, c0/g, c1, *k) when groups > 1 (MegEngine)
    broadcast_bias: bool = False  # (1, out, 1, ...) instead of (out,) (MegEngine)
    conv1d_as_2d: bool = False  # 1-D weights stored (c0, c1, 1, k) (MindSpore)
    bias_first: bool = False  # state_dict lists bias before weight (MegEngine)

    def weight_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        shape = spec.weight_shape
        if self.grouped_weight and spec.groups > 1:
            return (spec.groups, shape[0] // spec.groups, *shape[1:])
        if self.conv1d_as_2d and spec.nd == 1:
            return (*shape[:2], 1, *shape[2:])
        return shape

    def bias_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        if self.broadcast_bias:
            return (1, spec.out_channels) + (1,) * spec.nd
        return (spec.out_channels,)

    def export(self, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec):
        """Canonical arrays -> this layout's entries (copies), in the framework's key order."""
        entries = [("weight", weight.reshape(self.weight_shape(spec)).copy())]
        if bias is not None:
            entry = ("bias", bias.reshape(self.bias_shape(spec)).copy())
            entries.insert(0 if self.bias_first else 1, entry)
        return OrderedDict(entries)

    def describe_weight(self, kind: str, grouped: bool) -> str:
        nd, transposed = kind_info(kind)
        c0, c1 = ("in", "out") if transposed else ("out", "in")
        k = list(KERNEL_SYMBOLS[nd])
        if self.grouped_weight:
            dims = ["g", f"{c0}/g", f"{c1}/g"] if grouped else [c0, c1]
        else:
            dims = [c0, f"{c1}/g"]
        if self.conv1d_as_2d and nd == 1:
            k = ["1", *k]
        return "(" + ", ".join(dims + k) + ")"

    def describe_bias(self, kind: str) -> str:
        if not self.broadcast_bias:
            return "(out,)"
        return "(" + ", ".join(["1", "out"] + ["1"] * kind_info(kind)[0]) + ")"


# ---- initialisation -----------------------------------------------------------------------------
class Initializer:
    """Fills a parameter in place, given the fans the profile computed for its layer."""

    def fill(self, tensor: Tensor, fan_in: int, fan_out: int) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return self.describe()


@dataclass(frozen=True, repr=False)
class ConstantInit(Initializer):
    value: float = 0.0

    def fill(self, tensor, fan_in, fan_out):
        _init.constant_(tensor, self.value)

    def describe(self) -> str:
        return {0.0: "zeros", 1.0: "ones"}.get(float(self.value), f"constant {self.value}")


@dataclass(frozen=True, repr=False)
class NormalInit(Initializer):
    std: float
    mean: float = 0.0

    def fill(self, tensor, fan_in, fan_out):
        _init.normal_(tensor, self.mean, self.std)

    def describe(self) -> str:
        return f"N({self.mean:g}, {self.std:g}^2)"


@dataclass(frozen=True, repr=False)
class TruncatedNormalInit(NormalInit):
    low: float = -2.0
    high: float = 2.0

    def fill(self, tensor, fan_in, fan_out):
        _init.trunc_normal_(tensor, self.mean, self.std, self.low, self.high)

    def describe(self) -> str:
        return f"N({self.mean:g}, {self.std:g}^2) truncated to [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True, repr=False)
class UniformInit(Initializer):
    bound: float

    def fill(self, tensor, fan_in, fan_out):
        _init.uniform_(tensor, -self.bound, self.bound)

    def describe(self) -> str:
        return f"U(-{self.bound:g}, {self.bound:g})"


@dataclass(frozen=True, repr=False)
class KaimingInit(Initializer):
    """He / Kaiming: gain(nonlinearity, a) * sqrt(3 / fan) (uniform bound) or / sqrt(fan)
    (normal std). With a = sqrt(5) the uniform bound is 1/sqrt(fan_in): PyTorch's default."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"
    distribution: str = "uniform"

    def fill(self, tensor, fan_in, fan_out):
        fan = fan_in if self.mode == "fan_in" else fan_out
        gain = _init.calculate_gain(self.nonlinearity, self.a)
        if self.distribution == "uniform":
            bound = gain * math.sqrt(3.0 / fan)
            _init.uniform_(tensor, -bound, bound)
        else:
            _init.normal_(tensor, 0.0, gain / math.sqrt(fan))

    def describe(self) -> str:
        if self.distribution == "uniform" and math.isclose(self.a, math.sqrt(5)):
            return f"U(-1/sqrt({self.mode}), 1/sqrt({self.mode})) (kaiming_uniform, a=sqrt(5))"
        return f"kaiming_{self.distribution}(a={self.a:g}, {self.mode}, {self.nonlinearity})"


@dataclass(frozen=True, repr=False)
class XavierInit(Initializer):
    gain: float = 1.0
    distribution: str = "uniform"

    def fill(self, tensor, fan_in, fan_out):
        if self.distribution == "uniform":
            bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
            _init.uniform_(tensor, -bound, bound)
        else:
            _init.normal_(tensor, 0.0, self.gain * math.sqrt(2.0 / (fan_in + fan_out)))

    def describe(self) -> str:
        return f"xavier_{self.distribution}(gain={self.gain:g})"


@dataclass(frozen=True, repr=False)
class FanInUniform(Initializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zeros when fan_in is 0 (PyTorch's bias rule)."""

    def fill(self, tensor, fan_in, fan_out):
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        _init.uniform_(tensor, -bound, bound)

    def describe(self) -> str:
        return "U(-1/sqrt(fan_in), 1/sqrt(fan_in))"


@dataclass(frozen=True, repr=False)
class FanInNormal(Initializer):
    """N(0, 1/fan_in): MegEngine's conv weights."""

    def fill(self, tensor, fan_in, fan_out):
        _init.normal_(tensor, 0.0, math.sqrt(1.0 / fan_in))

    def describe(self) -> str:
        return "N(0, 1/fan_in)"


@dataclass(frozen=True, repr=False)
class ArrayInit(Initializer):
    """Given values (MindSpore's ``weight_init=Tensor``), of the stored shape or, for a
    ``(c0, c1, 1, k)`` weight (MindSpore's Conv1d), its 3-D form ``(c0, c1, k)``."""

    values: np.ndarray = field(compare=False)
    label: str = "initial value"

    def fill(self, tensor, fan_in, fan_out):
        values = np.asarray(self.values)
        if values.shape not in _accepted(tensor.shape):
            raise ValueError(
                f"the {self.label} array has shape {values.shape}, but the parameter is stored "
                f"with shape {tensor.shape}"
            )
        tensor.data = values.astype(tensor.dtype).reshape(tensor.shape)

    def describe(self) -> str:
        return f"array of shape {np.shape(self.values)}"


def _accepted(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """A stored shape and, for a (c0, c1, 1, k) weight, its 3-D form."""
    if len(shape) == 4 and shape[2] == 1:
        return [shape, (shape[0], shape[1], shape[3])]
    return [shape]


def stored_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's and MindSpore's rule, on the stored weight: shape[1] (resp. shape[0]) times
    the receptive field shape[2:]."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


@dataclass(frozen=True)
class InitPolicy:
    """Default initializers and the fan rule. ``from_arguments`` lets a profile take them
    from constructor arguments (MindSpore's ``weight_init``/``bias_init``)."""

    weight: Initializer
    bias: Initializer
    fan_in: Callable[[ConvSpec, tuple[int, ...]], int] | None = None  # None: stored_fans
    fan_doc: Mapping[str, str] = field(default_factory=dict)  # kind -> formula (for diff)
    from_arguments: Callable[[Bound, ConvSpec], tuple[Initializer, Initializer]] | None = None

    def fans(self, spec: ConvSpec, stored: tuple[int, ...]) -> tuple[int, int]:
        fan_in, fan_out = stored_fans(stored)
        return (fan_in if self.fan_in is None else self.fan_in(spec, stored)), fan_out

    def initializers(self, bound: Bound, spec: ConvSpec) -> tuple[Initializer, Initializer]:
        if self.from_arguments is None:
            return self.weight, self.bias
        return self.from_arguments(bound, spec)


# ---- the profile --------------------------------------------------------------------------------
class NotExpressible(ValueError):
    """A convolution that a profile's constructor arguments cannot express."""


def _no_encoding(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    raise NotExpressible("this profile defines no argument encoding")


@dataclass(frozen=True)
class Profile:
    """A framework's conventions. See the module docstring; built in ``torch.py``,
    ``megengine.py`` and ``mindspore.py``.

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
    conv_padding: Callable[[Bound, ConvSpec], ConvPadding]
    transpose_padding: Callable[[Bound, ConvSpec], TransposeWindow]
    encode_padding: Callable[[ConvSpec, LayerDef], dict[str, Any]] = _no_encoding
    checks: tuple[Callable[[Bound], None], ...] = ()
    hints: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)  # kind -> why it does not exist
    repr_always: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Profile {self.name!r}: {self.framework}>"

    def __deepcopy__(self, memo: dict) -> Profile:
        return self  # immutable: copied models share it

    def __reduce__(self):
        from . import get_profile  # pickled by name, found again in the registry

        return get_profile, (self.name,)

    # ---- signatures -----------------------------------------------------------------------------
    def layer(self, kind: str) -> LayerDef:
        kind_info(kind)
        if kind not in self.layers:
            reason = self.missing.get(kind, f"{self.framework} has no {kind}")
            raise NotImplementedError(
                f"{kind} does not exist under the {self.name} profile: {reason}"
            )
        return self.layers[kind]

    def bind(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> Bound:
        layer = self.layer(kind)
        names = {a.name for a in layer.signature}
        for key in kwargs:
            if key not in names:
                raise TypeError(
                    f"{layer.cls_name}() got an unexpected keyword argument {key!r}: "
                    f"{self.foreign_hint(key, kind)}. Under the {self.name} profile it takes "
                    f"{layer.describe()}"
                )
        try:
            call = layer.python_signature().bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(
                f"{layer.cls_name}(): {error}. Under the {self.name} profile it takes "
                f"{layer.describe()}"
            ) from None
        call.apply_defaults()
        return Bound(self, kind, layer, dict(call.arguments))

    def foreign_hint(self, name: str, kind: str) -> str:
        """Why ``name`` is not an argument here, and what to use instead."""
        if name in self.hints:
            return self.hints[name]
        from . import registered  # the other profiles say what ``name`` means

        meaning, owners = None, []
        for other in registered():
            for layer_kind, layer in other.layers.items():
                arg = next((a for a in layer.signature if a.name == name), None)
                if arg is not None and (layer_kind == kind or meaning is None):
                    meaning = arg.key
                    if other.framework not in owners:
                        owners.append(other.framework)
        if meaning is None:
            return f"no profile knows an argument {name!r}"
        own = self.layers[kind].arg(meaning)
        if own is not None:
            return f"{name!r} is spelled {own.name!r} under the {self.name} profile"
        return (
            f"{name!r} ({', '.join(owners)}) has no equivalent in "
            f"{self.layers[kind].cls_name} under the {self.name} profile"
        )

    # ---- configuration --------------------------------------------------------------------------
    def configure(self, kind: str, args: tuple, kwargs: dict[str, Any]) -> tuple[ConvSpec, Bound]:
        """Bind and validate a constructor call: the canonical spec and the bound arguments."""
        bound = self.bind(kind, args, kwargs)
        for check in self.checks:
            check(bound)
        spec = _common_spec(bound)
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

    # ---- storage and initialisation -------------------------------------------------------------
    def weight_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        return self.layout.weight_shape(spec)

    def bias_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        return self.layout.bias_shape(spec)

    def initialize(self, weight: Tensor, bias: Tensor | None, bound: Bound, spec: ConvSpec):
        weight_init, bias_init = self.init.initializers(bound, spec)
        fan_in, fan_out = self.init.fans(spec, weight.shape)
        weight_init.fill(weight, fan_in, fan_out)
        if bias is not None:
            bias_init.fill(bias, fan_in, fan_out)


# ---- shared argument parsing --------------------------------------------------------------------
def ints(bound: Bound, meaning: str, nd: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``nd`` ints, each >= ``minimum``, named in the framework's words."""
    value, name, op = bound[meaning], bound.name(meaning), bound.op
    if bound.layer.int_only and not _is_int(value):
        raise TypeError(
            f"For {op!r}, the type of {name!r} should be 'int', but got type "
            f"{type(value).__name__!r} ({value!r})"
        )
    if _is_int(value):
        values = (int(value),) * nd
    elif isinstance(value, (tuple, list)) and len(value) == nd and all(map(_is_int, value)):
        values = tuple(int(v) for v in value)
    elif isinstance(value, (tuple, list)) and all(map(_is_int, value)):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be >= {minimum} in every dim, got {value!r}")
    return values


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positive_int(bound: Bound, meaning: str) -> int:
    value = bound[meaning]
    if not _is_int(value):
        raise TypeError(f"{bound.op}: {bound.name(meaning)} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(
            f"{bound.op}: {bound.name(meaning)} must be a positive integer, got {value}"
        )
    return int(value)


def parse_dtype(value: Any) -> np.dtype:
    """None, numpy/minidl dtypes, 'float64', torch.float64, mindspore.float64 -> float32/64."""
    if value is None:
        return np.dtype(np.float32)
    dtype = None
    for probe in (value, str(value).rsplit(".", 1)[-1].lower()):  # torch.float64, Float64
        try:
            dtype = np.dtype({"double": "float64", "float": "float32"}.get(probe, probe))
            break
        except TypeError:
            continue
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"parameters must be float32 or float64, got dtype={value!r}")
    return dtype


def _common_spec(bound: Bound) -> ConvSpec:
    nd, _ = kind_info(bound.kind)
    in_channels = _positive_int(bound, "in_channels")
    out_channels = _positive_int(bound, "out_channels")
    groups = _positive_int(bound, "groups")
    gname = bound.name("groups")
    for meaning, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ValueError(
                f"{bound.op}: {meaning} must be divisible by {gname} "
                f"(in_channels={in_channels}, out_channels={out_channels}, {gname}={groups})"
            )
    return ConvSpec(
        kind=bound.kind,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=ints(bound, "kernel_size", nd, 1),
        stride=ints(bound, "stride", nd, 1),
        dilation=ints(bound, "dilation", nd, 1),
        groups=groups,
        bias=bool(bound["bias"]),
        dtype=parse_dtype(bound.get("dtype")),
    )


def check_output_padding(bound: Bound, spec: ConvSpec, output_padding: tuple[int, ...]):
    """output_padding < max(stride, dilation) per dim (PyTorch and MindSpore)."""
    for o, s, d in zip(output_padding, spec.stride, spec.dilation, strict=True):
        if o >= max(s, d):
            raise ValueError(
                f"{bound.op}: output_padding must be in range of [0, max(stride, dilation)) "
                f"in every dim (output padding must be smaller than either stride or "
                f"dilation), got output_padding={bound['output_padding']!r}, "
                f"stride={spec.stride}, dilation={spec.dilation}"
            )


def check_choice(bound: Bound, meaning: str, choices: tuple[str, ...], lower: bool = False):
    value = bound[meaning]
    probe = value.lower() if lower and isinstance(value, str) else value
    if probe not in choices:
        raise ValueError(
            f"{bound.op}: {bound.name(meaning)} must be one of {list(choices)} under the "
            f"{bound.profile.name} profile, but got {bound.name(meaning)}={value!r}"
        )
