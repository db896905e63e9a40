"""Tests of the Cython pooling kernels (minidl._ext.pool) against PyTorch.

Tests comparing with torch take the ``torch`` fixture of conftest.py (skips without torch,
fails under CI=true).
"""

import numpy as np
import pytest

from minidl import runtime
from minidl._ext import pool

N_RANDOM_CASES = 150
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _torch_pool(torch, kind, dim):
    return getattr(torch.nn.functional, f"{kind}_pool{dim}d")


def _spatial(args3, dim):
    """The torch-style argument for a dim-D pool from the 3-D form (None passes through)."""
    return None if args3 is None else tuple(args3[3 - dim :])


def _random_config(seed, kind):
    """A seeded random pooling configuration (always yields an output size >= 1)."""
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 4))
    max_k = 3 if dim == 3 else 4
    k = [1] * (3 - dim) + [int(rng.integers(1, max_k + 1)) for _ in range(dim)]
    stride = None
    if rng.random() < 0.75:
        stride = [1] * (3 - dim) + [int(rng.integers(1, 4)) for _ in range(dim)]
    p = [0] * (3 - dim) + [int(rng.integers(0, ki // 2 + 1)) for ki in k[3 - dim :]]
    d = [1] * 3
    if kind == "max":
        d = [1] * (3 - dim) + [int(rng.integers(1, 3)) for _ in range(dim)]
    max_extra = 4 if dim == 3 else 9
    size = [1] * (3 - dim)
    for ki, pi, di in zip(k[3 - dim :], p[3 - dim :], d[3 - dim :], strict=True):
        smallest = max(1, (ki - 1) * di + 1 - 2 * pi)
        if kind == "avg" and dim == 3:
            smallest = ki  # avg_pool3d (only) also requires input >= kernel, padding aside
        size.append(smallest + int(rng.integers(0, max_extra)))
    batch = int(rng.choice([0, 1, 3], p=[0.1, 0.45, 0.45]))
    channels = int(rng.integers(1, 4))
    divisor = None
    if kind == "avg" and rng.random() < 0.3:
        divisor = int(rng.choice([-3, 1, 2, 5, 7]))
    return {
        "dim": dim,
        "k": tuple(k),
        "stride": None if stride is None else tuple(stride),
        "p": tuple(p),
        "d": tuple(d),
        "ceil_mode": bool(rng.integers(0, 2)),
        "count_include_pad": bool(rng.integers(0, 2)),
        "divisor": divisor,
        "dtype": np.float32 if rng.random() < 0.5 else np.float64,
        "shape": (batch, channels, *size),
        "rng": rng,
    }


def _to_torch_input(torch, x, dim):
    """(N, C, D, H, W) numpy -> torch tensor of rank 2 + dim requiring grad."""
    t = torch.from_numpy(x.reshape(x.shape[:2] + x.shape[5 - dim :]).copy())
    return t.requires_grad_(True)


# --------------------------------------------------------------------------------------------
# Randomized comparisons with torch
# --------------------------------------------------------------------------------------------


def _check_max_pool_against_torch(torch, seed, nan_fraction=0.0):
    cfg = _random_config(seed, "max")
    rng, dim = cfg["rng"], cfg["dim"]
    x = rng.standard_normal(cfg["shape"]).astype(cfg["dtype"])
    x[rng.random(x.shape) < nan_fraction] = np.nan

    y, idx = pool.max_pool_forward(x, cfg["k"], cfg["stride"], cfg["p"], cfg["d"], cfg["ceil_mode"])

    xt = _to_torch_input(torch, x, dim)
    yt, it = _torch_pool(torch, "max", dim)(
        xt,
        _spatial(cfg["k"], dim),
        _spatial(cfg["stride"], dim),
        _spatial(cfg["p"], dim),
        _spatial(cfg["d"], dim),
        ceil_mode=cfg["ceil_mode"],
        return_indices=True,
    )
    assert y.dtype == x.dtype and idx.dtype == np.int64
    assert y.shape[:2] + y.shape[5 - dim :] == tuple(yt.shape)
    assert y.shape[2 : 5 - dim] == (1,) * (3 - dim)
    np.testing.assert_array_equal(y.reshape(yt.shape), yt.detach().numpy())
    # With dilation a window can hold padding only: -inf (x is finite), and torch reports the
    # index of the first tap past the input, which we replace by -1.
    padding_only = np.isneginf(y)
    np.testing.assert_array_equal(idx[padding_only], -1)
    np.testing.assert_array_equal(idx[~padding_only], it.numpy().reshape(y.shape)[~padding_only])

    dy = rng.standard_normal(y.shape).astype(cfg["dtype"])
    dx = pool.max_pool_backward(dy, idx, x.shape[2:])
    assert dx.shape == x.shape and dx.dtype == x.dtype
    if padding_only.any():
        # torch's backward would scatter through its out-of-range indices: check with numpy.
        expected = np.zeros((x.shape[0] * x.shape[1], x[0, 0].size), dtype=x.dtype)
        flat_idx, flat_dy = idx.reshape(len(expected), -1), dy.reshape(len(expected), -1)
        planes = np.repeat(np.arange(len(expected))[:, None], flat_idx.shape[1], axis=1)
        keep = flat_idx >= 0
        np.add.at(expected, (planes[keep], flat_idx[keep]), flat_dy[keep])
        np.testing.assert_allclose(dx, expected.reshape(x.shape), **TOL[cfg["dtype"]])
    else:
        (dxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy.reshape(yt.shape)))
        np.testing.assert_allclose(dx.reshape(dxt.shape), dxt.numpy(), **TOL[cfg["dtype"]])


@pytest.mark.parametrize("seed", range(N_RANDOM_CASES))
def test_max_pool_matches_torch(torch, seed):
    _check_max_pool_against_torch(torch, seed)


@pytest.mark.parametrize("seed", range(20))
def test_max_pool_with_nans_matches_torch(torch, seed):
    # NaN propagates; with several NaNs in a window torch reports the last one.
    _check_max_pool_against_torch(torch, 5_000 + seed, nan_fraction=0.2)


@pytest.mark.parametrize("seed", range(N_RANDOM_CASES))
def test_avg_pool_matches_torch(torch, seed):
    cfg = _random_config(10_000 + seed, "avg")
    rng, dim = cfg["rng"], cfg["dim"]
    x = rng.standard_normal(cfg["shape"]).astype(cfg["dtype"])
    args = (cfg["k"], cfg["stride"], cfg["p"], cfg["ceil_mode"], cfg["count_include_pad"])

    y = pool.avg_pool_forward(x, *args, cfg["divisor"])

    xt = _to_torch_input(torch, x, dim)
    torch_args = [_spatial(cfg["k"], dim), _spatial(cfg["stride"], dim), _spatial(cfg["p"], dim)]
    kwargs = {"ceil_mode": cfg["ceil_mode"], "count_include_pad": cfg["count_include_pad"]}
    if dim == 1 and cfg["divisor"] is not None:
        # avg_pool1d has no divisor_override; torch implements it as avg_pool2d with H = 1.
        k, stride, p = torch_args
        torch_args = [(1, *k), None if stride is None else (1, *stride), (0, *p)]
        yt = _torch_pool(torch, "avg", 2)(
            xt.unsqueeze(2), *torch_args, divisor_override=cfg["divisor"], **kwargs
        ).squeeze(2)
    elif cfg["divisor"] is not None:
        yt = _torch_pool(torch, "avg", dim)(
            xt, *torch_args, divisor_override=cfg["divisor"], **kwargs
        )
    else:
        yt = _torch_pool(torch, "avg", dim)(xt, *torch_args, **kwargs)
    assert y.dtype == x.dtype
    assert y.shape[:2] + y.shape[5 - dim :] == tuple(yt.shape)
    np.testing.assert_allclose(y.reshape(yt.shape), yt.detach().numpy(), **TOL[cfg["dtype"]])

    dy = rng.standard_normal(y.shape).astype(cfg["dtype"])
    dx = pool.avg_pool_backward(dy, x.shape[2:], *args, cfg["divisor"])
    (dxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy.reshape(yt.shape)))
    assert dx.shape == x.shape and dx.dtype == x.dtype
    np.testing.assert_allclose(dx.reshape(dxt.shape), dxt.numpy(), **TOL[cfg["dtype"]])


def test_pool_output_size_matches_torch(torch):
    F = torch.nn.functional

    checked = 0
    for size in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(k // 2 + 1):
                    for d in (1, 2, 3):
                        for ceil_mode in (False, True):
                            out = pool.pool_output_size(size, k, s, p, d, ceil_mode)
                            if out < 1:
                                continue
                            x = torch.zeros(1, 1, size)
                            y = F.max_pool1d(x, k, s, p, d, ceil_mode=ceil_mode)
                            assert y.shape[-1] == out, (size, k, s, p, d, ceil_mode)
                            checked += 1
    assert checked > 500


def test_pool_output_size_ceil_mode_correction():
    # Without the correction ceil mode would give 4: the 4th window would start in the padding.
    assert pool.pool_output_size(5, 2, 2, 1, 1, True) == 3
    assert pool.pool_output_size(5, 2, 2, 1, 1, False) == 3
    assert pool.pool_output_size(6, 2, 2, 0, 1, True) == 3
    assert pool.pool_output_size(7, 2, 2, 0, 1, True) == 4
    assert pool.pool_output_size(7, 2, 2, 0, 1, False) == 3
    assert pool.pool_output_size(1, 3, 1, 0, 1, False) < 1


# --------------------------------------------------------------------------------------------
# Special values and edge cases
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_nan_propagates_like_torch(torch, dtype):
    F = torch.nn.functional

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 1, 9, 8)).astype(dtype)
    x[0, 0, 0, 2, 3] = np.nan
    x[0, 0, 0, 3, 3] = np.nan  # two NaNs in one window: torch reports the last one
    x[1, 2, 0, 8, 7] = np.nan
    x[1, 1, 0, 0, 0] = -np.inf
    y, idx = pool.max_pool_forward(x, (1, 3, 2), (1, 2, 2), (0, 1, 1), (1, 1, 1), True)
    yt, it = F.max_pool2d(
        torch.from_numpy(x[:, :, 0]), (3, 2), (2, 2), (1, 1), ceil_mode=True, return_indices=True
    )
    assert np.isnan(y).sum() > 0
    np.testing.assert_array_equal(y[:, :, 0], yt.numpy())  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(idx[:, :, 0], it.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [((1, 2, 2), (1, 2, 2)), ((2, 3, 2), (1, 2, 1))],
                         ids=["2x2s2", "3d"])
