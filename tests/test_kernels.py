"""Tests of the convolution kernels behind minidl._ext.dispatch's three primitives.

Every algorithm that can compute a pass on this machine (gemm, pointwise, depthwise, direct,
winograd; see kernels.algorithms) is checked against the slow numpy reference
(minidl._ext.reference) on randomised configurations, and the reference itself against PyTorch,
so all are anchored to the real framework.  Configurations are seeded: a failure names its seed
and is reproducible.
"""

import kernels as conv
import numpy as np
import pytest

from minidl import runtime
from minidl._ext import dispatch, gemm
from minidl._ext import reference as ref

RTOL = {np.float32: 1e-4, np.float64: 1e-10}


# ---- configurations ------------------------------------------------------------------------


def random_config(seed, nd=None, kind=None, batch=None):
    """A random valid convolution: shapes plus the parameters, all in 3-D form.

    The input size is (out - 1) * stride + extent - pads + r with 0 <= r < stride, so every
    r > 0 exercises the positions that no window reaches (ConvTranspose's output_padding).
    """
    rng = np.random.default_rng(seed)
    nd = nd or int(rng.integers(1, 4))
    kind = kind or str(rng.choice(["plain", "grouped", "depthwise"]))
    batch = int(rng.choice([1, 3])) if batch is None else batch

    def per_dim(lo, hi, fill):
        return (fill,) * (3 - nd) + tuple(int(v) for v in rng.integers(lo, hi + 1, nd))

    kernel = per_dim(1, 3 if nd < 3 else 2, 1)
    stride, dilation = per_dim(1, 3, 1), per_dim(1, 3, 1)
    pad_before, pad_after = per_dim(0, 2, 0), per_dim(0, 2, 0)
    size = []
    for k, s, d, b, a in zip(kernel, stride, dilation, pad_before, pad_after):
        out = int(rng.integers(1, 5 if nd < 3 else 3))
        while True:
            n = (out - 1) * s + d * (k - 1) + 1 - b - a + int(rng.integers(0, s))
            if n >= 1:
                break
            out += 1
        size.append(n)
    if kind == "plain":
        groups, cg, og = 1, int(rng.integers(1, 4)), int(rng.integers(1, 5))
    elif kind == "grouped":
        groups, cg, og = int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    else:  # depthwise, multiplier 1 or 2
        groups, cg, og = int(rng.integers(1, 5)), 1, int(rng.integers(1, 3))
    params = (stride, dilation, pad_before, pad_after, groups)
    return (batch, cg * groups) + tuple(size), (og * groups, cg) + kernel, params


def arrays(seed, x_shape, w_shape, params, dtype):
    rng = np.random.default_rng(seed + 10_000)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    out = ref._output_size(x_shape[2:], w_shape[2:], *params[:4])
    dy = rng.standard_normal((x_shape[0], w_shape[0]) + out).astype(dtype)
    return x, w, dy


def noncontiguous(a, how):
    """The same values as a, laid out as a strided view or in Fortran order."""
    if how == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return np.asfortranarray(a)


def assert_close(actual, expected, dtype):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def check_all_three(x, w, dy, params, dtype):
    """The three primitives against the reference on the same arrays, on every algorithm
    that can compute each pass here; returns the (pass, algorithm) pairs that ran."""
    kernel, in_size = w.shape[2:], x.shape[2:]
    ran = []
    for algorithm in conv.algorithms("forward", x.shape, w.shape, params, dtype):
        y = conv.conv_forward(x, w, *params, algorithm=algorithm)
        assert_close(y, ref.conv_forward(x, w, *params), dtype)
        ran.append(("forward", algorithm))
    for algorithm in conv.algorithms("data", x.shape, w.shape, params, dtype):
        dx = conv.conv_backward_data(dy, w, in_size, *params, algorithm=algorithm)
        assert_close(dx, ref.conv_backward_data(dy, w, in_size, *params), dtype)
        ran.append(("data", algorithm))
    for algorithm in conv.algorithms("weight", x.shape, w.shape, params, dtype):
        dw = conv.conv_backward_weight(x, dy, kernel, *params, algorithm=algorithm)
        assert_close(dw, ref.conv_backward_weight(x, dy, kernel, *params), dtype)
        ran.append(("weight", algorithm))
    return ran


