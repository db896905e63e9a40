"""The 'megengine' profile: ``megengine.module.Conv1d/2d/3d`` and ``ConvTranspose2d/3d`` of
MegEngine 1.13 (from its source: its wheels need Python <= 3.10, so it is not run here).

MegEngine stores a grouped weight 5-D, ``(g, out/g, in/g, *k)``, and the bias as
``(1, out, 1, 1)``; both are reshapes of PyTorch's shapes. It initialises the weight with
N(0, 1/fan_in) where fan_in ignores the groups, and the bias with zeros."""

from __future__ import annotations

import math
from typing import Any

from . import init
from .layout import Layout
from .modules import BATCH_NORM_INIT, Entry, ModuleDef, count, layer_hints, loose_tuple, number
from .padding import ConvPadding, TransposeWindow
from .profile import Profile
from .signature import Arg, LayerDef, args
from .spec import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    LinearSpec,
    NotExpressible,
    PoolSpec,
    check_choice,
    ints,
)
from .torch import encode_symmetric, symmetric_window

PADDING_MODES = ("zeros", "reflect", "replicate")
NAME = Arg("name", None, keyword_only=True)  # MegEngine's **kwargs take only ``name``

COMMON = args(
    "in_channels",
    "out_channels",
    "kernel_size",
    ("stride", 1),
    ("padding", 0),
    ("dilation", 1),
    ("groups", 1),
    ("bias", True),
    ("conv_mode", "cross_correlation"),
)
CONV_ARGS = COMMON + args(("compute_mode", "default"), ("padding_mode", "zeros")) + (NAME,)
TRANSPOSE_ARGS = args(
    "in_channels",
    "out_channels",
    "kernel_size",
    ("stride", 1),
    ("padding", 0),
    ("output_padding", 0),
    ("dilation", 1),
    ("groups", 1),
    ("bias", True),
)

# megengine.module's attributes: Conv2d/3d and the transposed convs keep kernel_size, stride,
# padding and dilation as ``_pair``/``_triple`` tuples, Conv1d as given; ConvTranspose2d keeps
# output_padding as a pair, ConvTranspose3d as given, and the convs have ``output_padding = 0``
TUPLES = {name: "tuple" for name in ("kernel_size", "stride", "padding", "dilation")}
NO_OUTPUT_PADDING = {"output_padding": 0}

LAYERS = {
    "Conv1d": LayerDef(
        "Conv1d", CONV_ARGS, padding_modes=PADDING_MODES, constants=NO_OUTPUT_PADDING
    ),
    "Conv2d": LayerDef(
        "Conv2d",
        CONV_ARGS,
        padding_modes=PADDING_MODES,
        stored=TUPLES,
        constants=NO_OUTPUT_PADDING,
    ),
    "Conv3d": LayerDef("Conv3d", COMMON, stored=TUPLES, constants=NO_OUTPUT_PADDING),
    "ConvTranspose2d": LayerDef(
        "ConvTranspose2d",
        TRANSPOSE_ARGS
        + args(("conv_mode", "cross_correlation"), ("compute_mode", "default"))
        + (NAME,),
        stored={**TUPLES, "output_padding": "tuple"},
    ),
    "ConvTranspose3d": LayerDef("ConvTranspose3d", TRANSPOSE_ARGS, stored=TUPLES),
}

# whose channels count in fan_in (never divided by groups); ConvTranspose2d is the odd one
FAN_CHANNELS = {
    "Conv1d": "in_channels",
    "Conv2d": "in_channels",
    "Conv3d": "in_channels",
    "ConvTranspose2d": "out_channels",
    "ConvTranspose3d": "in_channels",
}


def fan_in(spec: ConvSpec) -> int:
    return getattr(spec, FAN_CHANNELS[spec.kind]) * math.prod(spec.kernel_size)


def conv_padding(bound, spec: ConvSpec) -> ConvPadding:
    """int or tuple (both sides), no strings; padding_mode zeros/reflect/replicate."""
    mode = bound.get("padding_mode", "zeros")
    if bound.layer.arg("padding_mode") is not None:
        check_choice(bound, "padding_mode", PADDING_MODES)
    if isinstance(bound["padding"], str):
        raise TypeError(
            f"{bound.op}: padding must be an int or a tuple of {spec.nd} ints under the megengine "
            f"profile (MegEngine has no padding strings such as 'same'), got {bound['padding']!r}"
        )
    amounts = ints(bound, "padding", spec.nd, 0)
    return ConvPadding(amounts, amounts, mode)