def test_max_pool_windows_inside_the_input_match_torch(torch, dtype, window):
    """No padding, dilation 1 (the kernel's fixed-bounds path): first maximum of a tie, the
    last NaN of a window, all -inf windows, as torch."""
    kernel, stride = window
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (2, 3, 4, 9, 8)).astype(dtype)  # small integers: many ties
    x[rng.random(x.shape) < 0.1] = np.nan
    x[1, 2, :2, :3, :2] = -np.inf  # the first window of plane (1, 2) in both cases
    y, idx = pool.max_pool_forward(x, kernel, stride, (0, 0, 0), (1, 1, 1), False)
    yt, it = torch.nn.functional.max_pool3d(torch.from_numpy(x), kernel, stride,
                                            return_indices=True)
    assert np.isnan(y).any() and np.isneginf(y).any()
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())


def test_max_pool_all_minus_inf_window_picks_first_valid_element():
    x = np.full((1, 1, 1, 3, 3), -np.inf, dtype=np.float32)
    y, idx = pool.max_pool_forward(x, (1, 2, 2), (1, 1, 1), (0, 1, 1), (1, 1, 1), False)
    assert np.all(y == -np.inf)
    # Window of output (1, 1) starts at input (0, 0); output (0, 0) covers only input (0, 0).
    assert idx[0, 0, 0, 0, 0] == 0 and idx[0, 0, 0, 1, 1] == 0 and idx[0, 0, 0, 3, 3] == 8


