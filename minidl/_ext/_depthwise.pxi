# Included by depthwise_avx512.pyx, depthwise_avx2.pyx and depthwise_baseline.pyx: one source,
# compiled once per instruction set (GCC vector extensions sized to it, loops it vectorises).
"""Depthwise convolution (one input channel per group, groups == C): direct kernels per plane.

Its GEMMs would be (multiplier x kvol) @ (kvol x P), too thin for BLAS to be worth the
unfolding, so each work item is one (image, channel) plane and every kernel tap is applied as
a shifted multiply-add over rows of the plane.  With stride 1 the plane is first zero-padded
into a per-thread buffer, where a tap is one long multiply-add over the whole padded grid.

forward and backward-data compute whole output planes per item (any schedule gives the same
bits); backward-weight sums the planes of each of ``parts`` contiguous ranges of them, then
the ranges in order (_common.pxd, part_start): the same bits on any number of threads.
"""

import numpy as np

from minidl._geometry import conv_geometry

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from minidl._ext._common cimport Geom, geom_of, pad_plane, part_start, per_thread, tap_range


cdef class _Plan:
    """The geometry as the C struct the nogil code reads; with ``padded``, the (D, H, W) size
    of a stride-1 plane's padded grid, where each tap reads on it (relative to the output)."""
    cdef Geom g
    cdef Py_ssize_t[::1] off

    def __cinit__(self, geo, padded=None):
        self.g = geom_of(geo)
        if padded is not None:
            self.off = np.empty(self.g.kvol, np.intp)
            minidl_dw_offsets(self.g.ker, self.g.dil, padded[1], padded[2], &self.off[0])


def _padded(size, before, after) -> tuple:
    return tuple(n + b + a for n, b, a in zip(size, before, after))


def _plane_buffers(nt, padded, dtype):
    """Per thread, room for a plane padded to `padded` and its output grid (never longer than
    the padded plane): the stride-1 kernels' scratch."""
    return per_thread(nt, 2 * padded[0] * padded[1] * padded[2], dtype)


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


# Stride 1: planes zero-padded into a per-thread buffer, where every tap reads at one fixed
# offset from the output's grid position (rows Wp apart): the taps run over vectors of grid
# positions, across rows, instead of per output row, whose bookkeeping cost more than the
# arithmetic on large planes (bench case: depthwise 3x3).

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


cdef inline void pad_plane_of(const Plane* p, const floating* src, floating* dst) noexcept nogil:
    memset(dst, 0, p.padded * sizeof(floating))
    pad_plane(src, dst, p.size[0], p.size[1], p.size[2], p.Hp, p.Wp, p.before[0], p.before[1],
              p.before[2])


