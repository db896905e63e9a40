"""The one place that chooses how a convolution is computed, and the three primitives.

Every conv layer and gradient runs on three primitives over a :class:`ConvGeometry`
(``minidl._geometry``, already validated):

=====================================  ======================  =============================
primitive                              computes                also serves as
=====================================  ======================  =============================
``conv_forward(x, w, geo)``            y                       ConvTranspose backward-data
``conv_backward_data(dy, w, geo)``     dx                      ConvTranspose forward
``conv_backward_weight(x, dy, geo)``   dw                      ConvTranspose backward-weight
=====================================  ======================  =============================

Each primitive asks :func:`choose` which algorithm computes it:

- ``gemm``: im2col + BLAS (``gemm.pyx``); serves every geometry and dtype.
- ``pointwise``: the same GEMM run on x itself (1x1 kernel, stride 1, no padding).
- ``depthwise``: per-plane direct kernels (``_depthwise.pxi``) for one input channel per group.
- ``direct``: SIMD register-blocked float32 kernels on a padded grid (``_direct.pxi``), for
  every instruction set; the default where they win (``_direct_layout``).
- ``compact``: the same kernels' compact layout, the real output positions only, SIMD over
  output channels.
- ``winograd``: F(2x2, 3x3) for 2-D 3x3 stride-1 convs (``winograd.pyx``).

The choice is a function of the pass, the geometry, the dtype and the instruction set in use
(``minidl.runtime.isa()``); its thresholds are the named constants below, each with the bench
case (``python -m minidl.bench``) that set it. The direct and depthwise kernels come from the
modules compiled for that instruction set. To force an algorithm, pass
``algorithm=`` to a primitive, or wrap any code in ``with force("gemm"):``; to see the
choices, ``with record() as log:`` collects ``(pass, algorithm)`` pairs.
"""

from __future__ import annotations

import functools
import importlib
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .. import runtime
from .._geometry import ConvGeometry
from . import gemm, winograd

# the modules compiled for the instruction set minidl.runtime chose
direct = importlib.import_module(f"minidl._ext.direct_{runtime.isa()}")
depthwise = importlib.import_module(f"minidl._ext.depthwise_{runtime.isa()}")

PASSES = ("forward", "data", "weight")
ALGORITHMS = ("gemm", "pointwise", "depthwise", "direct", "compact", "winograd")

