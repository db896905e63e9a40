"""Convolutions and padding with PyTorch's semantics, on the three kernel primitives.

Every conv is lifted to 3 spatial dims (1-D is ``(1, 1, W)``, 2-D is ``(1, H, W)``) and run on
``conv_forward``, ``conv_backward_data`` and ``conv_backward_weight`` from ``minidl._ext.conv``:
a transposed conv's forward is a conv's backward-data, and so on (DESIGN.md). Validation
happens here, once, with messages that name the shapes and the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._ext import conv as _kernels
from .._ext import direct as _direct
from .._ext import winograd as _winograd
from ..tensor import Tensor, _result

IntOrTuple = int | Sequence[int]
PAD_MODES = ("constant", "reflect", "replicate", "circular")


# ---- argument handling ---------------------------------------------------------------------
def _tuple(value: IntOrTuple, nd: int, name: str, op: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * nd
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        if len(value) == 1:
            return (int(value[0]),) * nd
        if len(value) == nd:
            return tuple(int(v) for v in value)
        raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {tuple(value)}")
    raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")


def _positive(values: tuple[int, ...], name: str, op: str) -> tuple[int, ...]:
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: {name} must be >= 1 in every dim, got {values}")
    return values


def _lift(values: tuple[int, ...], fill: int) -> tuple[int, int, int]:
    """Spatial tuple of 1-3 dims -> 3 dims, the missing leading dims set to ``fill``."""
    return (fill,) * (3 - len(values)) + tuple(values)  # type: ignore[return-value]


def _check_tensors(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, nd: int) -> None:
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(t).__name__}")
        if t is not None and t.dtype not in (np.float32, np.float64):
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {t.dtype}")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != input.dtype):
        dtypes = (input.dtype, weight.dtype, None if bias is None else bias.dtype)
        raise TypeError(f"{op}: input, weight and bias must share a dtype, got {dtypes}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, "
            f"got input of shape {input.shape}"
        )
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D weight, got weight of shape {weight.shape}")


def _check_groups(op: str, groups: int) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    return int(groups)


def _check_bias(op: str, bias: Tensor | None, out_channels: int) -> None:
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(
            f"{op}: bias has shape {bias.shape}, expected ({out_channels},) "
            f"(one value per output channel)"
        )


def _batched(input: Tensor, nd: int) -> tuple[Tensor, bool]:
    """Accept unbatched input as PyTorch does: add a batch dim, remember to drop it."""
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    return input, False


def _to5d(t: Tensor, nd: int) -> Tensor:
    return t if nd == 3 else t.reshape(t.shape[:2] + (1,) * (3 - nd) + t.shape[2:])


def _from5d(t: Tensor, nd: int) -> Tensor:
    return t if nd == 3 else t.reshape(t.shape[:2] + t.shape[5 - nd :])


def _add_bias(y: Tensor, bias: Tensor | None) -> Tensor:
    """y + bias per channel, added in place: y is a conv's fresh output that no backward reads.

    Against ``y + bias.reshape(...)`` this saves a pass allocating a new output, and the bias
    gradient sums the contiguous spatial axes first (LeNet conv1: ~80 us of 740 per step)."""
    if bias is None:
        return y
    data = y.data
    data += bias.data.reshape((1, -1) + (1,) * (data.ndim - 2))

    def backward(g):
        gb = g.sum(axis=tuple(range(2, g.ndim))).sum(axis=0) if bias.requires_grad else None
        return g, gb

    return _result(data, (y, bias), backward)


def _conv_padding(
    op: str, padding: Any, nd: int, kernel: tuple, stride: tuple, dilation: tuple
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """PyTorch's ``padding`` -> (before, after) per spatial dim."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions "
                    f"(stride={stride})"
                )
            total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
            before = tuple(t // 2 for t in total)  # an odd extra goes after (right/bottom)
            return before, tuple(t - b for t, b in zip(total, before, strict=True))
        raise ValueError(
            f"{op}: padding must be an int, a tuple of {nd} ints, 'same' or 'valid', "
            f"got {padding!r}"
        )
    if _is_pairs(padding, nd):  # minidl's own form for asymmetric padding (the profiles use it)
        before, after = tuple(int(p[0]) for p in padding), tuple(int(p[1]) for p in padding)
    else:
        before = after = _tuple(padding, nd, "padding", op)
    if any(p < 0 for p in before + after):
        raise ValueError(f"{op}: padding must be >= 0 in every dim, got {padding}")
    return before, after


def _is_pairs(padding: Any, nd: int) -> bool:
    return (
        isinstance(padding, (tuple, list))
        and len(padding) == nd
        and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding)
    )


