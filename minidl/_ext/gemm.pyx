# cython: language_level=3
"""im2col + BLAS GEMM: the convolution algorithm that serves every geometry.

Written once for 3 spatial dims (1-D is ``(1, 1, W)``, 2-D is ``(1, H, W)``) with stride,
dilation, asymmetric zero padding and groups, for float32 and float64 through the fused type
``floating``.  Layout: x ``(N, C, D, H, W)``, w ``(O, C // groups, kD, kH, kW)``, y
``(N, O, oD, oH, oW)``.  With ``K = (C // groups) * kD * kH * kW`` and ``P = oD * oH * oW``, one
group of one image is

    forward          y_g  (Og, P) = w_g (Og, K)   @ col (K, P)
    backward-data    col  (K, P)  = w_g^T (K, Og) @ dy_g (Og, P)      then col2im into dx
    backward-weight  dw_g (Og, K) += dy_g (Og, P) @ col^T (P, K)     (computed transposed)

where ``col`` is the im2col unfolding of x (zero padding is implicit: x is never copied padded).
The GEMMs are BLAS calls made without the GIL; BLAS is column-major, so a row-major product
``C = A @ B`` is issued as ``C^T = B^T @ A^T`` (the operands swap, nothing is copied).  A 1x1
kernel with stride 1 and no padding ('pointwise') runs the GEMM straight on x.

Threading: OpenMP ``prange`` over independent work items -- (image, group, tile of output rows)
for forward and backward-weight, (image, group, block of input channels) for backward-data, so a
single image still keeps every thread busy -- each thread with its own column buffer, and BLAS
on one thread meanwhile so the two never oversubscribe the cores (one multi-threaded GEMM per
image instead leaves im2col on one thread; OpenMP plus OpenBLAS threads both spin-waiting on
the same cores is far slower: see minidl/runtime.py).  Backward-weight splits its items into
``parts`` contiguous ranges (the thread count set by the user), accumulates one dw per range and
sums them in range order at the end: the bits depend on ``parts`` only, not on how many threads
run the ranges (``nt``, fewer when other processes keep cores busy: minidl/runtime.py).
"""

import numpy as np
from contextlib import nullcontext

from threadpoolctl import ThreadpoolController

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from minidl._ext._common cimport Geom, ceil_div, geom_of, part_start, per_thread, tap_range

# Bytes of column buffer per work item.  Forward / backward-weight unfold a tile that stays in
# L2 with BLAS at its single-thread peak; backward-data wants wider GEMMs (n = channels * kvol)
# and takes larger blocks (the ResNet cases of python -m minidl.bench).
_TILE_BYTES = 1 << 20
_BLOCK_BYTES = 4 << 20
_INT_MAX = 2**31 - 1  # BLAS (LP64) dimensions are C ints
_blas_libraries = None


cdef class _Plan:
    """The geometry as the C struct the nogil code reads."""
    cdef Geom g

    def __cinit__(self, geo):
        self.g = geom_of(geo)
        if max(self.g.K, self.g.P, self.g.Pin, self.g.O) > _INT_MAX:
            raise ValueError(
                f"convolution too large for 32-bit BLAS dimensions: input {geo.x_shape}, "
                f"weight {geo.w_shape}"
            )


def _single_threaded_blas():
    """Context manager: BLAS on one thread while our own OpenMP threads call it.

    minidl.runtime already keeps BLAS on one thread, so usually there is nothing to limit:
    reading the thread counts is far cheaper than entering a limit on every call."""
    global _blas_libraries
    if _blas_libraries is None:  # scanning the loaded libraries is slow: do it once
        _blas_libraries = ThreadpoolController().select(user_api="blas")
    if all(lib.num_threads == 1 for lib in _blas_libraries.lib_controllers):
        return nullcontext()
    return _blas_libraries.limit(limits=1)


def _tile(total, unit_bytes, units, nt, target):
    """Block size along an axis of `total` units of `unit_bytes` each.

    About `target` bytes per block, but at least `nt` blocks over all `units` (images x groups)
    so that one image still feeds every thread.
    """
    blocks = max(ceil_div(total * unit_bytes, target), ceil_div(nt, units))
    blocks = min(blocks, total)
    return ceil_div(total, blocks)  # equal blocks: 64 channels in 2 blocks of 32, not 36 + 28


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

    dw_t holds each group's dw transposed, (K, Og): OpenBLAS runs this product faster
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


