"""The one parse of a convolution's arguments: ints, tuples, 'same', pairs -> a frozen geometry.

Every convolution (Conv1d/2d/3d, ConvTranspose1d/2d/3d and all their gradients) runs on three
kernel primitives in 3 spatial dims (``minidl._ext.dispatch``). This module turns the user's
arguments into the :class:`ConvGeometry` those primitives take: lifted to 3-D (1-D is
``(1, 1, W)``, 2-D is ``(1, H, W)``), padding split into before/after amounts, the output size
computed, and everything checked once, with messages that name the user's own shapes. The
kernels then only assert that the arrays they are handed match the geometry.

It also holds the small parsers that the profiles and the pooling functions share (an int or a
tuple of ints, the 'same' split), so each rule is written once. It imports nothing from
``minidl.nn`` or ``minidl.profiles``: both of those use it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

Triple = tuple[int, int, int]


# ---- ints and tuples of ints ---------------------------------------------------------------------
def as_int(value: Any) -> int | None:
    """``value`` as an int if it is one (Python or numpy integer, not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def int_tuple(
    value: Any, nd: int, name: str, op: str, minimum: int | None = None, single: bool = True
) -> tuple[int, ...]:
    """An int, or a tuple/list of ``nd`` ints (or of one int when ``single``), as ``nd`` ints.

    TypeError for anything that is not ints, ValueError for the wrong length or an entry below
    ``minimum``; the messages name ``op`` and ``name`` as the user wrote them."""
    scalar = as_int(value)
    if scalar is not None:
        values: tuple[int, ...] = (scalar,) * nd
    elif isinstance(value, (tuple, list)) and None not in (parts := [as_int(v) for v in value]):
        if len(parts) == nd:
            values = tuple(parts)  # type: ignore[arg-type]
        elif len(parts) == 1 and single:
            values = (parts[0],) * nd  # type: ignore[assignment]
        else:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if minimum is not None and min(values, default=minimum) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} in every dim, got {value!r}")
    return values


def lift(values: tuple[int, ...], fill: int) -> Triple:
    """A spatial tuple of 1-3 dims as 3 dims, the missing leading dims set to ``fill``."""
    return (fill,) * (3 - len(values)) + tuple(values)  # type: ignore[return-value]


