"""Tests of the direct float32 kernels (minidl/_ext/_direct.pxi), compiled once per instruction
set (direct_baseline, direct_avx2, direct_avx512); minidl._ext.dispatch uses the module of the
instruction set in use.

The direct functions are called themselves so that these tests run in every build (with
narrower vectors where AVX-512 is missing); the float64 numpy reference is the oracle.
"""

import importlib
import itertools

import kernels as conv
import numpy as np
import pytest

from minidl import runtime
from minidl._ext import cpu, dispatch
from minidl._ext import reference as ref

# every direct module this CPU can run: all are tested in every run
ISAS = [name for name in cpu.supported() if runtime._built(name)]


@pytest.fixture(params=ISAS)
def direct(request):
    return importlib.import_module(f"minidl._ext.direct_{request.param}")


@pytest.fixture(params=["grid", "compact"])
def compact(request):
    """The two layouts: the padded grid and the real output positions only."""
    return request.param == "compact"

ONE = (1, 1, 1)


def random_config(seed, strided):
    """A random conv the direct kernels take, in 3-D form: 1-3 spatial dims, stride 1 with
    dilation or (strided) stride 1-3 without, asymmetric padding (some beyond the kernel),
    groups, and channel counts that are not multiples of the kernels' channel blocks (one seed
    in four has 11-80 output channels per group: several vectors and channel blocks)."""
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))

    def per_dim(lo, hi, fill):
        return (fill,) * (3 - nd) + tuple(int(v) for v in rng.integers(lo, hi + 1, nd))

    kernel = per_dim(1, 5 if nd < 3 else 3, 1)
    if strided:
        stride, dilation = per_dim(1, 3, 1), ONE
    else:
        stride, dilation = ONE, per_dim(1, 2, 1)
    before, after = per_dim(0, 3, 0), per_dim(0, 3, 0)
    size = tuple(
        max(1, d * (k - 1) + 1 - b - a + int(rng.integers(0, 12 if nd < 3 else 5)))
        for k, d, b, a in zip(kernel, dilation, before, after)
    )
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, og = int(rng.integers(1, 6)), int(rng.integers(1, 11))
    if seed % 4 == 2:
        og = int(rng.integers(11, 81))
    N = int(rng.integers(1, 4))
    params = (stride, dilation, before, after, groups)
    return (N, cg * groups) + size, (og * groups, cg) + kernel, params


def _arrays(seed, x_shape, w_shape, params):
    rng = np.random.default_rng(seed + 1)
    out = ref._output_size(x_shape[2:], w_shape[2:], *params[:4])
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal((x_shape[0], w_shape[0]) + out).astype(np.float32)
    return x, w, dy


@pytest.mark.parametrize("seed", range(80))
def test_forward_matches_reference(seed, direct, compact):
    x_shape, w_shape, params = random_config(seed, strided=seed % 2 == 1)
    x, w, _ = _arrays(seed, x_shape, w_shape, params)
    y = direct.forward(x, w, conv.geometry(x_shape, w_shape, *params), 2, compact)
    expected = ref.conv_forward(x, w, *params)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_forward_takes_a_strided_weight(seed, direct, compact):
    """A weight that is a strided view (not C-contiguous) is packed element by element, a
    contiguous one as a transpose of its rows: the same results."""
    x_shape, w_shape, params = random_config(seed, strided=False)
    x, w, _ = _arrays(seed, x_shape, w_shape, params)
    every_other = np.zeros((2 * w.shape[0],) + w.shape[1:], np.float32)
    every_other[::2] = w
    view = every_other[::2]  # w's values, output channels two apart
    assert w.shape[0] == 1 or not view.flags.c_contiguous
    geo = conv.geometry(x_shape, w_shape, *params)
    np.testing.assert_array_equal(direct.forward(x, view, geo, 2, compact),
                                  direct.forward(x, w, geo, 2, compact))


@pytest.mark.parametrize("seed", range(60))
def test_backward_data_matches_reference(seed, direct, compact):
    """The forward kernel on dy where the padding fits inside the kernel extent; beyond it
    conv_backward_data takes im2col + GEMM (both equal the reference)."""
    x_shape, w_shape, params = random_config(seed, strided=False)
    _, w, dy = _arrays(seed, x_shape, w_shape, params)
    geo = conv.geometry(x_shape, w_shape, *params)
    expected = ref.conv_backward_data(dy, w, x_shape[2:], *params)
    if direct.data_padding_fits(geo):
        dx = direct.backward_data(dy, w, geo, 2, compact)
    else:
        assert max(geo.pad_before) > 0
        dx = conv.conv_backward_data(dy, w, x_shape[2:], *params, algorithm="gemm")
    assert dx.shape == expected.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(40))
