# cython: language_level=3
"""Batch normalisation in training mode: forward and backward in a few passes per channel.

The numpy formulation takes about twenty array operations per call, each allocating and
walking the whole activation; on a small CNN's 32-image batches that cost several times
PyTorch's fused kernel (bench case: the main job's epoch). Here each thread takes a range of
the channels of x (N, C, S): per-channel sums accumulate in float64, the element-wise parts are
computed in x's dtype in the same order as the formulas in ``minidl.nn._norm_functional``.
Channels are independent, so the results do not depend on the thread count.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from minidl._ext._common cimport add_partials, combine_partials

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


cdef void _forward_channels(const floating* x, floating* xhat, floating* y, double* mean,
                            double* var, floating* invstd, const floating* w,
                            const floating* b, Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                            double eps, Py_ssize_t c0, Py_ssize_t c1,
                            double* p) noexcept nogil:
    """Channels [c0, c1); p: their 8 partial sums each, zeroed.  The loops run image by image
    over the channels' planes (contiguous), not channel by channel (planes a whole image
    apart, which can fall into one cache set)."""
    cdef Py_ssize_t n, c, s, count = N * S
    cdef floating* hc
    cdef floating* yc
    cdef floating inv, wc, bc
    for n in range(N):
        for c in range(c0, c1):
            add_partials(x + (n * C + c) * S, S, p + (c - c0) * 8)
    for c in range(c0, c1):
        mean[c] = combine_partials(p + (c - c0) * 8) / count
        p[(c - c0) * 8: (c - c0) * 8 + 8] = [0, 0, 0, 0, 0, 0, 0, 0]
    for n in range(N):
        for c in range(c0, c1):
            if floating is float:
                minidl_center_f32(x + (n * C + c) * S, xhat + (n * C + c) * S, S,
                                  <float> mean[c], p + (c - c0) * 8)
            else:
                minidl_center_f64(x + (n * C + c) * S, xhat + (n * C + c) * S, S, mean[c],
                                  p + (c - c0) * 8)
    for c in range(c0, c1):
        var[c] = combine_partials(p + (c - c0) * 8) / count  # biased
        invstd[c] = <floating> (1.0 / sqrt(var[c] + eps))
    for n in range(N):
        for c in range(c0, c1):
            hc = xhat + (n * C + c) * S
            yc = y + (n * C + c) * S
            inv = invstd[c]
            wc = w[c] if w != NULL else 1
            bc = b[c] if b != NULL else 0
            for s in range(S):
                hc[s] = hc[s] * inv
                # y = xhat * w + b as the formulas round it: no multiply without a weight,
                # no add without a bias
                if w != NULL and b != NULL:
                    yc[s] = hc[s] * wc + bc
                elif w != NULL:
                    yc[s] = hc[s] * wc
                elif b != NULL:
                    yc[s] = hc[s] + bc
                else:
                    yc[s] = hc[s]


cdef void _backward_channels(const floating* g, const floating* xhat, const floating* scale,
                             floating* gx, floating* gb, floating* gw, Py_ssize_t N,
                             Py_ssize_t C, Py_ssize_t S, bint want_gx, Py_ssize_t c0,
                             Py_ssize_t c1, double* p, double* q) noexcept nogil:
    """Channels [c0, c1), image by image (see _forward_channels); p, q zeroed partials."""
    cdef Py_ssize_t n, c, s, count = N * S
    cdef const floating* gc
    cdef const floating* hc
    cdef floating* oc
    cdef floating mb, mw, sc
    for n in range(N):
        for c in range(c0, c1):
            if floating is float:
                minidl_dot_f32(g + (n * C + c) * S, xhat + (n * C + c) * S, S,
                               p + (c - c0) * 8, q + (c - c0) * 8)
            else:
                minidl_dot_f64(g + (n * C + c) * S, xhat + (n * C + c) * S, S,
                               p + (c - c0) * 8, q + (c - c0) * 8)
    for c in range(c0, c1):
        gb[c] = <floating> combine_partials(p + (c - c0) * 8)
        gw[c] = <floating> combine_partials(q + (c - c0) * 8)
    if not want_gx:
        return
    for n in range(N):
        for c in range(c0, c1):
            mb = gb[c] / count
            mw = gw[c] / count
            sc = scale[c]
            gc = g + (n * C + c) * S
            hc = xhat + (n * C + c) * S
            oc = gx + (n * C + c) * S
            for s in range(S):
                oc[s] = ((gc[s] - mb) - hc[s] * mw) * sc


def batch_norm_train_forward(const floating[:, :, ::1] x, w, b, double eps, int nt):
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
    cdef const floating* wp = NULL
    cdef const floating* bp = NULL
    if w is not None:
        wv = w
        wp = &wv[0]
    if b is not None:
        bv = b
        bp = &bv[0]
    cdef Py_ssize_t part, parts = max(1, min(nt, C))
    partial_a = np.zeros((C, 8), np.float64)
    cdef double[:, ::1] partial = partial_a
    if N * C * S:
        for part in prange(parts, nogil=True, num_threads=parts, schedule="static"):
            _forward_channels(&x[0, 0, 0], &xhat[0, 0, 0], &y[0, 0, 0], &mean[0], &var[0],
                              &invstd[0], wp, bp, N, C, S, eps, part * C // parts,
                              (part + 1) * C // parts, &partial[part * C // parts, 0])
    return y_a, xhat_a, mean_a, var_a, inv_a


def batch_norm_train_backward(const floating[:, :, ::1] g, const floating[:, :, ::1] xhat,
                              const floating[::1] scale, bint want_gx, int nt):
    """(gx or None, gb, gw) for training-mode batch norm: gb = sum g, gw = sum g * xhat per
    channel; gx = (g - gb / count - xhat * gw / count) * scale."""
    cdef Py_ssize_t N = g.shape[0], C = g.shape[1], S = g.shape[2], c
    dtype = np.float32 if floating is float else np.float64
    gb_a = np.empty(C, dtype)
    gw_a = np.empty(C, dtype)
    gx_a = np.empty((N, C, S), dtype) if want_gx else np.empty((1, 1, 1), dtype)
    cdef floating[::1] gb = gb_a, gw = gw_a
    cdef floating[:, :, ::1] gx = gx_a
    cdef Py_ssize_t part, parts = max(1, min(nt, C))
    partial_a = np.zeros((2, C, 8), np.float64)
    cdef double[:, :, ::1] partial = partial_a
    if N * C * S:
        for part in prange(parts, nogil=True, num_threads=parts, schedule="static"):
            _backward_channels(&g[0, 0, 0], &xhat[0, 0, 0], &scale[0], &gx[0, 0, 0], &gb[0],
                               &gw[0], N, C, S, want_gx, part * C // parts,
                               (part + 1) * C // parts, &partial[0, part * C // parts, 0],
                               &partial[1, part * C // parts, 0])
    return (gx_a if want_gx else None), gb_a, gw_a
