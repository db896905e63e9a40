"""The conv bias kernels (minidl/_ext/elementwise.pyx): the per-channel add and the gradient's
per-channel sum, against numpy in float64, with any thread count."""

import numpy as np
import pytest

from minidl._ext import elementwise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5), (64, 6, 784), (1, 1, 1)], ids=str)
def test_add_channel_bias_matches_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    expected = y + b[None, :, None]
    for nt in (1, 2, 3):
        out = y.copy()
        elementwise.add_channel_bias(out, b, nt)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5), (64, 6, 784), (3, 2, 0)], ids=str)
def test_channel_sums_match_float64_and_ignore_the_thread_count(dtype, shape):
    rng = np.random.default_rng(1)
    g = rng.standard_normal(shape).astype(dtype)
    sums = [elementwise.channel_sums(g, nt) for nt in (1, 2, 3)]
    assert all(s.dtype == dtype and np.array_equal(s, sums[0]) for s in sums)
    np.testing.assert_allclose(sums[0], g.astype(np.float64).sum(axis=(0, 2)), rtol=1e-6,
                               atol=1e-5)


def test_add_channel_bias_refuses_a_bias_of_the_wrong_length():
    with pytest.raises(ValueError, match="4 biases for 3 channels"):
        elementwise.add_channel_bias(np.zeros((1, 3, 2), np.float32), np.zeros(4, np.float32), 1)