cdef extern from *:
    """
    /* acc[q] += sum over taps t, in order, of w[t] (w[taps - 1 - t] if flip) * x[q + off[t]]
       for q < n, off[t] the tap's offset on the padded grid (rows Wp apart, planes Hp rows
       apart).  NV vectors of positions stay in registers over all taps: per tap and vector
       one load and one multiply-add, where a pass per tap over the whole grid loaded and
       stored acc every time. */
    #if defined(__AVX512F__)
    #define MINIDL_DW_BYTES 64
    #elif defined(__AVX__)
    #define MINIDL_DW_BYTES 32
    #else
    #define MINIDL_DW_BYTES 16
    #endif
    #define MINIDL_DW_NV 4
    /* where tap t (flat kernel index) reads on the padded grid, relative to the output */
    static void minidl_dw_offsets(const Py_ssize_t* ker, const Py_ssize_t* dil, Py_ssize_t Hp,
                                  Py_ssize_t Wp, Py_ssize_t* off)
    {
        for (Py_ssize_t t = 0; t < ker[0] * ker[1] * ker[2]; t++) {
            Py_ssize_t kw = t % ker[2], kh = t / ker[2] % ker[1], kd = t / ker[2] / ker[1];
            off[t] = (kd * dil[0] * Hp + kh * dil[1]) * Wp + kw * dil[2];
        }
    }
    #define MINIDL_DW_TAPS(T, name)                                                          \
    typedef T name##_vec __attribute__((vector_size(MINIDL_DW_BYTES), aligned(sizeof(T)))); \
    static void name(const T* x, const T* w, int flip, const Py_ssize_t* off,                \
                     Py_ssize_t taps, T* acc, Py_ssize_t n)                                 \
    {                                                                                       \
        enum { L = MINIDL_DW_BYTES / sizeof(T) };                                           \
        Py_ssize_t q = 0;                                                                   \
        for (; q + MINIDL_DW_NV * L <= n; q += MINIDL_DW_NV * L) {                          \
            name##_vec a[MINIDL_DW_NV];                                                     \
            for (int v = 0; v < MINIDL_DW_NV; v++) a[v] = *(const name##_vec*)(acc + q + v * L); \
            for (Py_ssize_t t = 0; t < taps; t++) {                                         \
                const T s = w[flip ? taps - 1 - t : t];                                     \
                const T* xt = x + q + off[t];                                               \
                for (int v = 0; v < MINIDL_DW_NV; v++)                                      \
                    a[v] += s * *(const name##_vec*)(xt + v * L);                           \
            }                                                                               \
            for (int v = 0; v < MINIDL_DW_NV; v++) *(name##_vec*)(acc + q + v * L) = a[v];  \
        }                                                                                   \
        for (; q < n; q++) {                                                                \
            T a = acc[q];                                                                   \
            for (Py_ssize_t t = 0; t < taps; t++)                                           \
                a += w[flip ? taps - 1 - t : t] * x[q + off[t]];                            \
            acc[q] = a;                                                                     \
        }                                                                                   \
    }
    MINIDL_DW_TAPS(float, minidl_dw_taps_float)
    MINIDL_DW_TAPS(double, minidl_dw_taps_double)

    /* dw[t] += sum over q < n of dyg[q] * x[q + off[t]] for every tap t (offsets as above):
       blocks of up to 9 taps (a 3x3 kernel whole) held in registers over the positions, one
       load of dyg per vector for all of them; each tap's lanes summed in lane order, then
       the positions past the last whole vector. */
    #define MINIDL_DW_WB 9
    #define MINIDL_DW_WEIGHT(T, name)                                                        \
    typedef T name##_vec __attribute__((vector_size(MINIDL_DW_BYTES), aligned(sizeof(T)))); \
    static inline __attribute__((always_inline)) void                                       \
    name##_block(const T* x, const T* dyg, const Py_ssize_t* off, T* dw, Py_ssize_t n,       \
                 const int tb)                                                              \
    {                                                                                       \
        enum { L = MINIDL_DW_BYTES / sizeof(T) };                                           \
        name##_vec a[MINIDL_DW_WB] = {0};                                                   \
        Py_ssize_t q = 0;                                                                   \
        for (; q + L <= n; q += L) {                                                        \
            const name##_vec d = *(const name##_vec*)(dyg + q);                             \
            _Pragma("GCC unroll 16")                                                        \
            for (int u = 0; u < tb; u++) a[u] += d * *(const name##_vec*)(x + q + off[u]);  \
        }                                                                                   \
        _Pragma("GCC unroll 16")                                                            \
        for (int u = 0; u < tb; u++) {                                                      \
            T s = 0;                                                                        \
            _Pragma("GCC unroll 16")                                                        \
            for (int l = 0; l < L; l++) s += a[u][l];                                       \
            for (Py_ssize_t r = q; r < n; r++) s += dyg[r] * x[r + off[u]];                 \
            dw[u] += s;                                                                     \
        }                                                                                   \
    }                                                                                       \
    static void name(const T* x, const T* dyg, const Py_ssize_t* off, Py_ssize_t taps,      \
                     T* dw, Py_ssize_t n)                                                   \
    {                                                                                       \
        for (Py_ssize_t t = 0; t < taps; t += MINIDL_DW_WB) {                               \
            const Py_ssize_t* o = off + t;                                                  \
            switch (taps - t < MINIDL_DW_WB ? taps - t : MINIDL_DW_WB) {                    \
            case 1: name##_block(x, dyg, o, dw + t, n, 1); break;                           \
            case 2: name##_block(x, dyg, o, dw + t, n, 2); break;                           \
            case 3: name##_block(x, dyg, o, dw + t, n, 3); break;                           \
            case 4: name##_block(x, dyg, o, dw + t, n, 4); break;                           \
            case 5: name##_block(x, dyg, o, dw + t, n, 5); break;                           \
            case 6: name##_block(x, dyg, o, dw + t, n, 6); break;                           \
            case 7: name##_block(x, dyg, o, dw + t, n, 7); break;                           \
            case 8: name##_block(x, dyg, o, dw + t, n, 8); break;                           \
            default: name##_block(x, dyg, o, dw + t, n, MINIDL_DW_WB); break;               \
            }                                                                               \
        }                                                                                   \
    }
    MINIDL_DW_WEIGHT(float, minidl_dw_weight_float)
    MINIDL_DW_WEIGHT(double, minidl_dw_weight_double)
    """
    void minidl_dw_offsets(const Py_ssize_t* ker, const Py_ssize_t* dil, Py_ssize_t Hp,
                           Py_ssize_t Wp, Py_ssize_t* off) noexcept nogil
    void minidl_dw_taps_float(const float* x, const float* w, int flip, const Py_ssize_t* off,
                              Py_ssize_t taps, float* acc, Py_ssize_t n) noexcept nogil
    void minidl_dw_taps_double(const double* x, const double* w, int flip,
                               const Py_ssize_t* off, Py_ssize_t taps, double* acc,
                               Py_ssize_t n) noexcept nogil
    void minidl_dw_weight_float(const float* x, const float* dyg, const Py_ssize_t* off,
                                Py_ssize_t taps, float* dw, Py_ssize_t n) noexcept nogil
    void minidl_dw_weight_double(const double* x, const double* dyg, const Py_ssize_t* off,
                                 Py_ssize_t taps, double* dw, Py_ssize_t n) noexcept nogil