def _check_fits(op: str, size: tuple, before: tuple, after: tuple, kernel: tuple, dilation: tuple):
    padded = tuple(n + b + a for n, b, a in zip(size, before, after, strict=True))
    effective = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    if any(p < e for p, e in zip(padded, effective, strict=True)):
        raise ValueError(
            f"{op}: padded input size {padded} is smaller than the effective kernel size "
            f"{effective} (dilation * (kernel - 1) + 1): kernel size can't be greater than the "
            f"padded input size"
        )


# ---- the autograd ops on 5-D tensors -------------------------------------------------------
# Winograd F(2x2, 3x3) (minidl/_ext/winograd.pyx) for 2-D 3x3 stride-1 convs with enough
# channels; see the module for the method. Measured on this 2-core machine, float32, 1 thread
# CPU time (ms, GEMM kernel -> Winograd):
#   forward        8x32x56x56 7.6 -> 6.6, 8x64x56x56 22.8 -> 16.1, 8x256x14x14 19.5 -> 11.9
#   backward-data  8x32x56x56 5.7 -> 6.6 (slower: the GEMM data kernel is the faster one), 64+
#                  channels as forward
#   backward-wgt   8x32x56x56 6.1 -> 6.8, 8x64x56x56 20 -> 19, 8x128x28x28 19 -> 14,
#                  F.conv2d fwd+bwd 8x256x14x14 44 -> 38 (with vs without Winograd dw)
# hence the channel thresholds (min of in and out channels). In an AVX-512 build the direct
# kernels (minidl/_ext/direct.pyx) are faster still in float32 (8x64x56x56, 2 threads: forward
# 6.0, data 5.1, weight 5.9 ms vs Winograd 8.1, 8.1, 8.0), so there Winograd serves float64.
# F(4x4, 3x3) (tile 4) is another 1.1-1.3x faster on 64 channels but its float32 error is
# ~20x the GEMM's (max |err| ~1e-5 of max |y|, beyond rtol 1e-4 / atol 1e-5 on small
# outputs): opt-in only.
_WINOGRAD_TILE = 2
_WINOGRAD_MIN_CHANNELS = {"forward": 32, "data": 64, "weight": 64}
_WINOGRAD_MIN_OUTPUT = 4  # output rows and columns
# how often the dispatch took the Winograd path (tests and benchmarks read it)
winograd_calls = {"forward": 0, "data": 0, "weight": 0}


def _use_winograd(kind, dtype, x_shape, w_shape, stride, dilation, before, after,
                  groups) -> bool:
    """Winograd applies (2-D, 3x3, stride 1, dilation 1, groups 1, pads <= 2) and pays off."""
    out = [n + b + a - 2 for n, b, a in zip(x_shape[3:], before[1:], after[1:], strict=True)]
    direct_wins = dtype == np.float32 and _direct.available() and _kernels.direct_enabled
    return (
        not direct_wins
        and groups == 1
        and tuple(w_shape[2:]) == (1, 3, 3)
        and x_shape[2] == 1
        and before[0] == after[0] == 0
        and tuple(stride) == (1, 1, 1)
        and tuple(dilation) == (1, 1, 1)
        and max(before[1:] + after[1:]) <= 2
        and min(w_shape[0], w_shape[1]) >= _WINOGRAD_MIN_CHANNELS[kind]
        and min(out) >= _WINOGRAD_MIN_OUTPUT
    )


