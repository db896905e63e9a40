"""Winograd F(2x2, 3x3) / F(4x4, 3x3) kernels (minidl._ext.winograd) and their dispatch.

Checked against the numpy reference (minidl._ext.reference) and the im2col + GEMM kernels on
random shapes (odd sizes, asymmetric pads 0..2, batch 0/1/3, 1..70 channels), for y, dx and dw.
Measured float32 error against a float64 reference (unit-variance values, 8x64x56x56 and
8x256x14x14): F(2x2, 3x3) max |err| 4e-7-7e-7 of max |ref| for y, dx and dw, like the GEMM
path (2e-7-6e-7); F(4x4, 3x3) 4e-6-1.4e-5, ~20x the GEMM's.
"""

import kernels as conv
import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import runtime
from minidl._ext import dispatch, winograd
from minidl._ext import reference as ref

ONE = (1, 1, 1)


def _case(rng):
    N = int(rng.choice([0, 1, 3]))
    C, O = (int(c) for c in rng.integers(1, 71, 2))
    H, W = (int(s) for s in rng.integers(1, 14, 2))
    pb = tuple(int(p) for p in rng.integers(0, 3, 2))
    pa = tuple(int(p) for p in rng.integers(0, 3, 2))
    return N, C, O, H, W, pb, pa


def _valid(H, W, pb, pa):
    return H + pb[0] + pa[0] >= 3 and W + pb[1] + pa[1] >= 3


def _arrays(rng, N, C, O, H, W, dtype):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((O, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)  # unit-variance y
    return x, w


def _ref_forward(x, w, pb, pa):
    y = ref.conv_forward(x[:, :, None].astype(np.float64), w[:, :, None].astype(np.float64),
                         ONE, ONE, (0,) + pb, (0,) + pa, 1)
    return y[:, :, 0]


def _ref_data(dy, w, size, pb, pa):
    dx = ref.conv_backward_data(dy[:, :, None].astype(np.float64),
                                w[:, :, None].astype(np.float64), (1,) + size, ONE, ONE,
                                (0,) + pb, (0,) + pa, 1)
    return dx[:, :, 0]


def _ref_weight(x, dy, pb, pa):
    dw = ref.conv_backward_weight(x[:, :, None].astype(np.float64),
                                  dy[:, :, None].astype(np.float64), (1, 3, 3), ONE, ONE,
                                  (0,) + pb, (0,) + pa, 1)
    return dw[:, :, 0]


def _close(got, want, dtype, tile):
    """float64: rtol 1e-10; float32 tile 2: rtol 1e-4 / atol 1e-5 elementwise; float32 tile 4:
    rtol 1e-4 with atol 1e-4 * max |y| (its error is ~1e-5 of the output scale)."""
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    elif tile == 2:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    else:
        scale = np.abs(want).max() if want.size else 0.0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(scale, 1.0))


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_data_match_reference(dtype, tile):
    rng = np.random.default_rng(100 + tile + (dtype == np.float64))
    checked = 0
    for _ in range(40):
        N, C, O, H, W, pb, pa = _case(rng)
        x, w = _arrays(rng, N, C, O, H, W, dtype)
        if not _valid(H, W, pb, pa):
            with pytest.raises(ValueError):
                winograd.conv3x3_forward(x, w, pb, pa, tile)
            continue
        y = winograd.conv3x3_forward(x, w, pb, pa, tile)
        want = _ref_forward(x, w, pb, pa)
        assert y.dtype == dtype and y.shape == want.shape
        _close(y, want, dtype, tile)
        dy = (rng.standard_normal(want.shape) / np.sqrt(9 * O)).astype(dtype)
        dx = winograd.conv3x3_backward_data(dy, w, (H, W), pb, pa, tile)
        assert dx.shape == x.shape and dx.dtype == dtype
        _close(dx, _ref_data(dy, w, (H, W), pb, pa), dtype, tile)
        dw = winograd.conv3x3_backward_weight(x, dy, pb, pa, tile)
        assert dw.shape == w.shape and dw.dtype == dtype
        want = _ref_weight(x, dy, pb, pa)
        scale = np.sqrt(max(N, 1) * H * W)  # dw sums N*oH*oW products of unit-variance values
        _close(dw / scale, want / scale, dtype, tile)
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile2_matches_gemm_kernels(dtype):
    """F(2x2, 3x3) against the im2col + GEMM kernels on the same arrays (5-D in, 5-D out)."""
    rng = np.random.default_rng(7)
    for _ in range(25):
        N, C, O, H, W, pb, pa = _case(rng)
        if not _valid(H, W, pb, pa):
            continue
        x, w = _arrays(rng, N, C, O, H, W, dtype)
        x5, w5 = x[:, :, None], w[:, :, None]
        y = winograd.conv3x3_forward(x5, w5, pb, pa, 2)
        want = conv.conv_forward(x5, w5, ONE, ONE, (0,) + pb, (0,) + pa, 1, algorithm="gemm")
        assert y.shape == want.shape
        tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(y, want, **tol)
        dy = rng.standard_normal(want.shape).astype(dtype)
        dx = winograd.conv3x3_backward_data(dy, w5, (1, H, W), pb, pa, 2)
        want = conv.conv_backward_data(dy, w5, (1, H, W), ONE, ONE, (0,) + pb, (0,) + pa, 1,
                                       algorithm="gemm")
        np.testing.assert_allclose(dx, want, **tol)
        dw = winograd.conv3x3_backward_weight(x5, dy, pb, pa, 2)
        want = conv.conv_backward_weight(x5, dy, (1, 3, 3), ONE, ONE, (0,) + pb, (0,) + pa, 1,
                                         algorithm="gemm")
        assert dw.shape == want.shape == w5.shape
        if dtype == np.float32:  # sums of N*oH*oW float32 products, in two different orders
            np.testing.assert_allclose(dw, want, rtol=1e-4, atol=1e-5 * np.sqrt(N * H * W + 1))
        else:
            np.testing.assert_allclose(dw, want, **tol)


