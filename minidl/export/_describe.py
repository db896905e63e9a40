"""What a minidl model computes, as plain data the exporters translate: one table.

:func:`describe` turns a model into a tree of the frozen records below, in PyTorch's terms.
Each exporter (``_torch.py``, ``_onnx.py``) has one builder per record type. A layer kind is
exported when it has an entry in :data:`DESCRIBERS`; anything else - a model with its own
``forward`` above all - raises :class:`NotImplementedError` naming the module, rather than
becoming a model that computes something else.

Conv layers are described by their canonical :class:`~minidl.profiles.spec.ConvSpec`, whose
padding rule (``minidl/profiles/padding.py``) says what PyTorch's arguments cannot (TF-style
'same' at a stride, asymmetric amounts, MindSpore's transposed-conv windows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import nn as _nn
from .._geometry import int_tuple
from ..nn.module import Module, Sequential
from ..profiles.padding import ConvPadding
from ..profiles.spec import ConvSpec


@dataclass(frozen=True)
class Conv:
    spec: ConvSpec  # canonical: PyTorch's weight shape, padding as a rule


@dataclass(frozen=True)
class Linear:
    in_features: int
    out_features: int
    bias: bool


@dataclass(frozen=True)
class BatchNorm:
    nd: int  # 1: BatchNorm1d, 2: BatchNorm2d
    num_features: int
    eps: float
    momentum: float | None  # PyTorch's: the fraction of the new statistic; None: cumulative
    affine: bool
    bias: bool
    track_running_stats: bool


@dataclass(frozen=True)
class Pool:
    kind: str  # 'max' or 'avg'
    nd: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    # ConvPadding (before/after; padded positions never win a max, and count in an average as
    # count_include_pad says) or SamePadding (TF-style; an average divides by the in-bounds count)
    padding: Any
    dilation: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool = True
    divisor_override: int | None = None
    return_indices: bool = False


@dataclass(frozen=True)
class AdaptiveAvgPool2d:
    output_size: Any  # an int, or a pair whose None entries keep the input's size


@dataclass(frozen=True)
class Activation:
    name: str  # relu, leaky_relu, tanh, sigmoid, gelu, softmax, log_softmax
    argument: Any = None  # negative_slope, approximate, dim


@dataclass(frozen=True)
class Flatten:
    start_dim: int
    end_dim: int


@dataclass(frozen=True)
class Dropout:
    p: float  # the identity in eval mode
    nd: int = 0  # 0: element-wise (Dropout); 1-3: channel-wise (Dropout1d/2d/3d)


@dataclass(frozen=True)
class LayerNorm:
    normalized_shape: tuple[int, ...]
    eps: float
    elementwise_affine: bool
    bias: bool


@dataclass(frozen=True)
class Embedding:
    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None
    max_norm: float | None
    norm_type: float
    scale_grad_by_freq: bool
    sparse: bool


@dataclass(frozen=True)
class Upsample:
    size: Any
    scale_factor: Any
    mode: str
    align_corners: bool | None
    recompute_scale_factor: bool | None


@dataclass(frozen=True)
class Identity:
    pass


@dataclass(frozen=True)
class Chain:
    """``nn.Sequential``: the children by name, in order."""

    children: tuple[tuple[str, Any], ...]


# ---- one describer per layer kind ---------------------------------------------------------------
# A layer that keeps a canonical spec in PyTorch's terms (``layer._spec``: every conv, and the
# other layers once they follow the profiles) is described from it, never from its attributes,
# which are its own framework's (MindSpore's BatchNorm momentum=0.9 is PyTorch's 0.1).
def _conv_layer(layer: Module) -> Conv:
    return Conv(layer._spec)


def _spec(layer: Module) -> Any:
    """The layer's canonical spec, or None for a layer that keeps PyTorch's attributes."""
    return getattr(layer, "_spec", None)


def _linear(layer: Module) -> Linear:
    spec = _spec(layer)
    if spec is None:
        return Linear(layer.in_features, layer.out_features, layer.bias is not None)
    if getattr(spec, "activation", None) is not None:
        raise NotImplementedError(
            f"cannot export a dense layer with activation={spec.activation!r} as one layer: "
            "build it as the dense layer followed by the activation layer"
        )
    return Linear(spec.in_features, spec.out_features, bool(spec.bias))


def _batch_norm(layer: Module) -> BatchNorm:
    spec = _spec(layer) or layer  # PyTorch's attributes where there is no spec
    if getattr(spec, "use_batch_statistics", None) is not None:
        raise NotImplementedError(
            f"cannot export use_batch_statistics={spec.use_batch_statistics} (MindSpore's "
            "rule): PyTorch's BatchNorm has no such switch"
        )
    nd = 1 if type(layer).__name__.endswith("1d") else 2
    bias = spec.bias if isinstance(spec.bias, bool) else spec.bias is not None
    return BatchNorm(nd, spec.num_features, float(spec.eps), spec.momentum, bool(spec.affine),
                     bias, bool(spec.track_running_stats))


def _pool(layer: Module) -> Pool:
    spec = _spec(layer)
    kind = type(layer).__name__
    nd = int(kind[-2])  # MaxPool2d -> 2
    if spec is None:
        return _pool_from_attributes(layer, kind, nd)
    pool = Pool("max" if spec.kind.startswith("Max") else "avg", nd, spec.kernel_size,
                spec.stride, spec.padding, spec.dilation, bool(spec.ceil_mode),
                bool(spec.count_include_pad), spec.divisor_override, bool(spec.return_indices))
    if not pool_is_native(pool) and (pool.ceil_mode or pool.return_indices
                                     or pool.divisor_override is not None):
        raise NotImplementedError(
            f"cannot export {kind} with padding {spec.padding!r} together with ceil_mode, "
            "return_indices or divisor_override"
        )
    if isinstance(spec.padding, ConvPadding) and spec.padding.mode != "zeros":
        raise NotImplementedError(f"cannot export {kind} with padding {spec.padding!r}")
    return pool


def pool_is_native(pool: Pool) -> bool:
    """PyTorch's pooling arguments express it: the same padding both sides."""
    rule = pool.padding
    return isinstance(rule, ConvPadding) and rule.before == rule.after


