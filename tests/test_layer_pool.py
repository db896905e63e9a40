"""Max, average and adaptive-average pooling (functional and modules) against PyTorch over
randomized 1/2/3-D configurations, finite differences, and error messages."""

import numpy as np
import pytest
from gradcheck import gradcheck

import minidl
import minidl.nn as nn
import minidl.nn.functional as F

TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}


def _close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), **TOL[dtype])


def _arg(values, rng):
    """Spell a per-dim argument the ways PyTorch accepts: an int, a 1-tuple or a tuple."""
    if len(set(values)) == 1 and rng.random() < 0.5:
        return int(values[0]) if rng.random() < 0.7 else (int(values[0]),)
    return tuple(int(v) for v in values)


def random_pool_config(seed, kind):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 4))
    k = [int(rng.integers(1, 4 if dim == 3 else 5)) for _ in range(dim)]
    stride = None if rng.random() < 0.3 else [int(rng.integers(1, 4)) for _ in range(dim)]
    p = [int(rng.integers(0, ki // 2 + 1)) for ki in k]
    d = [int(rng.integers(1, 4)) if kind == "max" else 1 for _ in range(dim)]
    size = []
    for ki, pi, di in zip(k, p, d, strict=True):
        smallest = max(1, di * (ki - 1) + 1 - 2 * pi)
        if kind == "avg" and dim == 3:
            smallest = max(smallest, ki)
        size.append(smallest + int(rng.integers(0, 6 if dim == 3 else 9)))
    batch = [(), (1,), (2,), (0,)][int(rng.choice(4, p=[0.2, 0.3, 0.45, 0.05]))]
    shape = batch + (int(rng.integers(1, 4)),) + tuple(size)
    kwargs = {"kernel_size": _arg(k, rng), "padding": _arg(p, rng),
              "ceil_mode": bool(rng.integers(0, 2))}
    if stride is not None:
        kwargs["stride"] = _arg(stride, rng)
    if kind == "max":
        kwargs["dilation"] = _arg(d, rng)
    else:
        kwargs["count_include_pad"] = bool(rng.integers(0, 2))
        if dim > 1 and rng.random() < 0.35:
            kwargs["divisor_override"] = int(rng.choice([-3, 1, 2, 5]))
    return dim, shape, kwargs


def _run_pair(torch, ours, theirs, x, dtype, seed, tuple_out=False):
    xm = minidl.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_m, out_t = ours(xm), theirs(xt)
    if tuple_out:
        (out_m, idx_m), (out_t, idx_t) = out_m, out_t
        valid = idx_m.numpy() >= 0  # minidl marks padding-only windows with -1
        np.testing.assert_array_equal(idx_m.numpy()[valid], idx_t.numpy()[valid])
        assert idx_m.dtype == np.int64
    assert out_m.shape == tuple(out_t.shape), (out_m.shape, tuple(out_t.shape))
    assert out_m.dtype == dtype
    _close(out_m.numpy(), out_t.detach().numpy(), dtype)
    if out_m.numpy().size == 0:
        return
    r = np.random.default_rng(seed).standard_normal(out_m.shape).astype(dtype)
    # A dilated max window may hold only padding: its output is -inf and depends on no input.
    # torch then routes the gradient to an unrelated element (its index points past the
    # window); minidl sends none. Compare the gradients of every other output.
    r[np.isneginf(out_t.detach().numpy())] = 0
    out_m.backward(r)
    out_t.backward(torch.tensor(r))
    _close(xm.grad.numpy(), xt.grad.numpy(), dtype)


def _random_input(shape, dtype, seed, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if ties:  # many equal values: the first maximum (in scan order) must win, as in torch
        x = np.round(x)
    return x.astype(dtype)


@pytest.mark.parametrize("seed", range(60))
def test_max_pool_matches_torch(torch, seed):
    dim, shape, kwargs = random_pool_config(seed, "max")
    dtype = (np.float32, np.float64)[seed % 2]
    return_indices = seed % 3 == 0
    x = _random_input(shape, dtype, seed, ties=seed % 4 == 1)
    ours = getattr(F, f"max_pool{dim}d")
    theirs = getattr(torch.nn.functional, f"max_pool{dim}d")
    _run_pair(torch, lambda t: ours(t, return_indices=return_indices, **kwargs),
              lambda t: theirs(t, return_indices=return_indices, **kwargs),
              x, dtype, seed, tuple_out=return_indices)


@pytest.mark.parametrize("seed", range(60))
def test_avg_pool_matches_torch(torch, seed):
    dim, shape, kwargs = random_pool_config(1000 + seed, "avg")
    dtype = (np.float32, np.float64)[seed % 2]
    x = _random_input(shape, dtype, seed)
    ours = getattr(F, f"avg_pool{dim}d")
    theirs = getattr(torch.nn.functional, f"avg_pool{dim}d")
    _run_pair(torch, lambda t: ours(t, **kwargs), lambda t: theirs(t, **kwargs), x, dtype, seed)


@pytest.mark.parametrize("seed", range(12))
def test_pool_modules_match_torch(torch, seed):
    kind = ("max", "avg")[seed % 2]
    dim, shape, kwargs = random_pool_config(2000 + seed, kind)
    dtype = np.float32
    name = f"{kind.capitalize()}Pool{dim}d"
    if kind == "max":
        kwargs["return_indices"] = seed % 4 == 0
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    x = _random_input(shape, dtype, seed)
    _run_pair(torch, ours, theirs, x, dtype, seed, tuple_out=kwargs.get("return_indices", False))


def test_pool_nan_and_inf_like_torch(torch):
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2, 2] = np.inf
    x[0, 1, 0, 0] = -np.inf
    for kwargs in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 1, "padding": 1}):
        ours, idx = F.max_pool2d(minidl.tensor(x), return_indices=True, **kwargs)
        theirs, idx_t = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True,
                                                       **kwargs)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())