def test_compact_weight_takes_any_stride(seed, direct):
    """The compact weight gradient reads each output's window where it starts: strided convs
    too (the grid needs stride 1)."""
    x_shape, w_shape, params = random_config(seed, strided=True)
    x, _, dy = _arrays(seed, x_shape, w_shape, params)
    dw = direct.backward_weight(x, dy, conv.geometry(x_shape, w_shape, *params), 2, 2, compact=True)
    expected = ref.conv_backward_weight(x, dy, w_shape[2:], *params)
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-4)


def _strided_data_seeds(count=40):
    """Seeds of random strided convs (a stride above 1) whose every input phase's padding fits
    the direct backward-data (the others are the GEMM's: see the dispatcher test)."""
    phases = importlib.import_module("minidl._ext.direct_baseline")  # same Python logic in all
    seeds = []
    for seed in itertools.count():
        x_shape, w_shape, params = random_config(seed, strided=True)
        geo = conv.geometry(x_shape, w_shape, *params)
        if max(params[0]) > 1 and phases.data_padding_fits(geo):
            seeds.append(seed)
            if len(seeds) == count:
                return seeds


@pytest.mark.parametrize("seed", _strided_data_seeds())
def test_strided_backward_data_by_phases(seed, direct, compact):
    """A strided backward-data, one stride-1 backward-data per input phase."""
    x_shape, w_shape, params = random_config(seed, strided=True)
    _, w, dy = _arrays(seed, x_shape, w_shape, params)
    dx = direct.backward_data(dy, w, conv.geometry(x_shape, w_shape, *params), 2, compact)
    expected = ref.conv_backward_data(dy, w, x_shape[2:], *params)
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4)


# the backward-weight's three layouts: grid positions x channel vectors, real positions x
# channel vectors, grid positions in the lanes
WEIGHT_LAYOUTS = ["grid", "compact", "lanes"]


def _weight(direct, layout, x, dy, geo):
    return direct.backward_weight(x, dy, geo, 2, 2, compact=layout == "compact",
                                  lanes=layout == "lanes")


@pytest.mark.parametrize("layout", WEIGHT_LAYOUTS)
@pytest.mark.parametrize("seed", range(60))
def test_weight_matches_reference(seed, direct, layout):
    x_shape, w_shape, params = random_config(seed, strided=False)
    x, _, dy = _arrays(seed, x_shape, w_shape, params)
    geo = conv.geometry(x_shape, w_shape, *params)
    dw = _weight(direct, layout, x, dy, geo)
    expected = ref.conv_backward_weight(x, dy, w_shape[2:], *params)
    assert dw.shape == expected.shape and dw.dtype == np.float32
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-4)


def _rows_cases(width):
    """Stride-1 convs whose forward runs on output rows with vectors of ``width``: rows of two
    whole vectors and of two less one or three lanes (the last vector partial), output
    channels that leave a padding channel in the last block (13), groups, images, 3-D."""
    pad = (0, 1, 1)
    return [
        ((3, 2, 1, 5, 2 * width), (13, 2, 1, 3, 3), pad, 1),
        ((2, 4, 1, 4, 2 * width - 1), (26, 2, 1, 3, 3), pad, 2),
        ((2, 3, 1, 6, 2 * width - 3), (5, 3, 1, 1, 5), (0, 0, 2), 1),
        ((1, 2, 3, 4, 2 * width - 1), (7, 2, 3, 3, 3), (1, 1, 1), 1),
    ]


def test_forward_and_data_on_output_rows(direct):
    """Vectors that start at output rows, stored straight into y (partial ones lane by lane):
    the same results as the reference, forward and backward-data (the forward on dy)."""
    for x_shape, w_shape, pad, groups in _rows_cases(direct.VECTOR_WIDTH):
        params = (ONE, ONE, pad, pad, groups)
        geo = conv.geometry(x_shape, w_shape, *params)
        assert direct.forward_on_rows(x_shape, w_shape, geo)
        x, w, dy = _arrays(7, x_shape, w_shape, params)
        y = direct.forward(x, w, geo, 2)
        np.testing.assert_allclose(y, ref.conv_forward(x, w, *params), rtol=1e-4, atol=1e-4)
        dx = direct.backward_data(dy, w, geo, 2)
        expected = ref.conv_backward_data(dy, w, x_shape[2:], *params)
        np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-4)


