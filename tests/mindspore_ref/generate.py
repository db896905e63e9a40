"""Generate MindSpore reference data for minidl's ``mindspore`` conv profile.

How to run (from the repo root, in a virtual environment of its own, because MindSpore is
large and needs ``numpy<2``; ``.msenv/`` is git-ignored)::

    python3 -m venv .msenv
    .msenv/bin/pip install "numpy<2" mindspore==2.10.0
    .msenv/bin/python tests/mindspore_ref/generate.py

Data in ``mindspore_ref.npz`` was produced by MindSpore 2.10.0 (PYNATIVE mode, CPU,
Python 3.11, numpy 1.26); the exact version is also stored in the npz under
``meta/mindspore_version``.  The script only needs mindspore + numpy; it does not
import minidl.

It records, for nn.Conv1d/2d/3d and nn.Conv1d/2d/3dTranspose:
  * forward cases (x, the weight/bias actually used, y) and the gradients of
    sum(y * r) w.r.t. x, weight and bias;
  * default-initialisation samples (for KS tests);
  * error cases (kwargs, exception type name, message).
It also checks every case against MindSpore's padding rules as predicted before the run
(from its documentation; docs/conventions.md, "MindSpore padding", has the rules as observed)
with an independent numpy implementation and prints / stores the result
(``case{i}/check``).  The key layout is described in README.md next to this file.
"""

import json
import os
import platform
import sys
import traceback

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "mindspore_ref.npz")
SEED = 20240611

ms.set_context(mode=ms.PYNATIVE_MODE)
try:
    ms.set_device("CPU")
except AttributeError:  # older MindSpore
    ms.set_context(device_target="CPU")

LAYERS = {
    "Conv1d": (nn.Conv1d, 1, False),
    "Conv2d": (nn.Conv2d, 2, False),
    "Conv3d": (nn.Conv3d, 3, False),
    "Conv1dTranspose": (nn.Conv1dTranspose, 1, True),
    "Conv2dTranspose": (nn.Conv2dTranspose, 2, True),
    "Conv3dTranspose": (nn.Conv3dTranspose, 3, True),
}


# --------------------------------------------------------------------------------------
# case list: (layer, kwargs, input shape)
# --------------------------------------------------------------------------------------
def C(layer, shape, **kw):
    return (layer, kw, shape)


CASES = [
    # ---------------- Conv2d ----------------
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="same"),
    C("Conv2d", (2, 4, 6, 6), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="same", has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=4, stride=1, pad_mode="same", has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=3, pad_mode="same"),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, pad_mode="same", has_bias=True),
    C("Conv2d", (2, 4, 6, 7), in_channels=4, out_channels=6, kernel_size=2, stride=3, pad_mode="same"),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, pad_mode="valid", has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="valid"),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=2, stride=3, pad_mode="valid", has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, dilation=2, pad_mode="valid"),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, pad_mode="pad", padding=1, has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, pad_mode="pad", padding=2),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, pad_mode="pad", padding=(1, 0, 2, 1), has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="pad", padding=(0, 2, 1, 0)),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=3, dilation=2, pad_mode="pad", padding=(2, 1, 0, 3), has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, group=2, has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=4, kernel_size=3, group=4, pad_mode="pad", padding=1, has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=8, kernel_size=3, stride=2, group=4, pad_mode="valid"),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=3, stride=3, group=2, pad_mode="pad", padding=(1, 2, 0, 1), has_bias=True),
    C("Conv2d", (2, 4, 7, 9), in_channels=4, out_channels=6, kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), pad_mode="same", has_bias=True),
    C("Conv2d", (2, 4, 6, 9), in_channels=4, out_channels=4, kernel_size=3, stride=2, group=4, pad_mode="same"),
    # ---------------- Conv1d ----------------
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=3, has_bias=True),
    C("Conv1d", (2, 4, 6), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="same"),
    C("Conv1d", (2, 4, 7), in_channels=4, out_channels=6, kernel_size=4, stride=3, pad_mode="same", has_bias=True),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, pad_mode="same"),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="valid", has_bias=True),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=2, stride=3, dilation=2, pad_mode="valid"),
    C("Conv1d", (2, 4, 7), in_channels=4, out_channels=6, kernel_size=3, pad_mode="pad", padding=1, has_bias=True),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, pad_mode="pad", padding=2),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=6, kernel_size=3, group=2, has_bias=True),
    C("Conv1d", (2, 4, 9), in_channels=4, out_channels=4, kernel_size=3, stride=2, group=4, pad_mode="pad", padding=1),
    # ---------------- Conv3d ----------------
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=3, has_bias=True),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="same"),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=2, stride=3, pad_mode="same", has_bias=True),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=3, pad_mode="valid"),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=2, stride=2, dilation=2, pad_mode="valid", has_bias=True),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=3, pad_mode="pad", padding=1, has_bias=True),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="pad", padding=(1, 0, 0, 2, 1, 1)),
    C("Conv3d", (2, 2, 5, 6, 7), in_channels=2, out_channels=4, kernel_size=(2, 3, 3), stride=(1, 2, 3), dilation=(2, 1, 1), pad_mode="same", has_bias=True),
    C("Conv3d", (2, 4, 5, 6, 7), in_channels=4, out_channels=4, kernel_size=3, group=2, has_bias=True),
    C("Conv3d", (2, 4, 5, 6, 7), in_channels=4, out_channels=4, kernel_size=3, group=4, pad_mode="pad", padding=1),
    # ---------------- Conv2dTranspose ----------------
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="same"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=4, stride=2, pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=3, pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=2, stride=3, pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, dilation=2, pad_mode="same"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, pad_mode="valid", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="valid"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=1, stride=2, pad_mode="valid", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=2, stride=3, pad_mode="valid", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=3, dilation=2, pad_mode="valid"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="pad", padding=1, has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="pad", padding=(1, 0, 0, 2)),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="pad", padding=1, output_padding=1, has_bias=True, bias_init="ones"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=3, pad_mode="pad", padding=(0, 1, 1, 0), output_padding=2, has_bias=True, bias_init="ones"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=1, dilation=2, pad_mode="pad", padding=1, output_padding=1, has_bias=True, bias_init="ones"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="pad", padding=1, output_padding=1, has_bias=False),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, group=2, pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=4, kernel_size=3, stride=2, group=4, pad_mode="pad", padding=1, has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=8, kernel_size=3, stride=2, group=4, pad_mode="valid"),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=(2, 3), stride=(3, 2), dilation=(1, 2), pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=1, stride=3, pad_mode="same", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=(1, 2), stride=3, pad_mode="valid", has_bias=True),
    C("Conv2dTranspose", (2, 4, 4, 5), in_channels=4, out_channels=6, kernel_size=2, stride=2, pad_mode="pad", padding=0, output_padding=1, has_bias=True, bias_init="ones"),
    # ---------------- Conv1dTranspose ----------------
    C("Conv1dTranspose", (2, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="same", has_bias=True),
    C("Conv1dTranspose", (2, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, pad_mode="valid"),
    C("Conv1dTranspose", (2, 4, 5), in_channels=4, out_channels=6, kernel_size=4, stride=2, pad_mode="pad", padding=1, has_bias=True),
    C("Conv1dTranspose", (2, 4, 5), in_channels=4, out_channels=6, kernel_size=3, stride=2, group=2, pad_mode="same"),
    C("Conv1dTranspose", (2, 4, 5), in_channels=4, out_channels=6, kernel_size=1, stride=3, pad_mode="same", has_bias=True),
    # ---------------- Conv3dTranspose ----------------
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="same", has_bias=True),
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="valid"),
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="pad", padding=1, output_padding=1, has_bias=True, bias_init="ones"),
    C("Conv3dTranspose", (1, 4, 3, 4, 5), in_channels=4, out_channels=4, kernel_size=3, stride=2, group=2, pad_mode="same"),
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=2, stride=2, pad_mode="pad", padding=0, output_padding=1, has_bias=True, bias_init="ones"),
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="pad", padding=(1, 0, 0, 1, 1, 1), output_padding=1),
    C("Conv3dTranspose", (1, 2, 3, 4, 5), in_channels=2, out_channels=4, kernel_size=2, stride=3, pad_mode="valid", has_bias=True),
]

