# cython: language_level=3
"""Batch normalisation in training mode: forward and backward in a few passes per channel.

The numpy formulation takes about twenty array operations per call, each allocating and
walking the whole activation; on a small CNN's 32-image batches that cost several times
PyTorch's fused kernel (bench case: the main job's epoch). Here each channel of x (N, C, S)
is one work item: per-channel sums accumulate in float64, the element-wise parts are computed
in x's dtype in the same order as the formulas in ``minidl.nn._norm_functional``. Channels are
independent, so the results do not depend on the thread count.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef void _forward_channel(const floating* x, floating* xhat, floating* y, double* mean,
                           double* var, floating* invstd, const floating* w,
                           const floating* b, Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                           double eps, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t n, s, count = N * S
    cdef const floating* xc
    cdef floating* hc
    cdef floating* yc
    cdef double total = 0, squares = 0
    cdef floating m, d, inv
    for n in range(N):
        xc = x + (n * C + c) * S
        for s in range(S):
            total += xc[s]
    mean[c] = total / count
    m = <floating> mean[c]
    for n in range(N):
        xc = x + (n * C + c) * S
        hc = xhat + (n * C + c) * S
        for s in range(S):
            d = xc[s] - m
            hc[s] = d
            squares += <double> d * d
    var[c] = squares / count  # biased
    inv = <floating> (1.0 / sqrt(var[c] + eps))
    invstd[c] = inv
    for n in range(N):
        hc = xhat + (n * C + c) * S
        yc = y + (n * C + c) * S
        for s in range(S):
            hc[s] = hc[s] * inv
            if w != NULL and b != NULL:
                yc[s] = hc[s] * w[c] + b[c]
            elif w != NULL:
                yc[s] = hc[s] * w[c]
            elif b != NULL:
                yc[s] = hc[s] + b[c]
            else:
                yc[s] = hc[s]


cdef void _backward_channel(const floating* g, const floating* xhat, const floating* scale,
                            floating* gx, floating* gb, floating* gw, Py_ssize_t N,
                            Py_ssize_t C, Py_ssize_t S, bint want_gx,
                            Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t n, s, count = N * S
    cdef const floating* gc
    cdef const floating* hc
    cdef floating* oc
    cdef double sum_g = 0, sum_gh = 0
    cdef floating mb, mw
    for n in range(N):
        gc = g + (n * C + c) * S
        hc = xhat + (n * C + c) * S
        for s in range(S):
            sum_g += gc[s]
            sum_gh += <double> (gc[s] * hc[s])
    gb[c] = <floating> sum_g
    gw[c] = <floating> sum_gh
    if not want_gx:
        return
    mb = gb[c] / count
    mw = gw[c] / count
    for n in range(N):
        gc = g + (n * C + c) * S
        hc = xhat + (n * C + c) * S
        oc = gx + (n * C + c) * S
        for s in range(S):
            oc[s] = ((gc[s] - mb) - hc[s] * mw) * scale[c]


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
    if N * C * S:
        for c in prange(C, nogil=True, num_threads=nt, schedule="static"):
            _forward_channel(&x[0, 0, 0], &xhat[0, 0, 0], &y[0, 0, 0], &mean[0], &var[0],
                             &invstd[0], wp, bp, N, C, S, eps, c)
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
    if N * C * S:
        for c in prange(C, nogil=True, num_threads=nt, schedule="static"):
            _backward_channel(&g[0, 0, 0], &xhat[0, 0, 0], &scale[0], &gx[0, 0, 0], &gb[0],
                              &gw[0], N, C, S, want_gx, c)
    return (gx_a if want_gx else None), gb_a, gw_a