# ---- kernels vs reference ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(60))
def test_random_configs_match_reference(seed, dtype):
    x_shape, w_shape, params = random_config(seed)
    x, w, dy = arrays(seed, x_shape, w_shape, params, dtype)
    check_all_three(x, w, dy, params, dtype)


WINOGRAD_PARAMS = ((1, 1, 1), (1, 1, 1), (0, 1, 0), (0, 2, 1), 1)  # 2-D 3x3, pads 0..2


def test_every_algorithm_of_this_machine_is_checked():
    """The random configurations above reach every algorithm for each pass (direct and
    compact: float32 only, in the module of the instruction set in use), so none of them goes
    untested."""
    ran = set()
    for seed in range(60):
        for dtype in (np.float32, np.float64):
            x_shape, w_shape, params = random_config(seed)
            x, w, dy = arrays(seed, x_shape, w_shape, params, dtype)
            ran.update(check_all_three(x, w, dy, params, dtype))
    x, w, dy = arrays(0, (2, 4, 1, 6, 6), (4, 4, 1, 3, 3), WINOGRAD_PARAMS, np.float64)
    ran.update(check_all_three(x, w, dy, WINOGRAD_PARAMS, np.float64))
    pointwise = ((1, 1, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0), 1)
    x, w, dy = arrays(0, (2, 4, 1, 6, 6), (4, 4, 1, 1, 1), pointwise, np.float32)
    ran.update(check_all_three(x, w, dy, pointwise, np.float32))
    expected = {"gemm", "pointwise", "depthwise", "winograd", "direct", "compact"}
    for pass_ in dispatch.PASSES:
        assert {a for p, a in ran if p == pass_} == expected, pass_


@pytest.mark.parametrize("how", ["strided", "fortran"])
@pytest.mark.parametrize("seed", range(6))
def test_noncontiguous_inputs(seed, how):
    x_shape, w_shape, params = random_config(100 + seed, nd=2 + seed % 2)
    x, w, dy = arrays(seed, x_shape, w_shape, params, np.float64)
    kernel = w.shape[2:]
    xs, ws, dys = (noncontiguous(a, how) for a in (x, w, dy))
    assert not xs.flags.c_contiguous
    np.testing.assert_array_equal(
        conv.conv_forward(xs, ws, *params), conv.conv_forward(x, w, *params)
    )
    np.testing.assert_array_equal(
        conv.conv_backward_data(dys, ws, x.shape[2:], *params),
        conv.conv_backward_data(dy, w, x.shape[2:], *params),
    )
    np.testing.assert_allclose(
        conv.conv_backward_weight(xs, dys, kernel, *params),
        conv.conv_backward_weight(x, dy, kernel, *params),
        rtol=1e-12,
    )


@pytest.mark.parametrize("multiplier", [1, 2, 4])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise(multiplier, stride, dtype):
    """groups == C: the direct kernel (multiplier <= 2) or grouped GEMMs; asymmetric padding."""
    params = ((1, stride, stride), (1, 1, 2), (0, 1, 2), (0, 2, 0), 5)
    x, w, dy = arrays(7, (3, 5, 1, 11, 10), (5 * multiplier, 1, 1, 3, 3), params, dtype)
    check_all_three(x, w, dy, params, dtype)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("kernel, dilation", [(1, 1), (3, 1), (3, 2)])