def _forward(xd, wd, stride, dilation, before, after, groups) -> np.ndarray:
    args = (stride, dilation, before, after, groups)
    if _use_winograd("forward", xd.dtype, xd.shape, wd.shape, *args):
        winograd_calls["forward"] += 1
        return _winograd.conv3x3_forward(xd, wd, before[1:], after[1:], _WINOGRAD_TILE)
    return _kernels.conv_forward(xd, wd, *args)


def _backward_data(g, wd, x_shape, stride, dilation, before, after, groups) -> np.ndarray:
    args = (stride, dilation, before, after, groups)
    if _use_winograd("data", g.dtype, x_shape, wd.shape, *args):
        winograd_calls["data"] += 1
        return _winograd.conv3x3_backward_data(
            g, wd, x_shape[3:], before[1:], after[1:], _WINOGRAD_TILE
        )
    return _kernels.conv_backward_data(g, wd, x_shape[2:], *args)


def _backward_weight(xd, g, w_shape, stride, dilation, before, after, groups) -> np.ndarray:
    args = (stride, dilation, before, after, groups)
    if _use_winograd("weight", xd.dtype, xd.shape, w_shape, *args):
        winograd_calls["weight"] += 1
        return _winograd.conv3x3_backward_weight(xd, g, before[1:], after[1:], _WINOGRAD_TILE)
    return _kernels.conv_backward_weight(xd, g, w_shape[2:], *args)


def _conv5d(x: Tensor, w: Tensor, *params) -> Tensor:
    """y = conv(x, w); the three primitives (or Winograd where it pays) give y, dx and dw.
    ``params`` = (stride, dilation, before, after, groups)."""
    xd, wd = x.data, w.data
    y = _forward(xd, wd, *params)

    def backward(g):
        gx = _backward_data(g, wd, xd.shape, *params) if x.requires_grad else None
        gw = _backward_weight(xd, g, wd.shape, *params) if w.requires_grad else None
        return gx, gw

    return _result(y, (x, w), backward)


def _conv_transpose5d(x: Tensor, w: Tensor, out_size, *params) -> Tensor:
    """y = conv_transpose(x, w): the backward-data of a conv from ``out_size`` to x's size."""
    xd, wd = x.data, w.data
    y_shape = (xd.shape[0], wd.shape[1] * params[-1]) + tuple(out_size)
    y = _backward_data(xd, wd, y_shape, *params)

    def backward(g):
        gx = _forward(g, wd, *params) if x.requires_grad else None
        # roles swapped: g plays the conv's input, x its output gradient
        gw = _backward_weight(g, xd, wd.shape, *params) if w.requires_grad else None
        return gx, gw

    return _result(y, (x, w), backward)


