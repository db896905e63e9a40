"""The PyTorch side of :func:`minidl.export.to_torch`: one builder per record of ``_describe``.

A conv whose padding rule PyTorch's arguments cannot express becomes a subclass of PyTorch's
own layer (so ``isinstance(m, nn.Conv2d)`` holds and the parameters keep PyTorch's names)
whose ``forward`` pads explicitly with ``F.pad`` first, or crops the full transposed conv:

* :class:`PadConv1d`/``2d``/``3d``: fixed amounts that differ before and after (any mode);
* :class:`TFSameConv1d`/``2d``/``3d``: TF-style 'same' at a stride (MindSpore's pad_mode='same'),
  the padding worked out from each input's size;
* :class:`WindowConvTranspose1d`/``2d``/``3d``: a transposed-conv window other than PyTorch's
  ``padding``/``output_padding`` (MindSpore's pad modes and output_padding).

A pool with such padding has no parameters, so it becomes a small :class:`PadPool` module.

This module imports torch; ``minidl.export`` imports it only when called.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn

from .._geometry import tf_same_split
from ..nn.module import Module
from ..profiles.padding import SamePadding, TransposeWindow
from . import _describe as d

# minidl's padding modes -> F.pad's
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
             "circular": "circular"}


def flat_pad(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, ...]:
    """Per-dim (before, after) -> F.pad's amounts, which start from the last dim."""
    return tuple(v for b, a in zip(reversed(before), reversed(after), strict=True) for v in (b, a))


# ---- convs with a padding PyTorch's arguments cannot express ------------------------------------
class _PadFirst:
    """``F.pad(x, pad, mode)``, then the conv without padding."""

    def __init__(self, *args: Any, pad: tuple[int, ...], pad_mode: str, **kwargs: Any) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.pad, self.pad_mode = tuple(pad), pad_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(TF.pad(input, self.pad, mode=self.pad_mode))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}, pad_mode={self.pad_mode!r}"