@pytest.mark.parametrize("tile, bound", [(2, 2e-6), (4, 5e-5)])
def test_float32_error_on_resnet_channels(tile, bound):
    """max |err| / max |y| against float64: ~5e-7 (tile 2), ~1e-5 (tile 4)."""
    rng = np.random.default_rng(3)
    x, w = _arrays(rng, 2, 64, 64, 28, 28, np.float64)
    want = _ref_forward(x, w, (1, 1), (1, 1))
    y = winograd.conv3x3_forward(x.astype(np.float32), w.astype(np.float32), (1, 1), (1, 1), tile)
    assert np.abs(y - want).max() / np.abs(want).max() < bound


def test_many_tiles_and_threads():
    """Several blocks per image and blocks spanning images; 1 and 2 threads agree."""
    rng = np.random.default_rng(5)
    x, w = _arrays(rng, 3, 20, 24, 37, 41, np.float64)
    want = _ref_forward(x, w, (1, 2), (0, 1))
    for nt in (1, 2, 3):
        for tile in (2, 4):
            y = winograd.conv3x3_forward(x, w, (1, 2), (0, 1), tile, nt)
            np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
            dw = winograd.conv3x3_backward_weight(x, want, (1, 2), (0, 1), tile, nt)
            np.testing.assert_allclose(dw, _ref_weight(x, want, (1, 2), (0, 1)),
                                       rtol=1e-10, atol=1e-10)


