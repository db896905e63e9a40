"""BatchNorm1d/2d and F.batch_norm: PyTorch parity in training and evaluation (outputs, input
and parameter gradients, running statistics over several steps, momentum=None), finite
differences, initialisation, checkpoints and errors."""

import zlib

import numpy as np
import pytest
from gradcheck import gradcheck
from scipy import stats

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

TOL = {np.float32: {"rtol": 1e-5, "atol": 2e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-11}}


def _close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), **TOL[dtype])


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _step(torch, ours, theirs, x, dtype, seed):
    """One forward/backward of both modules; compare output, grads, buffers."""
    xm = minidl.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_m, out_t = ours(xm), theirs(xt)
    _close(out_m.numpy(), out_t.detach().numpy(), dtype)
    r = np.random.default_rng(seed).standard_normal(out_m.shape).astype(dtype)
    out_m.backward(r)
    out_t.backward(torch.tensor(r))
    _close(xm.grad.numpy(), xt.grad.numpy(), dtype)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        _close(p.grad.numpy(), theirs_params[name].grad.numpy(), dtype)
        p.grad = None
        theirs_params[name].grad = None
    theirs_buffers = dict(theirs.named_buffers())
    assert set(dict(ours.named_buffers())) == set(theirs_buffers)
    for name, b in ours.named_buffers():
        expected = theirs_buffers[name].numpy()
        assert b.dtype == expected.dtype, name
        _close(b.numpy(), expected, dtype)


CONFIGS = [
    # (class, input shape, kwargs)
    ("BatchNorm1d", (8, 5), {}),
    ("BatchNorm1d", (4, 3, 7), {"momentum": 0.3}),
    ("BatchNorm1d", (6, 4), {"momentum": None}),
    ("BatchNorm1d", (5, 3, 2), {"affine": False}),
    ("BatchNorm1d", (7, 2), {"track_running_stats": False}),
    ("BatchNorm1d", (2, 3), {"eps": 1e-3, "bias": False}),
    ("BatchNorm2d", (4, 3, 5, 6), {}),
    ("BatchNorm2d", (2, 4, 3, 3), {"momentum": None}),
    ("BatchNorm2d", (3, 2, 4, 1), {"affine": False, "momentum": 0.5}),
    ("BatchNorm2d", (1, 3, 2, 3), {"track_running_stats": False, "affine": False}),
    ("BatchNorm2d", (5, 6, 4, 4), {"eps": 0.1}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shape, kwargs", CONFIGS)
def test_batchnorm_train_then_eval_matches_torch(torch, name, shape, kwargs, dtype):
    g = np.random.default_rng(zlib.crc32(repr((name, shape, kwargs)).encode()))
    num_features = shape[1]
    ours = getattr(nn, name)(num_features, **kwargs).to(dtype)
    theirs = getattr(torch.nn, name)(num_features, **kwargs).to(_torch_dtype(torch, dtype))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    if ours.weight is not None:  # non-trivial affine parameters
        ours.weight.data = g.uniform(0.5, 1.5, num_features).astype(dtype)
        if ours.bias is not None:
            ours.bias.data = g.standard_normal(num_features).astype(dtype)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for step in range(4):  # training steps: batch statistics, running-stat updates
        x = (g.standard_normal(shape) * 2 + 0.5 * step).astype(dtype)
        _step(torch, ours, theirs, x, dtype, step)
    if kwargs.get("track_running_stats", True):
        assert int(ours.num_batches_tracked.item()) == 4
    ours.eval()
    theirs.eval()
    for step in range(2):  # evaluation: running statistics (or batch stats if none kept)
        x = (g.standard_normal(shape) + 1).astype(dtype)
        _step(torch, ours, theirs, x, dtype, 10 + step)
    ours.train()
    theirs.train()
    _step(torch, ours, theirs, g.standard_normal(shape).astype(dtype), dtype, 20)


def test_batchnorm_large_batch_float32(torch):
    """float32 statistics over many values per channel stay within 1e-5 of torch."""
    g = np.random.default_rng(1)
    ours, theirs = nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)
    for _ in range(2):
        x = (g.standard_normal((32, 8, 16, 16)) * 3 + 5).astype(np.float32)
        _step(torch, ours, theirs, x, np.float32, 0)


@pytest.mark.parametrize("training", [True, False])
def test_functional_batch_norm_matches_torch(torch, training):
    g = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        x = g.standard_normal((4, 3, 5)).astype(dtype)
        w, b = g.uniform(0.5, 2, 3).astype(dtype), g.standard_normal(3).astype(dtype)
        rm, rv = g.standard_normal(3).astype(dtype), g.uniform(0.5, 2, 3).astype(dtype)
        rm_m, rv_m = minidl.tensor(rm.copy()), minidl.tensor(rv.copy())
        rm_t, rv_t = torch.tensor(rm.copy()), torch.tensor(rv.copy())
        tensors_m = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
        tensors_t = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        out_m = F.batch_norm(tensors_m[0], rm_m, rv_m, tensors_m[1], tensors_m[2],
                             training=training, momentum=0.2, eps=1e-4)
        out_t = torch.nn.functional.batch_norm(tensors_t[0], rm_t, rv_t, tensors_t[1],
                                               tensors_t[2], training=training, momentum=0.2,
                                               eps=1e-4)
        _close(out_m.numpy(), out_t.detach().numpy(), dtype)
        _close(rm_m.numpy(), rm_t.numpy(), dtype)
        _close(rv_m.numpy(), rv_t.numpy(), dtype)
        r = g.standard_normal(out_m.shape).astype(dtype)
        out_m.backward(r)
        out_t.backward(torch.tensor(r))
        for m, t in zip(tensors_m, tensors_t, strict=True):
            _close(m.grad.numpy(), t.grad.numpy(), dtype)


def test_functional_batch_norm_updates_buffers_in_place():
    rm, rv = minidl.tensor(np.zeros(2)), minidl.tensor(np.ones(2))
    arrays = rm.numpy(), rv.numpy()
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    F.batch_norm(minidl.tensor(x), rm, rv, training=True, momentum=0.5)
    assert rm.numpy() is arrays[0] and rv.numpy() is arrays[1]
    np.testing.assert_allclose(rm.numpy(), 0.5 * x.mean(0))
    np.testing.assert_allclose(rv.numpy(), 0.5 + 0.5 * x.var(0, ddof=1))  # unbiased


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 2, 3, 2)])
def test_batch_norm_gradcheck(training, shape):
    g = np.random.default_rng(3)
    x = g.standard_normal(shape)
    c = shape[1]
    rm, rv = g.standard_normal(c), g.uniform(0.5, 2, c)

    def fn(x, w, b):
        # fresh running stats each call: the finite differences must not see an update
        return F.batch_norm(x, minidl.tensor(rm.copy()), minidl.tensor(rv.copy()), w, b,
                            training=training, eps=1e-3)

    gradcheck(fn, x, g.uniform(0.5, 2, c), g.standard_normal(c))
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), x)


