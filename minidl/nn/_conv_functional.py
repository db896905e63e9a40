"""Convolutions and padding with PyTorch's semantics, on the three kernel primitives.

Every conv is lifted to 3 spatial dims (1-D is ``(1, 1, W)``, 2-D is ``(1, H, W)``) by
``minidl._geometry`` - the one place that parses and checks the arguments, with messages that
name the user's shapes - and run on the three primitives of ``minidl._ext.dispatch``
(``conv_forward``, ``conv_backward_data``, ``conv_backward_weight``), which choose the
algorithm: a transposed conv's forward is a conv's backward-data, and so on. Each call is one
autograd node; the 5-D forms are numpy views.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import runtime
from .._ext import dispatch, elementwise
from .._geometry import conv_geometry, conv_transpose_geometry, lift
from ..tensor import Tensor, _fresh_gradients, _result

IntOrTuple = int | Sequence[int]
PAD_MODES = ("constant", "reflect", "replicate", "circular")


# ---- checks the geometry does not cover: tensors, dtypes, ranks, bias ------------------------
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


def _check_bias(op: str, bias: Tensor | None, out_channels: int) -> None:
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(
            f"{op}: bias has shape {bias.shape}, expected ({out_channels},) "
            f"(one value per output channel)"
        )


def _batched_shape(input: Tensor, nd: int) -> tuple[int, ...]:
    """Unbatched input is taken as PyTorch does: a batch of one."""
    return (1,) + input.shape if input.ndim == nd + 1 else input.shape


def _out_shape(input: Tensor, nd: int, shape5: tuple[int, ...]) -> tuple[int, ...]:
    """A 5-D result in the user's rank (batch dropped again for unbatched input)."""
    shape = shape5[:2] + shape5[5 - nd :]
    return shape[1:] if input.ndim == nd + 1 else shape


def _bias_grad(g: np.ndarray, bias: Tensor | None) -> np.ndarray | None:
    """The bias gradient: g (N, C, ...) summed per channel."""
    if bias is None or not bias.requires_grad:
        return None
    g3 = np.ascontiguousarray(g).reshape(g.shape[0], g.shape[1], -1)
    return elementwise.channel_sums(g3, runtime.threads_in_use())


def _add_bias(y: np.ndarray, bias: Tensor | None) -> None:
    """y += bias per channel, in place: y is a fresh kernel output that no backward reads."""
    if bias is not None:
        assert y.flags.c_contiguous  # kernel outputs are: the reshape below is a view
        b = np.ascontiguousarray(bias._data, dtype=y.dtype)
        elementwise.add_channel_bias(y.reshape(y.shape[0], y.shape[1], -1), b,
                                     runtime.threads_in_use())


def _node(out: np.ndarray, input: Tensor, weight: Tensor, bias: Tensor | None, backward):
    """One autograd node for a whole conv (the 5-D reshapes and the bias included); its
    gradients are the kernels' fresh outputs (or views of them)."""
    if bias is None:
        return _result(out, (input, weight), _fresh_gradients(lambda g: backward(g)[:2]))
    return _result(out, (input, weight, bias), _fresh_gradients(backward))


# ---- public convolutions -------------------------------------------------------------------
def _convnd(nd, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    op = f"conv{nd}d"
    _check_tensors(op, input, weight, bias, nd)
    geo = conv_geometry(op, nd, _batched_shape(input, nd), weight.shape, stride, padding,
                        dilation, groups)
    _check_bias(op, bias, weight.shape[0])
    x5, w5 = input._data.reshape(geo.x_shape), weight._data.reshape(geo.w_shape)
    y5 = dispatch.conv_forward(x5, w5, geo)
    _add_bias(y5, bias)

    def backward(g):
        g5 = g.reshape(geo.y_shape)
        gx = dispatch.conv_backward_data(g5, w5, geo) if input.requires_grad else None
        gw = dispatch.conv_backward_weight(x5, g5, geo) if weight.requires_grad else None
        return (
            None if gx is None else gx.reshape(input.shape),
            None if gw is None else gw.reshape(weight.shape),
            _bias_grad(g5, bias),
        )

    return _node(y5.reshape(_out_shape(input, nd, geo.y_shape)), input, weight, bias, backward)


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


def _conv_transposend(
    nd, input, weight, bias, stride, padding, output_padding, groups, dilation
) -> Tensor:
    """The backward-data of the conv described by the geometry (roles swapped: the input
    plays that conv's y, the output its x)."""
    op = f"conv_transpose{nd}d"
    _check_tensors(op, input, weight, bias, nd)
    geo, unreached = conv_transpose_geometry(op, nd, _batched_shape(input, nd), weight.shape,
                                             stride, padding, output_padding, groups, dilation)
    _check_bias(op, bias, weight.shape[1] * groups)
    x5, w5 = input._data.reshape(geo.y_shape), weight._data.reshape(geo.w_shape)
    y5 = dispatch.conv_backward_data(x5, w5, geo)
    extra = ((0, 0), (0, 0)) + tuple((0, u) for u in lift(unreached, 0))
    if any(unreached):  # rows past every kernel tap: zeros (then the bias)
        y5 = np.pad(y5, extra)
    _add_bias(y5, bias)
    reached = (slice(None), slice(None)) + tuple(slice(0, n) for n in geo.in_size)

    def backward(g):
        g5 = g.reshape(y5.shape)[reached]
        gx = dispatch.conv_forward(g5, w5, geo) if input.requires_grad else None
        gw = dispatch.conv_backward_weight(g5, x5, geo) if weight.requires_grad else None
        return (
            None if gx is None else gx.reshape(input.shape),
            None if gw is None else gw.reshape(weight.shape),
            _bias_grad(g.reshape(y5.shape), bias),
        )

    return _node(y5.reshape(_out_shape(input, nd, y5.shape)), input, weight, bias, backward)


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
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad must be a tuple of ints, got {type(pad).__name__} {pad!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"pad: value must be a number, got {type(value).__name__} {value!r}")
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
    out[tuple(dst)] = input._data[tuple(src)]
    in_shape, dtype = input.shape, input.dtype

    def backward(g):
        grad = np.zeros(in_shape, dtype)
        grad[tuple(src)] = g[tuple(dst)]
        return (grad,)

    return _result(out, (input,), backward)


def _pad_gather(input: Tensor, pairs, mode: str) -> Tensor:
    indices = [(dim, _source_index(input.shape[dim], b, a, mode)) for dim, b, a in pairs]
    out = input._data
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
