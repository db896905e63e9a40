"""How a framework stores a conv's weight and bias, as reshapes of PyTorch's canonical shapes
(so a conversion is a view and gradients flow through it)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .signature import KERNEL_SYMBOLS, kind_info
from .spec import ConvSpec


@dataclass(frozen=True)
class Layout:
    """How a framework stores the weight and bias, as reshapes of the canonical shapes."""

    grouped_weight: bool = False  # (g, c0/g, c1, *k) when groups > 1 (MegEngine)
    broadcast_bias: bool = False  # (1, out, 1, ...) instead of (out,) (MegEngine)
    conv1d_as_2d: bool = False  # 1-D weights stored (c0, c1, 1, k) (MindSpore)
    bias_first: bool = False  # state_dict lists bias before weight (MegEngine)

    def weight_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        shape = spec.weight_shape
        if self.grouped_weight and spec.groups > 1:
            return (spec.groups, shape[0] // spec.groups, *shape[1:])
        if self.conv1d_as_2d and spec.nd == 1:
            return (*shape[:2], 1, *shape[2:])
        return shape

    def bias_shape(self, spec: ConvSpec) -> tuple[int, ...]:
        if self.broadcast_bias:
            return (1, spec.out_channels) + (1,) * spec.nd
        return (spec.out_channels,)

    def export(self, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec):
        """Canonical arrays -> this layout's entries (copies), in the framework's key order."""
        entries = [("weight", weight.reshape(self.weight_shape(spec)).copy())]
        if bias is not None:
            entry = ("bias", bias.reshape(self.bias_shape(spec)).copy())
            entries.insert(0 if self.bias_first else 1, entry)
        return OrderedDict(entries)

    def describe_weight(self, kind: str, grouped: bool) -> str:
        nd, transposed = kind_info(kind)
        c0, c1 = ("in", "out") if transposed else ("out", "in")
        k = list(KERNEL_SYMBOLS[nd])
        if self.grouped_weight:
            dims = ["g", f"{c0}/g", f"{c1}/g"] if grouped else [c0, c1]
        else:
            dims = [c0, f"{c1}/g"]
        if self.conv1d_as_2d and nd == 1:
            k = ["1", *k]
        return "(" + ", ".join(dims + k) + ")"

    def describe_bias(self, kind: str) -> str:
        if not self.broadcast_bias:
            return "(out,)"
        return "(" + ", ".join(["1", "out"] + ["1"] * kind_info(kind)[0]) + ")"