# ---- public convolutions -------------------------------------------------------------------
def _convnd(nd, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    op = f"conv{nd}d"
    _check_tensors(op, input, weight, bias, nd)
    groups = _check_groups(op, groups)
    stride = _positive(_tuple(stride, nd, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, nd, "dilation", op), "dilation", op)
    kernel = weight.shape[2:]
    before, after = _conv_padding(op, padding, nd, kernel, stride, dilation)
    x, unbatched = _batched(input, nd)
    in_channels, out_channels = x.shape[1], weight.shape[0]
    if in_channels != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: input has {in_channels} channels but weight {weight.shape} expects "
            f"{weight.shape[1] * groups} with groups={groups} (input channels must equal "
            f"weight.shape[1] * groups)"
        )
    if out_channels % groups:
        raise ValueError(
            f"{op}: weight {weight.shape} has {out_channels} output channels, "
            f"not divisible by groups={groups}"
        )
    _check_bias(op, bias, out_channels)
    _check_fits(op, x.shape[2:], before, after, kernel, dilation)
    y = _conv5d(
        _to5d(x, nd),
        _to5d(weight, nd),
        _lift(stride, 1),
        _lift(dilation, 1),
        _lift(before, 0),
        _lift(after, 0),
        groups,
    )
    y = _add_bias(_from5d(y, nd), bias)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution, as ``torch.nn.functional.conv1d``.

    ``padding`` is an int, a tuple, ``'same'`` or ``'valid'`` as in PyTorch; minidl also takes
    one ``(before, after)`` pair per spatial dim for asymmetric zero padding (as in all conv*d).
    """
    return _convnd(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution, as ``torch.nn.functional.conv2d``."""
    return _convnd(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """3-D convolution, as ``torch.nn.functional.conv3d``."""
    return _convnd(3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation):
    """PyTorch's rule: (in - 1) * s - 2p + d * (k - 1) + output_padding + 1 per dim."""
    return tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, k, s, p, op, d in zip(
            size, kernel, stride, padding, output_padding, dilation, strict=True
        )
    )