def test_max_pool_padding_only_window(torch):
    """A dilated window can cover only padding: -inf, and no gradient, as in torch."""
    x = np.array([[[1.5, -2.0]]], np.float32)
    xm = minidl.tensor(x, requires_grad=True)
    out, idx = F.max_pool1d(xm, 2, 1, 1, 3, return_indices=True)
    theirs = torch.nn.functional.max_pool1d(torch.tensor(x), 2, 1, 1, 3)
    np.testing.assert_array_equal(out.numpy(), theirs.numpy())
    assert out.numpy()[0, 0, 0] == -np.inf and idx.numpy()[0, 0, 0] == -1
    out.sum().backward()
    np.testing.assert_array_equal(xm.grad.numpy(), 0)


# ---- adaptive average pooling ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(16))
def test_adaptive_avg_pool2d_matches_torch(torch, seed):
    rng = np.random.default_rng(3000 + seed)
    dtype = (np.float32, np.float64)[seed % 2]
    h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    options = [int(rng.integers(1, 9)), (int(rng.integers(1, 9)), int(rng.integers(1, 9))),
               (None, int(rng.integers(1, 7))), (int(rng.integers(1, 7)), None), (h, w),
               (2 * h, 1)]
    output_size = options[seed % len(options)]
    shape = ((2, 3) if seed % 3 else (3,)) + (h, w)
    x = _random_input(shape, dtype, seed)
    _run_pair(torch, lambda t: F.adaptive_avg_pool2d(t, output_size),
              lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size), x, dtype, seed)
    ours, theirs = nn.AdaptiveAvgPool2d(output_size), torch.nn.AdaptiveAvgPool2d(output_size)
    assert repr(ours) == repr(theirs)
    _run_pair(torch, ours, theirs, x, dtype, seed)


def test_adaptive_avg_pool2d_window_rule():
    """Windows floor(i*in/out) .. ceil((i+1)*in/out): 5 -> 3 averages [0,2), [1,4), [3,5)."""
    x = np.arange(5, dtype=np.float64).reshape(1, 1, 1, 5)
    out = F.adaptive_avg_pool2d(minidl.tensor(x), (1, 3)).numpy().ravel()
    np.testing.assert_allclose(out, [0.5, 2.0, 3.5])


