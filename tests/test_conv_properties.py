"""Property-based tests of F.conv{1,2,3}d and F.conv_transpose{1,2,3}d against live PyTorch.

Hypothesis draws conv geometries (1-3 spatial dims, batched or not, groups, kernel, stride,
dilation, int / tuple / 'same' / 'valid' padding, output_padding for transposed convs) that
PyTorch accepts, and checks the output and the input, weight and bias gradients in float64;
and geometries that PyTorch rejects with a RuntimeError, which minidl must reject with a
ValueError (not crash, not return garbage). Only the public API is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
TOL = dict(rtol=1e-10, atol=1e-11)
MAX_SIZE = {1: 9, 2: 6, 3: 4}  # spatial size limit per dim, so every case stays small


@dataclass(frozen=True)
class Conv:
    """One call: ``x`` (N or none, C, *size), ``w`` and the keyword arguments."""

    transposed: bool
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    bias: bool
    kwargs: dict[str, Any]

    @property
    def nd(self) -> int:
        return len(self.w_shape) - 2

    @property
    def name(self) -> str:
        return f"conv_transpose{self.nd}d" if self.transposed else f"conv{self.nd}d"

    @property
    def out_channels(self) -> int:
        if self.transposed:
            return self.w_shape[1] * self.kwargs["groups"]
        return self.w_shape[0]


def _per_dim(draw, nd: int, low: int, high: int) -> tuple[int, ...]:
    return tuple(draw(st.integers(low, high)) for _ in range(nd))


@st.composite
def _channels(draw) -> tuple[int, int, int]:
    """(groups, in_channels, out_channels), both channel counts multiples of groups."""
    groups = draw(st.integers(1, 3))
    return groups, groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))


@st.composite
def _window(draw, nd: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """kernel, stride, dilation; 3-D kernels stay at most 2 wide so the inputs stay small."""
    largest = 2 if nd == 3 else 3
    return _per_dim(draw, nd, 1, largest), _per_dim(draw, nd, 1, 3), _per_dim(draw, nd, 1, 2)


def _leading(draw, channels: int) -> tuple[int, ...]:
    """(N, C) or, for an unbatched call, (C,)."""
    batch = draw(st.one_of(st.none(), st.integers(1, 2)))
    return (channels,) if batch is None else (batch, channels)


@st.composite
def convs(draw) -> Conv:
    """A forward conv PyTorch accepts: the padded input holds the dilated kernel."""
    nd = draw(st.integers(1, 3))
    groups, cin, cout = draw(_channels())
    kernel, stride, dilation = draw(_window(nd))
    form = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if form == "same":
        stride = (1,) * nd  # PyTorch's 'same' is for stride 1 only
    padding: Any = {
        "int": draw(st.integers(0, 2)),
        "tuple": _per_dim(draw, nd, 0, 2),
        "same": "same",
        "valid": "valid",
    }[form]
    size = []
    for i in range(nd):
        extent = dilation[i] * (kernel[i] - 1) + 1
        if form == "same":
            padded = extent - 1
        elif form == "valid":
            padded = 0
        else:
            padded = 2 * (padding if form == "int" else padding[i])
        smallest = max(1, extent - padded)
        size.append(draw(st.integers(smallest, max(smallest, MAX_SIZE[nd]))))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return Conv(False, _leading(draw, cin) + tuple(size), (cout, cin // groups, *kernel),
                draw(st.booleans()), kwargs)


@st.composite
def conv_transposes(draw) -> Conv:
    """A transposed conv PyTorch accepts: output_padding < max(stride, dilation) and an
    output of at least one position per dim."""
    nd = draw(st.integers(1, 3))
    groups, cin, cout = draw(_channels())
    kernel, stride, dilation = draw(_window(nd))
    size = _per_dim(draw, nd, 1, MAX_SIZE[nd] - 1)
    output_padding, padding = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        output_padding.append(draw(st.integers(0, max(s, d) - 1)))
        full = (n - 1) * s + d * (k - 1) + 1 + output_padding[-1]
        padding.append(draw(st.integers(0, min(3, (full - 1) // 2))))
    use_int = draw(st.booleans()) and len(set(padding)) == 1
    kwargs = dict(stride=stride, padding=padding[0] if use_int else tuple(padding),
                  output_padding=tuple(output_padding), groups=groups, dilation=dilation)
    return Conv(True, _leading(draw, cin) + size, (cin, cout // groups, *kernel),
                draw(st.booleans()), kwargs)


def _arrays(conv: Conv, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [conv.x_shape, conv.w_shape] + ([(conv.out_channels,)] if conv.bias else [])
    return [rng.standard_normal(shape) for shape in shapes]


def _torch_run(torch, conv: Conv, arrays: list[np.ndarray], cotangent: np.ndarray | None):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn = getattr(torch.nn.functional, conv.name)
    y = fn(*tensors, **conv.kwargs) if conv.bias else fn(*tensors, None, **conv.kwargs)
    if cotangent is None:
        return y
    (y * torch.tensor(cotangent)).sum().backward()
    return [y.detach().numpy()] + [t.grad.numpy() for t in tensors]


def _minidl_run(conv: Conv, arrays: list[np.ndarray], cotangent: np.ndarray | None):
    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    fn = getattr(F, conv.name)
    y = fn(*tensors, **conv.kwargs) if conv.bias else fn(*tensors, None, **conv.kwargs)
    if cotangent is None:
        return y
    (y * minidl.tensor(cotangent)).sum().backward()
    return [y.numpy()] + [t.grad.numpy() for t in tensors]


def _check_against_torch(torch, conv: Conv) -> None:
    arrays = _arrays(conv, seed=0)
    shape = tuple(_torch_run(torch, conv, arrays, None).shape)
    cotangent = np.random.default_rng(1).standard_normal(shape)
    expected = _torch_run(torch, conv, arrays, cotangent)
    got = _minidl_run(conv, arrays, cotangent)
    for name, g, e in zip(["output", "grad input", "grad weight", "grad bias"], got, expected):
        assert g.shape == e.shape, (name, conv)
        np.testing.assert_allclose(g, e, **TOL, err_msg=f"{name} of {conv}")


@SETTINGS
@given(conv=convs())
def test_conv_output_and_gradients_match_torch_in_float64(torch, conv):
    _check_against_torch(torch, conv)


@SETTINGS
@given(conv=conv_transposes())
def test_conv_transpose_output_and_gradients_match_torch_in_float64(torch, conv):
    _check_against_torch(torch, conv)


# ---- geometry PyTorch rejects ------------------------------------------------------------------
@st.composite
def kernel_larger_than_padded_input(draw) -> Conv:
    """A forward conv whose padded input is shorter than the dilated kernel in one dim."""
    nd = draw(st.integers(1, 3))
    groups, cin, cout = draw(_channels())
    kernel, stride, dilation = draw(_window(nd))
    bad = draw(st.integers(0, nd - 1))
    kernel = tuple(k + 1 if i == bad else k for i, k in enumerate(kernel))  # at least 2
    padding, size = [], []
    for i in range(nd):
        extent = dilation[i] * (kernel[i] - 1) + 1
        if i == bad:  # 1 + 2 * padding < extent, and the input shorter still
            padding.append(draw(st.integers(0, (extent - 2) // 2)))
            size.append(draw(st.integers(1, extent - 1 - 2 * padding[i])))
        else:
            padding.append(draw(st.integers(0, 1)))
            size.append(max(1, extent - 2 * padding[i]))
    kwargs = dict(stride=stride, padding=tuple(padding), dilation=dilation, groups=groups)
    return Conv(False, (1, cin, *size), (cout, cin // groups, *kernel), False, kwargs)


@st.composite
def channels_that_do_not_fit_groups(draw) -> Conv:
    """Input channels that are not weight.shape[1] * groups (forward) or weight.shape[0]
    (transposed), or a weight whose output channels do not divide by groups."""
    nd = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(2, 3))
    cin, per_group = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    wrong_input = draw(st.booleans())
    extra_input = draw(st.integers(1, groups - 1)) if wrong_input else 0
    extra_weight = 0 if wrong_input else 1  # then the weight's channels do not divide
    if transposed:
        w_shape = (cin + extra_weight, per_group)
    else:
        w_shape = (groups * per_group + extra_weight, cin // groups)
    x_shape = (1, cin + extra_input) + (3,) * nd
    return Conv(transposed, x_shape, w_shape + (1,) * nd, False, dict(groups=groups))


def _assert_both_reject(torch, conv: Conv) -> None:
    arrays = _arrays(conv, seed=0)
    with pytest.raises(RuntimeError):
        _torch_run(torch, conv, arrays, None)
    with pytest.raises(ValueError):
        _minidl_run(conv, arrays, None)


@SETTINGS
@given(conv=kernel_larger_than_padded_input())
def test_kernel_larger_than_padded_input_raises_value_error_where_torch_raises(torch, conv):
    _assert_both_reject(torch, conv)


@SETTINGS
@given(conv=channels_that_do_not_fit_groups())
def test_channels_not_matching_groups_raise_value_error_where_torch_raises(torch, conv):
    _assert_both_reject(torch, conv)