# Depthwise with a channel multiplier up to this uses the depthwise kernels; from a multiplier
# of 4 on, (multiplier x kvol) @ (kvol x P) is wide enough for BLAS to win (bench case:
# depthwise 3x3; the LeNet first layer, C = 1 and O = 6, is faster as a GEMM).
DEPTHWISE_MAX_MULTIPLIER = 2
# Winograd pays off from these channel counts (min of in and out) on: below them the GEMM
# kernel is as fast (bench cases: ResNet 3x3 64@56 and 256@14, VGG 3x3 128@28).
WINOGRAD_MIN_CHANNELS = {"forward": 32, "data": 64, "weight": 64}
# ... and with at least this many output rows and columns (a tile is 2x2; on the main job's
# second conv, 4x4 outputs, the compact direct layout is faster with AVX2).
WINOGRAD_MIN_OUTPUT = 8
# F(2x2, 3x3): as precise as the GEMM in float32. F(4x4, 3x3) is faster but its float32 error
# is ~20x the GEMM's, beyond the parity tolerances: opt-in only (winograd.conv3x3_* tile=4).
WINOGRAD_TILE = 2
# The strided backward-data runs phase by phase on the grid from this many input channels per
# group on: with fewer the GEMM is faster (bench case: the ResNet stem's 3).
DIRECT_DATA_MIN_CHANNELS = 4
# Where the direct kernels are the default (float32, not pointwise, not small-multiplier
# depthwise), per instruction set (bench cases, each path against PyTorch capped the same way):
# - avx512: every pass where they apply; they also beat Winograd (ResNet 3x3 cases).
# - avx2: the forward and the backward-data of stride-1 convs (LeNet, digits, CIFAR, conv1d,
#   conv3d, ResNet 3x3 64@56; the strided ResNet stem's backward passes stay on the GEMM).
#   Winograd goes first where it pays and has WINOGRAD_OVER_DIRECT_MIN_CHANNELS.
# - baseline (4-float vectors): never.
# With AVX-512 the direct kernels beat Winograd at any channel count (ResNet 3x3 cases); with
# AVX2 below 128 (ResNet 64@56: all three passes; VGG 128@28 and ResNet 256@14 stay on it).
WINOGRAD_OVER_DIRECT_MIN_CHANNELS = {"avx512": math.inf, "avx2": 128}
# Which of the two direct layouts (``_direct.pxi``): the padded grid computes every grid
# position, the compact layout only the real outputs but needs output channels to fill its
# vectors. The compact one serves a forward or backward-data pass whose output channels (per
# group) fill this many vectors and whose outputs are less than COMPACT_MAX_GRID_USE of the
# padded plane (digits 16->32 @8x8: 64%, main-job conv2 @6x6: 44%, ResNet 256@14: 77%; the grid
# wins at ResNet 64@56: 93%, conv3d: 83%), with at least COMPACT_MIN_TAPS taps per output
# (with fewer, it spends its time storing outputs: the digits' first conv, 9 taps on 56% of
# its plane, stays on the GEMM; CIFAR's, 27 taps on 89%, goes to the grid). It serves the
# backward-weight (dy without the zero rows of the grid) of convs whose outputs are less than
# COMPACT_WEIGHT_MAX_GRID_USE of the padded plane (conv3d: 83%, VGG 128@28: 87%, ResNet 64@56:
# 93%; the grid wins where the plane has next to no padding: ResNet 1x1, conv1d), unless the
# output channels fill under half a vector: the grid's kernel with positions in the lanes
# serves those (LeNet's first conv, 6 channels, with AVX-512), and those with fewer than
# COMPACT_MIN_TAPS taps, where transposing dy for the channel vectors costs more than the
# products (bench case: CIFAR's first conv, 89%; LeNet's first with AVX2), unless their
# channels fill vectors and their outputs are under FEW_TAPS_COMPACT_WEIGHT_MAX_GRID_USE of
# the plane (the main job's first conv, 56%: compact).
COMPACT_MIN_VECTORS = 2
COMPACT_MAX_GRID_USE = 0.8
COMPACT_MIN_TAPS = 32
COMPACT_WEIGHT_MAX_GRID_USE = 0.95
FEW_TAPS_COMPACT_WEIGHT_MAX_GRID_USE = 0.85
# With AVX-512 and output channels that fill 4 vectors (the compact kernel's widest block:
# each input broadcast feeds 4 multiply-adds), the compact layout wins up to this share for
# the forward and the backward-data (VGG 128@28: 87%; ResNet 64@56: 93%; AVX2's
# 4-vector block holds 3 positions, and the grid kept conv3d's 83% there).
COMPACT_WIDE_MAX_GRID_USE = {"avx512": 0.95}
COMPACT_WIDE_VECTORS = 4
# Strided forwards: the compact layout reads each window where it starts, where the grid
# needs the input split into phases first (bench cases: ResNet 3x3/2, the ConvTranspose's
# backward-data, the ResNet stem; on both paths).  A strided backward-data runs phase by phase, in
# the compact layout where the phases' outputs take less of their padded planes than the
# stride-1 rule allows (the ConvTranspose2d 4x4/2 bench case's forward: 8x8 phases, 79%; on
# both paths), else on the grid (AVX-512) or the GEMM.
# The weight gradient of strided convs runs in the compact layout on both paths (bench cases:
# ResNet 3x3/2, the stem, the ConvTranspose 4x4/2).  Where the GEMM otherwise serves (with
# OpenBLAS held to AVX2 kernels on an AVX-512 CPU), the direct kernels beat it on these
# instruction sets: the strided backward-data phase by phase on the grid (ResNet 3x3/2, the
# ConvTranspose's forward; with at least DIRECT_DATA_MIN_CHANNELS input channels: the stem's 3
# stay on the GEMM) and 1x1 convs on the grid (ResNet 1x1 256->64).
DIRECT_BEATS_GEMM = ("avx512",)
VECTOR_WIDTH = {"avx512": 16, "avx2": 8, "baseline": 4}