def transpose_padding(bound, spec: ConvSpec) -> TransposeWindow:
    """As PyTorch: padding crops both ends, output_padding adds computed rows at the end."""
    return symmetric_window(bound, spec)


def check_modes(bound) -> None:
    if bound.layer.arg("conv_mode") is not None:
        check_choice(bound, "conv_mode", ("cross_correlation",), lower=True)
    if bound.layer.arg("compute_mode") is not None:
        check_choice(bound, "compute_mode", ("default", "float32"), lower=True)


def encode_padding(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    return encode_symmetric(spec, layer, allow_same=False)


# ---- Linear, BatchNorm, pools, Dropout (imperative/python/megengine/module/*.py, v1.13) -------
def linear(bound) -> LinearSpec:
    check_choice(bound, "compute_mode", ("default", "float32"), lower=True)
    return LinearSpec(
        "Linear", count(bound, "in_features"), count(bound, "out_features"), bool(bound["bias"])
    )


def encode_linear(spec: LinearSpec) -> dict[str, Any]:
    if spec.activation is not None:
        raise NotExpressible(f"Linear has no activation ({spec.activation!r})")
    return {"in_features": spec.in_features, "out_features": spec.out_features, "bias": spec.bias}


def batch_norm(bound) -> BatchNormSpec:
    """``momentum`` keeps that much of the old value: PyTorch's ``1 - momentum``."""
    if bound["freeze"]:
        raise ValueError(
            f"{bound.op}: freeze=True (running statistics in training, weight and bias "
            "detached) is not supported by minidl; use eval() for the running statistics"
        )
    momentum = number(bound, "momentum")
    return BatchNormSpec(
        bound.kind,
        count(bound, "num_features"),
        number(bound, "eps"),
        1.0 - momentum,
        bool(bound["affine"]),
        bool(bound["track_running_stats"]),
    )


def encode_batch_norm(spec: BatchNormSpec) -> dict[str, Any]:
    if spec.momentum is None or spec.use_batch_statistics is not None or not spec.bias:
        raise NotExpressible(
            "MegEngine's BatchNorm has an exponential momentum, an affine weight and bias "
            "together, and no use_batch_statistics"
        )
    return {
        "num_features": spec.num_features,
        "eps": spec.eps,
        "momentum": 1.0 - spec.momentum,
        "affine": spec.affine,
        "track_running_stats": spec.track_running_stats,
    }


AVERAGE_MODES = ("average_count_exclude_padding", "average")


def pool(bound) -> PoolSpec:
    """MegEngine keeps a pool's arguments as given (``stride or kernel_size``) and checks them
    in the forward; AvgPool2d excludes the padding from the count by default."""
    kernel = loose_tuple(bound["kernel_size"], 2)
    padding = loose_tuple(bound["padding"], 2)
    mode = bound.values.get("mode")
    if mode is not None:
        check_choice(bound, "count_include_pad", AVERAGE_MODES)
    return PoolSpec(
        bound.kind,
        kernel,
        loose_tuple(bound["stride"] or bound["kernel_size"], 2),
        ConvPadding(padding, padding),
        (1, 1),
        count_include_pad=True if mode is None else mode == "average",
    )


def encode_pool(spec: PoolSpec) -> dict[str, Any]:
    rule = spec.padding
    if (
        not isinstance(rule, ConvPadding)
        or rule.before != rule.after
        or spec.ceil_mode
        or spec.return_indices
        or spec.dilation != (1, 1)
        or spec.divisor_override is not None
    ):
        raise NotExpressible(
            f"MegEngine's {spec.kind} takes kernel_size, stride and symmetric padding only"
        )
    out: dict[str, Any] = {
        "kernel_size": spec.kernel_size, "stride": spec.stride, "padding": rule.before
    }
    if spec.op == "avg":
        out["mode"] = AVERAGE_MODES[spec.count_include_pad]
    return out


BATCH_NORM_ENTRIES = tuple(  # Module.state_dict sorts the names; every shape is (1, C, 1, 1)
    Entry(name, name, "1c11") for name in ("bias", "running_mean", "running_var", "weight")
)
MODULES = {
    "Linear": ModuleDef(
        LayerDef(
            "Linear",
            args("in_features", "out_features", ("bias", True), ("compute_mode", "default")),
        ),
        linear,
        encode_linear,
        (Entry("bias", "bias"), Entry("weight", "weight", "matrix")),
        init=lambda bound: {"weight": init.fan_in_normal(), "bias": init.constant(0.0)},
    ),
    "Dropout": ModuleDef(
        LayerDef("Dropout", args(("drop_prob", 0.0, "p"))),
        lambda bound: DropoutSpec("Dropout", bound["p"]),
        lambda spec: {"drop_prob": spec.p},
    ),
    **{
        f"BatchNorm{n}d": ModuleDef(
            LayerDef(
                f"BatchNorm{n}d",
                args(
                    "num_features", ("eps", 1e-5), ("momentum", 0.9), ("affine", True),
                    ("track_running_stats", True), ("freeze", False),
                ),
            ),
            batch_norm,
            encode_batch_norm,
            BATCH_NORM_ENTRIES,
            init=lambda bound: BATCH_NORM_INIT,
            notes={
                "momentum": "fraction of the old value: running = m * running + (1 - m) * batch",
                "running variance": "unbiased batch variance (the output uses the biased one)",
            },
        )
        for n in (1, 2)
    },
    "MaxPool2d": ModuleDef(
        LayerDef("MaxPool2d", args("kernel_size", ("stride", None), ("padding", 0))),
        pool,
        encode_pool,
        checked_at="forward",
        notes={"padding": "int or tuple, both sides"},
    ),
    "AvgPool2d": ModuleDef(
        LayerDef(
            "AvgPool2d",
            args("kernel_size", ("stride", None), ("padding", 0),
                 ("mode", "average_count_exclude_padding", "count_include_pad")),
        ),
        pool,
        encode_pool,
        checked_at="forward",
        notes={"padding": "int or tuple, both sides; the padding is not counted by default"},
    ),
}
NO_1D_POOL = (
    "MegEngine 1.13's megengine.module has only MaxPool2d and AvgPool2d; pool (N, C, L) input "
    "as (N, C, 1, L) with a (1, k) kernel"
)

PROFILE = Profile(
    name="megengine",
    framework="MegEngine 1.13",
    layers=LAYERS,
    layout=Layout(grouped_weight=True, broadcast_bias=True, bias_first=True),
    init=init.InitPolicy(
        weight=init.fan_in_normal(),
        bias=init.constant(0.0),
        fan_in=fan_in,
        fan_doc={
            "Conv1d": "in * k (groups ignored)",
            "Conv2d": "in * kh * kw (groups ignored)",
            "Conv3d": "in * kd * kh * kw (groups ignored)",
            "ConvTranspose2d": "out * kh * kw (groups ignored)",
            "ConvTranspose3d": "in * kd * kh * kw (groups ignored)",
        },
    ),
    conv_padding=conv_padding,
    transpose_padding=transpose_padding,
    encode_padding=encode_padding,
    checks=(check_modes,),
    hints={
        **layer_hints("drop_prob"),
        "padding_mode": "only MegEngine's Conv1d and Conv2d take padding_mode; this layer pads "
        "with zeros",
        "pad_mode": "MegEngine takes padding=<amounts> only: 'valid' is padding=0, 'same' is "
        "padding=dilation*(kernel_size-1)//2 for odd kernels at stride 1",
        "weight_init": "MegEngine initialises with N(0, 1/fan_in); assign .weight afterwards",
        "bias_init": "MegEngine initialises the bias with zeros; assign .bias afterwards",
        "data_format": "MegEngine convs are channels-first (NCHW)",
        "device": "minidl runs on the CPU only",
        "dtype": "MegEngine parameters are float32; call module.double() for float64",
    },
    missing={
        "ConvTranspose1d": "MegEngine 1.13 has no ConvTranspose1d (megengine.module has "
        "ConvTranspose2d and ConvTranspose3d); use ConvTranspose2d on "
        "(N, C, 1, W) input, or the torch or mindspore profile",
        "Flatten": "MegEngine 1.13 has no Flatten module; MegEngine code calls "
        "F.flatten(x, 1) in forward: use minidl.nn.functional.flatten(x, 1)",
        "MaxPool1d": NO_1D_POOL,
        "AvgPool1d": NO_1D_POOL,
        "MaxPool3d": "MegEngine 1.13 has no MaxPool3d",
        "AvgPool3d": "MegEngine 1.13 has no AvgPool3d",
    },
    notes={
        "padding": "int or tuple (both sides); no strings",
        "transposed padding": "int or tuple, cropped from both ends",
    },
    modules=MODULES,
)
