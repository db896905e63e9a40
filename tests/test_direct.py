"""Tests of the direct stride-1 float32 kernel (minidl._ext.direct) and of the two primitives
that run on it in an AVX-512 build (conv.conv_forward and conv.conv_backward_data).

direct.forward is called itself so that these tests run in every build (with narrower vectors
where AVX-512 is missing); the float64 numpy reference is the oracle.
"""

import numpy as np
import pytest

from minidl._ext import conv, direct
from minidl._ext import reference as ref

ONE = (1, 1, 1)


def random_stride1_config(seed):
    """A random stride-1 conv in 3-D form: 1-3 spatial dims, dilation, asymmetric padding,
    groups, output channels that are not a multiple of the kernel's channel block."""
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))

    def per_dim(lo, hi, fill):
        return (fill,) * (3 - nd) + tuple(int(v) for v in rng.integers(lo, hi + 1, nd))

    kernel, dilation = per_dim(1, 5 if nd < 3 else 3, 1), per_dim(1, 2, 1)
    before, after = per_dim(0, 3, 0), per_dim(0, 3, 0)
    size = tuple(
        max(1, d * (k - 1) + 1 - b - a + int(rng.integers(0, 12 if nd < 3 else 5)))
        for k, d, b, a in zip(kernel, dilation, before, after)
    )
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, og = int(rng.integers(1, 6)), int(rng.integers(1, 11))
    N = int(rng.integers(1, 4))
    return (N, cg * groups) + size, (og * groups, cg) + kernel, dilation, before, after, groups


@pytest.mark.parametrize("seed", range(60))
def test_direct_forward_matches_reference(seed):
    x_shape, w_shape, dilation, before, after, groups = random_stride1_config(seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    y = direct.forward(x, w, dilation, before, after, groups, 2)
    expected = ref.conv_forward(x, w, ONE, dilation, before, after, groups)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(40))
def test_backward_data_matches_reference(seed):
    """conv_backward_data with stride 1: the direct kernel on dy with the flipped weight where
    the padding allows (pad <= dilated extent), im2col + GEMM otherwise; both equal the
    reference."""
    x_shape, w_shape, dilation, before, after, groups = random_stride1_config(seed)
    rng = np.random.default_rng(seed + 2)
    in_size = x_shape[2:]
    out = ref._output_size(x_shape[2:], w_shape[2:], ONE, dilation, before, after)
    dy = rng.standard_normal((x_shape[0], w_shape[0]) + out).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dx = conv.conv_backward_data(dy, w, in_size, ONE, dilation, before, after, groups)
    expected = ref.conv_backward_data(dy, w, in_size, ONE, dilation, before, after, groups)
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4)


def test_block_reading_past_the_last_plane():
    """Outputs that end just inside a block: the kernel reads up to a block past the padded
    input, which must be zeros, not whatever memory follows."""
    for width in range(1, 70):
        x = np.ones((1, 1, 1, 1, width), np.float32)
        w = np.ones((1, 1, 1, 1, 1), np.float32)
        y = direct.forward(x, w, ONE, (0, 0, 0), (0, 0, 0), 1, 2)
        np.testing.assert_array_equal(y, x)


def test_dispatch_in_conv_forward_and_backward_weight():
    """In an AVX-512 build conv_forward and conv_backward_weight of a float32 stride-1 conv
    give the direct kernels' results bit for bit; in other builds im2col + GEMM's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 1, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 1, 5, 5)).astype(np.float32)
    zero, nt = (0, 0, 0), conv.get_num_threads()
    y = conv.conv_forward(x, w, ONE, ONE, zero, zero, 1)
    assert np.array_equal(y, direct.forward(x, w, ONE, zero, zero, 1, nt)) == direct.available()
    dw = conv.conv_backward_weight(x, y, w.shape[2:], ONE, ONE, zero, zero, 1)
    dw_direct = direct.weight(x, y, w.shape[2:], ONE, zero, zero, 1, nt)
    assert np.array_equal(dw, dw_direct) == direct.available()


@pytest.mark.parametrize("seed", range(60))
def test_direct_weight_matches_reference(seed):
    x_shape, w_shape, dilation, before, after, groups = random_stride1_config(seed)
    rng = np.random.default_rng(seed + 3)
    out = ref._output_size(x_shape[2:], w_shape[2:], ONE, dilation, before, after)
    x = rng.standard_normal(x_shape).astype(np.float32)
    dy = rng.standard_normal((x_shape[0], w_shape[0]) + out).astype(np.float32)
    dw = direct.weight(x, dy, w_shape[2:], dilation, before, after, groups, 2)
    expected = ref.conv_backward_weight(x, dy, w_shape[2:], ONE, dilation, before, after,
                                        groups)
    assert dw.shape == expected.shape and dw.dtype == np.float32
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-4)