_local = threading.local()  # forced algorithm and record log: per thread, like grad mode


# ---- what each algorithm can compute -------------------------------------------------------
def _winograd_fits(geo: ConvGeometry) -> bool:
    """2-D (depth 1), 3x3, stride 1, dilation 1, one group, H/W padding 0..2."""
    return (
        geo.groups == 1
        and geo.kernel == (1, 3, 3)
        and geo.x_shape[2] == 1
        and geo.pad_before[0] == geo.pad_after[0] == 0
        and geo.stride == (1, 1, 1)
        and geo.dilation == (1, 1, 1)
        and max(geo.pad_before[1:] + geo.pad_after[1:]) <= 2
    )


def _direct_fits(pass_: str, geo: ConvGeometry, dtype: np.dtype) -> bool:
    """float32; forward: stride 1 or dilation 1; data: pad_before within the kernel extent
    (strided: in every input phase, dilation 1); weight: stride 1."""
    if dtype != np.float32:
        return False
    stride_one = geo.stride == (1, 1, 1)
    if pass_ == "forward":
        return stride_one or geo.dilation == (1, 1, 1)
    if pass_ == "data":  # strided: phase by phase
        return direct.data_padding_fits(geo)
    return stride_one


def applicable(algorithm: str, pass_: str, geo: ConvGeometry, dtype: np.dtype) -> bool:
    """Whether ``algorithm`` can compute this pass at all (not whether it is the fastest)."""
    if algorithm == "gemm":
        return True
    if algorithm == "pointwise":
        return geo.pointwise
    if algorithm == "depthwise":
        return geo.depthwise
    if algorithm == "compact" and pass_ != "data":  # windows at any stride and dilation
        return dtype == np.float32
    if algorithm in ("direct", "compact"):
        return _direct_fits(pass_, geo, dtype)
    if algorithm == "winograd":
        return _winograd_fits(geo)
    raise ValueError(f"unknown conv algorithm {algorithm!r}: expected one of {ALGORITHMS}")


# ---- the choice --------------------------------------------------------------------------------
def choose(pass_: str, geo: ConvGeometry, dtype: np.dtype) -> str:
    """The algorithm for this pass: a forced one where it applies, else the table below."""
    forced = getattr(_local, "forced", None)
    if forced is not None and applicable(forced, pass_, geo, dtype):
        return forced
    return _table(pass_, geo, np.dtype(dtype))


def _table(pass_: str, geo: ConvGeometry, dtype: np.dtype) -> str:
    return _decide(pass_, geo, dtype, runtime.isa())


@functools.lru_cache(maxsize=1024)  # a small conv's forward takes tens of microseconds
def _decide(pass_: str, geo: ConvGeometry, dtype: np.dtype, isa: str) -> str:
    float32 = dtype == np.float32
    if _winograd_pays(pass_, geo) and not (float32 and _direct_beats_winograd(geo, isa)):
        return "winograd"
    small_multiplier = geo.depthwise and geo.out_per_group <= DEPTHWISE_MAX_MULTIPLIER
    fits = pass_ == "weight" or _direct_fits(pass_, geo, dtype)  # compact weight: any stride
    pointwise_ok = not geo.pointwise or isa in DIRECT_BEATS_GEMM
    if float32 and pointwise_ok and not small_multiplier and fits:
        layout = _direct_layout(pass_, geo, isa)
        if layout is not None:
            return layout
    if small_multiplier:
        return "depthwise"
    return "pointwise" if geo.pointwise else "gemm"