# ---- padding rules -------------------------------------------------------------------------------
def same_split(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple, tuple]:
    """'same' at stride 1: ``d * (k - 1)`` in total, the odd extra after (right/bottom).

    PyTorch and MindSpore agree on this (see docs/conventions.md)."""
    total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    before = tuple(t // 2 for t in total)
    return before, tuple(t - b for t, b in zip(total, before, strict=True))


def tf_same_split(
    size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple, tuple]:
    """TF-style 'same' for any stride (MindSpore's pad_mode='same'): out = ceil(in / s), the
    padding needed to get there split with the odd extra after. Depends on the input size."""
    before, after = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        needed = max(0, (-(-n // s) - 1) * s + d * (k - 1) + 1 - n)
        before.append(needed // 2)
        after.append(needed - needed // 2)
    return tuple(before), tuple(after)


def transpose_output_size(size, kernel, stride, padding, output_padding, dilation) -> tuple:
    """PyTorch's rule: ``(in - 1) * s - 2p + d * (k - 1) + output_padding + 1`` per dim."""
    return tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + o + 1
        for n, k, s, p, o, d in zip(size, kernel, stride, padding, output_padding, dilation,
                                    strict=True)
    )


def check_output_padding(op: str, output_padding, stride, dilation) -> None:
    """``output_padding < max(stride, dilation)`` in every dim (PyTorch and MindSpore)."""
    if any(o >= max(s, d) for o, s, d in zip(output_padding, stride, dilation, strict=True)):
        raise ValueError(
            f"{op}: output_padding {tuple(output_padding)} must be smaller than either stride "
            f"{tuple(stride)} or dilation {tuple(dilation)} in every dim"
        )


# ---- the geometry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """One convolution in the 3-D form the kernels compute: x (N, C, D, H, W) with weight
    (O, C/groups, kD, kH, kW) gives y (N, O, oD, oH, oW). A transposed conv is described by
    the conv it is the backward-data of: its input is this y, its output this x."""

    x_shape: tuple[int, int, int, int, int]
    w_shape: tuple[int, int, int, int, int]
    y_shape: tuple[int, int, int, int, int]
    stride: Triple
    dilation: Triple
    pad_before: Triple
    pad_after: Triple
    groups: int

    @property
    def kernel(self) -> Triple:
        return self.w_shape[2:]  # type: ignore[return-value]

    @property
    def in_size(self) -> Triple:
        return self.x_shape[2:]  # type: ignore[return-value]

    @property
    def out_size(self) -> Triple:
        return self.y_shape[2:]  # type: ignore[return-value]

    @property
    def in_per_group(self) -> int:
        return self.w_shape[1]

    @property
    def out_per_group(self) -> int:
        return self.w_shape[0] // self.groups

    @property
    def pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the GEMM runs on x itself (no unfolding)."""
        return (
            self.kernel == (1, 1, 1) and self.stride == (1, 1, 1)
            and self.pad_before == (0, 0, 0) and self.pad_after == (0, 0, 0)
        )

    @property
    def depthwise(self) -> bool:
        """One input channel per group (groups == C)."""
        return self.w_shape[1] == 1


def output_size(in_size, kernel, stride, dilation, before, after) -> tuple[int, ...]:
    """``(in + before + after - d * (k - 1) - 1) // s + 1`` per dim."""
    return tuple(
        (n + b + a - d * (k - 1) - 1) // s + 1
        for n, k, s, d, b, a in zip(in_size, kernel, stride, dilation, before, after, strict=True)
    )


def _check_fits(op: str, size, before, after, kernel, dilation) -> None:
    padded = tuple(n + b + a for n, b, a in zip(size, before, after, strict=True))
    effective = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    if any(p < e for p, e in zip(padded, effective, strict=True)):
        raise ValueError(
            f"{op}: padded input size {padded} is smaller than the effective kernel size "
            f"{effective} (dilation * (kernel - 1) + 1): kernel size can't be greater than the "
            f"padded input size"
        )


def _check_groups(op: str, groups: Any) -> int:
    value = as_int(groups)
    if value is None:
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if value < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {value}")
    return value


def _check_positive_shape(op: str, name: str, shape: tuple[int, ...], dims: slice) -> None:
    if min(shape[dims], default=1) < 1:
        raise ValueError(
            f"{op}: {name} of shape {shape} has a zero-sized dim; only the batch may be empty"
        )


def _is_pairs(padding: Any, nd: int) -> bool:
    return (
        isinstance(padding, (tuple, list))
        and len(padding) == nd
        and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding)
    )


def conv_padding(op: str, padding: Any, nd: int, kernel, stride, dilation) -> tuple[tuple, tuple]:
    """``padding`` of a conv -> (before, after) per spatial dim.

    An int or a tuple (both sides), 'same' (stride 1 only, as PyTorch), 'valid', or minidl's
    own form for asymmetric zero padding: one ``(before, after)`` pair per spatial dim."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions "
                    f"(stride={stride})"
                )
            return same_split(kernel, dilation)
        raise ValueError(
            f"{op}: padding must be an int, a tuple of {nd} ints, 'same' or 'valid', "
            f"got {padding!r}"
        )
    if _is_pairs(padding, nd):
        before = int_tuple([p[0] for p in padding], nd, "padding", op)
        after = int_tuple([p[1] for p in padding], nd, "padding", op)
    else:
        before = after = int_tuple(padding, nd, "padding", op)
    if min(before + after) < 0:
        raise ValueError(f"{op}: padding must be >= 0 in every dim, got {padding!r}")
    return before, after


def _plain(value: Any) -> bool:
    """Only ints and strings, possibly in (nested) tuples: its own exact cache key."""
    kind = type(value)
    if kind is int or kind is str:
        return True
    return kind is tuple and all(_plain(v) for v in value)


def _key(value: Any) -> Any:
    """A cache key that keeps types apart (True == 1.0 == 1 and all hash alike, but only 1 is
    an int): the value itself where it is plain, else tagged with its types."""
    if _plain(value):
        return value
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_key(v) for v in value))
    return (type(value), value)


_CACHE: dict[Any, Any] = {}
_CACHE_SIZE = 512  # distinct convolutions remembered; a model has a handful


def _cached(build, *args: Any) -> Any:
    """``build(*args)``, remembered per argument values and types (a model calls each conv
    with the same arguments at every step: the checks then cost one dict lookup)."""
    try:
        key = (build, *args) if all(map(_plain, args)) else (build, *map(_key, args))
        found = _CACHE.get(key)
    except TypeError:  # an unhashable argument (a numpy array, say): no caching
        return build(*args)
    if found is None:
        found = build(*args)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = found
    return found


def conv_geometry(op: str, nd: int, x_shape: tuple, w_shape: tuple, stride: Any, padding: Any,
                  dilation: Any, groups: Any) -> ConvGeometry:
    """Validate a conv's arguments against the (batched) input and weight shapes; the 3-D
    geometry."""
    return _cached(_conv_geometry, op, nd, x_shape, w_shape, stride, padding, dilation, groups)


def _conv_geometry(op, nd, x_shape, w_shape, stride, padding, dilation, groups) -> ConvGeometry:
    groups = _check_groups(op, groups)
    stride = int_tuple(stride, nd, "stride", op, minimum=1)
    dilation = int_tuple(dilation, nd, "dilation", op, minimum=1)
    kernel = w_shape[2:]
    before, after = conv_padding(op, padding, nd, kernel, stride, dilation)
    _check_positive_shape(op, "weight", w_shape, slice(None))
    _check_positive_shape(op, "input", x_shape, slice(1, None))
    n, c = x_shape[:2]
    o, c_per_group = w_shape[:2]
    if c != c_per_group * groups:
        raise ValueError(
            f"{op}: input has {c} channels but weight {w_shape} expects "
            f"{c_per_group * groups} with groups={groups} (input channels must equal "
            f"weight.shape[1] * groups)"
        )
    if o % groups:
        raise ValueError(
            f"{op}: weight {w_shape} has {o} output channels, not divisible by groups={groups}"
        )
    _check_fits(op, x_shape[2:], before, after, kernel, dilation)
    out = output_size(x_shape[2:], kernel, stride, dilation, before, after)
    return _lifted(x_shape, w_shape, (n, o) + out, stride, dilation, before, after, groups)


def _lifted(x_shape, w_shape, y_shape, stride, dilation, before, after, groups) -> ConvGeometry:
    def shape5(shape):
        return tuple(shape[:2]) + lift(tuple(shape[2:]), 1)

    return ConvGeometry(
        shape5(x_shape), shape5(w_shape), shape5(y_shape), lift(stride, 1), lift(dilation, 1),
        lift(before, 0), lift(after, 0), groups,
    )


def conv_transpose_geometry(
    op: str, nd: int, x_shape: tuple, w_shape: tuple, stride: Any, padding: Any,
    output_padding: Any, groups: Any, dilation: Any,
) -> tuple[ConvGeometry, tuple[int, ...]]:
    """Validate a transposed conv's arguments; see :func:`_conv_transpose_geometry`."""
    return _cached(_conv_transpose_geometry, op, nd, x_shape, w_shape, stride, padding,
                   output_padding, groups, dilation)


def _conv_transpose_geometry(op, nd, x_shape, w_shape, stride, padding, output_padding, groups,
                             dilation) -> tuple[ConvGeometry, tuple[int, ...]]:
    """Validate a transposed conv's arguments; the geometry of the conv whose backward-data it
    is, and how many trailing positions per dim no kernel tap reaches (zero-padded after).

    The equivalent conv maps the output back to the input size with padding p before and
    ``p - output_padding + (stride - 1)`` after (the rows the floor division absorbs). That is
    negative only when output_padding >= stride (allowed when dilation > stride): those
    trailing rows lie past every tap, so they are computed as a smaller output and padded."""
    groups = _check_groups(op, groups)
    stride = int_tuple(stride, nd, "stride", op, minimum=1)
    dilation = int_tuple(dilation, nd, "dilation", op, minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
    padding = int_tuple(padding, nd, "padding", op)
    output_padding = int_tuple(output_padding, nd, "output_padding", op)
    if min(padding + output_padding) < 0:
        raise ValueError(
            f"{op}: padding and output_padding must be >= 0, got {padding} and {output_padding}"
        )
    check_output_padding(op, output_padding, stride, dilation)
    _check_positive_shape(op, "weight", w_shape, slice(None))
    _check_positive_shape(op, "input", x_shape, slice(1, None))
    n, c = x_shape[:2]
    kernel = w_shape[2:]
    if c != w_shape[0]:
        raise ValueError(
            f"{op}: input has {c} channels but weight {w_shape} expects "
            f"{w_shape[0]} (weight is (in_channels, out_channels / groups, *kernel))"
        )
    if c % groups:
        raise ValueError(
            f"{op}: weight {w_shape} has {c} input channels, not divisible by groups={groups}"
        )
    out = transpose_output_size(x_shape[2:], kernel, stride, padding, output_padding, dilation)
    if min(out) < 1:
        raise ValueError(
            f"{op}: output size {out} is too small (must be >= 1) for input {x_shape}, "
            f"kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}"
        )
    after = tuple(p - o + s - 1 for p, o, s in zip(padding, output_padding, stride, strict=True))
    unreached = tuple(max(-a, 0) for a in after)
    reached = tuple(m - u for m, u in zip(out, unreached, strict=True))
    conv_x = (n, w_shape[1] * groups) + reached
    conv_w = (c, w_shape[1]) + tuple(kernel)  # the conv's weight: (O = c, C/g, *k)
    geo = _lifted(conv_x, conv_w, x_shape, stride, dilation, padding,
                  tuple(max(a, 0) for a in after), groups)
    return geo, unreached