class _TFSame:
    """TF-style 'same' at any stride: out = ceil(in / stride), the padding needed to get there
    split with the odd extra after (worked out from each input's size), zeros."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        size = tuple(input.shape[-len(self.kernel_size):])
        before, after = tf_same_split(size, self.kernel_size, self.stride, self.dilation)
        return super().forward(TF.pad(input, flat_pad(before, after)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tf_same=True"


class _Window:
    """The full transposed conv, cropped by ``crop`` (F.pad amounts: negative crops, positive
    extends with positions that get only the bias), the bias added, then ``zeros`` appended."""

    def __init__(self, *args: Any, crop: tuple[int, ...], zeros: tuple[int, ...],
                 **kwargs: Any) -> None:
        super().__init__(*args, padding=0, output_padding=0, **kwargs)
        self.crop, self.zeros = tuple(crop), tuple(zeros)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        nd = len(self.kernel_size)
        full = CONV_TRANSPOSE[nd](input, self.weight, None, self.stride, 0, 0, self.groups,
                                  self.dilation)
        y = TF.pad(full, self.crop)
        if self.bias is not None:
            y = y + self.bias.reshape((-1,) + (1,) * nd)
        return TF.pad(y, self.zeros) if any(self.zeros) else y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, crop={self.crop}, zeros={self.zeros}"


CONV_TRANSPOSE = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}


class PadConv1d(_PadFirst, nn.Conv1d):
    pass


class PadConv2d(_PadFirst, nn.Conv2d):
    pass


class PadConv3d(_PadFirst, nn.Conv3d):
    pass


class TFSameConv1d(_TFSame, nn.Conv1d):
    pass


class TFSameConv2d(_TFSame, nn.Conv2d):
    pass


class TFSameConv3d(_TFSame, nn.Conv3d):
    pass


class WindowConvTranspose1d(_Window, nn.ConvTranspose1d):
    pass


class WindowConvTranspose2d(_Window, nn.ConvTranspose2d):
    pass


class WindowConvTranspose3d(_Window, nn.ConvTranspose3d):
    pass


CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
PAD_CONVS = {1: PadConv1d, 2: PadConv2d, 3: PadConv3d}
TF_SAME_CONVS = {1: TFSameConv1d, 2: TFSameConv2d, 3: TFSameConv3d}
TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
WINDOWS = {1: WindowConvTranspose1d, 2: WindowConvTranspose2d, 3: WindowConvTranspose3d}


# ---- one builder per record ---------------------------------------------------------------------
def _conv(op: d.Conv, dtype: torch.dtype) -> nn.Module:
    spec, rule, nd = op.spec, op.spec.padding, op.spec.nd
    common = dict(
        in_channels=spec.in_channels, out_channels=spec.out_channels,
        kernel_size=spec.kernel_size, stride=spec.stride, dilation=spec.dilation,
        groups=spec.groups, bias=spec.bias, dtype=dtype,
    )
    if isinstance(rule, TransposeWindow):
        return _transposed(rule, spec, common)
    if isinstance(rule, SamePadding):
        return TF_SAME_CONVS[nd](**common)
    if rule.before == rule.after:
        return CONVS[nd](**common, padding=rule.before, padding_mode=rule.mode)
    return PAD_CONVS[nd](**common, pad=flat_pad(rule.before, rule.after),
                         pad_mode=PAD_MODES[rule.mode])


def _transposed(window: TransposeWindow, spec: Any, common: dict[str, Any]) -> nn.Module:
    nd = spec.nd
    direct = window.torch_arguments(spec)
    if direct is not None:
        padding, output_padding = direct
        return TRANSPOSED[nd](**common, padding=padding, output_padding=output_padding)
    crop = flat_pad(tuple(-v for v in window.before), tuple(-v for v in window.after))
    zeros = flat_pad((0,) * nd, window.zeros)
    return WINDOWS[nd](**common, crop=crop, zeros=zeros)


def _batch_norm(op: d.BatchNorm, dtype: torch.dtype) -> nn.Module:
    cls = nn.BatchNorm1d if op.nd == 1 else nn.BatchNorm2d
    return cls(op.num_features, eps=op.eps, momentum=op.momentum, affine=op.affine,
               track_running_stats=op.track_running_stats, dtype=dtype, bias=op.bias)


def _pool(op: d.Pool, dtype: torch.dtype) -> nn.Module:
    nd = op.nd
    if not d.pool_is_native(op):
        return PadPool(op)
    padding = op.padding.before
    if op.kind == "max":
        cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
        return cls(op.kernel_size, op.stride, padding, op.dilation,
                   return_indices=op.return_indices, ceil_mode=op.ceil_mode)
    if nd == 1:
        return nn.AvgPool1d(op.kernel_size, op.stride, padding, op.ceil_mode,
                            op.count_include_pad)
    cls = nn.AvgPool2d if nd == 2 else nn.AvgPool3d
    return cls(op.kernel_size, op.stride, padding, op.ceil_mode, op.count_include_pad,
               op.divisor_override)


class PadPool(nn.Module):
    """A pool whose padding PyTorch's pools cannot take (different before and after, or
    TF-style 'same' from each input's size): ``F.pad`` first, with -inf for a max; an average
    counting only in-bounds positions divides the padded sums by the pooled in-bounds mask."""

    def __init__(self, op: d.Pool) -> None:
        super().__init__()
        self.op = op

    def pool(self, input: torch.Tensor, *args: Any) -> torch.Tensor:
        return getattr(TF, f"{self.op.kind}_pool{self.op.nd}d")(input, *args)

    def pads(self, input: torch.Tensor) -> tuple[int, ...]:
        op, rule = self.op, self.op.padding
        if isinstance(rule, SamePadding):
            size = tuple(input.shape[-op.nd:])
            return flat_pad(*tf_same_split(size, op.kernel_size, op.stride, op.dilation))
        return flat_pad(rule.before, rule.after)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        op, pads = self.op, self.pads(input)
        if op.kind == "max":
            padded = TF.pad(input, pads, value=-math.inf)
            return self.pool(padded, op.kernel_size, op.stride, 0, op.dilation)
        total = self.pool(TF.pad(input, pads), op.kernel_size, op.stride, 0)
        if op.count_include_pad and not isinstance(op.padding, SamePadding):
            return total
        ones = torch.ones((1, 1, *input.shape[-op.nd:]), dtype=input.dtype)
        count = self.pool(TF.pad(ones, pads), op.kernel_size, op.stride, 0)
        return total / count.reshape(count.shape[-total.ndim:])  # (N, C, ...) or (C, ...)

    def extra_repr(self) -> str:
        return repr(self.op)


ACTIVATIONS: dict[str, Callable[[Any], nn.Module]] = {
    "relu": lambda _: nn.ReLU(),
    "leaky_relu": nn.LeakyReLU,
    "tanh": lambda _: nn.Tanh(),
    "sigmoid": lambda _: nn.Sigmoid(),
    "gelu": lambda approximate: nn.GELU(approximate=approximate),
    "softmax": nn.Softmax,
    "log_softmax": nn.LogSoftmax,
}

DROPOUTS = {0: nn.Dropout, 1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}

BUILDERS: dict[type, Callable[[Any, torch.dtype], nn.Module]] = {
    d.Conv: _conv,
    d.Linear: lambda op, dtype: nn.Linear(op.in_features, op.out_features, op.bias,
                                          dtype=dtype),
    d.BatchNorm: _batch_norm,
    d.Pool: _pool,
    d.AdaptiveAvgPool2d: lambda op, _: nn.AdaptiveAvgPool2d(op.output_size),
    d.Activation: lambda op, _: ACTIVATIONS[op.name](op.argument),
    d.Flatten: lambda op, _: nn.Flatten(op.start_dim, op.end_dim),
    d.Dropout: lambda op, _: DROPOUTS[op.nd](op.p),
    d.LayerNorm: lambda op, dtype: nn.LayerNorm(op.normalized_shape, op.eps,
                                                op.elementwise_affine, op.bias, dtype=dtype),
    d.Embedding: lambda op, dtype: nn.Embedding(
        op.num_embeddings, op.embedding_dim, op.padding_idx, op.max_norm, op.norm_type,
        op.scale_grad_by_freq, op.sparse, dtype=dtype),
    d.Upsample: lambda op, _: nn.Upsample(op.size, op.scale_factor, op.mode, op.align_corners,
                                          op.recompute_scale_factor),
    d.Identity: lambda op, _: nn.Identity(),
}


def build(op: Any, model: Module) -> nn.Module:
    """The torch module for ``op`` (the description of ``model``), parameters uninitialised."""
    if isinstance(op, d.Chain):
        children = dict(model.named_children())
        return nn.Sequential(OrderedDict(
            (name, build(child, children[name])) for name, child in op.children
        ))
    return BUILDERS[type(op)](op, _dtype(model))


def _dtype(model: Module) -> torch.dtype:
    """The torch dtype of the layer's floating parameters and buffers (float32 if none)."""
    for _, value in model.state_dict(profile="torch").items():
        if value.dtype.kind == "f":
            return {np.float64: torch.float64}.get(value.dtype.type, torch.float32)
    return torch.float32