@pytest.mark.parametrize("pad_before, pad_after", [(0, 4), (1, 2), (3, 0), (4, 4)])
def test_depthwise_stride_one_paddings(multiplier, kernel, dilation, pad_before, pad_after):
    """Stride 1 runs on padded planes; a padding beyond the dilated kernel extent sends the
    backward-data back to the per-row kernel (its dy would need a negative padding)."""
    params = ((1, 1, 1), (1, dilation, dilation), (0, pad_before, pad_before),
              (0, pad_after, pad_after), 3)
    x, w, dy = arrays(11, (2, 3, 1, 7, 9), (3 * multiplier, 1, 1, kernel, kernel), params,
                      np.float32)
    check_all_three(x, w, dy, params, np.float32)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_many_taps_3d(multiplier, dtype):
    """Stride 1 in 3-D with 30 taps: more than one block of the weight kernel's taps (9) and
    planes that end inside a vector of positions."""
    params = ((1, 1, 1), (1, 2, 1), (1, 2, 2), (1, 1, 2), 4)
    x, w, dy = arrays(13, (2, 4, 4, 6, 9), (4 * multiplier, 1, 3, 2, 5), params, dtype)
    check_all_three(x, w, dy, params, dtype)


def test_depthwise_kernel_of_a_million_taps():
    """The stride-1 kernels keep no per-tap arrays on a thread's stack (a 1000x1000 kernel's
    once overflowed it: a segfault); forward and weight gradient of all-ones planes are sums
    of ones."""
    geo = conv.geometry((1, 2, 1, 1000, 1000), (2, 1, 1, 1000, 1000), (1, 1, 1), (1, 1, 1),
                        (0, 0, 0), (0, 0, 0), 2)
    ones = np.ones((1, 2, 1, 1000, 1000), np.float32)
    w = np.ones((2, 1, 1, 1000, 1000), np.float32)
    assert dispatch.choose("forward", geo, np.float32) == "depthwise"
    np.testing.assert_array_equal(dispatch.conv_forward(ones, w, geo), np.full(geo.y_shape, 1e6))
    dy = np.ones(geo.y_shape, np.float32)
    np.testing.assert_array_equal(dispatch.conv_backward_weight(ones, dy, geo), w)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise(groups, dtype):
    """1x1 kernel, stride 1, no padding: the GEMM reads x / writes dx directly."""
    params = ((1, 1, 1), (1, 2, 3), (0, 0, 0), (0, 0, 0), groups)
    x, w, dy = arrays(3, (3, 4, 2, 5, 6), (6, 4 // groups, 1, 1, 1), params, dtype)
    check_all_three(x, w, dy, params, dtype)


@pytest.mark.parametrize("out_channels", [2, 6])
def test_single_input_channel(out_channels):
    """C == groups == 1 (a LeNet first layer) is depthwise with multiplier O."""
    params = ((1, 1, 1), (1, 1, 1), (0, 2, 2), (0, 2, 2), 1)
    x, w, dy = arrays(5, (4, 1, 1, 12, 12), (out_channels, 1, 1, 5, 5), params, np.float64)
    check_all_three(x, w, dy, params, np.float64)


@pytest.mark.parametrize("seed", range(8))
def test_tiny_tiles(monkeypatch, seed):
    """Tiles of one output row and channel blocks of one channel: the tiling seams are exact."""
    monkeypatch.setattr(gemm, "_TILE_BYTES", 1)
    monkeypatch.setattr(gemm, "_BLOCK_BYTES", 1)
    x_shape, w_shape, params = random_config(200 + seed, kind=("plain", "grouped")[seed % 2])
    x, w, dy = arrays(seed, x_shape, w_shape, params, np.float64)
    check_all_three(x, w, dy, params, np.float64)


@pytest.mark.parametrize("kind", ["plain", "grouped", "depthwise"])
def test_empty_batch(kind):
    x_shape, w_shape, params = random_config(300, nd=2, kind=kind, batch=0)
    x, w, dy = arrays(300, x_shape, w_shape, params, np.float32)
    y = conv.conv_forward(x, w, *params)
    assert y.shape == dy.shape and y.dtype == np.float32
    assert conv.conv_backward_data(dy, w, x.shape[2:], *params).shape == x.shape
    dw = conv.conv_backward_weight(x, dy, w.shape[2:], *params)
    assert dw.shape == w.shape and not dw.any()


def test_read_only_inputs():
    x_shape, w_shape, params = random_config(400, nd=2)
    x, w, dy = arrays(400, x_shape, w_shape, params, np.float64)
    for a in (x, w, dy):
        a.setflags(write=False)
    check_all_three(x, w, dy, params, np.float64)


@pytest.mark.parametrize("kind", ["plain", "depthwise"])
def test_thread_count_does_not_change_results(kind):
    x_shape, w_shape, params = random_config(500, nd=2, kind=kind, batch=5)
    x, w, dy = arrays(500, x_shape, w_shape, params, np.float64)
    before = runtime.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            runtime.set_num_threads(n)
            assert runtime.get_num_threads() == n
            results.append(
                (
                    conv.conv_forward(x, w, *params),
                    conv.conv_backward_data(dy, w, x.shape[2:], *params),
                    conv.conv_backward_weight(x, dy, w.shape[2:], *params),
                )
            )
    finally:
        runtime.set_num_threads(before)
    for one, three in zip(*results):
        np.testing.assert_allclose(one, three, rtol=1e-12, atol=1e-12)


def test_default_threads_is_positive():
    assert runtime.get_num_threads() >= 1
    with pytest.raises(ValueError, match="threads must be >= 1"):
        runtime.set_num_threads(0)


# ---- bad inputs ----------------------------------------------------------------------------
# The geometry (minidl._geometry, the one parse) rejects bad arguments before any kernel runs;
# the primitives then only check that the arrays they get match the geometry.

P = dict(stride=(1, 1, 1), dilation=(1, 1, 1), pad_before=(0, 1, 1), pad_after=(0, 1, 1), groups=1)
X, W = (2, 4, 1, 6, 6), (4, 4, 1, 3, 3)  # a valid 2-D conv with padding 1: y has X's shape
GEO = conv.geometry(X, W, *P.values())


def geometry(x=X, w=W, **params):
    p = {**P, **params}
    return lambda: conv.geometry(x, w, p["stride"], p["dilation"], p["pad_before"],
                                 p["pad_after"], p["groups"])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (geometry(w=(3, 3, 1, 3, 3)), ValueError, r"4 channels but weight \(3, 3, 1, 3, 3\) exp"),
        (geometry(w=(3, 2, 1, 3, 3), groups=2), ValueError, "not divisible by groups=2"),
        (geometry(groups=0), ValueError, "groups must be >= 1"),
        (geometry(groups=1.0), TypeError, "groups must be an int"),
        (geometry(stride=(1, 0, 1)), ValueError, "stride must be >= 1"),
        (geometry(dilation=(1, 1, 0)), ValueError, "dilation must be >= 1"),
        (geometry(pad_before=(0, -1, 0)), ValueError, "padding must be >= 0"),
        (geometry(stride=(1, 1)), ValueError, "stride must be an int or a tuple of 3 ints"),
        (geometry(stride=(1, 1.5, 1)), TypeError, "stride must be an int or a tuple of 3 ints"),
        (geometry(w=(4, 4, 1, 9, 3)), ValueError,
         r"padded input size \(1, 8, 8\) is smaller than the effective kernel size \(1, 9, 3\)"),
        (geometry(x=(2, 4, 1, 0, 6)), ValueError, r"input of shape \(2, 4, 1, 0, 6\) has a zero"),
        (geometry(w=(4, 4, 1, 0, 3)), ValueError, r"weight of shape \(4, 4, 1, 0, 3\) has a zero"),
    ],
)
def test_bad_geometry_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: dispatch.conv_forward(_zeros((2, 4, 6, 6)), _zeros(W), GEO), ValueError,
         r"x has shape \(2, 4, 6, 6\), the conv geometry expects \(2, 4, 1, 6, 6\)"),
        (lambda: dispatch.conv_forward(_zeros(X, np.int32), _zeros(W, np.int32), GEO), TypeError,
         "float32 or float64"),
        (lambda: dispatch.conv_forward(_zeros(X), _zeros(W, np.float64), GEO), TypeError,
         "x and w must share a dtype, got float32 and float64"),
        (lambda: dispatch.conv_backward_data(_zeros((2, 4, 1, 5, 6)), _zeros(W), GEO),
         ValueError, r"dy has shape \(2, 4, 1, 5, 6\), the conv geometry expects"),
        (lambda: dispatch.conv_backward_weight(_zeros(X), _zeros((3, 4, 1, 6, 6)), GEO),
         ValueError, r"dy has shape \(3, 4, 1, 6, 6\)"),
        (lambda: dispatch.conv_forward(_zeros(X), [[0.0]], GEO), ValueError,
         "w has shape list"),
        (lambda: dispatch.conv_forward(_zeros(X), _zeros(W), GEO, algorithm="depthwise"),
         ValueError, "'depthwise' cannot compute the forward pass"),
        (lambda: dispatch.conv_forward(_zeros(X), _zeros(W), GEO, algorithm="fft"),
         ValueError, "unknown conv algorithm 'fft'"),
    ],
)
def test_arrays_not_matching_the_geometry_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- reference (and kernels) vs PyTorch ----------------------------------------------------