def _run_forward(_Plan plan, const floating[::1] x, const floating[::1] w,
                  floating[::1] y, floating[:, ::1] cols, Py_ssize_t rows, int nt):
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t item, n_items = g.N * g.G * ((g.R + rows - 1) // rows)
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="static"):
        forward_tile(g, &x[0], &w[0], &y[0], &cols[threadid(), 0], item, rows)


def _run_weight(_Plan plan, const floating[::1] x, const floating[::1] dy,
                 floating[:, ::1] dw_t_per_part, floating[:, ::1] cols, Py_ssize_t rows,
                 int nt):
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t part, item, parts = dw_t_per_part.shape[0]
    cdef Py_ssize_t n_items = g.N * g.G * ((g.R + rows - 1) // rows)
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):
        # zeroed by the thread that sums into it (see _common.pxd, part_start)
        memset(&dw_t_per_part[part, 0], 0, dw_t_per_part.shape[1] * sizeof(floating))
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            weight_tile(g, &x[0], &dy[0], &dw_t_per_part[part, 0], &cols[threadid(), 0],
                        item, rows)


def _run_data(_Plan plan, const floating[::1] dy, const floating[::1] w,
               floating[::1] dx, floating[:, ::1] cols, Py_ssize_t chans, int nt):
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t item, n_items = g.N * g.G * ((g.Cg + chans - 1) // chans)
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="static"):
        data_block(g, &dy[0], &w[0], &dx[0], &cols[threadid(), 0], item, chans)



# --------------------------------------------------------------------------------------------
# The three primitives (minidl._ext.dispatch checks the arrays against the geometry first)
# --------------------------------------------------------------------------------------------

def forward(x, w, geo, int nt, int parts):
    """y (N, O, *out) = cross-correlation of x (N, C, D, H, W) with w (O, C/groups, *k), in
    tiles for `parts` threads (BLAS's bits depend on a product's shape) run on `nt`."""
    cdef _Plan plan = _Plan(geo)
    cdef const Geom* g = &plan.g
    y = np.empty(geo.y_shape, dtype=x.dtype)
    rows = _tile(g.R, g.K * g.out[2] * x.itemsize, g.N * g.G, parts, _TILE_BYTES)
    cols = per_thread(nt, 0 if g.pointwise else g.K * rows * g.out[2], x.dtype)
    with _single_threaded_blas():
        _run_forward(plan, x.reshape(-1), w.reshape(-1), y.reshape(-1), cols, rows, nt)
    return y


def backward_data(dy, w, geo, int nt, int parts):
    """dx (N, C, D, H, W): the gradient of forward w.r.t. x (= ConvTranspose forward), in
    blocks for `parts` threads run on `nt`.

    The input size may exceed the smallest one with this output size (ConvTranspose's
    output_padding); the extra positions only get contributions from taps that reach them."""
    cdef _Plan plan = _Plan(geo)
    cdef const Geom* g = &plan.g
    dx = np.empty(geo.x_shape, dtype=dy.dtype)
    chans = _tile(g.Cg, g.kvol * g.P * dy.itemsize, g.N * g.G, parts, _BLOCK_BYTES)
    cols = per_thread(nt, 0 if g.pointwise else chans * g.kvol * g.P, dy.dtype)
    with _single_threaded_blas():
        _run_data(plan, dy.reshape(-1), w.reshape(-1), dx.reshape(-1), cols, chans, nt)
    return dx


def backward_weight(x, dy, geo, int nt, int parts):
    """dw (O, C/groups, *k): the gradient of forward w.r.t. w, summed in `parts` partials
    (the same bits on any number `nt` of threads)."""
    cdef _Plan plan = _Plan(geo)
    cdef const Geom* g = &plan.g
    acc = per_thread(parts, g.O * g.K, x.dtype)  # one dw^T accumulator per part
    rows = _tile(g.R, g.K * g.out[2] * x.itemsize, g.N * g.G, parts, _TILE_BYTES)
    cols = per_thread(nt, 0 if g.pointwise else g.K * rows * g.out[2], x.dtype)
    with _single_threaded_blas():
        _run_weight(plan, x.reshape(-1), dy.reshape(-1), acc, cols, rows, nt)
    dw_t = acc[:, : g.O * g.K].sum(axis=0).reshape(g.G, g.K, g.Og)
    return np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(geo.w_shape)