def _direct_layout(pass_: str, geo: ConvGeometry, isa: str) -> str | None:
    """"direct" (the grid), "compact" or None (not the direct kernels) for this pass on
    ``isa``."""
    if isa == "baseline":
        return None
    strided = geo.stride != (1, 1, 1)
    if pass_ == "weight":
        if strided:
            return "compact"
        if _weight_lanes(geo, isa):
            return "direct"
        return "compact" if _grid_use(pass_, geo) < COMPACT_WEIGHT_MAX_GRID_USE else "direct"
    kvol = geo.kernel[0] * geo.kernel[1] * geo.kernel[2]
    if pass_ == "forward":
        channels, taps = geo.out_per_group, geo.in_per_group * kvol
    else:
        channels, taps = geo.in_per_group, geo.out_per_group * kvol
    wide = channels >= COMPACT_MIN_VECTORS * VECTOR_WIDTH[isa]
    if strided:  # the grid needs the input (forward) or dx (data) split in phases
        if pass_ == "forward" and wide and taps >= COMPACT_MIN_TAPS:
            return "compact"
        if (pass_ == "data" and wide and taps >= COMPACT_MIN_TAPS
                and _phases_grid_use(geo) < _compact_max_grid_use(channels, taps, isa)):
            return "compact"  # phase by phase, as on the grid
        if pass_ == "data" and isa not in DIRECT_BEATS_GEMM:
            return None
    elif wide and _grid_use(pass_, geo) < _compact_max_grid_use(channels, taps, isa):
        return "compact" if taps >= COMPACT_MIN_TAPS else None
    return "direct" if _grid_wins(pass_, geo, isa) else None


def _compact_max_grid_use(channels: int, taps: int, isa: str) -> float:
    """Below which share of the padded plane a stride-1 forward or backward-data with this
    many output channels (per group) runs in the compact layout."""
    if channels >= COMPACT_WIDE_VECTORS * VECTOR_WIDTH[isa] and taps >= COMPACT_MIN_TAPS:
        return COMPACT_WIDE_MAX_GRID_USE.get(isa, COMPACT_MAX_GRID_USE)
    return COMPACT_MAX_GRID_USE


@functools.lru_cache(maxsize=1024)  # asked on every grid weight gradient, as _decide is
def _weight_lanes(geo: ConvGeometry, isa: str) -> bool:
    """Whether the grid's weight gradient runs with positions in the lanes: few output channels
    per vector, or few taps, unless the channels fill vectors and the outputs a small share of
    the padded plane (then the compact layout: the main job's first conv, 9 taps, 36 outputs
    on 64 positions)."""
    taps = geo.in_per_group * geo.kernel[0] * geo.kernel[1] * geo.kernel[2]
    if 2 * geo.out_per_group <= VECTOR_WIDTH[isa]:
        return True
    return taps < COMPACT_MIN_TAPS and (
        geo.out_per_group < VECTOR_WIDTH[isa]
        or _grid_use("weight", geo) >= FEW_TAPS_COMPACT_WEIGHT_MAX_GRID_USE)


def _grid_weight(x, dy, geo, nt, parts):
    lanes = _weight_lanes(geo, runtime.isa())
    return direct.backward_weight(x, dy, geo, nt, parts, lanes=lanes)


def _grid_use(pass_: str, geo: ConvGeometry) -> float:
    """The fraction of the padded plane that the outputs take (stride 1): of the conv's
    input for the forward and the weight gradient, of dy padded for the backward-data."""
    if pass_ != "data":
        outputs = geo.out_size
        pads = zip(geo.in_size, geo.pad_before, geo.pad_after, strict=True)
        padded = [i + b + a for i, b, a in pads]
    else:  # the forward of dy padded by the dilated kernel extent (direct.backward_data)
        outputs = geo.in_size
        extents = zip(geo.in_size, geo.dilation, geo.kernel, strict=True)
        padded = [i + d * (k - 1) for i, d, k in extents]
    return math.prod(outputs) / math.prod(padded)