def _pool_from_attributes(layer: Module, kind: str, nd: int) -> Pool:
    def ints(name: str, value: Any) -> tuple[int, ...]:
        return int_tuple(value, nd, name, kind)

    padding = ints("padding", layer.padding)
    common = (ints("kernel_size", layer.kernel_size), ints("stride", layer.stride),
              ConvPadding(padding, padding))
    if kind.startswith("Max"):
        return Pool("max", nd, *common, ints("dilation", layer.dilation),
                    bool(layer.ceil_mode), return_indices=bool(layer.return_indices))
    return Pool("avg", nd, *common, (1,) * nd, bool(layer.ceil_mode),
                bool(layer.count_include_pad), getattr(layer, "divisor_override", None))


def _dropout(layer: Module) -> Dropout:
    spec = _spec(layer) or layer
    name = type(layer).__name__
    nd = int(name[-2]) if name[-1] == "d" and name[-2].isdigit() else 0  # Dropout2d -> 2
    return Dropout(float(spec.p), nd)


def _flatten(layer: Module) -> Flatten:
    spec = _spec(layer) or layer
    return Flatten(int(spec.start_dim), int(spec.end_dim))


def _layer_norm(layer: Module) -> LayerNorm:
    return LayerNorm(tuple(layer.normalized_shape), float(layer.eps),
                     bool(layer.elementwise_affine), layer.bias is not None)


def _embedding(layer: Module) -> Embedding:
    return Embedding(layer.num_embeddings, layer.embedding_dim, layer.padding_idx,
                     layer.max_norm, layer.norm_type, bool(layer.scale_grad_by_freq),
                     bool(layer.sparse))


def _upsample(layer: Module) -> Upsample:
    return Upsample(layer.size, layer.scale_factor, layer.mode, layer.align_corners,
                    layer.recompute_scale_factor)


# minidl.nn's public class names -> describer (MindSpore's aliases are the same classes)
_BY_NAME: dict[str, Callable[[Any], Any]] = {
    **{f"Conv{n}d": _conv_layer for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": _conv_layer for n in (1, 2, 3)},
    "Linear": _linear,
    "BatchNorm1d": _batch_norm,
    "BatchNorm2d": _batch_norm,
    **{f"{op}Pool{n}d": _pool for op in ("Max", "Avg") for n in (1, 2, 3)},
    "AdaptiveAvgPool2d": lambda m: AdaptiveAvgPool2d(m.output_size),
    "ReLU": lambda m: Activation("relu"),
    "LeakyReLU": lambda m: Activation("leaky_relu", float(m.negative_slope)),
    "Tanh": lambda m: Activation("tanh"),
    "Sigmoid": lambda m: Activation("sigmoid"),
    "GELU": lambda m: Activation("gelu", m.approximate),
    "Softmax": lambda m: Activation("softmax", m.dim),
    "LogSoftmax": lambda m: Activation("log_softmax", m.dim),
    "Flatten": _flatten,
    **{name: _dropout for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d")},
    "LayerNorm": _layer_norm,
    "Embedding": _embedding,
    "Upsample": _upsample,
    "Identity": lambda m: Identity(),
}
DESCRIBERS: dict[type, Callable[[Any], Any]] = {
    getattr(_nn, name): describer for name, describer in _BY_NAME.items() if hasattr(_nn, name)
}


def describe(model: Module, where: str = "") -> Any:
    """``model`` as a tree of the records above; NotImplementedError for what cannot be."""
    if not isinstance(model, Module):
        raise TypeError(f"minidl.export takes a minidl.nn.Module, got {type(model).__name__}")
    cls = type(model)
    for base in cls.__mro__:
        if base is Sequential or base in DESCRIBERS:
            _check_forward(model, base, where)
            if base is Sequential:
                return Chain(tuple(
                    (name, describe(child, _join(where, name)))
                    for name, child in model.named_children()
                ))
            try:
                return DESCRIBERS[base](model)
            except NotImplementedError as error:  # a rule PyTorch lacks: say where it is
                place = f" (at {where!r})" if where else ""
                raise NotImplementedError(f"{cls.__name__}{place}: {error}") from None
    if cls.forward is Module.forward:
        _refuse(model, where, "no forward() (a container such as ModuleList is used by a "
                "model's own forward), so there is nothing to translate")
    _refuse(model, where, "a custom forward(), which minidl.export cannot translate")


def _check_forward(model: Module, base: type, where: str) -> None:
    if type(model).forward is not base.forward:
        _refuse(model, where, f"its own forward() (overriding {base.__name__}'s), which "
                "minidl.export cannot translate")


def _refuse(model: Module, where: str, what: str) -> None:
    name = type(model).__name__
    place = f" (at {where!r})" if where else ""
    raise NotImplementedError(
        f"cannot export {name}{place}: it has {what}. minidl.export translates nn.Sequential "
        f"models (nested too) of minidl's layers ({', '.join(exportable_layers())}). For any "
        f"other model, write the same class in PyTorch and load "
        f"model.state_dict(profile='torch') into it"
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def exportable_layers() -> list[str]:
    """The names of the layer classes the exporters translate (besides nn.Sequential)."""
    return sorted(cls.__name__ for cls in DESCRIBERS)