def test_weight_gradient_is_bit_reproducible():
    """Static scheduling: the same thread sums the same tile blocks on every call."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 24, 30, 30)).astype(np.float32)
    dy = rng.standard_normal((4, 24, 28, 28)).astype(np.float32)
    runs = [winograd.conv3x3_backward_weight(x, dy, (0, 0), (0, 0), 2, 2) for _ in range(6)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def test_nan_propagates():
    x = np.ones((1, 40, 8, 8))
    x[0, 3, 4, 4] = np.nan
    w = np.ones((40, 40, 3, 3))
    y = winograd.conv3x3_forward(x, w, (0, 0), (0, 0))
    assert np.isnan(y[:, :, 2:5, 2:5]).all()


@pytest.mark.parametrize("call, exc", [
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5), np.int64),
                                      np.ones((1, 2, 3, 3), np.int64), (1, 1), (1, 1)), TypeError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3, 3), np.float32),
                                      (1, 1), (1, 1)), TypeError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3)),
                                      (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 2, 5, 5)),
                                      (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3, 3)),
                                      (3, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3, 3)),
                                      (1, -1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 5, 5)), np.ones((1, 2, 3, 3)),
                                      (1, 1), (1, 1), tile=3), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((2, 5, 5)), np.ones((1, 2, 3, 3)),
                                      (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 2, 5, 5)), np.ones((1, 2, 1, 3, 3)),
                                      (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 0, 5, 5)), np.ones((1, 0, 3, 3)),
                                      (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_forward(np.ones((1, 2, 1, 1)), np.ones((1, 2, 3, 3)),
                                      (0, 0), (0, 0)), ValueError),
    (lambda: winograd.conv3x3_backward_data(np.ones((1, 1, 4, 4)), np.ones((1, 2, 3, 3)),
                                            (5, 5), (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_backward_data(np.ones((1, 3, 5, 5)), np.ones((1, 2, 3, 3)),
                                            (5, 5), (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_backward_data(np.ones((1, 1, 5, 5)), np.ones((1, 2, 3, 3)),
                                            (5, 5, 5, 5), (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_backward_weight(np.ones((1, 2, 5, 5)), np.ones((1, 3, 4, 5)),
                                              (1, 1), (1, 1)), ValueError),
    (lambda: winograd.conv3x3_backward_weight(np.ones((1, 2, 5, 5)),
                                              np.ones((1, 3, 5, 5), np.float32),
                                              (1, 1), (1, 1)), TypeError),
    (lambda: winograd.conv3x3_backward_weight(np.ones((1, 2, 5, 5)), np.ones((1, 3, 5, 5)),
                                              (1, 1), (1, 1), tile=6), ValueError),
])
def test_bad_input_raises(call, exc):
    with pytest.raises(exc):
        call()


def test_batch_zero():
    y = winograd.conv3x3_forward(np.ones((0, 4, 6, 6), np.float32),
                                 np.ones((5, 4, 3, 3), np.float32), (1, 1), (1, 1))
    assert y.shape == (0, 5, 6, 6) and y.dtype == np.float32
    dx = winograd.conv3x3_backward_data(np.ones((0, 5, 6, 6)), np.ones((5, 4, 3, 3)), (6, 6),
                                        (1, 1), (1, 1))
    assert dx.shape == (0, 4, 6, 6)
    dw = winograd.conv3x3_backward_weight(np.ones((0, 4, 6, 6)), np.ones((0, 5, 6, 6)),
                                          (1, 1), (1, 1))
    assert dw.shape == (5, 4, 3, 3) and not dw.any()


# ---- dispatch in minidl.nn.functional.conv2d ------------------------------------------------
def _expected(dtype, channels):
    """With AVX-512, and with AVX2 below 128 channels, float32 convs run on the faster direct
    kernels instead (the grid or the compact layout)."""
    beaten = channels < dispatch.WINOGRAD_OVER_DIRECT_MIN_CHANNELS.get(runtime.isa(), 0)
    return {"direct", "compact"} if dtype == np.float32 and beaten else {"winograd"}


@pytest.mark.parametrize("forced", [None, "winograd"], ids=["chosen", "forced"])
@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (1, 256, 14, 14)], ids=["64ch", "256ch"])
def test_dispatch_on_resnet_shapes(shape, forced, torch):
    rng = np.random.default_rng(11)
    N, C, H, W = shape
    x, w = _arrays(rng, N, C, C, H, W, np.float32)
    mx, mw = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    with dispatch.force(forced), dispatch.record() as log:
        y = F.conv2d(mx, mw, padding=1)
        r = rng.standard_normal(y.shape).astype(np.float32)
        (y * minidl.tensor(r)).sum().backward()
    expected = {forced} if forced else _expected(np.float32, C)
    assert sorted(p for p, _ in log) == ["data", "forward", "weight"]
    assert all(algorithm in expected for _, algorithm in log), log
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=1)
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    scale = np.abs(tw.grad.numpy()).max()  # dw: float32 sums over 56*56 or 14*14 positions
    np.testing.assert_allclose(mw.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_dispatch_uses_winograd_for_all_three_in_float64():
    rng = np.random.default_rng(12)
    x, w = _arrays(rng, 1, 64, 64, 16, 16, np.float64)
    mx, mw = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    with dispatch.record() as log:
        y = F.conv2d(mx, mw, padding=1)
        y.sum().backward()
    assert sorted(log) == [("data", "winograd"), ("forward", "winograd"), ("weight", "winograd")]
    np.testing.assert_allclose(y.numpy(), ref.conv_forward(x[:, :, None], w[:, :, None],
                                                           (1, 1, 1), (1, 1, 1), (0, 1, 1),
                                                           (0, 1, 1), 1)[:, :, 0], rtol=1e-9)


@pytest.mark.parametrize("kwargs, w_shape", [
    (dict(stride=2, padding=1), (64, 64, 3, 3)),
    (dict(dilation=2, padding=2), (64, 64, 3, 3)),
    (dict(groups=2, padding=1), (64, 32, 3, 3)),
    (dict(padding=3), (64, 64, 3, 3)),
    (dict(padding=2), (64, 64, 5, 5)),
    (dict(padding=1), (16, 64, 3, 3)),  # too few output channels to pay off
])
def test_dispatch_keeps_other_convs_on_gemm(kwargs, w_shape):
    rng = np.random.default_rng(2)
    x = minidl.tensor(rng.standard_normal((1, 64, 12, 12)).astype(np.float32))
    w = minidl.tensor(rng.standard_normal(w_shape).astype(np.float32))
    with dispatch.record() as log:
        F.conv2d(x, w, **kwargs)
    assert ("forward", "winograd") not in log


def test_dispatch_forward_only_threshold():
    """32 channels: Winograd forward, GEMM backward-data and -weight (measured faster)."""
    rng = np.random.default_rng(4)
    x = minidl.tensor(rng.standard_normal((2, 32, 10, 10)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((32, 32, 3, 3)), requires_grad=True)
    with dispatch.record() as log:
        y = F.conv2d(x, w, padding=((0, 2), (1, 1)))
        y.sum().backward()
    assert log == [("forward", "winograd"), ("data", "gemm"), ("weight", "gemm")]
    want = _ref_forward(x.numpy(), w.numpy(), (0, 1), (2, 1))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