def test_block_reading_past_the_last_plane(direct):
    """Outputs that end just inside a block: the kernel reads up to a block past the padded
    input, which must be zeros, not whatever memory follows."""
    for width in range(1, 70):
        x = np.ones((1, 1, 1, 1, width), np.float32)
        w = np.ones((1, 1, 1, 1, 1), np.float32)
        geo = conv.geometry(x.shape, w.shape, ONE, ONE, (0, 0, 0), (0, 0, 0), 1)
        y = direct.forward(x, w, geo, 2)
        np.testing.assert_array_equal(y, x)


def test_dispatcher_chooses_direct_where_the_build_has_it():
    """A float32 stride-1 5x5 conv (LeNet's second, 16 output channels): with AVX-512 the grid
    for the forward (16 channels fill one vector) and the backward-data, the compact weight
    gradient; with AVX2 the forward in the compact layout (two vectors, 100 of 196 plane
    positions are outputs), the backward-data (6 input channels) on the grid; never with the
    baseline's 4-float vectors; float64 always on the GEMM."""
    zero = (0, 0, 0)
    geo = conv.geometry((2, 6, 1, 14, 14), (16, 6, 1, 5, 5), ONE, ONE, zero, zero, 1)
    expected = {"avx512": ["direct", "direct", "compact"],
                "avx2": ["compact", "direct", "compact"],
                "baseline": ["gemm", "gemm", "gemm"]}[runtime.isa()]
    assert [dispatch.choose(p, geo, np.float32) for p in dispatch.PASSES] == expected
    assert [dispatch.choose(p, geo, np.float64) for p in dispatch.PASSES] == ["gemm"] * 3
    assert dispatch.applicable("direct", "forward", geo, np.float32)
    assert not dispatch.applicable("direct", "forward", geo, np.float64)
    # strided forwards: compact where the output channels fill two vectors (16 with AVX2, the
    # ResNet stem's 64 on both paths), else the grid on the input's phases (AVX-512) or the GEMM
    strided = conv.geometry((2, 6, 1, 14, 14), (16, 6, 1, 5, 5), (1, 2, 2), ONE, zero, zero, 1)
    stem = conv.geometry((2, 3, 1, 32, 32), (64, 3, 1, 7, 7), (1, 2, 2), ONE, zero, zero, 1)
    expected = {"avx512": ["direct", "compact"], "avx2": ["compact", "compact"],
                "baseline": ["gemm", "gemm"]}[runtime.isa()]
    assert [dispatch.choose("forward", g, np.float32) for g in (strided, stem)] == expected
    strided_weight = {"avx512": "compact", "avx2": "compact", "baseline": "gemm"}[runtime.isa()]
    assert dispatch.choose("weight", strided, np.float32) == strided_weight
    # strided backward-data: with AVX-512 phase by phase on the grid (3 input channels: GEMM);
    # a 4x4/2 kernel's phases on 8x8 (79% of their padded planes: the ConvTranspose2d bench
    # case's forward) in the compact layout, on both paths
    r3x3s2 = conv.geometry((2, 64, 1, 56, 56), (128, 64, 1, 3, 3), (1, 2, 2), ONE, (0, 1, 1),
                           (0, 1, 1), 1)
    small_phases = conv.geometry((2, 128, 1, 16, 16), (256, 128, 1, 4, 4), (1, 2, 2), ONE,
                                 (0, 1, 1), (0, 1, 1), 1)
    expected = {"avx512": ["direct", "gemm", "compact"], "avx2": ["gemm", "gemm", "compact"],
                "baseline": ["gemm", "gemm", "gemm"]}[runtime.isa()]
    geos = (r3x3s2, stem, small_phases)
    assert [dispatch.choose("data", g, np.float32) for g in geos] == expected
    # ... unless a phase's padding exceeds its sub-kernel (3 on a 3x3 kernel with stride 2)
    far = conv.geometry((2, 64, 1, 16, 16), (128, 64, 1, 3, 3), (1, 2, 2), ONE, (0, 3, 3),
                        (0, 3, 3), 1)
    assert not dispatch.applicable("direct", "data", far, np.float32)
    assert dispatch.choose("data", far, np.float32) == "gemm"
    # a 1x1 conv: with AVX-512 the grid, else the GEMM straight on x
    one = conv.geometry((2, 256, 1, 8, 8), (64, 256, 1, 1, 1), ONE, ONE, zero, zero, 1)
    pointwise = "direct" if runtime.isa() == "avx512" else "pointwise"
    assert [dispatch.choose(p, one, np.float32) for p in dispatch.PASSES] == [pointwise] * 3
    if runtime.isa() == "baseline":
        return
    # the main job's second conv: 36 outputs on a 6x6 plane per image, 16 of 36 in the forward
    small = conv.geometry((32, 32, 1, 6, 6), (64, 32, 1, 3, 3), ONE, ONE, zero, zero, 1)
    assert [dispatch.choose(p, small, np.float32) for p in dispatch.PASSES] == ["compact"] * 3
    # ResNet 64@56: 93% of the padded plane are outputs, the grid for the forward with AVX2
    # (compact with AVX-512: 4 vectors of channels) and the compact weight gradient (on both
    # paths: with AVX2 64 channels are too few for Winograd);
    # CIFAR's first conv, 3 input channels x 3x3 (27 taps, too few for the compact layout),
    # 1024 outputs on a 34x34 plane (89%): the grid for the forward and the weight gradient;
    # the digits' first conv (9 taps, 36 outputs on an 8x8 plane): the GEMM forward
    pad = (0, 1, 1)
    large = conv.geometry((2, 64, 1, 56, 56), (64, 64, 1, 3, 3), ONE, ONE, pad, pad, 1)
    large_forward = {"avx512": "compact", "avx2": "direct"}[runtime.isa()]
    assert dispatch.choose("forward", large, np.float32) == large_forward
    assert dispatch.choose("weight", large, np.float32) == "compact"
    # ... and ResNet 256@14 on Winograd with AVX2
    deep = conv.geometry((2, 256, 1, 14, 14), (256, 256, 1, 3, 3), ONE, ONE, pad, pad, 1)
    deep_choice = {"avx512": "compact", "avx2": "winograd"}[runtime.isa()]
    assert [dispatch.choose(p, deep, np.float32) for p in dispatch.PASSES] == [deep_choice] * 3
    few_taps = conv.geometry((2, 3, 1, 32, 32), (32, 3, 1, 3, 3), ONE, ONE, pad, pad, 1)
    assert dispatch.choose("forward", few_taps, np.float32) == "direct"
    assert dispatch.choose("weight", few_taps, np.float32) == "direct"
    assert dispatch._weight_lanes(few_taps, runtime.isa())  # 27 taps: positions in the lanes
    assert not dispatch._weight_lanes(large, runtime.isa())  # 576 taps, 64 channels
    digits1 = conv.geometry((2, 1, 1, 8, 8), (32, 1, 1, 3, 3), ONE, ONE, zero, zero, 1)
    assert dispatch.choose("forward", digits1, np.float32) == "gemm"
    # LeNet's first conv, 6 output channels and 25 taps: the grid's positions-in-lanes weight
    # kernel on both paths
    pad = (0, 2, 2)
    lenet1 = conv.geometry((2, 1, 1, 28, 28), (6, 1, 1, 5, 5), ONE, ONE, pad, pad, 1)
    assert dispatch.choose("weight", lenet1, np.float32) == "direct"
    assert dispatch._weight_lanes(lenet1, runtime.isa())


def test_modules_are_compiled_for_their_instruction_set():
    widths = {"baseline": 4, "avx2": 8, "avx512": 16}
    for name in ISAS:
        module = importlib.import_module(f"minidl._ext.direct_{name}")
        assert module.VECTOR_WIDTH == widths[name]
        assert module.isa() == name


@pytest.mark.parametrize("layout", WEIGHT_LAYOUTS)
def test_weight_is_deterministic(direct, layout):
    """Static scheduling: the same parts sum the same chunks every run."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 1, 20, 20)).astype(np.float32)
    dy = rng.standard_normal((4, 16, 1, 18, 18)).astype(np.float32)
    geo = conv.geometry(x.shape, (16, 8, 1, 3, 3), ONE, ONE, (0, 0, 0), (0, 0, 0), 1)
    runs = [_weight(direct, layout, x, dy, geo) for _ in range(5)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])