def _phases_grid_use(geo: ConvGeometry) -> float:
    """The grid use of a strided backward-data's phases (direct.backward_data), on average."""
    phases = direct._data_phase_problems(geo)
    return sum(_grid_use("data", phase) for _, phase, _ in phases) / len(phases)


def _grid_wins(pass_: str, geo: ConvGeometry, isa: str) -> bool:
    """Whether the grid layout is the default for a forward or backward-data pass (strided:
    on the phases of the input, or of dx)."""
    if geo.stride == (1, 1, 1):
        return True
    if pass_ == "forward":
        return isa == "avx512"
    return isa == "avx512" and geo.in_per_group >= DIRECT_DATA_MIN_CHANNELS


def _direct_beats_winograd(geo: ConvGeometry, isa: str) -> bool:
    """Whether the direct kernels take this 3x3 conv from Winograd on ``isa``."""
    channels = min(geo.w_shape[0], geo.w_shape[1])
    return channels < WINOGRAD_OVER_DIRECT_MIN_CHANNELS.get(isa, 0)


def _winograd_pays(pass_: str, geo: ConvGeometry) -> bool:
    """Winograd applies and has enough channels and outputs to win over the GEMM."""
    channels = min(geo.w_shape[0], geo.w_shape[1])
    return (
        _winograd_fits(geo)
        and channels >= WINOGRAD_MIN_CHANNELS[pass_]
        and min(geo.out_size[1:]) >= WINOGRAD_MIN_OUTPUT
    )


@contextmanager
def force(algorithm: str | None) -> Iterator[None]:
    """Within the block (this thread), use ``algorithm`` wherever it applies (see
    :func:`applicable`); elsewhere the usual choice. ``None`` restores the usual choice."""
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ValueError(f"unknown conv algorithm {algorithm!r}: expected one of {ALGORITHMS}")
    previous = getattr(_local, "forced", None)
    _local.forced = algorithm
    try:
        yield
    finally:
        _local.forced = previous


@contextmanager
def record() -> Iterator[list[tuple[str, str]]]:
    """Collect the ``(pass, algorithm)`` of every primitive run within the block (this
    thread)."""
    previous = getattr(_local, "log", None)
    log: list[tuple[str, str]] = []
    _local.log = log
    try:
        yield log
    finally:
        _local.log = previous


def _pick(pass_: str, geo: ConvGeometry, dtype: np.dtype, algorithm: str | None) -> str:
    if algorithm is None:
        algorithm = choose(pass_, geo, dtype)
    elif not applicable(algorithm, pass_, geo, dtype):
        raise ValueError(
            f"conv algorithm {algorithm!r} cannot compute the {pass_} pass of input "
            f"{geo.x_shape}, weight {geo.w_shape} (stride {geo.stride}, dilation "
            f"{geo.dilation}, groups {geo.groups}, {np.dtype(dtype).name}, isa {runtime.isa()})"
        )
    log = getattr(_local, "log", None)
    if log is not None:
        log.append((pass_, algorithm))
    return algorithm


