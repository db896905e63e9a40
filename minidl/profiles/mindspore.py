"""The 'mindspore' and 'mindspore-2.1' profiles: ``mindspore.nn.Conv1d/2d/3d`` and
``Conv1d/2d/3dTranspose``.

'mindspore' follows the r2.0 conventions of the seed documents (``weight_init='normal'`` =
N(0, 0.01^2), ``bias_init='zeros'``); 'mindspore-2.1' the defaults from MindSpore 2.1 on
(``weight_init=None`` = HeUniform(sqrt(5)), ``bias_init=None`` = U(+-1/sqrt(fan_in)), and the
trailing ``dtype`` of 2.3). Both compute what MindSpore 2.10 computes, checked against
``tests/mindspore_ref/mindspore_ref.npz``:

* ``pad_mode='same'`` (the default) is TF-style for any stride: out = ceil(in / stride), the odd
  extra padding after; ``'valid'`` pads nothing; ``'pad'`` takes ``padding`` as an int or
  (top, bottom, left, right) / (head, tail, top, bottom, left, right);
* a transposed conv keeps a window of the full transposed conv (:class:`TransposeWindow`);
  Conv2dTranspose's ``output_padding`` appends zeros after the bias, Conv3dTranspose's computes
  the extra rows as PyTorch does, Conv1dTranspose has none;
* a Conv1d / Conv1dTranspose weight is stored 4-D, ``(c0, c1, 1, k)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._geometry import as_int, int_tuple, same_split, transpose_output_size
from ..tensor import Tensor
from . import init
from .init import ArrayInit, Init, Initializer
from .layout import Layout
from .modules import Entry, ModuleDef, count
from .padding import ConvPadding, SamePadding, TransposeWindow
from .profile import Profile
from .signature import REQUIRED, LayerDef, args
from .spec import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    FlattenSpec,
    LinearSpec,
    NotExpressible,
    PoolSpec,
    check_output_padding,
    ints,
    output_padding_fits,
    parse_dtype,
)

PAD_MODES = ("same", "valid", "pad")


# ---- MindSpore's initializers (mindspore.common.initializer), with its names and defaults -------
def Normal(sigma: float = 0.01, mean: float = 0.0) -> Initializer:
    """``Normal(sigma=0.01, mean=0.0)``: what ``weight_init='normal'`` means."""
    return init.normal(sigma, mean)


def Uniform(scale: float = 0.07) -> Initializer:
    """``Uniform(scale=0.07)``: U(-scale, scale)."""
    return init.uniform(scale)


def TruncatedNormal(
    sigma: float = 0.01, mean: float = 0.0, a: float = -2.0, b: float = 2.0
) -> Initializer:
    return init.truncated_normal(sigma, mean, a, b)


def HeUniform(
    negative_slope: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Initializer:
    return init.kaiming(negative_slope, mode, nonlinearity)


def HeNormal(
    negative_slope: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Initializer:
    return init.kaiming(negative_slope, mode, nonlinearity, distribution="normal")


def XavierUniform(gain: float = 1.0) -> Initializer:
    return init.xavier(gain)


def XavierNormal(gain: float = 1.0) -> Initializer:
    return init.xavier(gain, distribution="normal")


def Constant(value: float) -> Initializer:
    return init.constant(value)


def Zero() -> Initializer:
    return init.constant(0.0)


def One() -> Initializer:
    return init.constant(1.0)


# MindSpore looks strings up lower-cased, under the class name and its registered alias
INITIALIZERS = {
    "normal": Normal,
    "uniform": Uniform,
    "truncatednormal": TruncatedNormal,
    "heuniform": HeUniform,
    "he_uniform": HeUniform,
    "henormal": HeNormal,
    "he_normal": HeNormal,
    "xavieruniform": XavierUniform,
    "xavier_uniform": XavierUniform,
    "xaviernormal": XavierNormal,
    "xavier_normal": XavierNormal,
    "zero": Zero,
    "zeros": Zero,
    "one": One,
    "ones": One,
}
DEFAULT_WEIGHT = HeUniform(negative_slope=math.sqrt(5))  # >= 2.1: U(+-1/sqrt(fan_in))
DEFAULT_BIAS = init.fan_in_uniform()


def initializer(value: Any, label: str, default: Init) -> Init:
    """A ``weight_init`` / ``bias_init`` value -> Initializer: None (the >= 2.1 default), a
    name, an Initializer, a number (a constant) or an array of the stored shape."""
    if value is None:
        return default
    if isinstance(value, (Initializer, ArrayInit)):
        return value
    if isinstance(value, str):
        if value.lower() not in INITIALIZERS:
            raise ValueError(
                f"{label}={value!r} is not a MindSpore initializer name; known names: "
                f"{sorted(INITIALIZERS)}"
            )
        return INITIALIZERS[value.lower()]()
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return Constant(float(value))
    if isinstance(value, (np.ndarray, Tensor, list, tuple)) or hasattr(value, "numpy"):
        array = value._data if isinstance(value, Tensor) else value
        if hasattr(array, "detach"):  # a torch tensor
            array = array.detach().cpu().numpy()
        return ArrayInit(np.asarray(array), label)
    raise TypeError(
        f"{label} must be None, a string, an initializer, a number or an array, got {value!r}"
    )


def initializers(bound, spec: ConvSpec) -> tuple[Init, Init]:
    return (
        initializer(bound["weight_init"], "weight_init", DEFAULT_WEIGHT),
        initializer(bound["bias_init"], "bias_init", DEFAULT_BIAS),
    )


# ---- padding ------------------------------------------------------------------------------------
def _pad_mode(bound) -> str:
    mode = bound["pad_mode"]
    if mode not in PAD_MODES:
        raise ValueError(
            f"For {bound.op!r}, the 'pad_mode' must be str and must be in "
            f"{list(PAD_MODES)}, but got {mode!r} (MindSpore has no padding_mode; pad the "
            f"input with F.pad(x, ..., mode=...) before a pad_mode='valid' conv)"
        )
    return mode


def _explicit(bound, nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``padding``: an int, or one (before, after) pair per dim flattened; checked against
    ``pad_mode``."""
    padding, op = bound["padding"], bound.op
    if bound.layer.int_only and as_int(padding) is None:
        raise TypeError(
            f"For {op!r}, the type of 'padding' should be 'int', but got type "
            f"{type(padding).__name__!r} ({padding!r})"
        )
    values = _flat_pairs(padding, nd, op)
    if min(values) < 0:
        raise ValueError(f"For {op!r}, the 'padding' must be >= 0, but got {padding!r}")
    if bound["pad_mode"] != "pad" and any(values):
        raise ValueError(
            f"For {op!r}, the 'pad' must be zero when 'pad_mode' is not 'pad', but got "
            f"'padding': {padding!r} and 'pad_mode': {bound['pad_mode']!r}"
        )
    return values[0::2], values[1::2]