def torch_conv_and_grads(torch, x, w, dy, params):
    """y, dx, dw from torch: asymmetric padding as F.pad in front of conv3d, as torch does it."""
    F = torch.nn.functional
    stride, dilation, pad_before, pad_after, groups = params
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    pads = [p for b, a in zip(pad_before[::-1], pad_after[::-1]) for p in (b, a)]  # W, H, D
    y = F.conv3d(F.pad(xt, pads), wt, stride=stride, dilation=dilation, groups=groups)
    dx, dw = torch.autograd.grad(y, (xt, wt), torch.from_numpy(dy))
    return y.detach().numpy(), dx.numpy(), dw.numpy()


@pytest.mark.parametrize("seed", range(36))
def test_reference_matches_torch(torch, seed):
    dtype = (np.float64, np.float32)[seed % 2]
    x_shape, w_shape, params = random_config(1000 + seed, nd=seed % 3 + 1)
    x, w, dy = arrays(seed, x_shape, w_shape, params, dtype)
    y_t, dx_t, dw_t = torch_conv_and_grads(torch, x, w, dy, params)
    kernel, in_size = w.shape[2:], x.shape[2:]
    for impl in (ref, conv):
        assert_close(impl.conv_forward(x, w, *params), y_t, dtype)
        assert_close(impl.conv_backward_data(dy, w, in_size, *params), dx_t, dtype)
        assert_close(impl.conv_backward_weight(x, dy, kernel, *params), dw_t, dtype)


def test_conv_transpose_output_padding_matches_torch(torch):
    """conv_backward_data is ConvTranspose forward, including output_padding."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 4, 5))  # the transposed conv's input = dy
    w = rng.standard_normal((6, 2, 2, 3, 3))  # (in, out / groups, k) as torch stores it
    stride, dilation, padding, groups = (2, 2, 3), (1, 2, 1), (1, 0, 2), 2
    output_padding = (1, 1, 2)  # < stride or dilation, as torch requires
    y_t = torch.nn.functional.conv_transpose3d(
        torch.from_numpy(x),
        torch.from_numpy(w),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    ).numpy()
    y = conv.conv_backward_data(x, w, y_t.shape[2:], stride, dilation, padding, padding, groups)
    assert_close(y, y_t, np.float64)