cdef inline void add_taps(const Geom* g, const Plane* p, const Py_ssize_t* off,
                          const floating* xp, const floating* w, bint flip,
                          floating* acc) noexcept nogil:
    """acc[q] += sum over taps of w[tap] * xp[q + off[tap]] (w[kvol - 1 - tap] if flip);
    q + off <= padded - 1: the last output's last tap."""
    if floating is float:
        minidl_dw_taps_float(xp, w, flip, off, g.kvol, acc, p.length)
    else:
        minidl_dw_taps_double(xp, w, flip, off, g.kvol, acc, p.length)


cdef void rows_out(const Plane* p, const floating* acc, floating* dst) noexcept nogil:
    cdef Py_ssize_t z, r
    for z in range(p.out[0]):
        for r in range(p.out[1]):
            memcpy(dst + (z * p.out[1] + r) * p.out[2], acc + (z * p.Hp + r) * p.Wp,
                   p.out[2] * sizeof(floating))


cdef void depthwise_forward_plane_s1(const Geom* g, const Py_ssize_t* off, const floating* x,
                                     const floating* w, floating* y, floating* buf,
                                     Py_ssize_t item) noexcept nogil:
    """y[n, o] for item = n * O + o; buf: the padded input plane, then the grid."""
    cdef Py_ssize_t o = item % g.O, n = item // g.O
    cdef Plane p = plane_of(g.inp, g.pad, g.pad_after, g.out)
    pad_plane_of(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
    memset(buf + p.padded, 0, p.length * sizeof(floating))
    add_taps(g, &p, off, buf, w + o * g.kvol, False, buf + p.padded)
    rows_out(&p, buf + p.padded, y + item * g.P)


cdef void depthwise_data_plane_s1(const Geom* g, const Py_ssize_t* off, const floating* dy,
                                  const floating* w, floating* dx, floating* buf,
                                  Py_ssize_t item) noexcept nogil:
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
        pad_plane_of(&p, dy + (n * g.O + o) * g.P, buf)
        add_taps(g, &p, off, buf, w + o * g.kvol, True, acc)
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


cdef void depthwise_weight_plane_s1(const Geom* g, const Py_ssize_t* off, const floating* x,
                                    const floating* dy, floating* dw, floating* buf,
                                    Py_ssize_t item) noexcept nogil:
    """dw[o] += each tap's dot product of dy[n, o], laid on the padded grid (zeros off the
    outputs), with the padded input plane shifted by the tap."""
    cdef Py_ssize_t o = item % g.O, n = item // g.O, z, r
    cdef Plane p = plane_of(g.inp, g.pad, g.pad_after, g.out)
    cdef floating* dyg = buf + p.padded
    pad_plane_of(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
    memset(dyg, 0, p.length * sizeof(floating))
    for z in range(g.out[0]):
        for r in range(g.out[1]):
            memcpy(dyg + (z * p.Hp + r) * p.Wp, dy + item * g.P + (z * g.out[1] + r) * g.out[2],
                   g.out[2] * sizeof(floating))
    if floating is float:
        minidl_dw_weight_float(buf, dyg, off, g.kvol, dw + o * g.kvol, p.length)
    else:
        minidl_dw_weight_double(buf, dyg, off, g.kvol, dw + o * g.kvol, p.length)


def _run_forward(_Plan plan, const floating[::1] x, const floating[::1] w,
                       floating[::1] y, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for stride 1, None otherwise."""
    cdef const Geom* g = &plan.g
    cdef const Py_ssize_t* off
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="static"):
            depthwise_forward_plane(g, &x[0], &w[0], &y[0], item)
    else:
        off = &plan.off[0]
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="static"):
            depthwise_forward_plane_s1(g, off, &x[0], &w[0], &y[0], &bufs[threadid(), 0],
                                       item)


def _run_data(_Plan plan, const floating[::1] dy, const floating[::1] w,
                    floating[::1] dx, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for depthwise_data_plane_s1, or None."""
    cdef const Geom* g = &plan.g
    cdef const Py_ssize_t* off
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="static"):
            depthwise_data_plane(g, &dy[0], &w[0], &dx[0], item)
    else:
        off = &plan.off[0]
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="static"):
            depthwise_data_plane_s1(g, off, &dy[0], &w[0], &dx[0], &bufs[threadid(), 0], item)


def _run_weight(_Plan plan, const floating[::1] x, const floating[::1] dy,
                      floating[:, ::1] dw_per_part, floating[:, ::1] bufs, bint stride_one,
                      int nt):
    """bufs: per thread, an output row (strided) or a padded plane + grid (stride 1)."""
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t part, item, parts = dw_per_part.shape[0], n_items = g.N * g.O
    cdef const Py_ssize_t* off = &plan.off[0] if stride_one else NULL
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):
        memset(&dw_per_part[part, 0], 0, dw_per_part.shape[1] * sizeof(floating))  # own thread
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            if stride_one:
                depthwise_weight_plane_s1(g, off, &x[0], &dy[0], &dw_per_part[part, 0],
                                          &bufs[threadid(), 0], item)
            else:
                depthwise_weight_plane(g, &x[0], &dy[0], &dw_per_part[part, 0],
                                       &bufs[threadid(), 0], item)