def _flat_pairs(padding: Any, nd: int, op: str) -> tuple[int, ...]:
    """An int, or ``2 * nd`` ints (before, after per dim): ``int_tuple`` in MindSpore's words."""
    sides = {1: "", 2: " (top, bottom, left, right)", 3: " (head, tail, top, bottom, left, right)"}
    try:
        return int_tuple(padding, 2 * nd, "padding", op, single=False)
    except ValueError:
        raise ValueError(
            f"For {op!r}, the 'padding' must be an int or a tuple of {2 * nd} ints"
            f"{sides[nd]}, but got {padding!r}"
        ) from None
    except TypeError:
        raise TypeError(
            f"For {op!r}, 'padding' must be an int or a tuple of ints, got {padding!r}"
        ) from None


def conv_padding(bound, spec: ConvSpec) -> ConvPadding:
    mode, nd = _pad_mode(bound), spec.nd
    before, after = _explicit(bound, nd)
    if mode == "pad":
        return ConvPadding(before, after)
    if mode == "valid":
        return ConvPadding((0,) * nd, (0,) * nd)
    if set(spec.stride) == {1}:  # 'same' at stride 1 does not depend on the input size
        return ConvPadding(*same_split(spec.kernel_size, spec.dilation))
    return SamePadding()


def _extent_excess(spec: ConvSpec) -> tuple[int, ...]:
    """Full transposed size minus in * stride: d*(k-1) + 1 - s, whatever the input size (the
    full size of a 1-long input, d*(k-1) + 1, minus one stride)."""
    ones, zeros = (1,) * spec.nd, (0,) * spec.nd
    full = transpose_output_size(ones, spec.kernel_size, spec.stride, zeros, zeros, spec.dilation)
    return tuple(f - s for f, s in zip(full, spec.stride, strict=True))


