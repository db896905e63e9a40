"""ReLU's OpenMP kernels (minidl/_ext/elementwise.pyx) against PyTorch: both sides of the
one-thread threshold, NaN, zeros, float64, non-contiguous input, and thread-count independence."""

import numpy as np
import pytest

import minidl
from minidl import runtime
from minidl._ext import elementwise


@pytest.mark.parametrize("size", [7, 70_000], ids=["one-thread", "threads"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_its_gradient_equal_torch(torch, size, dtype):
    assert (size > elementwise.CHUNK_ELEMENTS) == (size == 70_000)  # the ids name the path taken
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    x[:4] = [0.0, -0.0, np.nan, -np.inf]
    g = rng.standard_normal(size).astype(dtype)
    mx = minidl.tensor(x, requires_grad=True)
    y = mx.relu()
    y.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())
    assert y.dtype == dtype


def test_non_contiguous_input_and_gradient(torch):
    a = np.random.default_rng(1).standard_normal((300, 400)).astype(np.float32)
    x = minidl.tensor(a, requires_grad=True)
    y = x.t().relu()  # a transposed (non-contiguous) view
    g = np.asfortranarray(np.ones(y.shape, np.float32))
    y.backward(g)
    np.testing.assert_array_equal(y.numpy(), np.maximum(a.T, 0))
    np.testing.assert_array_equal(x.grad.numpy(), (a > 0).astype(np.float32))


def test_results_do_not_depend_on_the_thread_count():
    x = np.random.default_rng(2).standard_normal(200_000).astype(np.float32)
    before = runtime.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            runtime.set_num_threads(n)
            outs.append(minidl.tensor(x).relu().numpy())
    finally:
        runtime.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_backward_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="gradient has 3 elements, output 4"):
        elementwise.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32), 1)
