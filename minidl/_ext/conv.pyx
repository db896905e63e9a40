# cython: language_level=3
"""The three convolution primitives: forward, backward-data and backward-weight.

Everything is written once for 3 spatial dims (1-D is ``(1, 1, W)``, 2-D is ``(1, H, W)``) with
stride, dilation, asymmetric zero padding and groups, for float32 and float64 through the fused
type ``floating``.  ConvTranspose is the same three kernels with the roles swapped (its forward
is ``conv_backward_data``).

Layout: x ``(N, C, D, H, W)``, w ``(O, C // groups, kD, kH, kW)``, y ``(N, O, oD, oH, oW)``.
With ``K = (C // groups) * kD * kH * kW`` and ``P = oD * oH * oW``, one group of one image is

    forward          y_g  (Og, P) = w_g (Og, K)   @ col (K, P)
    backward-data    col  (K, P)  = w_g^T (K, Og) @ dy_g (Og, P)      then col2im into dx
    backward-weight  dw_g (Og, K) += dy_g (Og, P) @ col^T (P, K)     (computed transposed)

where ``col`` is the im2col unfolding of x (zero padding is implicit: x is never copied padded).
The GEMMs are BLAS calls made without the GIL; BLAS is column-major, so a row-major product
``C = A @ B`` is issued as ``C^T = B^T @ A^T`` (the operands swap, nothing is copied).

Threading: OpenMP ``prange`` over independent work items -- (image, group, tile of output rows)
for forward and backward-weight, (image, group, block of input channels) for backward-data, so a
single image still keeps every thread busy -- each thread with its own column buffer, and BLAS
limited to one thread meanwhile (threadpoolctl) so the two never oversubscribe the cores.
Backward-weight accumulates into one dw per thread and sums them once at the end.  Measured on
2 cores: one multi-threaded BLAS GEMM per image instead is 5-70% slower (im2col then runs on one
thread), and parallelising that im2col with OpenMP as well is 4-10x slower: the OpenMP and
OpenBLAS thread pools each spin-wait on the cores the other one needs.

Special cases: a 1x1 kernel with stride 1 and no padding runs the GEMM straight on x (im2col
would be a copy); depthwise convolution (groups == C, one input channel per group) with a channel
multiplier of 1 or 2 uses a direct kernel per plane, because its GEMMs would be
(multiplier x kvol) @ (kvol x P): too thin for BLAS to be worth the unfolding.
"""

import operator
import os

import numpy as np
from contextlib import nullcontext

from threadpoolctl import ThreadpoolController

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from minidl._ext import direct
from minidl._ext._args import thread_count
from minidl._ext._args import triple as _triple

# Bytes of column buffer per work item.  Forward / backward-weight unfold a tile of ~1 MiB: BLAS
# is already at its single-thread peak there and the tile stays in L2.  Backward-data wants
# wider GEMMs (n = channels * kvol): ~15% faster BLAS with 4 MiB blocks than with 1 MiB.
_TILE_BYTES = 1 << 20
_BLOCK_BYTES = 4 << 20
_INT_MAX = 2**31 - 1  # BLAS (LP64) dimensions are C ints


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------