# default-initialisation samples: (name, layer, kwargs, which parameter, instances)
INIT_CASES = [
    ("conv2d_default_weight", "Conv2d", dict(in_channels=8, out_channels=16, kernel_size=3), "weight", 4),
    ("conv2d_default_bias", "Conv2d", dict(in_channels=8, out_channels=16, kernel_size=3, has_bias=True), "bias", 256),
    ("conv2d_normal_weight", "Conv2d", dict(in_channels=8, out_channels=16, kernel_size=3, weight_init="normal"), "weight", 4),
    ("conv2dtranspose_g2_default_weight", "Conv2dTranspose", dict(in_channels=8, out_channels=16, kernel_size=3, group=2), "weight", 8),
    ("conv1d_default_weight", "Conv1d", dict(in_channels=8, out_channels=16, kernel_size=3), "weight", 8),
]

# error cases: (layer, kwargs, input shape used if the constructor succeeds)
ERROR_CASES = [
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="same", padding=1), (1, 4, 7, 7)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="valid", padding=1), (1, 4, 7, 7)),
    ("Conv2d", dict(in_channels=6, out_channels=8, kernel_size=3, group=4), (1, 6, 7, 7)),
    ("Conv2d", dict(in_channels=4, out_channels=6, kernel_size=3, group=4), (1, 4, 7, 7)),
    ("Conv2dTranspose", dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, pad_mode="same", output_padding=1), (1, 4, 4, 4)),
    ("Conv2dTranspose", dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, pad_mode="valid", output_padding=1), (1, 4, 4, 4)),
    ("Conv2dTranspose", dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, pad_mode="pad", padding=1, output_padding=2), (1, 4, 4, 4)),
    ("Conv2dTranspose", dict(in_channels=4, out_channels=8, kernel_size=3, stride=1, pad_mode="pad", padding=1, output_padding=1), (1, 4, 4, 4)),
    ("Conv3dTranspose", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, pad_mode="same", output_padding=1), (1, 2, 3, 4, 5)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3), (1, 5, 7, 7)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=5, pad_mode="valid"), (1, 4, 3, 3)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="zeros"), (1, 4, 7, 7)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="pad", padding=-1), (1, 4, 7, 7)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="pad", padding=(1, 1)), (1, 4, 7, 7)),
    ("Conv1d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="pad", padding=(1, 2)), (1, 4, 9)),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=3, pad_mode="PAD", padding=1), (1, 4, 7, 7)),
]


# --------------------------------------------------------------------------------------
# independent numpy implementation of the predicted padding rules
# --------------------------------------------------------------------------------------
def tup(v, n):
    if isinstance(v, (list, tuple)):
        v = tuple(int(a) for a in v)
        return v if len(v) == n else None
    return (int(v),) * n


def pads_of(kw, nd):
    """(before, after) per spatial dim for pad_mode='pad'."""
    p = kw.get("padding", 0)
    if isinstance(p, (list, tuple)):
        p = tuple(p)
        if len(p) == 2 * nd:
            return [(p[2 * i], p[2 * i + 1]) for i in range(nd)]
        if len(p) == nd:
            return [(a, a) for a in p]
        raise ValueError(p)
    return [(int(p), int(p))] * nd


