"""Linear (MindSpore: Dense), BatchNorm1d/2d, the pools, Dropout and Flatten, as the active
profile defines them (``minidl/profiles/modules.py`` and the framework files).

As for the conv layers (``minidl/nn/conv.py``), one class per PyTorch layer binds its arguments
through the profile, keeps a canonical spec in PyTorch's terms (``layer._spec``), stores its
parameters and buffers under the framework's names and in its shapes (MindSpore's ``gamma``,
``beta``, ``moving_mean``, ``moving_variance``; MegEngine's ``(1, C, 1, 1)``), and writes
checkpoints in any profile's layout (``state_dict(profile=...)``), names and order included.
The arguments are live attributes, as in PyTorch: ``pool.stride = 1`` or ``bn.momentum = None``
changes the next forward (checked by the profile's rules then); the arguments that size the
parameters cannot change.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np

from .. import _geometry
from .. import profiles as _profiles
from ..profiles.modules import BUFFERS, Entry
from ..profiles.padding import ConvPadding, SamePadding
from ..profiles.signature import NOT_ATTRIBUTES, Bound
from ..profiles.spec import BatchNormSpec, LinearSpec, PoolSpec
from ..tensor import Tensor
from . import _conv_rules, _init_rules
from . import functional as F
from ._basic_functional import check_dropout_probability
from .init import calculate_fan_in_and_fan_out
from .module import Module, Parameter

# the arguments that size the parameters: they cannot change after construction
SHAPING = ("in_features", "out_features", "num_features", "affine", "bias", "dtype")


class _Profiled(Module):
    """The machinery shared by the non-conv layers. ``kind`` names the PyTorch class."""

    kind = ""

    def __init__(self, *args: Any, profile: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        owner = _profiles.get_profile(profile)
        definition = owner.module(self.kind)
        bound = owner.bind(self.kind, args, kwargs)
        self.__dict__.update(
            _profile=owner, _def=definition, _values=dict(bound.values), _spec_now=None,
            profile=owner.name,
        )
        self._normalise_values()
        if definition.checked_at == "construction":
            self._resolve()
        self.__dict__.update(self._attributes())
        self._build()

    # ---- configuration --------------------------------------------------------------------
    def _normalise_values(self) -> None:
        """Argument values a framework rewrites before keeping them (a pool's stride)."""

    def _bound(self) -> Bound:
        return Bound(self._profile, self.kind, self._def.layer, dict(self._values))

    def _resolve(self) -> Any:
        spec = self._def.resolve(self._bound())
        self.__dict__["_spec_now"] = spec
        return spec

    @property
    def _spec(self) -> Any:
        """The canonical spec in PyTorch's terms (``minidl.profiles.spec``), attributes applied."""
        spec = self.__dict__["_spec_now"]
        return self._resolve() if spec is None else spec

    def _attributes(self) -> dict[str, Any]:
        layer = self._def.layer
        return {
            arg.name: layer.attribute(arg.name, self._values[arg.name], 1)
            for arg in layer.signature
            if arg.name not in NOT_ATTRIBUTES
        }

    def __setattr__(self, name: str, value: Any) -> None:
        values = self.__dict__.get("_values")
        if values is None or name not in values or name in NOT_ATTRIBUTES:
            if name == "profile" and "profile" in self.__dict__:
                raise AttributeError(
                    f"a layer keeps the profile it was built with ({self.profile!r}); "
                    f"minidl.profiles.convert(layer, {value!r}) rebuilds it under another one"
                )
            super().__setattr__(name, value)
            return
        arg = next(a for a in self._def.layer.signature if a.name == name)
        if arg.key in SHAPING and not _equal(value, self.__dict__.get(name)):
            raise AttributeError(
                f"{self._def.layer.cls_name}.{name} cannot change after construction (from "
                f"{self.__dict__.get(name)!r} to {value!r}): the parameters were made for it. "
                "Build a new layer instead"
            )
        previous = dict(values)
        values[name] = self._def.layer.argument(name, value)
        try:
            if self._def.checked_at == "construction":
                self._resolve()
            else:
                self.__dict__["_spec_now"] = None
        except (TypeError, ValueError) as error:
            values.clear()
            values.update(previous)
            raise type(error)(f"after setting {self._def.layer.cls_name}.{name} = {value!r}: "
                              f"{error}") from None
        self.__dict__[name] = value

    def _build(self) -> None:
        """Create the parameters and buffers (layers that have some)."""

    # ---- state in the profile's layout ---------------------------------------------------------
    def _shape(self, entry: Entry) -> tuple[int, ...]:
        raise NotImplementedError

    def _own_entries(self) -> list[Entry]:
        """This layer's entries, in its framework's order (only those it has)."""
        return [e for e in self._def.entries if self._stored(e.stored) is not None]

    def _stored(self, name: str) -> Tensor | None:
        return self._parameters.get(name, self._buffers.get(name))

    def _canonical_arrays(self) -> OrderedDict[str, np.ndarray]:
        """Parameters and buffers by PyTorch's names, in PyTorch's shapes (views): what
        ``state_dict(profile='torch')`` holds (a conv's gives its ``(weight, bias)`` pair)."""
        out = OrderedDict()
        for entry in self._own_entries():
            torch_entry = Entry(entry.name, entry.name, _TORCH_FORMS[entry.name])
            out[entry.name] = self._stored(entry.stored)._data.reshape(self._shape(torch_entry))
        return out

    def _target(self, profile: str | None):
        return self._def if profile is None else _profiles.get_profile(profile).module(self.kind)

    def _export_state(self, profile: str | None) -> OrderedDict[str, np.ndarray]:
        canonical = self._canonical_arrays()
        if not canonical:
            return OrderedDict()
        target = self._target(profile)
        return OrderedDict(
            (entry.stored, canonical[entry.name].reshape(self._shape(entry)).copy())
            for entry in target.entries
            if entry.name in canonical
        )

    def _import_state(self, entries: dict[str, np.ndarray], profile: str | None) -> None:
        target = self._target(profile)
        own = {e.name: e for e in self._own_entries()}
        for entry in target.entries:
            if entry.stored in entries and entry.name in own:
                tensor = self._stored(own[entry.name].stored)
                values = np.asarray(entries[entry.stored]).reshape(tensor.shape)
                tensor._data = np.array(values, dtype=tensor.dtype)

    def _display_name(self) -> str:
        return self._def.layer.cls_name

    def extra_repr(self) -> str:
        layer = self._def.layer
        parts = []
        for arg in layer.signature:
            if arg.name in ("device", "dtype"):
                continue
            value = self.__dict__.get(arg.name, self._values[arg.name])
            if arg.default is _profiles.signature.REQUIRED or not _equal(value, arg.default):
                parts.append(f"{arg.name}={value!r}")
        if self.profile != "torch":
            parts.append(f"profile={self.profile!r}")
        return ", ".join(parts)


_TORCH_FORMS = {
    "weight": "vector", "bias": "vector", "running_mean": "vector", "running_var": "vector",
    "num_batches_tracked": "scalar",
}


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


# ---- Linear / Dense ---------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "gelu": F.gelu,
    "softmax": lambda x: F.softmax(x, -1),
    "log_softmax": lambda x: F.log_softmax(x, -1),
}


