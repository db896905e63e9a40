"""Running a conv layer's padding rule (``minidl/profiles/padding.py``) with the public
functional API.

:func:`runner` turns a spec into a callable ``run(x, weight, bias)`` with every argument of the
functional call fixed; a layer builds it once per configuration (at construction, and again
when one of its attributes changes), so a forward does not parse its arguments again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._geometry import tf_same_split
from ..profiles.padding import ConvPadding, SamePadding, TransposeWindow
from ..profiles.spec import ConvSpec
from ..tensor import Tensor
from . import functional as F

Runner = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def runner(spec: ConvSpec) -> Runner:
    """The functional call that computes ``spec`` (its weight canonical, PyTorch's shape)."""
    rule = spec.padding
    if isinstance(rule, TransposeWindow):
        return _transposed(spec, rule)
    if isinstance(rule, SamePadding):
        return TFSameConv(CONV[spec.nd], spec.kernel_size, spec.stride, spec.dilation, spec.groups)
    if isinstance(rule, ConvPadding):
        return _conv(spec, rule)
    raise TypeError(f"{spec.kind}: unknown padding rule {rule!r}")


def flat_pad(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, ...]:
    """Per-dim (before, after) -> F.pad's amounts, which start from the last dim."""
    return tuple(v for b, a in zip(reversed(before), reversed(after), strict=True) for v in (b, a))


# ---- conv ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conv:
    """``conv(x, w, b, stride, padding, dilation, groups)``, after ``F.pad(x, pad, pad_mode)``
    when ``pad`` is set (the non-zero padding modes)."""

    conv: Callable[..., Tensor]
    stride: tuple[int, ...]
    padding: Any  # a tuple (both sides) or ((before, after), ...) pairs
    dilation: tuple[int, ...]
    groups: int
    pad: tuple[int, ...] = ()
    pad_mode: str = "constant"

    def __call__(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        if self.pad:
            x = F.pad(x, self.pad, mode=self.pad_mode)
        return self.conv(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def _conv(spec: ConvSpec, rule: ConvPadding) -> Conv:
    conv = CONV[spec.nd]
    if rule.mode != "zeros":
        zeros = (0,) * spec.nd
        pad = flat_pad(rule.before, rule.after)
        return Conv(conv, spec.stride, zeros, spec.dilation, spec.groups, pad, rule.mode)
    if rule.before == rule.after:
        padding: Any = rule.before
    else:
        padding = tuple(zip(rule.before, rule.after, strict=True))
    return Conv(conv, spec.stride, padding, spec.dilation, spec.groups)


@dataclass(frozen=True)
class TFSameConv:
    """TF-style 'same' (MindSpore's pad_mode='same' at any stride): the padding is worked out
    from each input's size, then ``conv`` runs with it."""

    conv: Callable[..., Tensor]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def __call__(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        size = tuple(x.shape[-len(self.kernel_size):])
        before, after = tf_same_split(size, self.kernel_size, self.stride, self.dilation)
        pairs = tuple(zip(before, after, strict=True))
        return self.conv(x, w, b, self.stride, pairs, self.dilation, self.groups)


# ---- transposed conv ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TransposedConv:
    """``conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation)``: a window
    PyTorch's arguments can select."""

    conv: Callable[..., Tensor]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    groups: int
    dilation: tuple[int, ...]

    def __call__(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return self.conv(
            x, w, b, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )


@dataclass(frozen=True)
class CroppedTransposedConv:
    """Any other window: the full transposed conv, cropped (or extended with zeros, which
    then get only the bias) by ``crop``, the bias added, then ``zeros`` appended (MindSpore
    Conv2dTranspose's output_padding)."""

    full: TransposedConv
    crop: tuple[int, ...]  # F.pad amounts: negative crops, positive extends
    zeros: tuple[int, ...]  # F.pad amounts appended after the bias, or ()

    def __call__(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        y = F.pad(self.full(x, w, None), self.crop)
        if b is not None:
            y = y + b.reshape((-1,) + (1,) * len(self.full.stride))
        return F.pad(y, self.zeros) if self.zeros else y


def _transposed(spec: ConvSpec, window: TransposeWindow) -> TransposedConv | CroppedTransposedConv:
    conv, nd = CONV_TRANSPOSE[spec.nd], spec.nd
    direct = window.torch_arguments(spec)
    if direct is not None:
        padding, output_padding = direct
        stride, groups, dilation = spec.stride, spec.groups, spec.dilation
        return TransposedConv(conv, stride, padding, output_padding, groups, dilation)
    zeros = (0,) * nd
    full = TransposedConv(conv, spec.stride, zeros, zeros, spec.groups, spec.dilation)
    crop = flat_pad(tuple(-v for v in window.before), tuple(-v for v in window.after))
    appended = flat_pad(zeros, window.zeros) if any(window.zeros) else ()
    return CroppedTransposedConv(full, crop, appended)