# --------------------------------------------------------------------------------------------
# The three primitives (minidl._ext.dispatch checks the arrays against the geometry first)
# --------------------------------------------------------------------------------------------

def forward(x, w, geo, int nt):
    """y (N, O, *out) of a depthwise conv: x (N, C, D, H, W), w (O, 1, *kernel)."""
    cdef _Plan plan
    y = np.empty(geo.y_shape, dtype=x.dtype)
    bufs = None
    if geo.stride == (1, 1, 1):
        padded = _padded(geo.in_size, geo.pad_before, geo.pad_after)
        plan, bufs = _Plan(geo, padded), _plane_buffers(nt, padded, x.dtype)
    else:
        plan = _Plan(geo)
    _run_forward(plan, x.reshape(-1), w.reshape(-1), y.reshape(-1), bufs, nt)
    return y


def backward_data(dy, w, geo, int nt):
    """dx (N, C, D, H, W) of a depthwise conv from dy (N, O, *out)."""
    cdef _Plan plan = _Plan(geo)
    dx = np.empty(geo.x_shape, dtype=dy.dtype)
    extent = [d * (k - 1) for d, k in zip(geo.dilation, geo.kernel)]
    # stride 1: dy padded by extent - pad_before before and extent - pad_after after, when
    # both are >= 0 (a padding beyond the kernel extent takes the per-row kernel)
    before = [e - b for e, b in zip(extent, geo.pad_before)]
    after = [e - a for e, a in zip(extent, geo.pad_after)]
    bufs = None
    if geo.stride == (1, 1, 1) and min(before) >= 0 and min(after) >= 0:
        if geo.out_per_group == 1:
            # one dy plane per dx plane: exactly this module's forward, of dy with the taps
            # flipped (measured faster than the per-plane loop below on the depthwise bench
            # case with AVX-512)
            flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1, ::-1])
            pads = tuple(zip(before, after))
            data_geo = conv_geometry("conv3d", 3, dy.shape, w.shape, 1, pads, geo.dilation,
                                     geo.groups)
            return forward(dy, flipped, data_geo, nt)
        padded = _padded(geo.out_size, before, after)
        plan, bufs = _Plan(geo, padded), _plane_buffers(nt, padded, dy.dtype)
    _run_data(plan, dy.reshape(-1), w.reshape(-1), dx.reshape(-1), bufs, nt)
    return dx


def backward_weight(x, dy, geo, int nt, int parts):
    """dw (O, 1, *kernel) of a depthwise conv from x and dy, summed in `parts` partials on
    `nt` threads."""
    cdef _Plan plan
    stride_one = geo.stride == (1, 1, 1)
    if stride_one:
        padded = _padded(geo.in_size, geo.pad_before, geo.pad_after)
        plan, bufs = _Plan(geo, padded), _plane_buffers(nt, padded, x.dtype)
    else:
        plan = _Plan(geo)
        bufs = per_thread(nt, plan.g.out[2], x.dtype)
    acc = per_thread(parts, plan.g.O * plan.g.K, x.dtype)  # one dw per part
    _run_weight(plan, x.reshape(-1), dy.reshape(-1), acc, bufs, stride_one, nt)
    return acc[:, : plan.g.O * plan.g.K].sum(axis=0).reshape(geo.w_shape)