def rule_shape(layer, kw, xshape):
    """Output shape predicted by the padding rules."""
    _, nd, transposed = LAYERS[layer]
    k, s, d = tup(kw["kernel_size"], nd), tup(kw.get("stride", 1), nd), tup(kw.get("dilation", 1), nd)
    mode = kw.get("pad_mode", "same")
    op = tup(kw.get("output_padding", 0), nd)
    ins = xshape[2:]
    out = []
    for i in range(nd):
        n, ki, si, di = ins[i], k[i], s[i], d[i]
        if not transposed:
            if mode == "same":
                o = -(-n // si)
            elif mode == "valid":
                o = -(-(n - di * (ki - 1)) // si)
            else:
                pb, pa = pads_of(kw, nd)[i]
                o = (n + pb + pa - di * (ki - 1) - 1) // si + 1
        else:
            full = (n - 1) * si + di * (ki - 1) + 1
            if mode == "same":
                o = n * si
            elif mode == "valid":
                o = max(full, n * si)
            else:
                pb, pa = pads_of(kw, nd)[i]
                o = full - pb - pa + op[i]
        out.append(o)
    return (xshape[0], kw["out_channels"], *out)


def np_weight(layer, w):
    """MindSpore stored weight -> N-d weight (drop the dummy H=1 axis of the 1-d layers)."""
    if layer in ("Conv1d", "Conv1dTranspose"):
        return w[:, :, 0, :]
    return w


def kernel_positions(k):
    return np.ndindex(*k)


def contract_nc(a, b):
    """sum over batch and spatial axes: a (N, A, *sp), b (N, B, *sp) -> (A, B)."""
    axes = [0] + list(range(2, a.ndim))
    return np.tensordot(a, b, axes=(axes, axes))


def np_conv(x, w, b, k, s, d, pads, g):
    """Cross-correlation with explicit zero pads, then 'valid'. Returns y and a backward fn."""
    nd = len(k)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    N, Cin = x.shape[:2]
    Cout = w.shape[0]
    outs = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    cig, cog = Cin // g, Cout // g
    y = np.zeros((N, Cout, *outs), np.float64)

    def sl(kp):
        return tuple(slice(kp[i] * d[i], kp[i] * d[i] + s[i] * (outs[i] - 1) + 1, s[i]) for i in range(nd))

    for kp in kernel_positions(k):
        patch = xp[(slice(None), slice(None)) + sl(kp)]
        for gi in range(g):
            xs = patch[:, gi * cig:(gi + 1) * cig]
            ws = w[(slice(gi * cog, (gi + 1) * cog), slice(None), *kp)]
            y[:, gi * cog:(gi + 1) * cog] += np.einsum("nc...,oc->no...", xs, ws)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)

    def backward(r):
        gxp = np.zeros_like(xp, dtype=np.float64)
        gw = np.zeros_like(w, dtype=np.float64)
        for kp in kernel_positions(k):
            idx = (slice(None), slice(None)) + sl(kp)
            patch = xp[idx]
            for gi in range(g):
                rs = r[:, gi * cog:(gi + 1) * cog]
                ws = w[(slice(gi * cog, (gi + 1) * cog), slice(None), *kp)]
                gxp[(slice(None), slice(gi * cig, (gi + 1) * cig)) + sl(kp)] += np.einsum("no...,oc->nc...", rs, ws)
                gw[(slice(gi * cog, (gi + 1) * cog), slice(None), *kp)] += contract_nc(rs, patch[:, gi * cig:(gi + 1) * cig])
        crop = (slice(None), slice(None)) + tuple(slice(pads[i][0], pads[i][0] + x.shape[2 + i]) for i in range(nd))
        gb = r.sum(axis=(0,) + tuple(range(2, 2 + nd)))
        return gxp[crop], gw, gb

    return y, backward


def np_conv_transpose(x, w, b, k, s, d, g, starts, sizes, op):
    """Full transposed conv, window [start, start+size) per dim (zeros outside the full
    result), bias added, then `op` zeros appended per dim. Returns y and a backward fn."""
    nd = len(k)
    N, Cin = x.shape[:2]
    cig = Cin // g
    cog = w.shape[1]
    Cout = cog * g
    ins = x.shape[2:]
    full = [(ins[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(nd)]
    yf = np.zeros((N, Cout, *full), np.float64)

    def sl(kp):
        return tuple(slice(kp[i] * d[i], kp[i] * d[i] + s[i] * (ins[i] - 1) + 1, s[i]) for i in range(nd))

    for kp in kernel_positions(k):
        for gi in range(g):
            xs = x[:, gi * cig:(gi + 1) * cig]
            ws = w[(slice(gi * cig, (gi + 1) * cig), slice(None), *kp)]
            yf[(slice(None), slice(gi * cog, (gi + 1) * cog)) + sl(kp)] += np.einsum("nc...,co->no...", xs, ws)
    # window (may extend beyond the full result: zeros there)
    lo = [min(0, starts[i]) for i in range(nd)]
    hi = [max(full[i], starts[i] + sizes[i]) for i in range(nd)]
    big = np.pad(yf, [(0, 0), (0, 0)] + [(-lo[i], hi[i] - full[i]) for i in range(nd)])
    win = (slice(None), slice(None)) + tuple(slice(starts[i] - lo[i], starts[i] - lo[i] + sizes[i]) for i in range(nd))
    y = big[win].copy()
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)
    y = np.pad(y, [(0, 0), (0, 0)] + [(0, op[i]) for i in range(nd)])

    def backward(r):
        rc = r[(slice(None), slice(None)) + tuple(slice(0, sizes[i]) for i in range(nd))]
        gbig = np.zeros_like(big)
        gbig[win] = rc
        gyf = gbig[(slice(None), slice(None)) + tuple(slice(-lo[i], -lo[i] + full[i]) for i in range(nd))]
        gx = np.zeros_like(x, dtype=np.float64)
        gw = np.zeros_like(w, dtype=np.float64)
        for kp in kernel_positions(k):
            for gi in range(g):
                rs = gyf[(slice(None), slice(gi * cog, (gi + 1) * cog)) + sl(kp)]
                ws = w[(slice(gi * cig, (gi + 1) * cig), slice(None), *kp)]
                gx[:, gi * cig:(gi + 1) * cig] += np.einsum("no...,co->nc...", rs, ws)
                gw[(slice(gi * cig, (gi + 1) * cig), slice(None), *kp)] += contract_nc(x[:, gi * cig:(gi + 1) * cig], rs)
        gb = rc.sum(axis=(0,) + tuple(range(2, 2 + nd)))
        return gx, gw, gb

    return y, backward


def np_reference(layer, kw, x, w, b, variant="predicted"):
    """Apply the padding rule. Returns (y, backward).

    variant="predicted": the rule as predicted before the run (transposed 'same'/'valid':
    crop floor(excess/2) from the start, python floor, so a negative excess would put
    zeros at the start; output_padding zeros appended after the bias, for every
    transposed layer).
    variant="observed": what MindSpore 2.10 was seen to do: start = max(0, excess) // 2
    (a negative excess leaves the full result at the start, the trailing positions get
    the bias only), and Conv3dTranspose computes its output_padding positions like
    torch (window extended by output_padding, bias added to it) instead of appending
    zeros."""
    _, nd, transposed = LAYERS[layer]
    k, s, d = tup(kw["kernel_size"], nd), tup(kw.get("stride", 1), nd), tup(kw.get("dilation", 1), nd)
    g = kw.get("group", 1)
    mode = kw.get("pad_mode", "same")
    w = np_weight(layer, w).astype(np.float64)
    x = x.astype(np.float64)
    b = None if b is None else b.astype(np.float64)
    ins = x.shape[2:]
    if not transposed:
        if mode == "same":
            pads = []
            for i in range(nd):
                o = -(-ins[i] // s[i])
                need = max(0, (o - 1) * s[i] + d[i] * (k[i] - 1) + 1 - ins[i])
                pads.append((need // 2, need - need // 2))
        elif mode == "valid":
            pads = [(0, 0)] * nd
        else:
            pads = pads_of(kw, nd)
        return np_conv(x, w, b, k, s, d, pads, g)
    op = tup(kw.get("output_padding", 0), nd) if mode == "pad" else (0,) * nd
    full = [(ins[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(nd)]
    if mode == "pad":
        pp = pads_of(kw, nd)
        starts = [pp[i][0] for i in range(nd)]
        sizes = [full[i] - pp[i][0] - pp[i][1] for i in range(nd)]
        if variant == "observed" and layer == "Conv3dTranspose":
            sizes = [sizes[i] + op[i] for i in range(nd)]
            op = (0,) * nd
    else:
        sizes = [ins[i] * s[i] if mode == "same" else max(full[i], ins[i] * s[i]) for i in range(nd)]
        if variant == "observed":
            starts = [max(0, full[i] - sizes[i]) // 2 for i in range(nd)]
        else:
            starts = [(full[i] - sizes[i]) // 2 for i in range(nd)]  # floor(excess / 2), python floor
    return np_conv_transpose(x, w, b, k, s, d, g, starts, sizes, op)


# --------------------------------------------------------------------------------------
# running MindSpore
# --------------------------------------------------------------------------------------
def run_case(rng, layer, kw, xshape):
    cls = LAYERS[layer][0]
    rec = {}
    net = cls(**kw)
    w = (rng.standard_normal(net.weight.shape) * 0.5).astype(np.float32)
    net.weight.set_data(Tensor(w))
    if net.bias is not None and kw.get("bias_init") is None:
        net.bias.set_data(Tensor((rng.standard_normal(net.bias.shape) * 0.5).astype(np.float32)))
    x = rng.standard_normal(xshape).astype(np.float32)
    rec["x"] = x
    rec["weight"] = net.weight.asnumpy().copy()
    rec["bias"] = None if net.bias is None else net.bias.asnumpy().copy()
    y = net(Tensor(x)).asnumpy()
    rec["y"] = y
    r = rng.standard_normal(y.shape).astype(np.float32)
    rec["r"] = r
    rt = Tensor(r)
    try:
        params = net.trainable_params()

        def loss(xx):
            return (net(xx) * rt).sum()

        gx, gps = ms.grad(loss, grad_position=0, weights=params)(Tensor(x))
        rec["grad_x"] = gx.asnumpy()
        names = [p.name.split(".")[-1] for p in params]
        gmap = dict(zip(names, [gp.asnumpy() for gp in gps]))
        rec["grad_weight"] = gmap["weight"]
        rec["grad_bias"] = gmap.get("bias")
        rec["grad_status"] = "ok"
    except Exception as e:  # noqa: BLE001
        rec["grad_status"] = "error: %s: %s" % (type(e).__name__, str(e).strip().splitlines()[0][:300])
    return rec


def check_case(layer, kw, rec):
    out = {}
    exp_shape = rule_shape(layer, kw, rec["x"].shape)
    out["rule_shape"] = list(exp_shape)
    out["ms_shape"] = list(rec["y"].shape)
    out["shape_ok"] = tuple(exp_shape) == tuple(rec["y"].shape)
    out.update(compare_values(layer, kw, rec, "predicted"))
    out["ok"] = bool(out["shape_ok"] and out["values_ok"])
    if LAYERS[layer][2]:
        obs = compare_values(layer, kw, rec, "observed")
        out["observed_rule"] = obs
        out["observed_ok"] = bool(out["shape_ok"] and obs["values_ok"])
    else:
        out["observed_ok"] = out["ok"]
    return out


def compare_values(layer, kw, rec, variant):
    out = {}
    try:
        y, bwd = np_reference(layer, kw, rec["x"], rec["weight"], rec["bias"], variant)
        out["np_shape"] = list(y.shape)
        if y.shape == rec["y"].shape:
            out["y_maxdiff"] = float(np.abs(y - rec["y"]).max())
            if rec.get("grad_status") == "ok":
                gx, gw, gb = bwd(rec["r"].astype(np.float64))
                gw_ms = rec["grad_weight"]
                out["grad_x_maxdiff"] = float(np.abs(gx - rec["grad_x"]).max())
                out["grad_weight_maxdiff"] = float(np.abs(gw.reshape(gw_ms.shape) - gw_ms).max())
                if rec["grad_bias"] is not None:
                    out["grad_bias_maxdiff"] = float(np.abs(gb - rec["grad_bias"]).max())
        else:
            out["y_maxdiff"] = None
    except Exception as e:  # noqa: BLE001
        out["np_error"] = "%s: %s" % (type(e).__name__, e)
    tol = 1e-4
    diffs = [v for kk, v in out.items() if kk.endswith("maxdiff")]
    out["values_ok"] = "np_error" not in out and bool(diffs) and all(v is not None and v < tol for v in diffs)
    return out


def main():
    rng = np.random.default_rng(SEED)
    ms.set_seed(SEED)
    data = {
        "meta/mindspore_version": np.array(ms.__version__),
        "meta/numpy_version": np.array(np.__version__),
        "meta/python_version": np.array(platform.python_version()),
        "meta/mode": np.array("PYNATIVE"),
        "meta/device": np.array("CPU"),
        "meta/seed": np.array(SEED),
        "meta/loss": np.array("sum(y * r)"),
    }
    per_layer = {}
    ran_layers = {}
    problems = []
    for i, (layer, kw, xshape) in enumerate(CASES):
        p = "case%d/" % i
        data[p + "layer"] = np.array(layer)
        data[p + "kwargs"] = np.array(json.dumps(kw, sort_keys=True))
        try:
            rec = run_case(rng, layer, kw, xshape)
        except Exception as e:  # noqa: BLE001
            msg = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0][:300] if str(e).strip() else "")
            data[p + "status"] = np.array("error: " + msg)
            ran_layers.setdefault(layer, []).append(False)
            problems.append("case%d %s %s FAILED TO RUN: %s" % (i, layer, kw, msg))
            print("case%-3d %-16s RUN ERROR %s" % (i, layer, msg))
            traceback.print_exc(limit=2)
            continue
        ran_layers.setdefault(layer, []).append(True)
        per_layer[layer] = per_layer.get(layer, 0) + 1
        data[p + "status"] = np.array("ok")
        data[p + "has_bias"] = np.array(rec["bias"] is not None)
        for key in ("x", "weight", "bias", "y", "r", "grad_x", "grad_weight", "grad_bias"):
            if rec.get(key) is not None:
                data[p + key] = rec[key]
        data[p + "grad_status"] = np.array(rec["grad_status"])
        chk = check_case(layer, kw, rec)
        data[p + "check"] = np.array(json.dumps(chk, sort_keys=True))
        flag = "ok" if chk["ok"] else "MISMATCH"
        flag += "" if chk["observed_ok"] else " OBSERVED-MISMATCH"
        print("case%-3d %-16s %-8s y%s rule%s maxdiff %.1e" % (
            i, layer, flag, tuple(rec["y"].shape), tuple(chk["rule_shape"]),
            max([v for k_, v in chk.items() if k_.endswith("maxdiff") and v is not None] or [np.nan])))
        if not chk["ok"]:
            problems.append("case%d %s %s disagrees with the predicted rule (observed rule %s): %s" % (
                i, layer, json.dumps(kw), "matches" if chk["observed_ok"] else "ALSO FAILS",
                json.dumps({k_: v for k_, v in chk.items() if k_ != "observed_rule"})))
        if rec["grad_status"] != "ok":
            problems.append("case%d %s: gradients not obtainable: %s" % (i, layer, rec["grad_status"]))
    data["meta/n_cases"] = np.array(len(CASES))
    data["meta/layers_ran"] = np.array(json.dumps({k_: all(v) for k_, v in ran_layers.items()}, sort_keys=True))
    data["meta/cases_per_layer"] = np.array(json.dumps(per_layer, sort_keys=True))

    # ---- default initialisation samples ----
    for j, (name, layer, kw, which, n_inst) in enumerate(INIT_CASES):
        p = "init%d/" % j
        ms.set_seed(SEED + 1000 + j)  # independent of how many cases ran before
        vals = []
        shape = None
        for _ in range(n_inst):
            net = LAYERS[layer][0](**kw)
            prm = getattr(net, which).asnumpy()
            shape = prm.shape
            vals.append(prm.ravel())
        data[p + "name"] = np.array(name)
        data[p + "layer"] = np.array(layer)
        data[p + "kwargs"] = np.array(json.dumps(kw, sort_keys=True))
        data[p + "param"] = np.array(which)
        data[p + "shape"] = np.array(shape, dtype=np.int64)
        data[p + "n_instances"] = np.array(n_inst)
        allv = np.concatenate(vals).astype(np.float32)
        data[p + "values"] = allv
        wshape = LAYERS[layer][0](**kw).weight.shape
        fan_in = int(wshape[1] * np.prod(wshape[2:]))
        data[p + "fan_in"] = np.array(fan_in)
        print("init%d %-34s shape %s fan_in %d  n=%d mean %.4f std %.4f min %.4f max %.4f 1/sqrt(fan_in) %.4f" % (
            j, name, shape, fan_in, allv.size, allv.mean(), allv.std(), allv.min(), allv.max(), 1 / np.sqrt(fan_in)))
        # expected distribution (docs/conventions.md, Initialisation; 2.10: HeUniform(sqrt(5)) =
        # U(+-1/sqrt(fan_in)) for the weight, U(+-1/sqrt(fan_in)) for the bias, 'normal' =
        # N(0, 0.01)); a KS p-value is stored when scipy is available (it is a MindSpore dep)
        if kw.get("weight_init") == "normal" and which == "weight":
            dist = ("norm", (0.0, 0.01))
        else:
            bound = 1.0 / np.sqrt(fan_in)
            dist = ("uniform", (-bound, 2 * bound))
        data[p + "expected"] = np.array(json.dumps({"dist": dist[0], "scipy_args": dist[1]}))
        try:
            from scipy import stats
            ks = stats.kstest(allv.astype(np.float64), dist[0], args=dist[1])
            data[p + "ks_pvalue"] = np.array(float(ks.pvalue))
            print("      KS vs %s%s: stat %.4f p %.3g" % (dist[0], dist[1], ks.statistic, ks.pvalue))
        except ImportError:
            pass
    data["meta/n_init"] = np.array(len(INIT_CASES))

    # ---- error cases ----
    for j, (layer, kw, xshape) in enumerate(ERROR_CASES):
        p = "error%d/" % j
        data[p + "layer"] = np.array(layer)
        data[p + "kwargs"] = np.array(json.dumps(kw, sort_keys=True))
        data[p + "input_shape"] = np.array(xshape, dtype=np.int64)
        stage = "construct"
        try:
            net = LAYERS[layer][0](**kw)
            stage = "call"
            y = net(Tensor(np.zeros(xshape, np.float32)))
            data[p + "raised"] = np.array(False)
            data[p + "stage"] = np.array("none")
            data[p + "exc_type"] = np.array("")
            data[p + "message"] = np.array("")
            data[p + "output_shape"] = np.array(y.shape, dtype=np.int64)
            print("error%d %s %s: NO ERROR, output %s" % (j, layer, kw, y.shape))
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip()
            data[p + "raised"] = np.array(True)
            data[p + "stage"] = np.array(stage)
            data[p + "exc_type"] = np.array(type(e).__name__)
            data[p + "message"] = np.array(msg[:2000])
            print("error%d %s %s: [%s] %s: %s" % (j, layer, kw, stage, type(e).__name__, msg.splitlines()[0][:200] if msg else ""))
    data["meta/n_errors"] = np.array(len(ERROR_CASES))

    record_layers(data)
    np.savez_compressed(OUT, **data)
    print("\nwrote %s (%.1f kB, %d keys)" % (OUT, os.path.getsize(OUT) / 1024, len(data)))
    print("cases per layer:", per_layer)
    print("\n%d problem(s):" % len(problems))
    for pr in problems:
        print("  -", pr)


# --------------------------------------------------------------------------------------
# the other layers of a small CNN (keys under "layers/"; README.md has the layout).
# asnumpy() can share memory with a parameter that a later step updates: every value is copied
# --------------------------------------------------------------------------------------
LAYER_SEED = SEED + 7  # its own generator: the conv cases above stay as they were

DENSE_CASES = [  # (kwargs, input shape)
    (dict(in_channels=5, out_channels=3), (4, 5)),
    (dict(in_channels=5, out_channels=3, activation="relu"), (4, 5)),
    (dict(in_channels=6, out_channels=4, has_bias=False, activation="tanh"), (3, 6)),
    (dict(in_channels=5, out_channels=2, activation="sigmoid"), (2, 3, 5)),
]
BN_CASES = [  # (class, kwargs, input shape): 3 training steps, then one eval step
    ("BatchNorm2d", dict(num_features=3), (4, 3, 5, 5)),
    ("BatchNorm2d", dict(num_features=3, momentum=0.7, eps=1e-3), (2, 3, 4, 6)),
    ("BatchNorm1d", dict(num_features=4), (6, 4)),
    ("BatchNorm1d", dict(num_features=4, momentum=0.5), (5, 4, 3)),
    ("BatchNorm2d", dict(num_features=3, use_batch_statistics=True), (4, 3, 3, 3)),
    ("BatchNorm2d", dict(num_features=3, use_batch_statistics=False), (4, 3, 3, 3)),
    ("BatchNorm2d", dict(num_features=2, affine=False), (3, 2, 4, 4)),
]
POOL_CASES = [  # (class, kwargs, input shape)
    ("MaxPool2d", dict(), (2, 3, 5, 6)),
    ("MaxPool2d", dict(kernel_size=3), (2, 3, 7, 6)),
    ("MaxPool2d", dict(kernel_size=2, stride=2), (2, 3, 7, 8)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, pad_mode="same"), (2, 3, 7, 8)),
    ("MaxPool2d", dict(kernel_size=2, stride=2, pad_mode="SAME"), (2, 3, 5, 5)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, pad_mode="pad", padding=1), (2, 3, 7, 8)),
    ("MaxPool2d", dict(kernel_size=(3, 2), stride=(2, 1), pad_mode="pad", padding=(1, 0),
                       dilation=(1, 2), ceil_mode=True), (2, 3, 8, 7)),
    ("AvgPool2d", dict(), (2, 3, 5, 6)),
    ("AvgPool2d", dict(kernel_size=2, stride=2), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, pad_mode="same"), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=2, stride=2, pad_mode="same"), (2, 3, 5, 5)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, pad_mode="pad", padding=1), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, pad_mode="pad", padding=1,
                       count_include_pad=False), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=(2, 3), stride=(1, 2), pad_mode="pad", padding=(1, 1),
                       divisor_override=2), (2, 3, 7, 7)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, ceil_mode=True), (2, 3, 8, 8)),
    ("AvgPool2d", dict(kernel_size=3, divisor_override=2), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, pad_mode="same", divisor_override=2), (2, 3, 7, 8)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, pad_mode="same", count_include_pad=False,
                       ceil_mode=True), (2, 3, 7, 8)),
    ("MaxPool1d", dict(kernel_size=3, stride=2), (2, 3, 9)),
    ("MaxPool1d", dict(kernel_size=3, stride=2, pad_mode="same"), (2, 3, 8)),
    ("MaxPool1d", dict(kernel_size=3, stride=1, pad_mode="pad", padding=1), (2, 3, 8)),
    ("AvgPool1d", dict(kernel_size=2, stride=2), (2, 3, 9)),
    ("AvgPool1d", dict(kernel_size=4, stride=3, pad_mode="same"), (2, 3, 10)),
    ("AvgPool1d", dict(kernel_size=3, stride=2, pad_mode="pad", padding=1), (2, 3, 8)),
]
DROPOUT_CASES = [dict(keep_prob=0.8), dict(p=0.3), dict(keep_prob=0.8, p=0.5), dict()]
LAYER_ERRORS = [  # (class, kwargs)
    ("Dense", dict(in_channels=0, out_channels=3)),
    ("Dense", dict(in_channels=3.0, out_channels=3)),
    ("BatchNorm2d", dict(num_features=0)),
    ("BatchNorm2d", dict(num_features=3, momentum=1.5)),
    ("BatchNorm2d", dict(num_features=3, use_batch_statistics=1)),
    ("MaxPool2d", dict(kernel_size=3, pad_mode="foo")),
    ("MaxPool2d", dict(kernel_size=3, padding=1)),
    ("MaxPool2d", dict(kernel_size=0)),
    ("AvgPool2d", dict(kernel_size=3, padding=1)),
    ("MaxPool1d", dict(kernel_size=(2,))),
    ("Dropout", dict(p=1.0)),
    ("Dropout", dict(keep_prob=0)),
    ("Dropout", dict(keep_prob=0.0)),
]