def test_max_pool_padding_only_window_gives_minus_inf_and_index_minus_one():
    # Width 1, kernel 2, dilation 2, padding 1: the only window taps positions -1 and 1.
    x = np.ones((2, 1, 1, 1, 1))
    y, idx = pool.max_pool_forward(x, (1, 1, 2), (1, 1, 1), (0, 0, 1), (1, 1, 2), False)
    assert y.shape == (2, 1, 1, 1, 1) and np.all(y == -np.inf) and np.all(idx == -1)
    dx = pool.max_pool_backward(np.ones_like(y), idx, (1, 1, 1))
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def test_max_pool_3d_indices_are_flat_over_volume():
    x = np.zeros((1, 1, 3, 4, 5))
    x[0, 0, 2, 1, 3] = 1.0
    y, idx = pool.max_pool_forward(x, (3, 4, 5), (1, 1, 1), (0, 0, 0), (1, 1, 1), False)
    assert y.shape == (1, 1, 1, 1, 1) and y.item() == 1.0
    assert idx.item() == (2 * 4 + 1) * 5 + 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_and_zero_channels_give_empty_outputs_and_gradients(dtype):
    x = np.zeros((0, 3, 1, 7, 7), dtype=dtype)
    y, idx = pool.max_pool_forward(x, (1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), False)
    assert y.shape == (0, 3, 1, 3, 3) and y.dtype == dtype and idx.shape == y.shape
    dx = pool.max_pool_backward(y, idx, (1, 7, 7))
    assert dx.shape == x.shape and dx.dtype == dtype
    a = pool.avg_pool_forward(x, (1, 3, 3), None, (0, 1, 1), True, False, None)
    assert a.shape == (0, 3, 1, 3, 3)
    dx = pool.avg_pool_backward(a, (1, 7, 7), (1, 3, 3), None, (0, 1, 1), True, False, None)
    assert dx.shape == x.shape
    # Zero channels too.
    y, _ = pool.max_pool_forward(
        np.zeros((2, 0, 1, 1, 5)), (1, 1, 2), None, (0, 0, 0), (1, 1, 1), False
    )
    assert y.shape == (2, 0, 1, 1, 2)


