"""The 'torch' profile (the default): ``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``
of PyTorch 2.13 (facts in docs/conventions.md), checked live in the tests."""

from __future__ import annotations

import math
from typing import Any

from .._geometry import same_split
from . import init
from .layout import Layout
from .modules import BATCH_NORM_INIT, Entry, ModuleDef, count, layer_hints, loose_tuple
from .padding import ConvPadding, SamePadding, TransposeWindow
from .profile import Profile
from .signature import Arg, LayerDef, args
from .spec import (
    BatchNormSpec,
    ConvSpec,
    DropoutSpec,
    FlattenSpec,
    LinearSpec,
    NotExpressible,
    PoolSpec,
    check_choice,
    check_output_padding,
    ints,
    parse_dtype,
)

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


# ---- Linear, BatchNorm, pools, Dropout, Flatten (torch/nn/modules/*.py) -------------------------
def linear(bound) -> LinearSpec:
    check_device(bound)
    return LinearSpec(
        "Linear",
        count(bound, "in_features"),
        count(bound, "out_features"),
        bool(bound["bias"]),
        dtype=parse_dtype(bound["dtype"]),
    )


def encode_linear(spec: LinearSpec) -> dict[str, Any]:
    if spec.activation is not None:
        raise NotExpressible(
            f"Linear has no activation; put nn.{spec.activation} after it ({spec.activation!r})"
        )
    return {"in_features": spec.in_features, "out_features": spec.out_features, "bias": spec.bias}


def batch_norm(bound) -> BatchNormSpec:
    check_device(bound)
    return BatchNormSpec(
        bound.kind,
        count(bound, "num_features"),
        bound["eps"],
        bound["momentum"],
        bool(bound["affine"]),
        bool(bound["track_running_stats"]),
        bias=bool(bound["bias"]),
        dtype=parse_dtype(bound["dtype"]),
    )


def encode_batch_norm(spec: BatchNormSpec) -> dict[str, Any]:
    if spec.use_batch_statistics is not None:
        raise NotExpressible(
            f"use_batch_statistics={spec.use_batch_statistics} (MindSpore) has no PyTorch argument"
        )
    return {
        "num_features": spec.num_features,
        "eps": spec.eps,
        "momentum": spec.momentum,
        "affine": spec.affine,
        "track_running_stats": spec.track_running_stats,
        "bias": spec.bias,
    }


def pool(bound) -> PoolSpec:
    """PyTorch keeps a pool's arguments as given and checks them in the forward."""
    nd = int(bound.kind[-2])
    kernel = loose_tuple(bound["kernel_size"], nd)
    stride = bound["stride"]
    padding = loose_tuple(bound["padding"], nd)
    return PoolSpec(
        bound.kind,
        kernel,
        kernel if stride is None or stride == [] else loose_tuple(stride, nd),
        ConvPadding(padding, padding),
        loose_tuple(bound.get("dilation", 1), nd),
        bound["ceil_mode"],
        bound.get("return_indices", False),
        bound.get("count_include_pad", True),
        bound.get("divisor_override"),
    )


def encode_pool(spec: PoolSpec) -> dict[str, Any]:
    rule = spec.padding
    if not isinstance(rule, ConvPadding) or rule.before != rule.after:
        what = rule.describe() if hasattr(rule, "describe") else repr(rule)
        raise NotExpressible(
            f"{spec.kind} pads both sides of a dim alike ({what}); put F.pad(x, ...) in front"
        )
    if spec.op == "avg" and spec.dilation != (1,) * spec.nd:
        raise NotExpressible(f"{spec.kind} has no dilation (got {spec.dilation})")
    out: dict[str, Any] = {
        "kernel_size": spec.kernel_size,
        "stride": spec.stride,
        "padding": rule.before,
        "ceil_mode": spec.ceil_mode,
    }
    if spec.op == "max":
        out.update(dilation=spec.dilation, return_indices=spec.return_indices)
    else:
        out["count_include_pad"] = spec.count_include_pad
        if spec.nd > 1:
            out["divisor_override"] = spec.divisor_override
    return out


LINEAR_INIT = {"weight": init.kaiming(a=math.sqrt(5)), "bias": init.fan_in_uniform()}
BATCH_NORM_ARGS = (
    *args(
        "num_features",
        ("eps", 1e-5),
        ("momentum", 0.1),
        ("affine", True),
        ("track_running_stats", True),
        ("device", None),
        ("dtype", None),
    ),
    Arg("bias", True, keyword_only=True),  # minidl's: an affine weight without a bias
)
MAX_POOL_ARGS = args(
    "kernel_size", ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False),
    ("ceil_mode", False),
)
AVG_POOL_1D_ARGS = args(
    "kernel_size", ("stride", None), ("padding", 0), ("ceil_mode", False),
    ("count_include_pad", True),
)
VECTOR_ENTRIES = tuple(
    Entry(name, name, "scalar" if name == "num_batches_tracked" else "vector")
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
)


def _modules() -> dict[str, ModuleDef]:
    modules = {
        "Linear": ModuleDef(
            LayerDef(
                "Linear",
                args("in_features", "out_features", ("bias", True), ("device", None),
                     ("dtype", None)),
            ),
            linear,
            encode_linear,
            (Entry("weight", "weight", "matrix"), Entry("bias", "bias")),
            init=lambda bound: LINEAR_INIT,
        ),
        "Dropout": ModuleDef(
            LayerDef("Dropout", args(("p", 0.5), ("inplace", False))),
            lambda bound: DropoutSpec("Dropout", bound["p"]),
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
            LayerDef(f"BatchNorm{n}d", BATCH_NORM_ARGS),
            batch_norm,
            encode_batch_norm,
            VECTOR_ENTRIES,
            init=lambda bound: BATCH_NORM_INIT,
            notes={
                "momentum": "fraction of the new value: running = (1 - m) * running + m * batch",
                "running variance": "unbiased batch variance (the output uses the biased one)",
            },
        )
    for n in (1, 2, 3):
        avg_args = (AVG_POOL_1D_ARGS if n == 1
                    else (*AVG_POOL_1D_ARGS, Arg("divisor_override", None)))
        modules[f"MaxPool{n}d"] = ModuleDef(
            LayerDef(f"MaxPool{n}d", MAX_POOL_ARGS), pool, encode_pool, checked_at="forward",
            notes={"padding": "int or tuple, both sides, at most half the kernel"},
        )
        modules[f"AvgPool{n}d"] = ModuleDef(
            # PyTorch's AvgPool1d keeps its arguments as 1-tuples (only it)
            LayerDef(f"AvgPool{n}d", avg_args,
                     stored={k: "tuple" for k in ("kernel_size", "stride", "padding")} if n == 1
                     else {}),
            pool, encode_pool, checked_at="forward",
            notes={"padding": "int or tuple, both sides, at most half the kernel; "
                              "count_include_pad=True"},
        )
    return modules


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
        **layer_hints("p"),
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
    modules=_modules(),
)