def _drop_missing_counters(module: nn.Module, state: dict[str, Any]) -> None:
    """A BatchNorm built under MindSpore's or MegEngine's profile has no num_batches_tracked
    (its momentum is fixed, so nothing reads the counter): PyTorch's layer goes without one too
    (a None buffer, which PyTorch's BatchNorm skips), so the state dicts have the same keys."""
    for name, m in module.named_modules():
        key = f"{name}.num_batches_tracked" if name else "num_batches_tracked"
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and key not in state \
                and m.momentum is not None and m.track_running_stats:
            m.register_buffer("num_batches_tracked", None)


def _copy_state(module: nn.Module, state: dict[str, Any]) -> None:
    """minidl's state dict in PyTorch's layout into ``module``: the same names and shapes."""
    target = module.state_dict(keep_vars=True)
    if set(target) != set(state):
        raise RuntimeError(  # a bug in an exporter, not a user error
            f"to_torch: PyTorch's names {sorted(set(target) - set(state))} and minidl's "
            f"{sorted(set(state) - set(target))} differ"
        )
    with torch.no_grad():
        for key, tensor in target.items():
            value = torch.from_numpy(np.array(state[key]))
            if tuple(value.shape) != tuple(tensor.shape):
                raise RuntimeError(f"to_torch: {key} is {tuple(value.shape)} in minidl's "
                                   f"checkpoint but {tuple(tensor.shape)} in PyTorch's layer")
            tensor.copy_(value)


def to_torch(model: Module) -> nn.Module:
    """See :func:`minidl.export.to_torch`."""
    module = build(d.describe(model), model)
    state = model.state_dict(profile="torch")
    _drop_missing_counters(module, state)
    _copy_state(module, state)
    originals = dict(model.named_modules())
    for name, m in module.named_modules():
        original = originals[name]
        m.training = original.training
        own = [p for p in original._parameters.values() if p is not None]
        if own and not any(p.requires_grad for p in own):  # frozen (Embedding(_freeze=True))
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
    return module