# ---- finite differences ----------------------------------------------------------------------
GRADCHECK_CASES = [
    ("max1d", lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), (2, 2, 7)),
    ("max2d_dilated", lambda x: F.max_pool2d(x, 2, 1, 1, dilation=2), (1, 2, 5, 4)),
    ("max3d", lambda x: F.max_pool3d(x, (1, 2, 2), (1, 1, 2)), (1, 1, 2, 4, 4)),
    ("max2d_unbatched", lambda x: F.max_pool2d(x, 2), (2, 4, 4)),
    ("avg1d", lambda x: F.avg_pool1d(x, 3, 2, 1, count_include_pad=False), (2, 1, 7)),
    ("avg2d_ceil", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), (1, 2, 6, 5)),
    ("avg2d_divisor", lambda x: F.avg_pool2d(x, 2, divisor_override=3), (1, 1, 4, 4)),
    ("avg3d", lambda x: F.avg_pool3d(x, 2, 1, 1, count_include_pad=False), (1, 1, 3, 3, 3)),
    ("adaptive", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (1, 2, 5, 7)),
]


@pytest.mark.parametrize("name, fn, shape", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_pool_gradcheck(name, fn, shape):
    # distinct values spaced well apart, so finite differences never cross a max tie
    x = np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) * 0.1
    gradcheck(fn, x)


# ---- errors ----------------------------------------------------------------------------------
def test_pool_errors():
    x2 = minidl.tensor(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"at most half of the kernel size.*padding=\(2, 2\)"):
        F.max_pool2d(x2, 3, padding=2)
    with pytest.raises(ValueError, match="at most half"):
        F.avg_pool2d(x2, 3, padding=(0, 2))
    with pytest.raises(ValueError, match=r"spatial size \(5, 5\) gives output size \(0, 0\)"):
        F.max_pool2d(x2, 7)
    rank_rule = r"3-D \(C, H, W\) or 4-D \(N, C, H, W\).*\(2, 5, 5, 1, 1\)"
    with pytest.raises(ValueError, match=rank_rule):
        F.max_pool2d(minidl.tensor(np.zeros((2, 5, 5, 1, 1), np.float32)), 2)
    with pytest.raises(ValueError, match="non-zero channel"):
        F.avg_pool1d(minidl.tensor(np.zeros((2, 0, 5), np.float32)), 2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.max_pool2d(x2, 2, stride=0)
    with pytest.raises(ValueError, match="tuple of 2 ints"):
        F.avg_pool2d(x2, (2, 2, 2))
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool1d(minidl.tensor(np.zeros((1, 4), np.float32)), 2.5)
    with pytest.raises(ValueError, match="divisor_override must be non-zero"):
        F.avg_pool2d(x2, 2, divisor_override=0)
    with pytest.raises(ValueError, match=r"smaller than kernel_size \(3, 3, 3\)"):
        F.avg_pool3d(minidl.tensor(np.zeros((1, 1, 2, 5, 5), np.float32)), 3, padding=1)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.max_pool1d(minidl.tensor(np.zeros((1, 1, 4), np.int64)), 2)
    with pytest.raises(ValueError, match="output_size must be >= 0"):
        F.adaptive_avg_pool2d(x2, (-1, 2))
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_avg_pool2d(x2, (1, 2, 3))


def test_pool_zero_batch_and_unbatched_shapes(torch):
    x = np.zeros((0, 2, 6, 6), np.float32)
    assert F.max_pool2d(minidl.tensor(x), 2).shape == (0, 2, 3, 3)
    assert F.avg_pool2d(minidl.tensor(x), 2).shape == (0, 2, 3, 3)
    assert nn.MaxPool1d(2)(minidl.tensor(np.zeros((3, 9), np.float32))).shape == (3, 4)
    assert nn.AvgPool3d(2)(minidl.tensor(np.zeros((3, 4, 4, 4), np.float32))).shape == (3, 2, 2, 2)
