"""The three canonical padding rules every framework's padding arguments resolve into, as data.

* :class:`ConvPadding`: fixed ``before``/``after`` amounts per spatial dim and a pad ``mode``;
* :class:`SamePadding`: TF-style 'same' for any stride (MindSpore), which depends on the input
  size (``minidl._geometry.tf_same_split``);
* :class:`TransposeWindow`: the part of the full transposed conv that is the output.

The layers (``minidl/nn/_conv_rules.py``) turn a rule into calls of ``minidl.nn.functional``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ConvSpec, output_padding_fits


@dataclass(frozen=True)
class ConvPadding:
    """Fixed padding: ``before``/``after`` per spatial dim, filled by ``mode`` ('zeros',
    'reflect', 'replicate', 'circular'; a non-zero mode is an F.pad in front of the conv)."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    mode: str = "zeros"

    def describe(self) -> str:
        if self.before == self.after:
            return f"{self.before} both sides, {self.mode}"
        return f"before {self.before}, after {self.after}, {self.mode}"


@dataclass(frozen=True)
class SamePadding:
    """TF-style 'same' for any stride (MindSpore): out = ceil(in / s), the padding needed to
    get there split with the odd extra after, with zeros. It depends on the input size, so it
    is resolved at every forward."""

    mode: str = "zeros"

    def describe(self) -> str:
        return "TF 'same': out = ceil(in / stride), depends on the input size"


@dataclass(frozen=True)
class TransposeWindow:
    """Which part of the full transposed conv (size (in-1)*s + d*(k-1) + 1 per dim) is the
    output: ``before`` positions cropped at the start and ``after`` at the end (a negative
    ``after`` extends the output with positions that only get the bias), then ``zeros``
    positions appended after the bias (MindSpore Conv2dTranspose's ``output_padding``).

    PyTorch's ``padding=p, output_padding=op`` is ``TransposeWindow(p, p - op, 0)``."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    zeros: tuple[int, ...]

    def torch_arguments(self, spec: ConvSpec) -> tuple[tuple, tuple] | None:
        """``(padding, output_padding)`` when F.conv_transpose can compute this window."""
        if any(self.zeros) or any(b < 0 for b in self.before):
            return None
        output_padding = tuple(b - a for b, a in zip(self.before, self.after, strict=True))
        if min(output_padding) >= 0 and output_padding_fits(
            output_padding, spec.stride, spec.dilation
        ):
            return self.before, output_padding
        return None

    def describe(self) -> str:
        text = f"crop {self.before} at the start, {self.after} at the end"
        return text + (f", then {self.zeros} zeros appended" if any(self.zeros) else "")
