# cython: language_level=3
"""Helpers shared by the kernels (gemm.pyx, winograd.pyx, _depthwise.pxi, _direct.pxi,
norm.pyx, elementwise.pyx): the geometry as a C struct, ceiling division, a tap's range of
output positions, copying a plane into a zero-padded one, the split of work items into parts,
float64 sums in partials.  All inline and nogil.

Every kernel's work items run in image-major order on ``schedule="static"``: each thread gets
one contiguous range of them, so a thread keeps working on the same images from one op to the
next (padding, conv, bias, ReLU, pooling) and their data stays in its core's caches.  Dynamic
scheduling interleaved neighbouring blocks between the threads, so data crossed between cores
on every op: where two vCPUs sit on different core complexes, two threads were slower than
one (bench case: LeNet-5 conv2's forward)."""

import numpy as np

from cython cimport floating
from libc.string cimport memcpy


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


cdef inline Geom geom_of(object geo):
    """The C struct of a minidl._geometry.ConvGeometry (already validated)."""
    cdef Geom g
    cdef int i
    x, w, y = geo.x_shape, geo.w_shape, geo.y_shape
    stride, dil, before, after = geo.stride, geo.dilation, geo.pad_before, geo.pad_after
    g.N, g.C, g.O, g.G = x[0], x[1], w[0], geo.groups
    g.Cg, g.Og = w[1], w[0] // geo.groups
    for i in range(3):
        g.inp[i], g.out[i], g.ker[i] = x[2 + i], y[2 + i], w[2 + i]
        g.stride[i], g.dil[i], g.pad[i], g.pad_after[i] = stride[i], dil[i], before[i], after[i]
    g.kvol = g.ker[0] * g.ker[1] * g.ker[2]
    g.K = g.Cg * g.kvol
    g.P = g.out[0] * g.out[1] * g.out[2]
    g.Pin = g.inp[0] * g.inp[1] * g.inp[2]
    g.R = g.out[0] * g.out[1]
    g.pointwise = geo.pointwise
    return g


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


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


cdef inline void pad_plane(const floating* src, floating* dst, Py_ssize_t D, Py_ssize_t H,
                           Py_ssize_t W, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t pd,
                           Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """Copy one (D, H, W) plane into an already zeroed padded plane (rows Wp apart, planes
    Hp rows apart) at offset (pd, ph, pw)."""
    cdef Py_ssize_t z, r
    for z in range(D):
        for r in range(H):
            memcpy(dst + ((z + pd) * Hp + r + ph) * Wp + pw, src + (z * H + r) * W,
                   W * sizeof(floating))


cdef inline Py_ssize_t part_start(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t part) noexcept nogil:
    """First of the items of `part` when n items split into `parts` contiguous ranges.

    A gradient that sums over items (the weight gradients) keeps one partial sum per range and
    adds them in range order; `parts` is the thread count set by the user, and the threads that
    run the ranges may be fewer (minidl/runtime.py), so the bits do not depend on them."""
    return part * n // parts


cdef inline object per_thread(int nt, Py_ssize_t n, object dtype, bint zero=False):
    """(nt, n + gap) buffer, one row per thread: the gap keeps threads off each other's cache
    lines (false sharing slowed the small depthwise accumulators down)."""
    shape = (nt, n + 64)
    return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)


cdef inline void add_partials(const floating* x, Py_ssize_t n, double* p) noexcept nogil:
    """p[i % 8] += x[i] for i < n: a float64 sum kept as 8 interleaved partials, independent
    adds that vectorize (one running sum waits on each add); combine_partials adds them."""
    cdef Py_ssize_t i = 0
    cdef int j
    while i + 8 <= n:
        for j in range(8):
            p[j] += x[i + j]
        i += 8
    while i < n:
        p[i % 8] += x[i]
        i += 1


cdef inline double combine_partials(const double* p) noexcept nogil:
    """The sum of add_partials' 8 partials, in a fixed order."""
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
