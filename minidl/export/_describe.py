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

from .._geometry import int_tuple
from ..nn import conv as _conv
from ..nn import layers as _layers
from ..nn.module import Module, Sequential
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
    padding: tuple[int, ...]  # both sides
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
def _conv_layer(layer: _conv._ConvNd) -> Conv:
    return Conv(layer._spec)


def _linear(layer: _layers.Linear) -> Linear:
    return Linear(layer.in_features, layer.out_features, layer.bias is not None)


def _batch_norm(layer: _layers._BatchNorm) -> BatchNorm:
    nd = 1 if isinstance(layer, _layers.BatchNorm1d) else 2
    return BatchNorm(
        nd, layer.num_features, float(layer.eps), layer.momentum, bool(layer.affine),
        layer.bias is not None, bool(layer.track_running_stats),
    )


def _nd(layer: Module) -> int:
    return int(type(layer).__name__[-2])  # MaxPool2d -> 2


def _ints(layer: Module, name: str, value: Any) -> tuple[int, ...]:
    return int_tuple(value, _nd(layer), name, type(layer).__name__)


def _max_pool(layer: _layers._MaxPoolNd) -> Pool:
    return Pool(
        "max", _nd(layer), _ints(layer, "kernel_size", layer.kernel_size),
        _ints(layer, "stride", layer.stride), _ints(layer, "padding", layer.padding),
        _ints(layer, "dilation", layer.dilation), bool(layer.ceil_mode),
        return_indices=bool(layer.return_indices),
    )


def _avg_pool(layer: Module) -> Pool:
    nd = _nd(layer)
    return Pool(
        "avg", nd, _ints(layer, "kernel_size", layer.kernel_size),
        _ints(layer, "stride", layer.stride), _ints(layer, "padding", layer.padding), (1,) * nd,
        bool(layer.ceil_mode), bool(layer.count_include_pad),
        getattr(layer, "divisor_override", None),
    )


def _dropout(layer: _layers.Dropout) -> Dropout:
    channel_wise = {_layers.Dropout1d: 1, _layers.Dropout2d: 2, _layers.Dropout3d: 3}
    nd = next((n for cls, n in channel_wise.items() if isinstance(layer, cls)), 0)
    return Dropout(float(layer.p), nd)


def _layer_norm(layer: _layers.LayerNorm) -> LayerNorm:
    return LayerNorm(tuple(layer.normalized_shape), float(layer.eps),
                     bool(layer.elementwise_affine), layer.bias is not None)


def _embedding(layer: _layers.Embedding) -> Embedding:
    return Embedding(layer.num_embeddings, layer.embedding_dim, layer.padding_idx,
                     layer.max_norm, layer.norm_type, bool(layer.scale_grad_by_freq),
                     bool(layer.sparse))


def _upsample(layer: _layers.Upsample) -> Upsample:
    return Upsample(layer.size, layer.scale_factor, layer.mode, layer.align_corners,
                    layer.recompute_scale_factor)


DESCRIBERS: dict[type, Callable[[Any], Any]] = {
    _conv._ConvNd: _conv_layer,
    _layers.Linear: _linear,
    _layers._BatchNorm: _batch_norm,
    _layers._MaxPoolNd: _max_pool,
    _layers.AvgPool1d: _avg_pool,
    _layers._AvgPoolNd: _avg_pool,
    _layers.AdaptiveAvgPool2d: lambda m: AdaptiveAvgPool2d(m.output_size),
    _layers.ReLU: lambda m: Activation("relu"),
    _layers.LeakyReLU: lambda m: Activation("leaky_relu", float(m.negative_slope)),
    _layers.Tanh: lambda m: Activation("tanh"),
    _layers.Sigmoid: lambda m: Activation("sigmoid"),
    _layers.GELU: lambda m: Activation("gelu", m.approximate),
    _layers.LogSoftmax: lambda m: Activation("log_softmax", m.dim),  # before its base Softmax
    _layers.Softmax: lambda m: Activation("softmax", m.dim),
    _layers.Flatten: lambda m: Flatten(int(m.start_dim), int(m.end_dim)),
    _layers.Dropout: _dropout,
    _layers.LayerNorm: _layer_norm,
    _layers.Embedding: _embedding,
    _layers.Upsample: _upsample,
    _layers.Identity: lambda m: Identity(),
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
            return DESCRIBERS[base](model)
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
    """The names of the layer classes the exporters translate."""
    names = []
    for cls in DESCRIBERS:
        if cls.__name__.startswith("_"):
            names += sorted(c.__name__ for c in _subclasses(cls))
        else:
            names.append(cls.__name__)
    return sorted(set(names))


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        if not sub.__name__.startswith("_") and sub.__module__.startswith("minidl."):
            found.append(sub)
        found += _subclasses(sub)
    return found