class LeNet5(nn.Cell):
    """The MindSpore model zoo's LeNet-5 (models/official/cv/lenet/src/lenet.py)."""

    def __init__(self, num_class=10, num_channel=1):
        super().__init__()
        from mindspore.common.initializer import Normal

        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(84, num_class, weight_init=Normal(0.02))
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def _grads(net, x, r):
    """(y, grad_x, {parameter name: grad}) of sum(y * r), with one forward only."""
    params = net.trainable_params()
    rt = Tensor(r)

    def loss(xx):
        y = net(xx)
        return (y * rt).sum(), y

    (_, y), (gx, gps) = ms.value_and_grad(loss, grad_position=0, weights=params, has_aux=True)(
        Tensor(x))
    return y.asnumpy().copy(), gx.asnumpy().copy(), {
        p.name: g.asnumpy().copy() for p, g in zip(params, gps)
    }


def _set(param, array):
    param.set_data(Tensor(np.asarray(array, np.float32)))


def record_layers(data):
    rng = np.random.default_rng(LAYER_SEED)
    ms.set_seed(LAYER_SEED)
    for i, (kw, shape) in enumerate(DENSE_CASES):
        p = "layers/dense%d/" % i
        net = nn.Dense(**kw)
        _set(net.weight, rng.standard_normal(net.weight.shape) * 0.5)
        if net.bias is not None:
            _set(net.bias, rng.standard_normal(net.bias.shape) * 0.5)
        x = rng.standard_normal(shape).astype(np.float32)
        r = rng.standard_normal(shape[:-1] + (kw["out_channels"],)).astype(np.float32)
        y, gx, grads = _grads(net, x, r)
        data[p + "kwargs"] = np.array(json.dumps(kw, sort_keys=True))
        data[p + "x"], data[p + "r"], data[p + "y"], data[p + "grad_x"] = x, r, y, gx
        data[p + "weight"] = net.weight.asnumpy().copy()
        data[p + "grad_weight"] = grads["weight"]
        if net.bias is not None:
            data[p + "bias"] = net.bias.asnumpy().copy()
            data[p + "grad_bias"] = grads["bias"]
        print("dense%d %s y%s" % (i, kw, y.shape))
    data["layers/n_dense"] = np.array(len(DENSE_CASES))

    for i, (cls, kw, shape) in enumerate(BN_CASES):
        p = "layers/bn%d/" % i
        net = getattr(nn, cls)(**kw)
        data[p + "class"], data[p + "kwargs"] = np.array(cls), np.array(json.dumps(kw, sort_keys=True))
        data[p + "initial_training"] = np.array(bool(net.training))
        data[p + "names"] = np.array(json.dumps([n for n, _ in net.parameters_and_names()]))
        if kw.get("affine", True):
            _set(net.gamma, 1 + 0.3 * rng.standard_normal(net.gamma.shape))
            _set(net.beta, 0.3 * rng.standard_normal(net.beta.shape))
        data[p + "gamma"], data[p + "beta"] = net.gamma.asnumpy().copy(), net.beta.asnumpy().copy()
        net.set_train(True)
        for step in range(3):
            x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
            r = rng.standard_normal(shape).astype(np.float32)
            q = p + "step%d/" % step
            if kw.get("affine", True) and step == 2:
                y, gx, grads = _grads(net, x, r)
                data[q + "grad_x"] = gx
                data[q + "grad_gamma"] = grads[net.gamma.name]
                data[q + "grad_beta"] = grads[net.beta.name]
                data[q + "r"] = r
            else:
                y = net(Tensor(x)).asnumpy().copy()
            data[q + "x"], data[q + "y"] = x, y
            data[q + "moving_mean"] = net.moving_mean.asnumpy().copy()
            data[q + "moving_variance"] = net.moving_variance.asnumpy().copy()
        net.set_train(False)
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        data[p + "eval/x"], data[p + "eval/y"] = x, net(Tensor(x)).asnumpy().copy()
        data[p + "eval/moving_mean"] = net.moving_mean.asnumpy().copy()
        data[p + "eval/moving_variance"] = net.moving_variance.asnumpy().copy()
        print("bn%d %s %s" % (i, cls, kw))
    data["layers/n_bn"] = np.array(len(BN_CASES))

    for i, (cls, kw, shape) in enumerate(POOL_CASES):
        p = "layers/pool%d/" % i
        net = getattr(nn, cls)(**kw)
        x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) * 0.1
        x -= x.mean()
        y = net(Tensor(x)).asnumpy().copy()
        r = rng.standard_normal(y.shape).astype(np.float32)
        data[p + "class"], data[p + "kwargs"] = np.array(cls), np.array(json.dumps(kw, sort_keys=True))
        data[p + "x"], data[p + "y"], data[p + "r"] = x, y, r
        # MindSpore 2.10's CPU AvgPool gradient fails now and then ("RuntimeError: Unknown
        # Error!", a different case on each run): up to three attempts, the count recorded
        attempt = 0
        while attempt < 3:
            attempt += 1
            try:
                data[p + "grad_x"] = _grads(net, x, r)[1]
                data[p + "grad_status"] = np.array("ok")
                break
            except Exception as e:  # noqa: BLE001
                data[p + "grad_status"] = np.array("error: %s: %s" % (type(e).__name__, str(e)[:300]))
                print("   no gradient:", str(data[p + "grad_status"])[:200])
        data[p + "grad_attempts"] = np.array(attempt)
        print("pool%d %s %s %s -> %s" % (i, cls, kw, shape, y.shape))
    data["layers/n_pool"] = np.array(len(POOL_CASES))

    for i, kw in enumerate(DROPOUT_CASES):
        p = "layers/dropout%d/" % i
        net = nn.Dropout(**kw)
        net.set_train(True)
        y = net(Tensor(np.ones((200, 500), np.float32))).asnumpy().copy()
        data[p + "kwargs"] = np.array(json.dumps(kw, sort_keys=True))
        data[p + "zero_fraction"] = np.array((y == 0).mean())
        data[p + "kept_values"] = np.unique(y[y != 0])
        net.set_train(False)
        x = rng.standard_normal((3, 4)).astype(np.float32)
        data[p + "eval_is_identity"] = np.array(bool(np.array_equal(net(Tensor(x)).asnumpy().copy(), x)))
        print("dropout%d %s zeros %.3f kept %s" % (i, kw, (y == 0).mean(), np.unique(y[y != 0])))
    data["layers/n_dropout"] = np.array(len(DROPOUT_CASES))

    for j, (cls, kw) in enumerate(LAYER_ERRORS):
        p = "layers/error%d/" % j
        data[p + "class"], data[p + "kwargs"] = np.array(cls), np.array(json.dumps(kw, sort_keys=True))
        try:  # MindSpore checks an AvgPool's padding at the call
            layer = getattr(nn, cls)(**kw)
            layer(Tensor(np.zeros((1, 1, 6, 6) if "2d" in cls else (1, 1, 6), np.float32)))
            data[p + "exc_type"], data[p + "message"] = np.array(""), np.array("")
        except Exception as e:  # noqa: BLE001
            data[p + "exc_type"] = np.array(type(e).__name__)
            data[p + "message"] = np.array(str(e).strip()[:2000])
        print("layer error%d %s %s: %s" % (j, cls, kw, str(data[p + "exc_type"])))
    data["layers/n_errors"] = np.array(len(LAYER_ERRORS))

    # default initialisation of Dense (2.10: HeUniform(sqrt(5)) and U(+-1/sqrt(in)))
    ms.set_seed(LAYER_SEED + 1)
    for which in ("weight", "bias"):
        values = np.concatenate([getattr(nn.Dense(50, 40), which).asnumpy().copy().ravel()
                                 for _ in range(5)])
        data["layers/init/dense_" + which] = values
    data["layers/init/dense_normal_weight"] = np.concatenate(
        [nn.Dense(50, 40, weight_init="normal").weight.asnumpy().copy().ravel() for _ in range(5)])
    data["layers/init/dense_in_channels"] = np.array(50)

    # a SequentialCell's parameter names and order
    seq = nn.SequentialCell([nn.Conv2d(1, 4, 3, has_bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.MaxPool2d(2, 2), nn.Flatten(), nn.Dropout(p=0.5), nn.Dense(4, 3)])
    data["layers/sequential/names"] = np.array(json.dumps([n for n, _ in seq.parameters_and_names()]))
    data["layers/sequential/shapes"] = np.array(json.dumps(
        [list(prm.shape) for _, prm in seq.parameters_and_names()]))
    data["layers/sequential/initial_training"] = np.array(bool(seq.training))

    # the model zoo's LeNet-5: its parameter dict, an input, the output and input gradient
    ms.set_seed(LAYER_SEED + 2)
    lenet = LeNet5()
    for name, prm in lenet.parameters_and_names():
        if "bias" in name:  # the zoo's biases start at zero: make them count
            _set(prm, rng.standard_normal(prm.shape) * 0.1)
    names = [n for n, _ in lenet.parameters_and_names()]
    data["layers/lenet/names"] = np.array(json.dumps(names))
    for name, prm in lenet.parameters_and_names():
        data["layers/lenet/param/" + name] = prm.asnumpy().copy()
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    r = rng.standard_normal((2, 10)).astype(np.float32)
    y, gx, grads = _grads(lenet, x, r)
    data["layers/lenet/x"], data["layers/lenet/y"], data["layers/lenet/r"] = x, y, r
    data["layers/lenet/grad_x"] = gx
    for name, g in grads.items():
        data["layers/lenet/grad/" + name] = g
    print("lenet", names, y.shape)

    # the constructor signatures: name -> [[argument, repr(default) or null when required]]
    import inspect

    signatures = {}
    for cls in ("Dense", "BatchNorm1d", "BatchNorm2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
                "AvgPool2d", "Dropout", "Flatten"):
        params = list(inspect.signature(getattr(nn, cls).__init__).parameters.values())[1:]
        signatures[cls] = [[p_.name, None if p_.default is p_.empty else repr(p_.default)]
                           for p_ in params]
    data["layers/signatures"] = np.array(json.dumps(signatures))


if __name__ == "__main__":
    sys.exit(main())