def test_batchnorm_init_is_ones_zeros_and_unit_running_stats_like_torch(torch):
    """Deterministic init (weight 1, bias 0, running stats 0/1): equal to torch's, so the
    two-sample KS statistic is 0."""
    ours, theirs = nn.BatchNorm2d(16), torch.nn.BatchNorm2d(16)
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy())
        if value.ndim:
            assert stats.ks_2samp(ours.state_dict()[name], value.numpy()).statistic == 0
    assert ours.num_batches_tracked.dtype == np.int64
    assert ours.running_mean.dtype == np.float32
    assert nn.BatchNorm1d(3, affine=False).weight is None
    assert nn.BatchNorm1d(3, track_running_stats=False).running_mean is None
    ours.running_mean.data[:] = 3
    ours.reset_parameters()
    np.testing.assert_array_equal(ours.running_mean.numpy(), 0)


def test_batchnorm_loads_torch_checkpoint(torch):
    theirs = torch.nn.BatchNorm1d(4)
    theirs(torch.randn(8, 4) * 3 + 1)
    ours = nn.BatchNorm1d(4)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    _close(ours(minidl.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), np.float32)
    assert ours.num_batches_tracked.item() == 1


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(3)(minidl.tensor(np.zeros((2, 3, 4, 5), np.float32)))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input"):
        nn.BatchNorm2d(3)(minidl.tensor(np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        nn.BatchNorm1d(3)(minidl.tensor(np.zeros((1, 3), np.float32)))
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        F.batch_norm(minidl.tensor(np.zeros((2, 3))), None, None,
                     minidl.tensor(np.ones(4)), training=True)
    with pytest.raises(ValueError, match=r"running_mean has shape"):
        nn.BatchNorm1d(4).eval()(minidl.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="evaluation mode"):
        F.batch_norm(minidl.tensor(np.zeros((2, 3))), None, None, training=False)
    with pytest.raises(TypeError, match="dtype"):
        nn.BatchNorm1d(3)(minidl.tensor(np.zeros((2, 3))))  # float64 input, float32 weight


def test_batchnorm_eval_without_running_stats_uses_batch(torch):
    x = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    ours = nn.BatchNorm1d(3, track_running_stats=False).eval()
    theirs = torch.nn.BatchNorm1d(3, track_running_stats=False).eval()
    _close(ours(minidl.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), np.float32)


def test_training_batch_norm_does_not_depend_on_the_thread_count():
    """The training kernel (minidl/_ext/norm.pyx) computes each channel as one work item."""
    from minidl import runtime

    g = np.random.default_rng(9)
    x = minidl.tensor(g.standard_normal((16, 12, 5, 5)).astype(np.float32), requires_grad=True)
    w = minidl.tensor(g.uniform(0.5, 2, 12).astype(np.float32), requires_grad=True)
    b = minidl.tensor(g.standard_normal(12).astype(np.float32), requires_grad=True)
    dy = g.standard_normal(x.shape).astype(np.float32)
    before = runtime.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            runtime.set_num_threads(n)
            x.grad = w.grad = b.grad = None
            y = F.batch_norm(x, None, None, w, b, training=True)
            y.backward(dy)
            results.append([y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()])
    finally:
        runtime.set_num_threads(before)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("shape", [(32, 64, 16), (3, 5, 7), (2, 1, 1)], ids=str)
def test_training_kernels_match_float64_on_fewer_threads(shape):
    """minidl/_ext/norm.pyx: the images split into 3 ranges with partial sums each; the
    statistics and gradients equal float64 numpy's and do not depend on how many threads run
    the ranges."""
    from minidl._ext import norm

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    runs = [norm.batch_norm_train_forward(x, w, b, 1e-5, nt, 3) for nt in (1, 2, 3)]
    for other in runs[1:]:
        assert all(np.array_equal(a, o) for a, o in zip(runs[0], other, strict=True))
    y, xhat, mean, var, _ = runs[0]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-6, atol=1e-7)
    scale = (w / np.sqrt(var + 1e-5)).astype(np.float32)
    grads = [norm.batch_norm_train_backward(g, xhat, scale, True, nt, 3) for nt in (1, 2, 3)]
    for other in grads[1:]:
        assert all(np.array_equal(a, o) for a, o in zip(grads[0], other, strict=True))
    gx, gb, gw = grads[0]
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, (g.astype(np.float64) * xhat).sum(axis=(0, 2)), rtol=1e-5,
                               atol=1e-5)
