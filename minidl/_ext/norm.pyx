# cython: language_level=3
"""Batch normalisation in training mode: forward and backward in a few passes per channel.

The numpy formulation takes about twenty array operations per call, each allocating and
walking the whole activation; on a small CNN's 32-image batches that cost several times
PyTorch's fused kernel (bench case: the main job's epoch). Here each pass over x (N, C, S) is
one parallel region over ``parts`` contiguous ranges of images: per-channel sums accumulate in
float64, one set of partial sums per range, added in range order between the passes; the
element-wise parts are computed in x's dtype in the same order as the formulas in
``minidl.nn._norm_functional``. The bits depend on ``parts`` (the thread count set by the user),
not on the ``nt`` threads that run them. Ranges of channels instead put the threads' writes
side by side in every image: two threads were slower than one where the vCPUs sit on
different core complexes (bench case: the main job's BatchNorm).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from minidl._ext._common cimport add_partials, combine_partials, part_start, per_thread

cdef extern from *:
    """
    /* float64 sums kept as 8 interleaved partials, as _common.pxd's add_partials, fused with
       the element-wise work of the pass */
    #define MINIDL_NORM_SUMS(T, SUFFIX)                                                      \
    /* h = x - m (in T), p += h * h (in double) */                                          \
    static void minidl_center_##SUFFIX(const T* x, T* h, Py_ssize_t n, T m, double* p) {    \
        Py_ssize_t i = 0;                                                                    \
        for (; i + 8 <= n; i += 8)                                                           \
            for (int j = 0; j < 8; j++) {                                                    \
                T d = x[i + j] - m;                                                          \
                h[i + j] = d;                                                                \
                p[j] += (double)d * d;                                                       \
            }                                                                                \
        for (; i < n; i++) { T d = x[i] - m; h[i] = d; p[i % 8] += (double)d * d; }          \
    }                                                                                        \
    /* p += g, q += (T)(g * h) */                                                           \
    static void minidl_dot_##SUFFIX(const T* g, const T* h, Py_ssize_t n, double* p,        \
                                    double* q) {                                             \
        Py_ssize_t i = 0;                                                                    \
        for (; i + 8 <= n; i += 8)                                                           \
            for (int j = 0; j < 8; j++) {                                                    \
                p[j] += (double)g[i + j];                                                    \
                q[j] += (double)(T)(g[i + j] * h[i + j]);                                    \
            }                                                                                \
        for (; i < n; i++) { p[i % 8] += (double)g[i]; q[i % 8] += (double)(T)(g[i] * h[i]); } \
    }
    MINIDL_NORM_SUMS(float, f32)
    MINIDL_NORM_SUMS(double, f64)
    """
    void minidl_center_f32(const float* x, float* h, Py_ssize_t n, float m,
                           double* p) noexcept nogil
    void minidl_center_f64(const double* x, double* h, Py_ssize_t n, double m,
                           double* p) noexcept nogil
    void minidl_dot_f32(const float* g, const float* h, Py_ssize_t n, double* p,
                        double* q) noexcept nogil
    void minidl_dot_f64(const double* g, const double* h, Py_ssize_t n, double* p,
                        double* q) noexcept nogil


ctypedef enum Pass:
    SUMS, CENTER, NORMALIZE, DOTS, GRAD_INPUT


cdef struct Batch:
    Py_ssize_t N, C, S
    const void* xhat     # xhat (DOTS, GRAD_INPUT)
    void* out            # xhat (CENTER), y (NORMALIZE), gx (GRAD_INPUT)
    void* out2           # y (CENTER writes xhat; NORMALIZE rescales it in place into out)
    const double* mean   # per channel (CENTER)
    const void* inv      # invstd (NORMALIZE), scale (GRAD_INPUT)
    const void* w        # weight or NULL (NORMALIZE)
    const void* b        # bias or NULL (NORMALIZE)
    const void* gb       # GRAD_INPUT's per-channel sums
    const void* gw


cdef void _pass(const Batch* a, Pass kind, const floating* x, Py_ssize_t n0, Py_ssize_t n1,
                double* p, double* q) noexcept nogil:
    """Images [n0, n1) of one pass over x (the forward's x, the backward's g); p, q: this
    range's partial sums, 8 per channel."""
    cdef Py_ssize_t n, c, s, S = a.S, C = a.C, count = a.N * a.S, at
    cdef const floating* h = <const floating*> a.xhat
    cdef floating* o = <floating*> a.out
    cdef const floating* inv = <const floating*> a.inv
    cdef const floating* w = <const floating*> a.w
    cdef const floating* b = <const floating*> a.b
    cdef floating* hc
    cdef floating* yc
    cdef floating iv, wc, bc, mb, mw, sc
    for n in range(n0, n1):
        for c in range(C):
            at = (n * C + c) * S
            if kind == SUMS:
                add_partials(x + at, S, p + c * 8)
            elif kind == CENTER:
                if floating is float:
                    minidl_center_f32(x + at, o + at, S, <float> a.mean[c], p + c * 8)
                else:
                    minidl_center_f64(x + at, o + at, S, a.mean[c], p + c * 8)
            elif kind == NORMALIZE:
                hc = o + at
                yc = <floating*> a.out2 + at
                iv = inv[c]
                wc = w[c] if w != NULL else 1
                bc = b[c] if b != NULL else 0
                for s in range(S):
                    hc[s] = hc[s] * iv
                    # y = xhat * w + b as the formulas round it: no multiply without a
                    # weight, no add without a bias
                    if w != NULL and b != NULL:
                        yc[s] = hc[s] * wc + bc
                    elif w != NULL:
                        yc[s] = hc[s] * wc
                    elif b != NULL:
                        yc[s] = hc[s] + bc
                    else:
                        yc[s] = hc[s]
            elif kind == DOTS:
                if floating is float:
                    minidl_dot_f32(x + at, h + at, S, p + c * 8, q + c * 8)
                else:
                    minidl_dot_f64(x + at, h + at, S, p + c * 8, q + c * 8)
            else:  # GRAD_INPUT: gx = ((g - gb / count) - xhat * gw / count) * scale
                mb = (<const floating*> a.gb)[c] / count
                mw = (<const floating*> a.gw)[c] / count
                sc = inv[c]
                for s in range(S):
                    o[at + s] = ((x[at + s] - mb) - h[at + s] * mw) * sc