def test_stride_none_means_kernel_size():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 3, 6, 7))
    args = ((2, 2, 3), (0, 1, 1), (1, 1, 1), True)
    y1, i1 = pool.max_pool_forward(x, args[0], None, *args[1:])
    y2, i2 = pool.max_pool_forward(x, args[0], args[0], *args[1:])
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(i1, i2)


def test_non_contiguous_and_readonly_inputs():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((5, 3, 1, 8, 9)).astype(np.float32)
    x = base.transpose(1, 0, 2, 3, 4)  # not C-contiguous
    y, idx = pool.max_pool_forward(x, (1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), False)
    y_ref, idx_ref = pool.max_pool_forward(
        np.ascontiguousarray(x), (1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), False
    )
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    x_ro = np.ascontiguousarray(x)
    x_ro.flags.writeable = False
    a = pool.avg_pool_forward(x_ro, (1, 3, 3), (1, 1, 1), (0, 1, 1), False, True, None)
    dy = np.ones_like(a)
    dy.flags.writeable = False
    dx = pool.avg_pool_backward(dy, x.shape[2:], (1, 3, 3), (1, 1, 1), (0, 1, 1), False, True, None)
    assert dx.shape == x.shape


def test_max_backward_accepts_full_input_shape_and_accumulates():
    x = np.array([1.0, 3.0, 2.0]).reshape(1, 1, 1, 1, 3)
    y, idx = pool.max_pool_forward(x, (1, 1, 2), (1, 1, 1), (0, 0, 1), (1, 1, 1), False)
    np.testing.assert_array_equal(idx.ravel(), [0, 1, 1, 2])
    dx = pool.max_pool_backward(np.ones_like(y), idx, x.shape)
    np.testing.assert_array_equal(dx.ravel(), [1.0, 2.0, 1.0])


def test_threads_give_identical_results():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7, 1, 30, 31)).astype(np.float32)
    old = runtime.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            runtime.set_num_threads(n)
            y, idx = pool.max_pool_forward(x, (1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1), True)
            dx = pool.max_pool_backward(y, idx, x.shape[2:])
            a = pool.avg_pool_forward(x, (1, 3, 3), (1, 2, 2), (0, 1, 1), True, False, None)
            results.append((y, idx, dx, a))
        for first, second in zip(*results, strict=True):
            np.testing.assert_array_equal(first, second)
    finally:
        runtime.set_num_threads(old)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

GOOD = ((1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1))


def _x(shape=(2, 3, 1, 6, 6), dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def test_rejects_bad_rank_and_dtype():
    with pytest.raises(ValueError, match="rank 5"):
        pool.max_pool_forward(np.zeros((2, 3, 6, 6), np.float32), *GOOD, False)
    with pytest.raises(ValueError, match="rank 5"):
        pool.avg_pool_forward(
            np.zeros((6, 6), np.float32), (1, 2, 2), None, (0, 0, 0), False, True, None
        )
    for dtype in (np.int64, np.int32, np.bool_, np.float16, np.complex64):
        with pytest.raises(TypeError, match="float32 or float64"):
            pool.max_pool_forward(_x(dtype=dtype), *GOOD, False)
        with pytest.raises(TypeError, match="float32 or float64"):
            pool.avg_pool_forward(_x(dtype=dtype), (1, 2, 2), None, (0, 0, 0), False, True, None)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "match"),
    [
        ((1, 0, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), "kernel_size must be >= 1"),
        ((1, 2, 2), (1, 0, 1), (0, 0, 0), (1, 1, 1), "stride must be >= 1"),
        ((1, 2, 2), (1, 1, 1), (0, 0, 0), (1, 0, 1), "dilation must be >= 1"),
        ((1, 2, 2), (1, 1, 1), (0, -1, 0), (1, 1, 1), "padding must be >= 0"),
        ((1, 2, 2), (1, 1, 1), (0, 2, 0), (1, 1, 1), r"pad should be at most half.*\(0, 2, 0\)"),
        ((1, 3, 3), (1, 1, 1), (0, 0, 2), (1, 2, 2), "pad should be at most half"),
        ((1, 7, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), "too small"),
        ((1, 2, 2), (1, 1, 1), (0, 0, 0), (1, 6, 1), "too small"),
        ((2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), "tuple of 3 ints"),
        ((1, 2, 2), (1, 1, 1, 1), (0, 0, 0), (1, 1, 1), "tuple of 3 ints"),
    ],
)
def test_max_pool_rejects_bad_parameters(kernel, stride, padding, dilation, match):
    with pytest.raises(ValueError, match=match):
        pool.max_pool_forward(_x(), kernel, stride, padding, dilation, False)


