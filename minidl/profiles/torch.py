"""The 'torch' profile (the default): ``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``
of PyTorch 2.13 (facts in docs/conventions.md), checked live in the tests."""

from __future__ import annotations

import math
from typing import Any

from .._geometry import same_split
from . import init
from .layout import Layout
from .padding import ConvPadding, SamePadding, TransposeWindow
from .profile import Profile
from .signature import LayerDef, args
from .spec import ConvSpec, NotExpressible, check_choice, check_output_padding, ints

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

CONV_ARGS = args(
    "in_channels",
    "out_channels",
    "kernel_size",
    ("stride", 1),
    ("padding", 0),
    ("dilation", 1),
    ("groups", 1),
    ("bias", True),
    ("padding_mode", "zeros"),
    ("device", None),
    ("dtype", None),
)
TRANSPOSE_ARGS = args(
    "in_channels",
    "out_channels",
    "kernel_size",
    ("stride", 1),
    ("padding", 0),
    ("output_padding", 0),
    ("groups", 1),
    ("bias", True),
    ("dilation", 1),
    ("padding_mode", "zeros"),
    ("device", None),
    ("dtype", None),
)


def conv_padding(bound, spec: ConvSpec) -> ConvPadding:
    """int / tuple (both sides), 'valid', or 'same' (stride 1 only, odd extra after)."""
    check_choice(bound, "padding_mode", PADDING_MODES)
    padding, mode, nd = bound["padding"], bound["padding_mode"], spec.nd
    if isinstance(padding, str):
        if padding == "valid":
            return ConvPadding((0,) * nd, (0,) * nd, mode)
        if padding == "same":
            if any(s != 1 for s in spec.stride):
                raise ValueError(
                    f"{bound.op}: padding='same' is not supported for strided convolutions "
                    f"(stride={spec.stride}); MindSpore's pad_mode='same' is (mindspore profile)"
                )
            return ConvPadding(*same_split(spec.kernel_size, spec.dilation), mode)
        raise ValueError(
            f"{bound.op}: Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
        )
    amounts = ints(bound, "padding", nd, 0)
    return ConvPadding(amounts, amounts, mode)


def transpose_padding(bound, spec: ConvSpec) -> TransposeWindow:
    """``padding`` crops both ends; ``output_padding`` adds computed rows at the end."""
    if bound["padding_mode"] != "zeros":
        raise ValueError(
            f'{bound.op}: Only "zeros" padding mode is supported for {bound.op}, '
            f"got padding_mode={bound['padding_mode']!r}"
        )
    return symmetric_window(bound, spec)


def symmetric_window(bound, spec: ConvSpec) -> TransposeWindow:
    if isinstance(bound["padding"], str):
        raise TypeError(
            f"{bound.op}: padding must be an int or a tuple of {spec.nd} ints (transposed "
            f"convs take no 'same' or 'valid'), got {bound['padding']!r}"
        )
    padding = ints(bound, "padding", spec.nd, 0)
    output_padding = ints(bound, "output_padding", spec.nd, 0)
    check_output_padding(bound, spec, output_padding)
    after = tuple(p - o for p, o in zip(padding, output_padding, strict=True))
    return TransposeWindow(padding, after, (0,) * spec.nd)


def check_device(bound) -> None:
    device = bound.get("device")
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{bound.op}: minidl runs on the CPU only, got device={device!r}")


def encode_symmetric(spec: ConvSpec, layer: LayerDef, allow_same: bool) -> dict[str, Any]:
    """Padding arguments of PyTorch and MegEngine (symmetric amounts, computed
    output_padding); ``allow_same``: PyTorch's padding='same' at stride 1."""
    rule = spec.padding
    if spec.transposed:
        direct = rule.torch_arguments(spec)
        if direct is None:
            raise NotExpressible(
                "its transposed conv keeps a window that symmetric padding plus a computed "
                f"output_padding (< max(stride, dilation)) cannot select: {rule.describe()}"
            )
        return {"padding": direct[0], "output_padding": direct[1]}
    if isinstance(rule, SamePadding):
        raise NotExpressible(
            "TF-style 'same' padding with stride > 1 depends on the input size; put "
            "F.pad(x, ...) in front of a conv without padding"
        )
    if rule.mode not in layer.padding_modes:
        raise NotExpressible(
            f"{layer.cls_name} pads with {list(layer.padding_modes)} only, not {rule.mode!r}"
        )
    out: dict[str, Any] = {"padding": rule.before}
    if rule.before != rule.after:
        if not (
            allow_same
            and set(spec.stride) == {1}
            and (rule.before, rule.after) == same_split(spec.kernel_size, spec.dilation)
        ):
            raise NotExpressible(
                f"it pads {rule.before} before and {rule.after} after, and {layer.cls_name} pads "
                "both sides of a dim alike; put F.pad(x, ...) in front of a conv without padding"
            )
        out["padding"] = "same"
    if layer.arg("padding_mode") is not None:
        out["padding_mode"] = rule.mode
    return out


def encode_padding(spec: ConvSpec, layer: LayerDef) -> dict[str, Any]:
    return encode_symmetric(spec, layer, allow_same=True)


# torch.nn's _ConvNd keeps these as n-tuples (``_single``/``_pair``/``_triple``; a padding string
# as given) and sets ``transposed``, and ``output_padding`` on a conv too
TUPLES = {name: "tuple" for name in ("kernel_size", "stride", "padding", "dilation")}


def _layers() -> dict[str, LayerDef]:
    layers = {}
    for n in (1, 2, 3):
        layers[f"Conv{n}d"] = LayerDef(
            f"Conv{n}d",
            CONV_ARGS,
            padding_modes=PADDING_MODES,
            stored=TUPLES,
            constants={"transposed": False, "output_padding": (0,) * n},
        )
        layers[f"ConvTranspose{n}d"] = LayerDef(
            f"ConvTranspose{n}d",
            TRANSPOSE_ARGS,
            stored={**TUPLES, "output_padding": "tuple"},
            constants={"transposed": True},
        )
    return layers


PROFILE = Profile(
    name="torch",
    framework="PyTorch 2.13",
    layers=_layers(),
    layout=Layout(),
    init=init.InitPolicy(
        weight=init.kaiming(a=math.sqrt(5)),  # = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        bias=init.fan_in_uniform(),
        fan_doc={"conv": "in/g * prod(k)", "transposed": "out/g * prod(k)"},  # weight.shape[1]
    ),
    conv_padding=conv_padding,
    transpose_padding=transpose_padding,
    encode_padding=encode_padding,
    checks=(check_device,),
    hints={
        "pad_mode": (
            "MindSpore's pad_mode maps to padding under the torch profile: 'pad' is padding="
            "<amounts>, 'valid' is padding=0, 'same' is padding='same' (stride 1 only; "
            "for stride > 1 use the mindspore profile)"
        ),
        "weight_init": "initialise .weight with minidl.nn.init after construction",
        "bias_init": "initialise .bias with minidl.nn.init after construction",
        "data_format": "torch convs are always channels-first (NCHW)",
        "conv_mode": "PyTorch always computes cross-correlation",
        "compute_mode": "minidl accumulates in the parameters' dtype",
    },
    notes={
        "padding": "int or tuple (both sides), 'valid', or 'same' (stride 1 only, odd extra after)",
        "transposed padding": "int or tuple, cropped from both ends",
    },
)