def mode_window(mode: str, spec: ConvSpec) -> TransposeWindow:
    """'same': out = in * s; 'valid': out = max(full, in * s); the full result is cropped by
    max(0, excess) // 2 at the start, and extended with bias-only positions when short."""
    excess, nd = _extent_excess(spec), spec.nd
    if mode == "same":
        before = tuple(max(0, e) // 2 for e in excess)
        return TransposeWindow(
            before, tuple(e - b for e, b in zip(excess, before, strict=True)), (0,) * nd
        )
    return TransposeWindow((0,) * nd, tuple(min(0, e) for e in excess), (0,) * nd)


def transpose_padding(bound, spec: ConvSpec) -> TransposeWindow:
    mode, nd = _pad_mode(bound), spec.nd
    before, after = _explicit(bound, nd)
    has_output_padding = bound.layer.arg("output_padding") is not None
    output_padding = ints(bound, "output_padding", nd, 0) if has_output_padding else (0,) * nd
    if any(output_padding) and mode != "pad":
        raise ValueError(
            f"For {bound.op!r}, when output_padding is not zero, pad_mode must be 'pad', but "
            f"got output_padding={bound['output_padding']!r} and pad_mode={mode!r}"
        )
    check_output_padding(bound, spec, output_padding)
    if mode != "pad":
        return mode_window(mode, spec)
    if bound.layer.output_padding == "zeros":
        return TransposeWindow(before, after, output_padding)
    computed = tuple(a - o for a, o in zip(after, output_padding, strict=True))
    return TransposeWindow(before, computed, (0,) * nd)


def check_data_format(bound) -> None:
    arg = bound.layer.arg("data_format")
    if arg is None:
        return
    value, expected = bound["data_format"], arg.default
    if value == expected:
        return
    if value == "NHWC" and expected == "NCHW":
        raise ValueError(
            f"For {bound.op!r}, data_format='NHWC' is only supported on GPU by MindSpore; minidl "
            f"computes NCHW (transpose the input to NCHW and use data_format='NCHW')"
        )
    raise ValueError(f"For {bound.op!r}, the 'data_format' must be {expected!r}, got {value!r}")


# ---- encoding a canonical spec as MindSpore arguments (minidl.profiles.convert) -----------------
def _padding_value(before, after, layer: LayerDef) -> int | tuple[int, ...]:
    if before == after and len(set(before)) == 1:
        return before[0]
    if layer.int_only:
        raise NotExpressible(
            f"{layer.cls_name} takes one int padding for every side, not {before} before and "
            f"{after} after"
        )
    return tuple(v for b, a in zip(before, after, strict=True) for v in (b, a))


def _encode_conv(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    rule = spec.padding
    if isinstance(rule, SamePadding):
        return {"pad_mode": "same", "padding": 0}
    if rule.mode != "zeros":
        raise NotExpressible(
            f"MindSpore's nn convs pad with zeros only, not {rule.mode!r}: pad the input with "
            f"F.pad(x, ..., mode={rule.mode!r}) and use pad_mode='valid'"
        )
    if not any(rule.before + rule.after):
        return {"pad_mode": "valid", "padding": 0}
    if set(spec.stride) == {1} and (rule.before, rule.after) == same_split(
        spec.kernel_size, spec.dilation
    ):
        return {"pad_mode": "same", "padding": 0}
    return {"pad_mode": "pad", "padding": _padding_value(rule.before, rule.after, layer)}


def _encode_transposed(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    window, has_output_padding = spec.padding, layer.arg("output_padding") is not None
    extra = {"output_padding": 0} if has_output_padding else {}
    for mode in ("same", "valid"):
        if mode_window(mode, spec) == window:
            return {"pad_mode": mode, "padding": 0, **extra}
    before, after, output_padding = window.before, window.after, window.zeros
    if layer.output_padding == "computed":
        if any(window.zeros):
            raise NotExpressible(f"{layer.cls_name} computes its output_padding rows")
        output_padding = tuple(max(0, -a) for a in after)
        after = tuple(a + o for a, o in zip(after, output_padding, strict=True))
    if (
        min(before + after) < 0
        or (any(output_padding) and not has_output_padding)
        or not output_padding_fits(output_padding, spec.stride, spec.dilation)
    ):
        raise NotExpressible(
            f"{layer.cls_name} cannot keep this window of the full transposed conv: "
            f"{window.describe()}"
        )
    if has_output_padding:
        extra = {"output_padding": output_padding}
    return {"pad_mode": "pad", "padding": _padding_value(before, after, layer), **extra}


def encode_padding(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    return (_encode_transposed if spec.transposed else _encode_conv)(spec, layer)


# ---- the two profiles ---------------------------------------------------------------------------
# mindspore.nn's attributes (2.10 source, nn/layer/conv.py): Conv2d/2dTranspose keep kernel_size,
# stride and dilation as ``twice`` pairs, Conv3d/3dTranspose as triples (and Conv3dTranspose its
# output_padding); Conv1d/1dTranspose run a 2-D conv and keep ``(1, k)`` and a padding of
# ``(0, 0, p, p)``; padding (2-D, 3-D) and Conv2dTranspose's output_padding stay as given
TUPLES = {name: "tuple" for name in ("kernel_size", "stride", "dilation")}
AS_2D = {"kernel_size": "as_2d", "stride": "as_2d", "dilation": "as_2d", "padding": "as_2d_padding"}


def _layers(weight_init: Any, bias_init: Any, tail: tuple) -> dict[str, LayerDef]:
    head = args(
        "in_channels",
        "out_channels",
        "kernel_size",
        ("stride", 1),
        ("pad_mode", "same"),
        ("padding", 0),
    )
    inits = args(
        ("has_bias", False, "bias"), ("weight_init", weight_init), ("bias_init", bias_init)
    )
    conv = head + args(("dilation", 1), ("group", 1, "groups")) + inits
    transposed = head + args(("output_padding", 0), ("dilation", 1), ("group", 1, "groups")) + inits
    transposed3d = (
        head + args(("dilation", 1), ("group", 1, "groups"), ("output_padding", 0)) + inits
    )
    ncdhw = args(("data_format", "NCDHW"))
    return {
        "Conv1d": LayerDef("Conv1d", conv + tail, int_only=True, stored=AS_2D),
        "Conv2d": LayerDef("Conv2d", conv + args(("data_format", "NCHW")) + tail, stored=TUPLES),
        "Conv3d": LayerDef("Conv3d", conv + ncdhw + tail, stored=TUPLES),
        "ConvTranspose1d": LayerDef("Conv1dTranspose", conv + tail, int_only=True, stored=AS_2D),
        "ConvTranspose2d": LayerDef(
            "Conv2dTranspose", transposed + tail, output_padding="zeros", stored=TUPLES
        ),
        "ConvTranspose3d": LayerDef(
            "Conv3dTranspose",
            transposed3d + ncdhw + tail,
            stored={**TUPLES, "output_padding": "tuple"},
        ),
    }


HINTS = {
    "padding_mode": (
        "MindSpore's nn convs have no padding_mode: use pad_mode='pad' with padding=<amounts> "
        "for zeros, or pad the input (F.pad(x, ..., mode='reflect')) before a "
        "pad_mode='valid' conv"
    ),
    "device": "minidl runs on the CPU only",
}
NOTES = {
    "padding": "pad_mode 'same' (default; TF-style, any stride, odd extra after), 'valid', "
    "'pad' + padding int / 4-tuple / 6-tuple (Conv1d: int)",
    "transposed padding": "pad_mode 'same' (out = in*s), 'valid' (out = max(full, in*s)), "
    "'pad' + padding int / 4-tuple / 6-tuple",
}
FAN_DOC = {"conv": "in/g * prod(k)", "transposed": "out/g * prod(k)"}  # of the stored weight


# ---- Dense, BatchNorm, pools, Dropout, Flatten (mindspore/python/mindspore/nn/layer/*.py) -----
ACTIVATION_NAMES = {  # MindSpore's get_activation names -> LinearSpec.activation
    "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "softmax": "softmax",
    "logsoftmax": "log_softmax",
}


def _activation(bound) -> str | None:
    value = bound["activation"]
    if value is None:
        return None
    name = value if isinstance(value, str) else type(value).__name__
    key = name.lower()
    if key not in ACTIVATION_NAMES:
        raise ValueError(
            f"For {bound.op!r}, activation {value!r} is not one minidl has; MindSpore's names "
            f"that minidl computes: {sorted(ACTIVATION_NAMES)}"
        )
    return ACTIVATION_NAMES[key]


def dense(bound) -> LinearSpec:
    return LinearSpec(
        "Linear",
        count(bound, "in_features", 1, "mindspore"),
        count(bound, "out_features", 1, "mindspore"),
        bool(bound["bias"]),
        _activation(bound),
        parse_dtype(bound.get("dtype")),
    )


def encode_dense(spec: LinearSpec) -> dict[str, Any]:
    if spec.in_features < 1 or spec.out_features < 1:
        raise NotExpressible("MindSpore's Dense needs at least one input and output channel")
    out = {"in_channels": spec.in_features, "out_channels": spec.out_features,
           "has_bias": spec.bias}
    if spec.activation is not None:
        out["activation"] = next(k for k, v in ACTIVATION_NAMES.items() if v == spec.activation)
    return out


def dense_init(bound) -> dict[str, Init]:
    return {
        "weight": initializer(bound["weight_init"], "weight_init", DEFAULT_WEIGHT),
        "bias": initializer(bound["bias_init"], "bias_init", DEFAULT_BIAS),
    }


def batch_norm(bound) -> BatchNormSpec:
    """``momentum`` keeps that much of the old value (PyTorch's ``1 - momentum``); the moving
    statistics always exist; ``use_batch_statistics`` decides which statistics are used."""
    op = bound.op
    num_features = bound["num_features"]
    if isinstance(num_features, bool) or as_int(num_features) is None:
        raise TypeError(f"For {op!r}, the 'num_features' must be int, but got {num_features!r}")
    if num_features < 1:
        raise ValueError(f"For {op!r}, the 'num_features' must be at least 1, but got "
                         f"{num_features}.")
    momentum = bound["momentum"]
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
        0 <= momentum <= 1
    ):
        raise ValueError(
            f"For {op!r}, the 'momentum' must be a number in range [0, 1], but got {momentum}."
        )
    use = bound["use_batch_statistics"]
    if use is not None and not isinstance(use, bool):
        raise ValueError(
            f"For {op!r}, the 'use_batch_statistics' must be a boolean value or None, but got "
            f"{use}."
        )
    if bound["data_format"] != "NCHW":
        raise ValueError(
            f"For {op!r}, minidl is channels-first: data_format must be 'NCHW', got "
            f"{bound['data_format']!r} (MindSpore itself takes 'NHWC' on GPU only)"
        )
    return BatchNormSpec(
        bound.kind,
        int(num_features),
        float(bound["eps"]),
        1.0 - float(momentum),
        bool(bound["affine"]),
        True,
        use_batch_statistics=use,
        dtype=parse_dtype(bound.get("dtype")),
    )


def encode_batch_norm(spec: BatchNormSpec) -> dict[str, Any]:
    if spec.momentum is None or not spec.track_running_stats or not spec.bias:
        raise NotExpressible(
            "MindSpore's BatchNorm always keeps moving statistics with an exponential "
            "momentum and has gamma and beta together"
        )
    return {
        "num_features": spec.num_features,
        "eps": spec.eps,
        "momentum": 1.0 - spec.momentum,
        "affine": spec.affine,
        "use_batch_statistics": spec.use_batch_statistics,
    }


def batch_norm_init(bound) -> dict[str, Init]:
    return {
        name: initializer(bound[meaning], meaning, default)
        for name, meaning, default in (
            ("weight", "gamma_init", One()),
            ("bias", "beta_init", Zero()),
            ("running_mean", "moving_mean_init", Zero()),
            ("running_var", "moving_var_init", One()),
        )
    }


POOL_CHOICES = ("VALID", "SAME", "PAD")


def _pool_ints(bound, meaning: str, nd: int, minimum: int) -> tuple[int, ...]:
    value, op = bound[meaning], bound.op
    if nd == 1 and as_int(value) is None:
        raise TypeError(f"For {op!r}, the {meaning!r} must be int, but got "
                        f"{type(value).__name__!r}")
    try:
        values = int_tuple(value, nd, meaning, op, single=False)
    except (TypeError, ValueError):
        values = ()
    if not values or min(values) < minimum:
        what = "an positive int number" if minimum else "a non-negative int number"
        raise ValueError(f"For {op!r}, the {meaning!r} must be {what} or a tuple, but got "
                         f"{value!r}")
    return values


def pool(bound) -> PoolSpec:
    """``pad_mode`` (case-insensitive): 'valid' (no padding), 'same' (TF-style, out =
    ceil(in / stride)), 'pad' (``padding`` on both sides of each dim); the other arguments must
    keep their defaults unless pad_mode is 'pad'."""
    op, nd = bound.op, int(bound.kind[-2])
    mode = bound["pad_mode"]
    if not isinstance(mode, str) or mode.upper() not in POOL_CHOICES:
        raise ValueError(
            f"For {op!r}, the 'pad_mode' must be str and must be in '{list(POOL_CHOICES)}', "
            f"but got {str(mode).upper()!r}."
        )
    mode = mode.upper()
    kernel = _pool_ints(bound, "kernel_size", nd, 1)
    stride = _pool_ints(bound, "stride", nd, 1)
    if mode != "PAD" and bound.kind.startswith("Avg"):
        # MindSpore's AvgPool checks only the padding (at the call, in its AvgPool3D
        # primitive's words); 'same' ignores ceil_mode and count_include_pad
        padding = _pool_ints(bound, "padding", nd, 0)
        if any(padding):
            pads = tuple(v for v in (0,) * (3 - nd) + padding for _ in (0, 1))
            raise ValueError(
                f"For 'AvgPool3D', the 'pad' must be zero or (0, 0, 0, 0, 0, 0) when 'pad_mode' "
                f'is not "PAD", but got \'pad\' is {pads} and '
                f"'pad_mode' is {mode.lower()}."
            )
        same = mode == "SAME"
        return PoolSpec(
            bound.kind, kernel, stride,
            SamePadding() if same else ConvPadding((0,) * nd, (0,) * nd), (1,) * nd,
            ceil_mode=False if same else bool(bound["ceil_mode"]),
            count_include_pad=bool(bound["count_include_pad"]),
            divisor_override=bound.get("divisor_override"),
        )
    extras = ("padding", "dilation", "return_indices", "ceil_mode")
    if mode != "PAD":
        changed = [
            name for name in extras
            if bound.layer.arg(name) is not None and bound[name] != bound.layer.arg(name).default
        ]
        if changed:
            names = ", ".join(repr(n) for n in extras if bound.layer.arg(n) is not None)
            raise ValueError(
                f"For {op}, the parameter {names} can not be set to non-default value when "
                f"pad_mode is not 'pad', but got pad_mode:{mode.lower()}."
            )
        padding = SamePadding() if mode == "SAME" else ConvPadding((0,) * nd, (0,) * nd)
        return PoolSpec(bound.kind, kernel, stride, padding, (1,) * nd,
                        count_include_pad=bound.get("count_include_pad", True),
                        divisor_override=bound.get("divisor_override"))
    padding = _pool_ints(bound, "padding", nd, 0)
    dilation = _pool_ints(bound, "dilation", nd, 1) if bound.layer.arg("dilation") else (1,) * nd
    return PoolSpec(
        bound.kind,
        kernel,
        stride,
        ConvPadding(padding, padding),
        dilation,
        bool(bound["ceil_mode"]),
        bool(bound.get("return_indices", False)),
        bool(bound.get("count_include_pad", True)),
        bound.get("divisor_override"),
    )


def encode_pool(spec: PoolSpec) -> dict[str, Any]:
    rule = spec.padding
    layer_1d = spec.nd == 1
    if isinstance(rule, SamePadding):
        return {"kernel_size": spec.kernel_size, "stride": spec.stride, "pad_mode": "same"}
    if rule.before != rule.after:
        raise NotExpressible(f"MindSpore's {spec.kind} pads both sides alike ({rule.describe()})")
    out: dict[str, Any] = {"kernel_size": spec.kernel_size, "stride": spec.stride}
    if layer_1d:
        out = {"kernel_size": spec.kernel_size[0], "stride": spec.stride[0]}
    plain = (
        not any(rule.before) and not spec.ceil_mode and not spec.return_indices
        and spec.dilation == (1,) * spec.nd
    )
    if plain and spec.count_include_pad and spec.divisor_override is None:
        out["pad_mode"] = "valid"
        return out
    out.update(pad_mode="pad", padding=rule.before[0] if layer_1d else rule.before,
               ceil_mode=spec.ceil_mode)
    if spec.op == "max":
        out.update(dilation=spec.dilation[0] if layer_1d else spec.dilation,
                   return_indices=spec.return_indices)
    else:
        out["count_include_pad"] = spec.count_include_pad
        if not layer_1d:
            out["divisor_override"] = spec.divisor_override
    return out


def dropout(bound) -> DropoutSpec:
    """``Dropout(keep_prob=0.5, p=None)``: ``p`` wins when given; the first positional
    argument is ``keep_prob`` (``Dropout(0.8)`` drops 20%)."""
    p, keep = bound["p"], bound["keep_prob"]
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(
                f"For 'Dropout', the 'p' must be a number in range [0, 1), but got {p}."
            )
        return DropoutSpec("Dropout", float(p))
    if not isinstance(keep, float):
        raise TypeError(
            f"For 'Dropout', the type of 'keep_prob' should be 'float', but got type "
            f"{type(keep).__name__!r}."
        )
    if not 0 < keep <= 1:
        raise ValueError(
            f"For 'Dropout', the 'keep_prob' must be a number in range (0, 1], but got {keep}."
        )
    return DropoutSpec("Dropout", 1.0 - keep)


BATCH_NORM_ENTRIES = (  # Cell.parameters_and_names order; gamma/beta exist even if not affine
    Entry("running_mean", "moving_mean"),
    Entry("running_var", "moving_variance"),
    Entry("weight", "gamma", kept=True),
    Entry("bias", "beta", kept=True),
)


def _modules(dense_defaults: tuple[Any, Any], tail: tuple) -> dict[str, ModuleDef]:
    pool_notes = {
        "padding": "pad_mode 'valid' (default), 'same' (TF-style, out = ceil(in / stride), "
        "the odd extra after), 'pad' (padding on both sides)"
    }
    modules = {
        "Linear": ModuleDef(
            LayerDef(
                "Dense",
                args(
                    ("in_channels", REQUIRED, "in_features"),
                    ("out_channels", REQUIRED, "out_features"),
                    ("weight_init", dense_defaults[0]),
                    ("bias_init", dense_defaults[1]),
                    ("has_bias", True, "bias"),
                    ("activation", None),
                )
                + tail,
            ),
            dense,
            encode_dense,
            (Entry("weight", "weight", "matrix"), Entry("bias", "bias")),
            init=dense_init,
        ),
        "Dropout": ModuleDef(
            LayerDef("Dropout", args(("keep_prob", 0.5), ("p", None)) + tail),
            dropout,
            lambda spec: {"p": spec.p},
        ),
        "Flatten": ModuleDef(
            LayerDef("Flatten", args(("start_dim", 1), ("end_dim", -1))),
            lambda bound: FlattenSpec("Flatten", bound["start_dim"], bound["end_dim"]),
            lambda spec: {"start_dim": spec.start_dim, "end_dim": spec.end_dim},
        ),
    }
    for n in (1, 2):
        modules[f"BatchNorm{n}d"] = ModuleDef(
            LayerDef(
                f"BatchNorm{n}d",
                args(
                    "num_features", ("eps", 1e-5), ("momentum", 0.9), ("affine", True),
                    ("gamma_init", "ones"), ("beta_init", "zeros"),
                    ("moving_mean_init", "zeros"), ("moving_var_init", "ones"),
                    ("use_batch_statistics", None), ("data_format", "NCHW"),
                )
                + tail,
            ),
            batch_norm,
            encode_batch_norm,
            BATCH_NORM_ENTRIES,
            init=batch_norm_init,
            notes={
                "momentum": "fraction of the old value: running = m * running + (1 - m) * batch",
                "running variance": "unbiased batch variance (the output uses the biased one)",
            },
        )
        head = args(("kernel_size", 1), ("stride", 1), ("pad_mode", "valid"), ("padding", 0))
        fmt = args(("data_format", "NCHW")) if n == 2 else ()
        modules[f"MaxPool{n}d"] = ModuleDef(
            LayerDef(
                f"MaxPool{n}d",
                head + args(("dilation", 1), ("return_indices", False), ("ceil_mode", False))
                + fmt,
            ),
            pool, encode_pool, notes=pool_notes,
        )
        modules[f"AvgPool{n}d"] = ModuleDef(
            LayerDef(
                f"AvgPool{n}d",
                head + args(("ceil_mode", False), ("count_include_pad", True))
                + (args(("divisor_override", None)) if n == 2 else ()) + fmt,
            ),
            pool, encode_pool, notes=pool_notes,
        )
    return modules


def _profile(
    name: str,
    framework: str,
    weight: Init,
    bias: Init,
    defaults: tuple[Any, Any],
    tail: tuple = (),
    hints: dict | None = None,
) -> Profile:
    return Profile(
        name=name,
        framework=framework,
        layers=_layers(*defaults, tail),
        layout=Layout(conv1d_as_2d=True),
        init=init.InitPolicy(
            weight=weight, bias=bias, fan_doc=FAN_DOC, from_arguments=initializers
        ),
        conv_padding=conv_padding,
        transpose_padding=transpose_padding,
        encode_padding=encode_padding,
        checks=(check_data_format,),
        hints={**HINTS, **(hints or {})},
        repr_always=("pad_mode",),
        notes=NOTES,
        modules=_modules(defaults, tail),
        missing={
            "MaxPool3d": "minidl's mindspore profiles have no MaxPool3d",
            "AvgPool3d": "minidl's mindspore profiles have no AvgPool3d",
        },
    )


PROFILE = _profile(
    "mindspore",
    "MindSpore r2.0",
    Normal(),
    Zero(),
    ("normal", "zeros"),
    hints={
        "dtype": "MindSpore r2.0 convs take no dtype (2.3 added it: use the mindspore-2.1 "
        "profile), or call module.double()"
    },
)
PROFILE_2_1 = _profile(
    "mindspore-2.1",
    "MindSpore >= 2.1",
    DEFAULT_WEIGHT,
    DEFAULT_BIAS,
    (None, None),
    tail=args(("dtype", "float32")),
)