class Linear(_Profiled):
    """``y = x @ weight.T + bias`` with weight ``(out_features, in_features)``; MindSpore's
    ``Dense`` (the same class) adds its ``activation`` after the affine map."""

    kind = "Linear"

    def _build(self) -> None:
        spec: LinearSpec = self._spec
        if spec.activation is not None and spec.activation not in ACTIVATIONS:
            raise ValueError(
                f"{self._def.layer.cls_name}: activation {spec.activation!r} is not one minidl "
                f"has; known: {sorted(ACTIVATIONS)}"
            )
        self.__dict__.update(in_features=spec.in_features, out_features=spec.out_features)
        self.weight = Parameter(np.zeros((spec.out_features, spec.in_features), spec.dtype))
        if spec.bias:
            self.bias = Parameter(np.zeros(spec.out_features, spec.dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _shape(self, entry: Entry) -> tuple[int, ...]:
        spec = self._spec
        return (spec.out_features, spec.in_features) if entry.name == "weight" else (
            spec.out_features,)

    def _canonical_arrays(self) -> OrderedDict[str, np.ndarray]:
        out = OrderedDict(weight=self.weight._data)
        if self.bias is not None:
            out["bias"] = self.bias._data
        return out

    def reset_parameters(self) -> None:
        """Initialise as the profile's framework does."""
        initializers = self._def.init(self._bound())
        fans = calculate_fan_in_and_fan_out(self.weight)
        _init_rules.fill(initializers["weight"], self.weight, fans)
        if self.bias is not None:
            _init_rules.fill(initializers["bias"], self.bias, fans)

    def forward(self, input: Tensor) -> Tensor:
        y = F.linear(input, self.weight, self.bias)
        activation = self._spec.activation
        return y if activation is None else ACTIVATIONS[activation](y)

    def extra_repr(self) -> str:
        if self.profile == "torch":
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"bias={self.bias is not None}")
        return super().extra_repr()


Dense = Linear  # MindSpore's name: the same class


# ---- BatchNorm --------------------------------------------------------------------------------
class _BatchNorm(_Profiled):
    _ranks: tuple[int, ...] = ()

    def _build(self) -> None:
        spec: BatchNormSpec = self._spec
        dtype, c = spec.dtype, spec.num_features
        has = {
            "weight": spec.affine,
            "bias": spec.affine and spec.bias,
            # MindSpore always keeps moving statistics; PyTorch and MegEngine only when tracking
            "running_mean": spec.track_running_stats,
            "running_var": spec.track_running_stats,
            "num_batches_tracked": spec.track_running_stats,
        }
        for entry in self._def.entries:
            shape = self._shape(entry)
            if entry.name in BUFFERS:
                if has[entry.name]:
                    fill = np.zeros(shape, np.int64) if entry.shape == "scalar" else np.zeros(
                        shape, dtype)
                    self.register_buffer(entry.stored, fill)
                else:
                    self.register_buffer(entry.stored, None)
            elif has[entry.name]:
                setattr(self, entry.stored, Parameter(np.zeros(shape, dtype)))
            elif entry.kept:  # a constant where the framework keeps one (MindSpore)
                self.register_buffer(entry.stored, np.zeros(shape, dtype))
            else:
                self.register_parameter(entry.stored, None)
        self.__dict__["num_features"] = c
        self.reset_parameters()

    def _export_state(self, profile: str | None) -> OrderedDict[str, np.ndarray]:
        """Without ``affine``, MindSpore still keeps gamma and beta (constants 1 and 0); the
        other frameworks have no weight or bias then."""
        state = super()._export_state(profile)
        if not self._spec.affine:
            kept = {e.stored for e in self._target(profile).entries if e.kept}
            for entry in self._target(profile).entries:
                if entry.name in ("weight", "bias") and entry.stored not in kept:
                    state.pop(entry.stored, None)
            for entry in self._target(profile).entries:
                if entry.stored in kept and entry.stored not in state:
                    fill = 1.0 if entry.name == "weight" else 0.0
                    state[entry.stored] = np.full(self._shape(entry), fill, self._spec.dtype)
            order = [e.stored for e in self._target(profile).entries]
            state = OrderedDict(sorted(state.items(), key=lambda kv: order.index(kv[0])))
        return state

    def _shape(self, entry: Entry) -> tuple[int, ...]:
        c = self._spec.num_features
        return {"vector": (c,), "1c11": (1, c, 1, 1), "scalar": ()}[entry.shape]

    def _tensor(self, name: str) -> Tensor | None:
        entry = self._def.entry(name)
        return None if entry is None else self._stored(entry.stored)

    def reset_running_stats(self) -> None:
        for name, value in (("running_mean", 0.0), ("running_var", 1.0)):
            tensor = self._tensor(name)
            if tensor is not None:
                tensor._data[...] = value
        counter = self._tensor("num_batches_tracked")
        if counter is not None:
            counter._data = np.array(0, np.int64)

    def reset_parameters(self) -> None:
        """PyTorch's: weight 1, bias 0, running mean 0, variance 1; MindSpore's initialiser
        arguments (``gamma_init``, ...) where the profile has them."""
        self.reset_running_stats()
        for name, value in (("weight", 1.0), ("bias", 0.0)):
            tensor = self._tensor(name)
            if tensor is not None:
                tensor._data[...] = value
        if self._def.init is not None:
            for name, initializer in self._def.init(self._bound()).items():
                tensor = self._tensor(name)
                if tensor is not None:
                    _init_rules.fill(initializer, tensor, (0, 0))

    def _vector(self, name: str) -> Tensor | None:
        tensor = self._tensor(name)
        if tensor is None or tensor.ndim == 1:
            return tensor
        return tensor.reshape(self._spec.num_features)

    def forward(self, input: Tensor) -> Tensor:
        op = self._def.layer.cls_name
        if not isinstance(input, Tensor):
            raise TypeError(f"{op}: input must be a minidl Tensor, got {type(input).__name__}")
        if input.ndim not in self._ranks:
            ranks = " or ".join(f"{r}D" for r in self._ranks)
            raise ValueError(f"{op}: expected {ranks} input "
                             f"(got {input.ndim}D input of shape {input.shape})")
        spec: BatchNormSpec = self._spec
        mean_buffer, var_buffer = self._tensor("running_mean"), self._tensor("running_var")
        running = [self._running(t) for t in (mean_buffer, var_buffer)]
        counter = self._tensor("num_batches_tracked")
        if spec.use_batch_statistics is None:  # PyTorch's rule (and MegEngine's)
            factor = 0.0 if spec.momentum is None else spec.momentum
            if self.training and spec.track_running_stats and counter is not None:
                counter._data = counter._data + 1
                if spec.momentum is None:  # cumulative moving average
                    factor = 1.0 / float(counter._data)
            batch = self.training or (mean_buffer is None and var_buffer is None)
            track = not self.training or spec.track_running_stats
            if not track:
                running = [None, None]
        else:  # MindSpore's use_batch_statistics: the mode does not matter
            batch = spec.use_batch_statistics
            factor = spec.momentum
        out = F.batch_norm(input, running[0], running[1], self._vector("weight"),
                           self._vector("bias"), batch, factor, spec.eps)
        for buffer, vector in zip((mean_buffer, var_buffer), running, strict=True):
            if buffer is not None and vector is not None and vector is not buffer:
                buffer._data[...] = vector._data.reshape(buffer.shape)
        return out

    def _running(self, tensor: Tensor | None) -> Tensor | None:
        if tensor is None or tensor.ndim == 1:
            return tensor
        return Tensor(tensor._data.reshape(self._spec.num_features).copy())

    def extra_repr(self) -> str:
        if self.profile == "torch":
            spec = self._spec
            return (f"{spec.num_features}, eps={self.eps}, momentum={self.momentum}, "
                    f"affine={self.affine}, bias={self._tensor('bias') is not None}, "
                    f"track_running_stats={self.track_running_stats}")
        return super().extra_repr()


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input."""

    kind = "BatchNorm1d"
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input."""

    kind = "BatchNorm2d"
    _ranks = (4,)


# ---- pooling ----------------------------------------------------------------------------------
class _Pool(_Profiled):
    def extra_repr(self) -> str:
        if self.profile != "torch":
            return super().extra_repr()
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.kind.startswith("Max"):
            text += f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        return text

    def _normalise_values(self) -> None:
        values = self._values
        if values.get("stride", 0) is None:  # PyTorch and MegEngine: the kernel size
            values["stride"] = values["kernel_size"]

    def forward(self, input: Tensor) -> Any:
        spec: PoolSpec = self._spec
        rule = spec.padding
        if isinstance(rule, SamePadding):
            return _same_pool(input, spec)
        if isinstance(rule, ConvPadding) and rule.before != rule.after:
            raise ValueError(f"{spec.kind}: asymmetric padding {rule.describe()} is not supported")
        padding = rule.before
        nd = spec.nd
        if spec.op == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            return fn(input, spec.kernel_size, spec.stride, padding, spec.dilation,
                      ceil_mode=spec.ceil_mode, return_indices=spec.return_indices)
        if nd == 1:
            return F.avg_pool1d(input, spec.kernel_size, spec.stride, padding, spec.ceil_mode,
                                spec.count_include_pad)
        fn = {2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        return fn(input, spec.kernel_size, spec.stride, padding, spec.ceil_mode,
                  spec.count_include_pad, spec.divisor_override)


def _same_pool(input: Tensor, spec: PoolSpec) -> Tensor:
    """MindSpore's pad_mode='same': out = ceil(in / stride), the odd extra padding after;
    padded positions never win a max, and an average divides by the in-bounds count."""
    nd = spec.nd
    size = tuple(input.shape[-nd:])
    before, after = _geometry.tf_same_split(size, spec.kernel_size, spec.stride, (1,) * nd)
    pad = _conv_rules.flat_pad(before, after)
    if spec.op == "max":
        padded = F.pad(input, pad, value=-np.inf)
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
        return fn(padded, spec.kernel_size, spec.stride, 0)
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
    if spec.divisor_override:  # the window's sum over the divisor
        return fn(F.pad(input, pad), spec.kernel_size, spec.stride, 0, False, True,
                  spec.divisor_override)
    total = fn(F.pad(input, pad), spec.kernel_size, spec.stride, 0)
    ones = Tensor(np.ones((1, 1, *size), input.dtype))
    share = fn(F.pad(ones, pad), spec.kernel_size, spec.stride, 0)  # in-bounds / window
    return total / share


def _pool_class(name: str, doc: str) -> type[_Pool]:
    return type(name, (_Pool,), {"kind": name, "__doc__": doc, "__module__": __name__})


MaxPool1d = _pool_class("MaxPool1d", "1-D max pooling over (N, C, L) input.")
MaxPool2d = _pool_class("MaxPool2d", "2-D max pooling over (N, C, H, W) input.")
MaxPool3d = _pool_class("MaxPool3d", "3-D max pooling over (N, C, D, H, W) input.")
AvgPool1d = _pool_class("AvgPool1d", "1-D average pooling over (N, C, L) input.")
AvgPool2d = _pool_class("AvgPool2d", "2-D average pooling over (N, C, H, W) input.")
AvgPool3d = _pool_class("AvgPool3d", "3-D average pooling over (N, C, D, H, W) input.")


# ---- Dropout, Flatten -------------------------------------------------------------------------
class Dropout(_Profiled):
    """Inverted dropout in training (mask from minidl's generator), the identity in eval."""

    kind = "Dropout"

    def _resolve(self) -> Any:
        spec = self._def.resolve(self._bound())
        spec = replace(spec, p=check_dropout_probability(spec.p))
        self.__dict__["_spec_now"] = spec
        return spec

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self._spec.p, self.training)

    def extra_repr(self) -> str:
        if self.profile == "torch":
            return f"p={self.p}, inplace={self.inplace}"
        return super().extra_repr()


class Flatten(_Profiled):
    """Flatten dims ``start_dim..end_dim`` (by default all but the batch dim)."""

    kind = "Flatten"

    def forward(self, input: Tensor) -> Tensor:
        spec = self._spec
        return F.flatten(input, spec.start_dim, spec.end_dim)

    def extra_repr(self) -> str:
        if self.profile == "torch":
            return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
        return super().extra_repr()


__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dense",
    "Dropout",
    "Flatten",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
]