# ---- cheap checks: the arrays match the geometry ---------------------------------------------
def _array(name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.shape != shape:
        got = getattr(a, "shape", type(a).__name__)
        raise ValueError(f"{name} has shape {got}, the conv geometry expects {shape}")
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _pair(first, second):
    (n1, a, s1), (n2, b, s2) = first, second
    a, b = _array(n1, a, s1), _array(n2, b, s2)
    if a.dtype != b.dtype:
        raise TypeError(f"{n1} and {n2} must share a dtype, got {a.dtype} and {b.dtype}")
    return a, b


# ---- the algorithms' entry points, one signature each ----------------------------------------
def _winograd_forward(x, w, geo, nt, parts):
    return winograd.conv3x3_forward(x, w, geo.pad_before[1:], geo.pad_after[1:],
                                    WINOGRAD_TILE, nt, parts)


def _winograd_data(dy, w, geo, nt, parts):
    return winograd.conv3x3_backward_data(dy, w, geo.in_size, geo.pad_before[1:],
                                          geo.pad_after[1:], WINOGRAD_TILE, nt, parts)


def _winograd_weight(x, dy, geo, nt, parts):
    return winograd.conv3x3_backward_weight(x, dy, geo.pad_before[1:], geo.pad_after[1:],
                                            WINOGRAD_TILE, nt, parts)


def _whole_outputs(kernel, **options):
    """A forward or backward-data kernel that computes each output whole in one work item:
    its bits do not depend on how the work is split, so it takes no `parts`."""
    def run(a, b, geo, nt, parts):
        return kernel(a, b, geo, nt, **options)
    return run


# Every entry point: (array, array, geo, nt, parts): run on nt threads, the work split as for
# `parts` (minidl.get_num_threads()); nt = runtime.threads_in_use() may be fewer: the same bits.
_FORWARD = {"gemm": gemm.forward, "pointwise": gemm.forward,
            "depthwise": _whole_outputs(depthwise.forward),
            "direct": _whole_outputs(direct.forward),
            "compact": _whole_outputs(direct.forward, compact=True),
            "winograd": _winograd_forward}
_DATA = {"gemm": gemm.backward_data, "pointwise": gemm.backward_data,
         "depthwise": _whole_outputs(depthwise.backward_data),
         "direct": _whole_outputs(direct.backward_data),
         "compact": _whole_outputs(direct.backward_data, compact=True),
         "winograd": _winograd_data}
_WEIGHT = {"gemm": gemm.backward_weight, "pointwise": gemm.backward_weight,
           "depthwise": depthwise.backward_weight, "direct": _grid_weight,
           "compact": functools.partial(direct.backward_weight, compact=True),
           "winograd": _winograd_weight}


# ---- the three primitives ----------------------------------------------------------------------
def conv_forward(x: np.ndarray, w: np.ndarray, geo: ConvGeometry,
                 algorithm: str | None = None) -> np.ndarray:
    """y (N, O, oD, oH, oW): cross-correlation of x (N, C, D, H, W) with w (O, C/groups, *k)."""
    x, w = _pair(("x", x, geo.x_shape), ("w", w, geo.w_shape))
    if geo.x_shape[0] == 0:
        return np.empty(geo.y_shape, x.dtype)
    run = _FORWARD[_pick("forward", geo, x.dtype, algorithm)]
    return run(x, w, geo, runtime.threads_in_use(), runtime.get_num_threads())


def conv_backward_data(dy: np.ndarray, w: np.ndarray, geo: ConvGeometry,
                       algorithm: str | None = None) -> np.ndarray:
    """dx (N, C, D, H, W): the gradient of :func:`conv_forward` w.r.t. x (= ConvTranspose
    forward). The input size may exceed the smallest with this output size (ConvTranspose's
    output_padding): the extra positions get contributions only from taps that reach them."""
    dy, w = _pair(("dy", dy, geo.y_shape), ("w", w, geo.w_shape))
    if geo.x_shape[0] == 0:
        return np.empty(geo.x_shape, dy.dtype)
    run = _DATA[_pick("data", geo, dy.dtype, algorithm)]
    return run(dy, w, geo, runtime.threads_in_use(), runtime.get_num_threads())


def conv_backward_weight(x: np.ndarray, dy: np.ndarray, geo: ConvGeometry,
                         algorithm: str | None = None) -> np.ndarray:
    """dw (O, C/groups, *k): the gradient of :func:`conv_forward` w.r.t. w: a sum over the
    images, in :func:`minidl.get_num_threads` parts added in order, run on
    :func:`minidl.runtime.threads_in_use` threads (the same bits however many that is)."""
    x, dy = _pair(("x", x, geo.x_shape), ("dy", dy, geo.y_shape))
    if geo.x_shape[0] == 0:
        return np.zeros(geo.w_shape, x.dtype)
    run = _WEIGHT[_pick("weight", geo, x.dtype, algorithm)]
    return run(x, dy, geo, runtime.threads_in_use(), runtime.get_num_threads())