cdef void _run(const Batch* a, Pass kind, const floating* x, double[:, ::1] p,
               double[:, ::1] q, int nt) noexcept nogil:
    """One pass over the images in p.shape[0] ranges on nt threads."""
    cdef Py_ssize_t part, parts = p.shape[0]
    for part in prange(parts, num_threads=nt, schedule="static"):
        _pass(a, kind, x, part_start(a.N, parts, part), part_start(a.N, parts, part + 1),
              &p[part, 0], &q[part, 0])


cdef void _combine(double[:, ::1] p, Py_ssize_t C, double* out) noexcept nogil:
    """out[c] = the sum of channel c's partials over the ranges, in range order."""
    cdef Py_ssize_t part, c
    for c in range(C):
        out[c] = 0
        for part in range(p.shape[0]):
            out[c] += combine_partials(&p[part, c * 8])


def batch_norm_train_forward(const floating[:, :, ::1] x, w, b, double eps, int nt,
                             int parts):
    """(y, xhat, mean float64, var float64 biased, invstd) of x (N, C, S); w, b: (C,) or
    None, of x's dtype."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2], c
    dtype = np.float32 if floating is float else np.float64
    xhat_a = np.empty((N, C, S), dtype)
    y_a = np.empty((N, C, S), dtype)
    mean_a = np.empty(C, np.float64)
    var_a = np.empty(C, np.float64)
    inv_a = np.empty(C, dtype)
    cdef floating[:, :, ::1] xhat = xhat_a, y = y_a
    cdef double[::1] mean = mean_a, var = var_a
    cdef floating[::1] invstd = inv_a
    cdef const floating[::1] wv
    cdef const floating[::1] bv
    cdef Batch a
    a.N, a.C, a.S, a.w, a.b = N, C, S, NULL, NULL
    if w is not None:
        wv = w
        a.w = &wv[0]
    if b is not None:
        bv = b
        a.b = &bv[0]
    if N * C * S == 0:
        return y_a, xhat_a, mean_a, var_a, inv_a
    # one set of 8 partials per channel per range; per_thread's gap keeps ranges off each
    # other's cache lines
    cdef double[:, ::1] p = per_thread(parts, C * 8, np.float64, zero=True)
    a.out, a.out2, a.mean, a.inv = &xhat[0, 0, 0], &y[0, 0, 0], &mean[0], &invstd[0]
    with nogil:
        _run(&a, SUMS, &x[0, 0, 0], p, p, nt)
        _combine(p, C, &mean[0])
        for c in range(C):
            mean[c] = mean[c] / (N * S)
        p[:, :] = 0
        _run(&a, CENTER, &x[0, 0, 0], p, p, nt)
        _combine(p, C, &var[0])
        for c in range(C):
            var[c] = var[c] / (N * S)  # biased
            invstd[c] = <floating> (1.0 / sqrt(var[c] + eps))
        _run(&a, NORMALIZE, &x[0, 0, 0], p, p, nt)
    return y_a, xhat_a, mean_a, var_a, inv_a


def batch_norm_train_backward(const floating[:, :, ::1] g, const floating[:, :, ::1] xhat,
                              const floating[::1] scale, bint want_gx, int nt, int parts):
    """(gx or None, gb, gw) for training-mode batch norm: gb = sum g, gw = sum g * xhat per
    channel; gx = (g - gb / count - xhat * gw / count) * scale."""
    cdef Py_ssize_t N = g.shape[0], C = g.shape[1], S = g.shape[2], c
    dtype = np.float32 if floating is float else np.float64
    gb_a = np.empty(C, dtype)
    gw_a = np.empty(C, dtype)
    gx_a = np.empty((N, C, S), dtype) if want_gx else np.empty((1, 1, 1), dtype)
    cdef floating[::1] gb = gb_a, gw = gw_a
    cdef floating[:, :, ::1] gx = gx_a
    if N * C * S == 0:
        gb_a[...] = 0
        gw_a[...] = 0
        return (gx_a if want_gx else None), gb_a, gw_a
    cdef double[:, ::1] p = per_thread(parts, C * 8, np.float64, zero=True)
    cdef double[:, ::1] q = per_thread(parts, C * 8, np.float64, zero=True)
    sums_a = np.empty((2, C), np.float64)
    cdef double[:, ::1] sums = sums_a
    cdef Batch a
    a.N, a.C, a.S = N, C, S
    a.xhat, a.out, a.inv, a.gb, a.gw = &xhat[0, 0, 0], &gx[0, 0, 0], &scale[0], &gb[0], &gw[0]
    with nogil:
        _run(&a, DOTS, &g[0, 0, 0], p, q, nt)
        _combine(p, C, &sums[0, 0])
        _combine(q, C, &sums[1, 0])
        for c in range(C):
            gb[c] = <floating> sums[0, c]
            gw[c] = <floating> sums[1, c]
        if want_gx:
            _run(&a, GRAD_INPUT, &g[0, 0, 0], p, q, nt)
    return (gx_a if want_gx else None), gb_a, gw_a