def _conv_transposend(
    nd, input, weight, bias, stride, padding, output_padding, groups, dilation
) -> Tensor:
    op = f"conv_transpose{nd}d"
    _check_tensors(op, input, weight, bias, nd)
    groups = _check_groups(op, groups)
    stride = _positive(_tuple(stride, nd, "stride", op), "stride", op)
    dilation = _positive(_tuple(dilation, nd, "dilation", op), "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
    padding = _tuple(padding, nd, "padding", op)
    output_padding = _tuple(output_padding, nd, "output_padding", op)
    if any(p < 0 for p in padding + output_padding):
        raise ValueError(
            f"{op}: padding and output_padding must be >= 0, got {padding} and {output_padding}"
        )
    for o, s, d in zip(output_padding, stride, dilation, strict=True):
        if o >= max(s, d):
            raise ValueError(
                f"{op}: output_padding {output_padding} must be smaller than either stride "
                f"{stride} or dilation {dilation} in every dim"
            )
    x, unbatched = _batched(input, nd)
    in_channels, kernel = x.shape[1], weight.shape[2:]
    if in_channels != weight.shape[0]:
        raise ValueError(
            f"{op}: input has {in_channels} channels but weight {weight.shape} expects "
            f"{weight.shape[0]} (weight is (in_channels, out_channels / groups, *kernel))"
        )
    if in_channels % groups:
        raise ValueError(
            f"{op}: weight {weight.shape} has {in_channels} input channels, "
            f"not divisible by groups={groups}"
        )
    out_channels = weight.shape[1] * groups
    _check_bias(op, bias, out_channels)
    out_size = conv_transpose_output_size(
        x.shape[2:], kernel, stride, padding, output_padding, dilation
    )
    if any(n < 1 for n in out_size):
        raise ValueError(
            f"{op}: output size {out_size} is too small (must be >= 1) for input {x.shape}, "
            f"kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}"
        )
    # The equivalent conv maps out_size back to the input size with padding p before and
    # p - output_padding + (stride - 1) after (the extra rows the floor division absorbs).
    # That is negative only when output_padding >= stride (allowed when dilation > stride):
    # the trailing -after rows then lie past every kernel tap, so they are computed as a
    # smaller output and zero-padded back.
    after = tuple(
        p - o + s - 1 for p, o, s in zip(padding, output_padding, stride, strict=True)
    )
    unreached = tuple(max(-a, 0) for a in after)
    y = _conv_transpose5d(
        _to5d(x, nd),
        _to5d(weight, nd),
        _lift(tuple(n - u for n, u in zip(out_size, unreached, strict=True)), 1),
        _lift(stride, 1),
        _lift(dilation, 1),
        _lift(padding, 0),
        _lift(tuple(max(a, 0) for a in after), 0),
        groups,
    )
    y = _from5d(y, nd)
    if any(unreached):
        y = pad(y, [n for u in reversed(unreached) for n in (0, u)])
    y = _add_bias(y, bias)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``."""
    return _conv_transposend(
        1, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``."""
    return _conv_transposend(
        2, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose3d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """3-D transposed convolution, as ``torch.nn.functional.conv_transpose3d``."""
    return _conv_transposend(
        3, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


# ---- padding ---------------------------------------------------------------------------------
def _source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along one dim, the input position it copies."""
    j = np.arange(-before, size + after)
    if mode == "reflect":  # mirror without repeating the edge
        j = np.abs(j)
        return np.where(j >= size, 2 * (size - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    return j % size  # circular


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad as ``torch.nn.functional.pad``: ``pad`` lists (before, after) pairs starting from
    the last dim. Constant padding may be negative (it crops)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: input must be a minidl Tensor, got {type(input).__name__}")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim or not all(isinstance(p, int) for p in pad):
        raise ValueError(
            f"pad: pad must be an even-length tuple of ints with at most {2 * input.ndim} "
            f"entries for an input of shape {input.shape}, got {pad}"
        )
    pairs = [(input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    if mode == "constant":
        return _pad_constant(input, pairs, value)
    if len(pairs) > input.ndim - 1 or len(pairs) > 3:
        raise ValueError(
            f"pad: {mode} padding pads at most 3 trailing dims and needs a leading batch or "
            f"channel dim; got pad {pad} for input of shape {input.shape}"
        )
    for dim, before, after in pairs:
        size = input.shape[dim]
        limit = size - 1 if mode == "reflect" else size
        if before < 0 or after < 0 or (mode != "replicate" and max(before, after) > limit) or (
            size == 0
        ):
            raise ValueError(
                f"pad: {mode} padding ({before}, {after}) of dim {dim} with size {size} is not "
                f"possible: padding must be non-negative and "
                f"{'less than' if mode == 'reflect' else 'at most'} the input size "
                f"(input shape {input.shape})"
            )
    return _pad_gather(input, pairs, mode)


def _pad_constant(input: Tensor, pairs, value: float) -> Tensor:
    shape = list(input.shape)
    src = [slice(None)] * input.ndim
    dst = [slice(None)] * input.ndim
    for dim, before, after in pairs:
        size = input.shape[dim]
        new = size + before + after
        if new < 0:
            raise ValueError(
                f"pad: padding ({before}, {after}) of dim {dim} makes size {new} < 0 "
                f"for input of shape {input.shape}"
            )
        shape[dim] = new
        src[dim] = slice(max(-before, 0), size - max(-after, 0))
        dst[dim] = slice(max(before, 0), new - max(after, 0))
    out = np.full(shape, value, dtype=input.dtype)
    out[tuple(dst)] = input.data[tuple(src)]
    in_shape, dtype = input.shape, input.dtype

    def backward(g):
        grad = np.zeros(in_shape, dtype)
        grad[tuple(src)] = g[tuple(dst)]
        return (grad,)

    return _result(out, (input,), backward)


def _pad_gather(input: Tensor, pairs, mode: str) -> Tensor:
    indices = [(dim, _source_index(input.shape[dim], b, a, mode)) for dim, b, a in pairs]
    out = input.data
    for dim, index in indices:
        out = np.take(out, index, axis=dim)
    in_shape = input.shape

    def backward(g):
        for dim, index in reversed(indices):
            shape = list(g.shape)
            shape[dim] = in_shape[dim]
            moved = np.moveaxis(g, dim, 0)
            summed = np.zeros((in_shape[dim],) + moved.shape[1:], g.dtype)
            np.add.at(summed, index, moved)
            g = np.moveaxis(summed, 0, dim)
        return (g,)

    return _result(out, (input,), backward)
