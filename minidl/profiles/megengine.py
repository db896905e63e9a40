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
from .padding import ConvPadding, TransposeWindow
from .profile import Profile
from .signature import Arg, LayerDef, args
from .spec import ConvSpec, check_choice, ints
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
    },
    notes={
        "padding": "int or tuple (both sides); no strings",
        "transposed padding": "int or tuple, cropped from both ends",
    },
)