def test_avg_pool_rejects_bad_parameters():
    x = _x()
    with pytest.raises(ValueError, match="pad should be at most half"):
        pool.avg_pool_forward(x, (1, 3, 3), None, (0, 2, 0), False, True, None)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        pool.avg_pool_forward(x, (0, 3, 3), None, (0, 0, 0), False, True, None)
    with pytest.raises(ValueError, match="too small"):
        pool.avg_pool_forward(x, (2, 3, 3), None, (0, 0, 0), False, True, None)
    with pytest.raises(ValueError, match="divisor_override must be non-zero"):
        pool.avg_pool_forward(x, (1, 3, 3), None, (0, 0, 0), False, True, 0)
    with pytest.raises(TypeError, match="tuple of 3 ints"):
        pool.avg_pool_forward(x, (1, 3.0, 3), None, (0, 0, 0), False, True, None)
    with pytest.raises(ValueError, match="input spatial size must be positive"):
        pool.avg_pool_forward(_x((1, 1, 1, 0, 4)), (1, 1, 1), None, (0, 0, 0), False, True, None)


def test_pool_output_size_rejects_non_positive_parameters():
    with pytest.raises(ValueError, match="must be >= 1"):
        pool.pool_output_size(5, 2, 0, 0, 1, False)


def test_max_backward_rejects_inconsistent_arguments():
    x = np.random.default_rng(4).standard_normal((2, 3, 1, 6, 6))
    y, idx = pool.max_pool_forward(x, *GOOD, False)
    with pytest.raises(ValueError, match=r"indices shape \(2, 3, 1, 3, 2\).*\(2, 3, 1, 3, 3\)"):
        pool.max_pool_backward(y, idx[..., :2], (1, 6, 6))
    with pytest.raises(TypeError, match="integer"):
        pool.max_pool_backward(y, idx.astype(np.float64), (1, 6, 6))
    with pytest.raises(TypeError, match="float32 or float64"):
        pool.max_pool_backward(idx, idx, (1, 6, 6))
    with pytest.raises(ValueError, match="rank 5"):
        pool.max_pool_backward(y[0], idx[0], (1, 6, 6))
    with pytest.raises(ValueError, match="input_size"):
        pool.max_pool_backward(y, idx, (6, 6))
    with pytest.raises(ValueError, match="input_size"):
        pool.max_pool_backward(y, idx, (5, 3, 1, 6, 6))
    with pytest.raises(ValueError, match="outside the input volume"):
        pool.max_pool_backward(y, idx, (1, 3, 3))  # indices up to 35 do not fit 3x3
    bad = idx.copy()
    bad[1, 2, 0, 0, 0] = -5
    with pytest.raises(ValueError, match="1 indices are outside"):
        pool.max_pool_backward(y, bad, (1, 6, 6))


def test_avg_backward_rejects_inconsistent_arguments():
    dy = np.ones((2, 3, 1, 3, 3))
    args = ((1, 2, 2), None, (0, 0, 0), False, True, None)
    assert pool.avg_pool_backward(dy, (1, 6, 6), *args).shape == (2, 3, 1, 6, 6)
    with pytest.raises(ValueError, match=r"dy shape \(2, 3, 1, 3, 3\).*\(1, 4, 4\)"):
        pool.avg_pool_backward(dy, (1, 8, 8), *args)
    with pytest.raises(ValueError, match="input_size"):
        pool.avg_pool_backward(dy, (1, 0, 6), *args)
    with pytest.raises(TypeError, match="float32 or float64"):
        pool.avg_pool_backward(dy.astype(np.int32), (1, 6, 6), *args)