def _default_num_threads():
    """OMP_NUM_THREADS if set (its first entry), else the number of CPUs."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        n = 0
    return n if n > 0 else (os.cpu_count() or 1)


cdef int _num_threads = _default_num_threads()
_blas_libraries = None


def set_num_threads(n: int) -> None:
    """Set the number of threads the convolution kernels use."""
    global _num_threads
    _num_threads = thread_count(n)


def get_num_threads() -> int:
    """Number of threads the convolution kernels use."""
    return _num_threads


def _single_threaded_blas():
    """Context manager: BLAS on one thread while our own OpenMP threads call it.

    minidl.threads already keeps BLAS on one thread, so usually there is nothing to limit:
    reading the thread counts costs ~1 us where entering a limit costs ~20 us per call."""
    global _blas_libraries
    if _blas_libraries is None:  # scanning the loaded libraries costs ~ms: do it once
        _blas_libraries = ThreadpoolController().select(user_api="blas")
    if all(lib.num_threads == 1 for lib in _blas_libraries.lib_controllers):
        return nullcontext()
    return _blas_libraries.limit(limits=1)


# --------------------------------------------------------------------------------------------
# Validation (Python level, before any unchecked indexing)
# --------------------------------------------------------------------------------------------

def _float_arrays(**arrays):
    """The named arrays as C-contiguous 5-D arrays of one floating dtype."""
    out = {name: np.asarray(a) for name, a in arrays.items()}
    dtypes = {a.dtype for a in out.values()}
    if len(dtypes) != 1 or dtypes.pop() not in (np.float32, np.float64):
        desc = ", ".join(f"{name}: {a.dtype}" for name, a in out.items())
        raise TypeError(f"arrays must be float32 or float64, all of one dtype, got {desc}")
    for name, a in out.items():
        if a.ndim != 5:
            raise ValueError(f"{name} must be 5-D, got shape {a.shape}")
    return [np.ascontiguousarray(a) for a in out.values()]


def _params(stride, dilation, pad_before, pad_after, groups):
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"groups must be an int, got {groups!r}") from None
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return (
        _triple(stride, "stride", 1),
        _triple(dilation, "dilation", 1),
        _triple(pad_before, "pad_before", 0),
        _triple(pad_after, "pad_after", 0),
        groups,
    )


def _output_size(in_size, kernel, stride, dilation, pad_before, pad_after):
    """Forward output size; ValueError if the dilated kernel exceeds the padded input."""
    padded = tuple(i + b + a for i, b, a in zip(in_size, pad_before, pad_after))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(p < e for p, e in zip(padded, extent)):
        raise ValueError(
            f"dilated kernel extent {extent} (kernel {tuple(kernel)}, dilation {dilation}) is "
            f"larger than the padded input {padded} (input {tuple(in_size)}, pad_before "
            f"{pad_before}, pad_after {pad_after}): the output would be empty"
        )
    return tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))


def _check_channels(C, O, w_in, groups, x_name, x_shape, w_shape):
    """C input channels, O output channels, weight expecting w_in per group."""
    if C % groups or O % groups:
        raise ValueError(
            f"channels must be divisible by groups={groups}: {C} input channels "
            f"({x_name} {x_shape}), {O} output channels (weight {w_shape})"
        )
    if w_in * groups != C:
        raise ValueError(
            f"{x_name} {x_shape} has {C} channels but weight {w_shape} expects "
            f"{w_in} * groups = {w_in * groups}"
        )


def _check_positive(shape, what):
    if min(shape) < 1:
        raise ValueError(f"{what} must be positive in every dimension, got {tuple(shape)}")


def _check_dy(dy_shape, out, N, O):
    if tuple(dy_shape) != (N, O) + tuple(out):
        raise ValueError(
            f"dy has shape {tuple(dy_shape)} but the forward output is {(N, O) + tuple(out)}"
        )


# --------------------------------------------------------------------------------------------
# Geometry shared by the nogil code
# --------------------------------------------------------------------------------------------

cdef struct Geom:
    Py_ssize_t N, C, O, G, Cg, Og
    Py_ssize_t inp[3]       # input D, H, W
    Py_ssize_t out[3]       # output oD, oH, oW
    Py_ssize_t ker[3]
    Py_ssize_t stride[3]
    Py_ssize_t dil[3]
    Py_ssize_t pad[3]       # pad_before
    Py_ssize_t pad_after[3]
    Py_ssize_t kvol         # kD * kH * kW
    Py_ssize_t K            # Cg * kvol: GEMM inner dimension
    Py_ssize_t P            # oD * oH * oW
    Py_ssize_t Pin          # D * H * W
    Py_ssize_t R            # oD * oH: output rows (of oW) -- the tiling unit
    bint pointwise          # 1x1 kernel, stride 1, no padding: col is x itself


cdef class _Geometry:
    cdef Geom g

    def __init__(self, N, C, O, groups, inp, out, ker, stride, dil, pad_before, pad_after):
        cdef int i
        cdef Geom* g = &self.g
        g.N, g.C, g.O, g.G = N, C, O, groups
        g.Cg, g.Og = C // groups, O // groups
        for i in range(3):
            g.inp[i], g.out[i], g.ker[i] = inp[i], out[i], ker[i]
            g.stride[i], g.dil[i], g.pad[i] = stride[i], dil[i], pad_before[i]
            g.pad_after[i] = pad_after[i]
        g.kvol = ker[0] * ker[1] * ker[2]
        g.K = g.Cg * g.kvol
        g.P = out[0] * out[1] * out[2]
        g.Pin = inp[0] * inp[1] * inp[2]
        g.R = out[0] * out[1]
        g.pointwise = (
            tuple(ker) == (1, 1, 1) and tuple(stride) == (1, 1, 1)
            and tuple(pad_before) == (0, 0, 0) and tuple(pad_after) == (0, 0, 0)
        )
        if max(g.K, g.P, g.Pin, g.O) > _INT_MAX:
            raise ValueError("convolution too large for 32-bit BLAS dimensions")

    @property
    def depthwise(self):
        """Depthwise with a multiplier of 1 or 2: the direct kernel beats im2col + GEMM.

        From a multiplier of 4 on, (multiplier x kvol) @ (kvol x P) is wide enough for BLAS to
        win (measured on 3x3 and 5x5, 28x28 to 112x112; a LeNet first layer, C = 1 and O = 6,
        is 1.7x faster as a GEMM).
        """
        return self.g.Cg == 1 and self.g.Og <= 2


# False: float32 takes im2col + GEMM as in a build without AVX-512 (tests cover both paths)
direct_enabled = True


def _use_direct(kind, _Geometry geo, dtype, stride, dilation) -> bool:
    """float32 in an AVX-512 build: the direct kernels (direct.pyx) beat im2col + GEMM.

    Measured (2 threads, ms, direct vs GEMM): forward LeNet 6->16 0.23 vs 0.61, ResNet 3x3
    64@56 N=8 5.4 vs 11.9, stem 7x7/2 10.5 vs 12.9; backward-data and -weight of stride-1
    convs likewise (LeNet conv1's weight, 6 output channels: 0.31 vs 0.42), but with stride 2
    (phases) and for a backward-data with fewer than 4 input channels (the kernel computes
    output channels in blocks of 8) GEMM is as fast or faster.  Not for 1x1 stride-1 kernels (a plain GEMM on x: 5.1 vs 6.7 ms at 8x256x56x56)
    nor depthwise (its own kernel below)."""
    cdef const Geom* g = &geo.g
    if not (direct_enabled and dtype == np.float32 and direct.available()):
        return False
    if g.pointwise or geo.depthwise:
        return False
    stride_one = tuple(stride) == (1, 1, 1)
    if kind == "forward":
        return stride_one or tuple(dilation) == (1, 1, 1)
    if kind == "data":
        return stride_one and g.Cg >= 4
    return stride_one


def _per_thread(nt, n, dtype, zero=False):
    """(nt, n + gap) buffer, one row per thread: the gap keeps threads off each other's cache
    lines (false sharing made the small depthwise accumulators 2x slower)."""
    shape = (nt, n + 64)
    return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)


def _plane_buffers(nt, size, before, after, dtype):
    """Per thread, room for a plane of `size` padded by before/after and its output grid
    (never longer than the padded plane): the stride-1 depthwise kernels' scratch."""
    padded = [n + b + a for n, b, a in zip(size, before, after)]
    return _per_thread(nt, 2 * padded[0] * padded[1] * padded[2], dtype)


def _tile(total, unit_bytes, units, nt, target):
    """Block size along an axis of `total` units of `unit_bytes` each.

    About `target` bytes per block, but at least `nt` blocks over all `units` (images x groups)
    so that one image still feeds every thread.
    """
    blocks = max(-(-total * unit_bytes // target), -(-nt // units))  # ceil divisions
    blocks = min(blocks, total)
    return -(-total // blocks)  # equal blocks: 64 channels in 2 blocks of 32, not 36 + 28


# --------------------------------------------------------------------------------------------
# nogil building blocks
# --------------------------------------------------------------------------------------------

cdef inline void gemm(char ta, char tb, int m, int n, int k, const floating* a, int lda,
                      const floating* b, int ldb, floating beta, floating* c,
                      int ldc) noexcept nogil:
    """Column-major c (m x n) = op(a) @ op(b) + beta * c."""
    cdef floating one = 1
    if floating is float:
        sgemm(&ta, &tb, &m, &n, &k, &one, <float*> a, &lda, <float*> b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &one, <double*> a, &lda, <double*> b, &ldb, &beta, c, &ldc)


cdef inline void tap_range(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n_in, Py_ssize_t n_out,
                           Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output positions [lo, hi) whose input position o * s + off lies in [0, n_in)."""
    cdef Py_ssize_t a = 0, b = 0
    if off < 0:
        a = (-off + s - 1) // s
    if n_in - 1 - off >= 0:
        b = (n_in - 1 - off) // s + 1
    lo[0] = min(a, n_out)
    hi[0] = max(lo[0], min(b, n_out))


cdef void im2col(const Geom* g, const floating* x, Py_ssize_t c0, Py_ssize_t c1,
                 Py_ssize_t r0, Py_ssize_t r1, floating* col) noexcept nogil:
    """Unfold channels [c0, c1) of one image x (C, D, H, W) for output rows [r0, r1).

    col is ((c1 - c0) * kvol, (r1 - r0) * oW): one row per (channel, tap), holding the input
    value that tap multiplies at every output position of the tile (0 where it hits padding).
    """
    cdef Py_ssize_t c, kd, kh, kw, r, od, oh, iz, iy, lo, hi, ow, offd, offh, offw
    cdef Py_ssize_t D = g.inp[0], H = g.inp[1], W = g.inp[2], oH = g.out[1], oW = g.out[2]
    cdef Py_ssize_t sw = g.stride[2]
    cdef const floating* src
    cdef floating* dst = col
    for c in range(c0, c1):
        for kd in range(g.ker[0]):
            offd = kd * g.dil[0] - g.pad[0]
            for kh in range(g.ker[1]):
                offh = kh * g.dil[1] - g.pad[1]
                for kw in range(g.ker[2]):
                    offw = kw * g.dil[2] - g.pad[2]
                    tap_range(offw, sw, W, oW, &lo, &hi)
                    for r in range(r0, r1):
                        od = r // oH
                        oh = r - od * oH
                        iz = od * g.stride[0] + offd
                        iy = oh * g.stride[1] + offh
                        if iz < 0 or iz >= D or iy < 0 or iy >= H:
                            memset(dst, 0, oW * sizeof(floating))
                        else:
                            src = x + ((c * D + iz) * H + iy) * W
                            memset(dst, 0, lo * sizeof(floating))
                            if sw == 1:
                                memcpy(dst + lo, src + lo + offw, (hi - lo) * sizeof(floating))
                            else:
                                for ow in range(lo, hi):
                                    dst[ow] = src[ow * sw + offw]
                            memset(dst + hi, 0, (oW - hi) * sizeof(floating))
                        dst += oW


cdef void col2im(const Geom* g, const floating* col, Py_ssize_t c0, Py_ssize_t c1,
                 floating* dx) noexcept nogil:
    """Fold col ((c1 - c0) * kvol, P) back onto channels [c0, c1) of dx: the adjoint of im2col.

    Adds into dx (C, D, H, W); taps landing in the padding are dropped.
    """
    cdef Py_ssize_t c, kd, kh, kw, r, od, oh, iz, iy, lo, hi, ow, offd, offh, offw
    cdef Py_ssize_t D = g.inp[0], H = g.inp[1], W = g.inp[2], oH = g.out[1], oW = g.out[2]
    cdef Py_ssize_t sw = g.stride[2]
    cdef floating* dst
    cdef const floating* src = col
    for c in range(c0, c1):
        for kd in range(g.ker[0]):
            offd = kd * g.dil[0] - g.pad[0]
            for kh in range(g.ker[1]):
                offh = kh * g.dil[1] - g.pad[1]
                for kw in range(g.ker[2]):
                    offw = kw * g.dil[2] - g.pad[2]
                    tap_range(offw, sw, W, oW, &lo, &hi)
                    for r in range(g.R):
                        od = r // oH
                        oh = r - od * oH
                        iz = od * g.stride[0] + offd
                        iy = oh * g.stride[1] + offh
                        if 0 <= iz < D and 0 <= iy < H:
                            dst = dx + ((c * D + iz) * H + iy) * W
                            if sw == 1:
                                for ow in range(lo, hi):
                                    dst[ow + offw] += src[ow]
                            else:
                                for ow in range(lo, hi):
                                    dst[ow * sw + offw] += src[ow]
                        src += oW


# --------------------------------------------------------------------------------------------
# GEMM path: one work item = one tile (forward, backward-weight) or channel block (data)
# --------------------------------------------------------------------------------------------

cdef void forward_tile(const Geom* g, const floating* x, const floating* w, floating* y,
                       floating* col, Py_ssize_t item, Py_ssize_t rows) noexcept nogil:
    """y[n, group, tile] for item = (n * G + group) * n_tiles + tile."""
    cdef Py_ssize_t n_tiles = (g.R + rows - 1) // rows
    cdef Py_ssize_t tile = item % n_tiles, grp = (item // n_tiles) % g.G
    cdef Py_ssize_t n = item // n_tiles // g.G
    cdef Py_ssize_t r0 = tile * rows, r1 = min(g.R, r0 + rows), pt = (r1 - r0) * g.out[2]
    cdef const floating* xn = x + n * g.C * g.Pin
    cdef const floating* a = col
    cdef Py_ssize_t lda = pt
    if g.pointwise:  # x[n, group] already is the (K, P) column matrix
        a, lda = xn + grp * g.Cg * g.Pin + r0 * g.out[2], g.Pin
    else:
        im2col(g, xn, grp * g.Cg, (grp + 1) * g.Cg, r0, r1, col)
    gemm(c'N', c'N', pt, g.Og, g.K, a, lda, w + grp * g.Og * g.K, g.K,
         0, y + (n * g.O + grp * g.Og) * g.P + r0 * g.out[2], g.P)


cdef void weight_tile(const Geom* g, const floating* x, const floating* dy, floating* dw_t,
                      floating* col, Py_ssize_t item, Py_ssize_t rows) noexcept nogil:
    """dw_t[group] += (dy[n, group, tile] @ col^T)^T, items numbered as in forward_tile.

    dw_t holds each group's dw transposed, (K, Og): OpenBLAS runs this product ~18% faster
    with the small Og as the rows of the column-major result; the caller transposes dw back.
    """
    cdef Py_ssize_t n_tiles = (g.R + rows - 1) // rows
    cdef Py_ssize_t tile = item % n_tiles, grp = (item // n_tiles) % g.G
    cdef Py_ssize_t n = item // n_tiles // g.G
    cdef Py_ssize_t r0 = tile * rows, r1 = min(g.R, r0 + rows), pt = (r1 - r0) * g.out[2]
    cdef const floating* xn = x + n * g.C * g.Pin
    cdef const floating* a = col
    cdef Py_ssize_t lda = pt
    if g.pointwise:
        a, lda = xn + grp * g.Cg * g.Pin + r0 * g.out[2], g.Pin
    else:
        im2col(g, xn, grp * g.Cg, (grp + 1) * g.Cg, r0, r1, col)
    gemm(c'T', c'N', g.Og, g.K, pt, dy + (n * g.O + grp * g.Og) * g.P + r0 * g.out[2], g.P,
         a, lda, 1, dw_t + grp * g.Og * g.K, g.Og)


cdef void data_block(const Geom* g, const floating* dy, const floating* w, floating* dx,
                     floating* col, Py_ssize_t item, Py_ssize_t chans) noexcept nogil:
    """dx[n, c0:c1] for item = (n * G + group) * n_blocks + block of `chans` channels.

    Splitting over input channels (not output positions) keeps items independent: the col
    rows of a channel fold back onto that channel only.
    """
    cdef Py_ssize_t n_blocks = (g.Cg + chans - 1) // chans
    cdef Py_ssize_t blk = item % n_blocks, grp = (item // n_blocks) % g.G
    cdef Py_ssize_t n = item // n_blocks // g.G
    cdef Py_ssize_t c0 = grp * g.Cg + blk * chans, c1 = min((grp + 1) * g.Cg, c0 + chans)
    cdef const floating* dyg = dy + (n * g.O + grp * g.Og) * g.P
    cdef const floating* wb = w + grp * g.Og * g.K + (c0 - grp * g.Cg) * g.kvol
    cdef floating* dxn = dx + n * g.C * g.Pin
    cdef Py_ssize_t kb = (c1 - c0) * g.kvol
    if g.pointwise:  # the GEMM writes dx directly, every element
        gemm(c'N', c'T', g.P, kb, g.Og, dyg, g.P, wb, g.K, 0, dxn + c0 * g.Pin, g.Pin)
    else:
        gemm(c'N', c'T', g.P, kb, g.Og, dyg, g.P, wb, g.K, 0, col, g.P)
        memset(dxn + c0 * g.Pin, 0, (c1 - c0) * g.Pin * sizeof(floating))
        col2im(g, col, c0, c1, dxn)


def _gemm_forward(_Geometry geo, const floating[::1] x, const floating[::1] w,
                  floating[::1] y, floating[:, ::1] cols, Py_ssize_t rows, int nt):
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item, n_items = g.N * g.G * ((g.R + rows - 1) // rows)
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="dynamic"):
        forward_tile(g, &x[0], &w[0], &y[0], &cols[threadid(), 0], item, rows)


def _gemm_weight(_Geometry geo, const floating[::1] x, const floating[::1] dy,
                 floating[:, ::1] dw_t_per_thread, floating[:, ::1] cols, Py_ssize_t rows,
                 int nt):
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item, n_items = g.N * g.G * ((g.R + rows - 1) // rows)
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="dynamic"):
        weight_tile(g, &x[0], &dy[0], &dw_t_per_thread[threadid(), 0], &cols[threadid(), 0],
                    item, rows)


def _gemm_data(_Geometry geo, const floating[::1] dy, const floating[::1] w,
               floating[::1] dx, floating[:, ::1] cols, Py_ssize_t chans, int nt):
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item, n_items = g.N * g.G * ((g.Cg + chans - 1) // chans)
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="dynamic"):
        data_block(g, &dy[0], &w[0], &dx[0], &cols[threadid(), 0], item, chans)


# --------------------------------------------------------------------------------------------
# Depthwise path: one work item = one (image, channel) plane, taps applied as shifted rows
# --------------------------------------------------------------------------------------------

cdef struct Box:
    Py_ssize_t lo[3]        # output positions [lo, hi) per dim where the tap hits the input
    Py_ssize_t hi[3]
    Py_ssize_t off[3]       # input position = output position * stride + off


cdef inline bint tap_box(const Geom* g, Py_ssize_t tap, Box* b) noexcept nogil:
    """Box of output positions that tap (flat index into the kernel) reads; False if empty."""
    cdef Py_ssize_t i
    cdef Py_ssize_t k[3]
    k[2] = tap % g.ker[2]
    k[1] = (tap // g.ker[2]) % g.ker[1]
    k[0] = tap // g.ker[2] // g.ker[1]
    for i in range(3):
        b.off[i] = k[i] * g.dil[i] - g.pad[i]
        tap_range(b.off[i], g.stride[i], g.inp[i], g.out[i], &b.lo[i], &b.hi[i])
        if b.lo[i] == b.hi[i]:
            return False
    return True


cdef inline Py_ssize_t in_row(const Geom* g, const Box* b, Py_ssize_t od,
                              Py_ssize_t oh) noexcept nogil:
    """Offset of the input row that output row (od, oh) reads through the tap of b."""
    return ((od * g.stride[0] + b.off[0]) * g.inp[1] + oh * g.stride[1] + b.off[1]) * g.inp[2]


cdef void depthwise_forward_plane(const Geom* g, const floating* x, const floating* w,
                                  floating* y, Py_ssize_t item) noexcept nogil:
    """y[n, o] for item = n * O + o (input channel o // multiplier)."""
    cdef Py_ssize_t o = item % g.O, n = item // g.O, tap, od, oh, ow
    cdef Py_ssize_t sw = g.stride[2], oW = g.out[2], oH = g.out[1], off
    cdef const floating* xc = x + (n * g.C + o // g.Og) * g.Pin
    cdef floating* yo = y + item * g.P
    cdef floating* yr
    cdef const floating* xr
    cdef floating wv
    cdef Box b
    memset(yo, 0, g.P * sizeof(floating))
    for tap in range(g.kvol):
        if not tap_box(g, tap, &b):
            continue
        wv, off = w[o * g.kvol + tap], b.off[2]  # locals: stores through xr can't alias them
        for od in range(b.lo[0], b.hi[0]):
            for oh in range(b.lo[1], b.hi[1]):
                yr = yo + (od * oH + oh) * oW
                xr = xc + in_row(g, &b, od, oh)
                if sw == 1:
                    for ow in range(b.lo[2], b.hi[2]):
                        yr[ow] += wv * xr[ow + off]
                else:
                    for ow in range(b.lo[2], b.hi[2]):
                        yr[ow] += wv * xr[ow * sw + off]


# Stride 1: planes zero-padded into a per-thread buffer, where every tap is one long shifted
# multiply-add over the whole grid (rows Wp apart) instead of one per output row: the per-row
# bookkeeping cost more than the arithmetic on 56x56 planes (8x128x56x56, 2 threads: forward
# 2.7 -> 1.9 ms, backward-weight 3.3 -> 2.0 ms).

cdef struct Plane:
    Py_ssize_t size[3]      # the unpadded source plane
    Py_ssize_t before[3]    # its zero padding before each dimension
    Py_ssize_t Hp, Wp, padded
    Py_ssize_t out[3]       # outputs on the grid: ((od * Hp) + oh) * Wp + ow
    Py_ssize_t length       # one past the last output's grid position


cdef inline Plane plane_of(const Py_ssize_t* size, const Py_ssize_t* before,
                           const Py_ssize_t* after, const Py_ssize_t* out) noexcept nogil:
    cdef Plane p
    cdef int i
    for i in range(3):
        p.size[i], p.before[i], p.out[i] = size[i], before[i], out[i]
    p.Hp = size[1] + before[1] + after[1]
    p.Wp = size[2] + before[2] + after[2]
    p.padded = (size[0] + before[0] + after[0]) * p.Hp * p.Wp
    p.length = ((out[0] - 1) * p.Hp + out[1] - 1) * p.Wp + out[2]
    return p


cdef void pad_plane(const Plane* p, const floating* src, floating* dst) noexcept nogil:
    cdef Py_ssize_t z, r
    memset(dst, 0, p.padded * sizeof(floating))
    for z in range(p.size[0]):
        for r in range(p.size[1]):
            memcpy(dst + ((z + p.before[0]) * p.Hp + r + p.before[1]) * p.Wp + p.before[2],
                   src + (z * p.size[1] + r) * p.size[2], p.size[2] * sizeof(floating))


cdef inline Py_ssize_t tap_offset(const Geom* g, const Plane* p, Py_ssize_t tap) noexcept nogil:
    """Where tap (flat kernel index) reads on the padded grid, relative to the output."""
    cdef Py_ssize_t kw = tap % g.ker[2], kh = tap // g.ker[2] % g.ker[1]
    cdef Py_ssize_t kd = tap // g.ker[2] // g.ker[1]
    return (kd * g.dil[0] * p.Hp + kh * g.dil[1]) * p.Wp + kw * g.dil[2]


cdef void add_taps(const Geom* g, const Plane* p, const floating* xp, const floating* w,
                   bint flip, floating* acc) noexcept nogil:
    """acc[q] += sum over taps of w[tap] * xp[q + offset(tap)] (w[kvol - 1 - tap] if flip)."""
    cdef Py_ssize_t tap, q, off
    cdef floating wv
    for tap in range(g.kvol):
        off = tap_offset(g, p, tap)
        wv = w[g.kvol - 1 - tap] if flip else w[tap]
        for q in range(p.length):  # q + off <= padded - 1: the last output's last tap
            acc[q] += wv * xp[q + off]


cdef void rows_out(const Plane* p, const floating* acc, floating* dst) noexcept nogil:
    cdef Py_ssize_t z, r
    for z in range(p.out[0]):
        for r in range(p.out[1]):
            memcpy(dst + (z * p.out[1] + r) * p.out[2], acc + (z * p.Hp + r) * p.Wp,
                   p.out[2] * sizeof(floating))


cdef void depthwise_forward_plane_s1(const Geom* g, const floating* x, const floating* w,
                                     floating* y, floating* buf, Py_ssize_t item) noexcept nogil:
    """y[n, o] for item = n * O + o; buf: the padded input plane, then the grid."""
    cdef Py_ssize_t o = item % g.O, n = item // g.O
    cdef Plane p = plane_of(g.inp, g.pad, g.pad_after, g.out)
    pad_plane(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
    memset(buf + p.padded, 0, p.length * sizeof(floating))
    add_taps(g, &p, buf, w + o * g.kvol, False, buf + p.padded)
    rows_out(&p, buf + p.padded, y + item * g.P)


cdef void depthwise_data_plane_s1(const Geom* g, const floating* dy, const floating* w,
                                  floating* dx, floating* buf, Py_ssize_t item) noexcept nogil:
    """dx[n, c] for item = n * C + c: the forward on each of c's output planes of dy, padded
    by the dilated extent less the conv's padding, with the flipped taps.  The caller checks
    that those paddings are >= 0."""
    cdef Py_ssize_t c = item % g.C, n = item // g.C, o, i
    cdef Py_ssize_t before[3]
    cdef Py_ssize_t after[3]
    for i in range(3):
        before[i] = g.dil[i] * (g.ker[i] - 1) - g.pad[i]
        after[i] = g.inp[i] - g.out[i] + g.pad[i]
    cdef Plane p = plane_of(g.out, before, after, g.inp)
    cdef floating* acc = buf + p.padded
    memset(acc, 0, p.length * sizeof(floating))
    for o in range(c * g.Og, (c + 1) * g.Og):
        pad_plane(&p, dy + (n * g.O + o) * g.P, buf)
        add_taps(g, &p, buf, w + o * g.kvol, True, acc)
    rows_out(&p, acc, dx + item * g.Pin)


cdef void depthwise_data_plane(const Geom* g, const floating* dy, const floating* w,
                               floating* dx, Py_ssize_t item) noexcept nogil:
    """dx[n, c] for item = n * C + c: gathers its `multiplier` output channels."""
    cdef Py_ssize_t c = item % g.C, n = item // g.C, o, tap, od, oh, ow
    cdef Py_ssize_t sw = g.stride[2], oW = g.out[2], oH = g.out[1], off
    cdef floating* xc = dx + item * g.Pin
    cdef const floating* yo
    cdef const floating* yr
    cdef floating* xr
    cdef floating wv
    cdef Box b
    memset(xc, 0, g.Pin * sizeof(floating))
    for o in range(c * g.Og, (c + 1) * g.Og):
        yo = dy + (n * g.O + o) * g.P
        for tap in range(g.kvol):
            if not tap_box(g, tap, &b):
                continue
            wv, off = w[o * g.kvol + tap], b.off[2]
            for od in range(b.lo[0], b.hi[0]):
                for oh in range(b.lo[1], b.hi[1]):
                    yr = yo + (od * oH + oh) * oW
                    xr = xc + in_row(g, &b, od, oh)
                    if sw == 1:
                        for ow in range(b.lo[2], b.hi[2]):
                            xr[ow + off] += wv * yr[ow]
                    else:
                        for ow in range(b.lo[2], b.hi[2]):
                            xr[ow * sw + off] += wv * yr[ow]


cdef void depthwise_weight_plane(const Geom* g, const floating* x, const floating* dy,
                                 floating* dw, floating* acc, Py_ssize_t item) noexcept nogil:
    """dw[o] += the taps' correlations of dy[n, o] with x[n, c], item = n * O + o.

    Each tap's dot product is accumulated element-wise into acc (oW entries) and summed once:
    a scalar running sum would not vectorise (no -ffast-math).
    """
    cdef Py_ssize_t o = item % g.O, n = item // g.O, tap, od, oh, ow
    cdef Py_ssize_t sw = g.stride[2], oW = g.out[2], oH = g.out[1], off
    cdef const floating* xc = x + (n * g.C + o // g.Og) * g.Pin
    cdef const floating* yo = dy + item * g.P
    cdef const floating* yr
    cdef const floating* xr
    cdef floating total
    cdef Box b
    for tap in range(g.kvol):
        if not tap_box(g, tap, &b):
            continue
        off = b.off[2]
        memset(acc, 0, oW * sizeof(floating))
        for od in range(b.lo[0], b.hi[0]):
            for oh in range(b.lo[1], b.hi[1]):
                yr = yo + (od * oH + oh) * oW
                xr = xc + in_row(g, &b, od, oh)
                if sw == 1:
                    for ow in range(b.lo[2], b.hi[2]):
                        acc[ow] += yr[ow] * xr[ow + off]
                else:
                    for ow in range(b.lo[2], b.hi[2]):
                        acc[ow] += yr[ow] * xr[ow * sw + off]
        total = 0
        for ow in range(b.lo[2], b.hi[2]):
            total += acc[ow]
        dw[o * g.kvol + tap] += total


cdef void depthwise_weight_plane_s1(const Geom* g, const floating* x, const floating* dy,
                                    floating* dw, floating* buf, Py_ssize_t item) noexcept nogil:
    """dw[o] += each tap's dot product of dy[n, o], laid on the padded grid (zeros off the
    outputs), with the padded input plane shifted by the tap; summed in 64 lanes, which
    vectorise without -ffast-math."""
    cdef Py_ssize_t o = item % g.O, n = item // g.O, tap, q, j, z, r, off, end
    cdef Plane p = plane_of(g.inp, g.pad, g.pad_after, g.out)
    cdef floating* dyg = buf + p.padded
    cdef floating lanes[64]
    cdef floating total
    pad_plane(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
    memset(dyg, 0, p.length * sizeof(floating))
    for z in range(g.out[0]):
        for r in range(g.out[1]):
            memcpy(dyg + (z * p.Hp + r) * p.Wp, dy + item * g.P + (z * g.out[1] + r) * g.out[2],
                   g.out[2] * sizeof(floating))
    end = p.length - p.length % 64
    for tap in range(g.kvol):
        off = tap_offset(g, &p, tap)
        memset(lanes, 0, 64 * sizeof(floating))
        for q in range(0, end, 64):
            for j in range(64):
                lanes[j] += dyg[q + j] * buf[q + j + off]
        total = 0
        for q in range(end, p.length):
            total += dyg[q] * buf[q + off]
        for j in range(64):
            total += lanes[j]
        dw[o * g.kvol + tap] += total


def _depthwise_forward(_Geometry geo, const floating[::1] x, const floating[::1] w,
                       floating[::1] y, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for stride 1, None otherwise."""
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_forward_plane(g, &x[0], &w[0], &y[0], item)
    else:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_forward_plane_s1(g, &x[0], &w[0], &y[0], &bufs[threadid(), 0], item)


def _depthwise_data(_Geometry geo, const floating[::1] dy, const floating[::1] w,
                    floating[::1] dx, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for depthwise_data_plane_s1, or None."""
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_data_plane(g, &dy[0], &w[0], &dx[0], item)
    else:
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_data_plane_s1(g, &dy[0], &w[0], &dx[0], &bufs[threadid(), 0], item)


def _depthwise_weight(_Geometry geo, const floating[::1] x, const floating[::1] dy,
                      floating[:, ::1] dw_per_thread, floating[:, ::1] bufs, bint stride_one,
                      int nt):
    """bufs: per thread, an output row (strided) or a padded plane + grid (stride 1)."""
    cdef const Geom* g = &geo.g
    cdef Py_ssize_t item
    if stride_one:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_weight_plane_s1(g, &x[0], &dy[0], &dw_per_thread[threadid(), 0],
                                      &bufs[threadid(), 0], item)
    else:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="dynamic"):
            depthwise_weight_plane(g, &x[0], &dy[0], &dw_per_thread[threadid(), 0],
                                   &bufs[threadid(), 0], item)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def conv_forward(x, w, stride, dilation, pad_before, pad_after, groups) -> np.ndarray:
    """y (N, O, oD, oH, oW) = cross-correlation of x (N, C, D, H, W) with w (O, C/groups, k)."""
    x, w = _float_arrays(x=x, w=w)
    stride, dilation, pad_before, pad_after, groups = _params(
        stride, dilation, pad_before, pad_after, groups
    )
    N, C = x.shape[:2]
    O = w.shape[0]
    _check_positive(x.shape[1:], "x shape (C, D, H, W)")
    _check_positive(w.shape, "w shape")
    _check_channels(C, O, w.shape[1], groups, "x", x.shape, w.shape)
    out = _output_size(x.shape[2:], w.shape[2:], stride, dilation, pad_before, pad_after)
    if N == 0:
        return np.empty((N, O) + out, dtype=x.dtype)
    cdef _Geometry geo = _Geometry(
        N, C, O, groups, x.shape[2:], out, w.shape[2:], stride, dilation, pad_before, pad_after
    )
    nt = _num_threads
    if _use_direct("forward", geo, x.dtype, stride, dilation):
        return direct.forward(x, w, stride, dilation, pad_before, pad_after, groups, nt)
    # allocated only now: a large unused array allocated before the direct kernel's own made
    # that one come from fresh pages (glibc mmap), 1.5x slower on the ResNet stem
    y = np.empty((N, O) + out, dtype=x.dtype)
    if geo.depthwise:
        bufs = None
        if stride == (1, 1, 1):
            bufs = _plane_buffers(nt, x.shape[2:], pad_before, pad_after, x.dtype)
        _depthwise_forward(geo, x.reshape(-1), w.reshape(-1), y.reshape(-1), bufs, nt)
        return y
    rows = _tile(geo.g.R, geo.g.K * out[2] * x.itemsize, N * groups, nt, _TILE_BYTES)
    cols = _per_thread(nt, 0 if geo.g.pointwise else geo.g.K * rows * out[2], x.dtype)
    with _single_threaded_blas():
        _gemm_forward(geo, x.reshape(-1), w.reshape(-1), y.reshape(-1), cols, rows, nt)
    return y


def conv_backward_data(dy, w, input_size, stride, dilation, pad_before, pad_after,
                       groups) -> np.ndarray:
    """dx (N, C, *input_size): gradient of conv_forward w.r.t. x (= ConvTranspose forward).

    input_size may exceed the smallest size with this output size (ConvTranspose's
    output_padding); the extra positions only get contributions from taps that reach them.
    """
    dy, w = _float_arrays(dy=dy, w=w)
    stride, dilation, pad_before, pad_after, groups = _params(
        stride, dilation, pad_before, pad_after, groups
    )
    input_size = _triple(input_size, "input_size", 1)
    N, O = dy.shape[:2]
    C = w.shape[1] * groups
    _check_positive(w.shape, "w shape")
    if w.shape[0] != O:
        raise ValueError(f"dy {dy.shape} has {O} channels but weight {w.shape} has {w.shape[0]}")
    _check_channels(C, O, w.shape[1], groups, "dx", (N, C) + input_size, w.shape)
    out = _output_size(input_size, w.shape[2:], stride, dilation, pad_before, pad_after)
    _check_dy(dy.shape, out, N, O)
    if N == 0:
        return np.empty((N, C) + input_size, dtype=dy.dtype)
    cdef _Geometry geo = _Geometry(
        N, C, O, groups, input_size, out, w.shape[2:], stride, dilation, pad_before, pad_after
    )
    nt = _num_threads
    if _use_direct("data", geo, dy.dtype, stride, dilation) and direct.data_padding_fits(
        out, w.shape[2:], input_size, dilation, pad_before
    ):
        return direct.backward_data(dy, w, input_size, dilation, pad_before, groups, nt)
    dx = np.empty((N, C) + input_size, dtype=dy.dtype)  # after the direct path, as in forward
    if geo.depthwise:
        bufs = None
        extent = [d * (k - 1) for d, k in zip(dilation, w.shape[2:])]
        # stride 1: dy padded by extent - pad_before before and extent - pad_after after
        before = [e - b for e, b in zip(extent, pad_before)]
        after = [e - a for e, a in zip(extent, pad_after)]
        if stride == (1, 1, 1) and min(before) >= 0 and min(after) >= 0:
            bufs = _plane_buffers(nt, out, before, after, dy.dtype)
        _depthwise_data(geo, dy.reshape(-1), w.reshape(-1), dx.reshape(-1), bufs, nt)
        return dx
    chans = _tile(geo.g.Cg, geo.g.kvol * geo.g.P * dy.itemsize, N * groups, nt, _BLOCK_BYTES)
    cols = _per_thread(nt, 0 if geo.g.pointwise else chans * geo.g.kvol * geo.g.P, dy.dtype)
    with _single_threaded_blas():
        _gemm_data(geo, dy.reshape(-1), w.reshape(-1), dx.reshape(-1), cols, chans, nt)
    return dx


def conv_backward_weight(x, dy, kernel_size, stride, dilation, pad_before, pad_after,
                         groups) -> np.ndarray:
    """dw (O, C/groups, *kernel_size): gradient of conv_forward w.r.t. w."""
    x, dy = _float_arrays(x=x, dy=dy)
    stride, dilation, pad_before, pad_after, groups = _params(
        stride, dilation, pad_before, pad_after, groups
    )
    kernel_size = _triple(kernel_size, "kernel_size", 1)
    N, C = x.shape[:2]
    O = dy.shape[1]
    _check_positive(x.shape[1:], "x shape (C, D, H, W)")
    _check_positive((O,), "dy channels")
    _check_channels(C, O, C // groups, groups, "x", x.shape, (O, C // groups) + kernel_size)
    out = _output_size(x.shape[2:], kernel_size, stride, dilation, pad_before, pad_after)
    _check_dy(dy.shape, out, N, O)
    if N == 0:
        return np.zeros((O, C // groups) + kernel_size, dtype=x.dtype)
    cdef _Geometry geo = _Geometry(
        N, C, O, groups, x.shape[2:], out, kernel_size, stride, dilation, pad_before, pad_after
    )
    nt = _num_threads
    K = geo.g.K
    if _use_direct("weight", geo, x.dtype, stride, dilation):
        return direct.weight(x, dy, kernel_size, dilation, pad_before, pad_after, groups, nt)
    acc = _per_thread(nt, O * K, x.dtype, zero=True)  # one dw accumulator per thread
    if geo.depthwise:
        stride_one = stride == (1, 1, 1)
        if stride_one:
            bufs = _plane_buffers(nt, x.shape[2:], pad_before, pad_after, x.dtype)
        else:
            bufs = _per_thread(nt, out[2], x.dtype)
        _depthwise_weight(geo, x.reshape(-1), dy.reshape(-1), acc, bufs, stride_one, nt)
        dw = acc[:, : O * K].sum(axis=0)
    else:
        rows = _tile(geo.g.R, K * out[2] * x.itemsize, N * groups, nt, _TILE_BYTES)
        cols = _per_thread(nt, 0 if geo.g.pointwise else K * rows * out[2], x.dtype)
        with _single_threaded_blas():
            _gemm_weight(geo, x.reshape(-1), dy.reshape(-1), acc, cols, rows, nt)
        dw_t = acc[:, : O * K].sum(axis=0).reshape(groups, K, O // groups)
        dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1))
    return dw.reshape((O, C // groups) + kernel_size)
