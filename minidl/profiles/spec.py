"""The framework-independent description of a conv layer (:class:`ConvSpec`) and the checks
that build it from a bound call, in each framework's words. The int and tuple parsing and the
output_padding rule are :mod:`minidl._geometry`'s; only the messages that differ are here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _geometry
from .signature import Bound, kind_info

# the arguments that decide the parameters' shapes: they cannot change after construction
PARAMETER_MEANINGS = ("in_channels", "out_channels", "kernel_size", "groups", "bias")


class NotExpressible(ValueError):
    """A convolution that a profile's constructor arguments cannot express."""


@dataclass(frozen=True)
class ConvSpec:
    """The framework-independent description of a conv layer. The weight it describes is
    PyTorch's: ``(out, in/g, *k)`` for a conv, ``(in, out/g, *k)`` for a transposed conv.
    ``padding`` is one of the rules of :mod:`minidl.profiles.padding`."""

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

    def same_parameters(self, other: ConvSpec) -> bool:
        """Same parameters (kind, channels, kernel, groups, bias): only the way they are
        applied (stride, padding, dilation) differs."""
        fields = ("kind", *PARAMETER_MEANINGS)
        return all(getattr(self, f) == getattr(other, f) for f in fields)


# ---- checks in the framework's words ------------------------------------------------------------
def ints(bound: Bound, meaning: str, nd: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``nd`` ints, each >= ``minimum``, named in the framework's words
    (MindSpore's Conv1d takes an int only, and says so its way)."""
    value, name, op = bound[meaning], bound.name(meaning), bound.op
    if bound.layer.int_only and _geometry.as_int(value) is None:
        raise TypeError(
            f"For {op!r}, the type of {name!r} should be 'int', but got type "
            f"{type(value).__name__!r} ({value!r})"
        )
    return _geometry.int_tuple(value, nd, name, op, minimum=minimum, single=False)


def positive_int(bound: Bound, meaning: str) -> int:
    value = bound[meaning]
    number = _geometry.as_int(value)
    if number is None:
        raise TypeError(f"{bound.op}: {bound.name(meaning)} must be an int, got {value!r}")
    if number < 1:
        raise ValueError(
            f"{bound.op}: {bound.name(meaning)} must be a positive integer, got {value}"
        )
    return number


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


def common_spec(bound: Bound) -> ConvSpec:
    """The spec of a bound call, padding aside (each profile resolves its own)."""
    nd, _ = kind_info(bound.kind)
    in_channels = positive_int(bound, "in_channels")
    out_channels = positive_int(bound, "out_channels")
    groups = positive_int(bound, "groups")
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


def output_padding_fits(output_padding, stride, dilation) -> bool:
    """:func:`minidl._geometry.check_output_padding`'s rule as a yes/no."""
    try:
        _geometry.check_output_padding("", output_padding, stride, dilation)
    except ValueError:
        return False
    return True


def check_output_padding(bound: Bound, spec: ConvSpec, output_padding: tuple[int, ...]) -> None:
    """output_padding < max(stride, dilation) per dim (PyTorch and MindSpore), in the words
    both frameworks' messages share."""
    if not output_padding_fits(output_padding, spec.stride, spec.dilation):
        raise ValueError(
            f"{bound.op}: output_padding must be in range of [0, max(stride, dilation)) "
            f"in every dim (output padding must be smaller than either stride or "
            f"dilation), got output_padding={bound['output_padding']!r}, "
            f"stride={spec.stride}, dilation={spec.dilation}"
        )


def check_choice(bound: Bound, meaning: str, choices: tuple[str, ...], lower: bool = False) -> None:
    value = bound[meaning]
    probe = value.lower() if lower and isinstance(value, str) else value
    if probe not in choices:
        raise ValueError(
            f"{bound.op}: {bound.name(meaning)} must be one of {list(choices)} under the "
            f"{bound.profile.name} profile, but got {bound.name(meaning)}={value!r}"
        )


# ---- the other layers of a small CNN, in PyTorch's terms ----------------------------------------
@dataclass(frozen=True)
class LinearSpec:
    """A dense layer in PyTorch's terms: ``y = activation(x @ W.T + b)``.

    ``kind`` is ``'Linear'``; ``in_features``/``out_features`` size the weight
    ``(out_features, in_features)``; ``bias`` says whether there is a bias ``(out_features,)``;
    ``activation`` is None (PyTorch's Linear) or the name of the element-wise function MindSpore's
    ``Dense(activation=...)`` applies after the affine map (``'relu'``, ``'sigmoid'``, ``'tanh'``,
    ``'gelu'``, ``'softmax'``, ``'log_softmax'``); ``dtype`` is the parameters' dtype."""

    kind: str
    in_features: int
    out_features: int
    bias: bool
    activation: str | None = None
    dtype: np.dtype = np.dtype(np.float32)


@dataclass(frozen=True)
class BatchNormSpec:
    """Batch normalisation in PyTorch's terms (parameters ``weight``/``bias`` and buffers
    ``running_mean``/``running_var``, all ``(num_features,)``).

    ``kind`` is ``'BatchNorm1d'`` or ``'BatchNorm2d'``; ``momentum`` is PyTorch's: the fraction
    of the new batch statistic, ``running = (1 - momentum) * running + momentum * batch`` (the
    running variance takes the unbiased batch variance in all three frameworks), or None for
    PyTorch's cumulative average; MindSpore's and MegEngine's ``momentum=0.9`` is ``0.1`` here.
    ``affine``: learnable weight and bias; ``bias``: minidl's keyword-only switch for the bias
    alone; ``track_running_stats``: PyTorch's flag (without running statistics, batch
    statistics are used in eval too). ``use_batch_statistics`` is MindSpore's rule, which
    PyTorch lacks: None behaves as PyTorch (batch statistics and updates in training, running
    statistics in eval); True uses and updates the batch statistics in train and eval mode;
    False always uses the running statistics and never updates them."""

    kind: str
    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    bias: bool = True
    use_batch_statistics: bool | None = None
    dtype: np.dtype = np.dtype(np.float32)


@dataclass(frozen=True)
class PoolSpec:
    """Max or average pooling in PyTorch's terms.

    ``kind`` is PyTorch's class name (``'MaxPool2d'``, ``'AvgPool1d'``, ...); ``kernel_size``,
    ``stride`` and ``dilation`` are tuples of one int per spatial dim. ``padding`` is a
    :class:`~minidl.profiles.padding.ConvPadding` (``before``/``after`` per dim; padded
    positions never win a max and are counted by an average as ``count_include_pad`` says) or a
    :class:`~minidl.profiles.padding.SamePadding` (MindSpore's ``pad_mode='same'``: out =
    ceil(in / stride), the odd extra after; an average then divides by the in-bounds count,
    whatever ``count_include_pad`` says). ``ceil_mode``, ``return_indices``,
    ``count_include_pad`` and ``divisor_override`` are PyTorch's arguments (the last two only
    matter for an average)."""

    kind: str
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any
    dilation: tuple[int, ...]
    ceil_mode: bool = False
    return_indices: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    @property
    def nd(self) -> int:
        return int(self.kind[-2])

    @property
    def op(self) -> str:
        """``'max'`` or ``'avg'``."""
        return "max" if self.kind.startswith("Max") else "avg"


@dataclass(frozen=True)
class DropoutSpec:
    """Dropout in PyTorch's terms: ``p`` is the probability to zero an element in training
    (the rest are scaled by ``1 / (1 - p)``); the identity in eval. MindSpore's
    ``keep_prob`` is ``1 - p``, MegEngine's ``drop_prob`` is ``p``."""

    kind: str
    p: float


@dataclass(frozen=True)
class FlattenSpec:
    """Flatten dims ``start_dim..end_dim`` (inclusive, negative from the end), as PyTorch's."""

    kind: str
    start_dim: int = 1
    end_dim: int = -1


LayerSpec = ConvSpec | LinearSpec | BatchNormSpec | PoolSpec | DropoutSpec | FlattenSpec
