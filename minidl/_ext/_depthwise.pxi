# Included by depthwise_avx512.pyx, depthwise_avx2.pyx and depthwise_baseline.pyx: one source,
# compiled once per instruction set (its loops are vectorised by the compiler).
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
    """The geometry as the C struct the nogil code reads."""
    cdef Geom g

    def __cinit__(self, geo):
        self.g = geom_of(geo)


def _plane_buffers(nt, size, before, after, dtype):
    """Per thread, room for a plane of `size` padded by before/after and its output grid
    (never longer than the padded plane): the stride-1 kernels' scratch."""
    padded = [n + b + a for n, b, a in zip(size, before, after)]
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


# Stride 1: planes zero-padded into a per-thread buffer, where every tap is one long shifted
# multiply-add over the whole grid (rows Wp apart) instead of one per output row: the per-row
# bookkeeping cost more than the arithmetic on large planes (bench case: depthwise 3x3).

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
    pad_plane_of(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
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
        pad_plane_of(&p, dy + (n * g.O + o) * g.P, buf)
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
    pad_plane_of(&p, x + (n * g.C + o // g.Og) * g.Pin, buf)
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


def _run_forward(_Plan plan, const floating[::1] x, const floating[::1] w,
                       floating[::1] y, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for stride 1, None otherwise."""
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="static"):
            depthwise_forward_plane(g, &x[0], &w[0], &y[0], item)
    else:
        for item in prange(g.N * g.O, nogil=True, num_threads=nt, schedule="static"):
            depthwise_forward_plane_s1(g, &x[0], &w[0], &y[0], &bufs[threadid(), 0], item)


def _run_data(_Plan plan, const floating[::1] dy, const floating[::1] w,
                    floating[::1] dx, floating[:, ::1] bufs, int nt):
    """bufs: one padded plane + grid per thread for depthwise_data_plane_s1, or None."""
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t item
    if bufs is None:
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="static"):
            depthwise_data_plane(g, &dy[0], &w[0], &dx[0], item)
    else:
        for item in prange(g.N * g.C, nogil=True, num_threads=nt, schedule="static"):
            depthwise_data_plane_s1(g, &dy[0], &w[0], &dx[0], &bufs[threadid(), 0], item)


def _run_weight(_Plan plan, const floating[::1] x, const floating[::1] dy,
                      floating[:, ::1] dw_per_part, floating[:, ::1] bufs, bint stride_one,
                      int nt):
    """bufs: per thread, an output row (strided) or a padded plane + grid (stride 1)."""
    cdef const Geom* g = &plan.g
    cdef Py_ssize_t part, item, parts = dw_per_part.shape[0], n_items = g.N * g.O
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):
        memset(&dw_per_part[part, 0], 0, dw_per_part.shape[1] * sizeof(floating))  # own thread
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            if stride_one:
                depthwise_weight_plane_s1(g, &x[0], &dy[0], &dw_per_part[part, 0],
                                          &bufs[threadid(), 0], item)
            else:
                depthwise_weight_plane(g, &x[0], &dy[0], &dw_per_part[part, 0],
                                       &bufs[threadid(), 0], item)



# --------------------------------------------------------------------------------------------
# The three primitives (minidl._ext.dispatch checks the arrays against the geometry first)
# --------------------------------------------------------------------------------------------

def forward(x, w, geo, int nt):
    """y (N, O, *out) of a depthwise conv: x (N, C, D, H, W), w (O, 1, *kernel)."""
    cdef _Plan plan = _Plan(geo)
    y = np.empty(geo.y_shape, dtype=x.dtype)
    bufs = None
    if geo.stride == (1, 1, 1):
        bufs = _plane_buffers(nt, geo.in_size, geo.pad_before, geo.pad_after, x.dtype)
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
        bufs = _plane_buffers(nt, geo.out_size, before, after, dy.dtype)
    _run_data(plan, dy.reshape(-1), w.reshape(-1), dx.reshape(-1), bufs, nt)
    return dx


def backward_weight(x, dy, geo, int nt, int parts):
    """dw (O, 1, *kernel) of a depthwise conv from x and dy, summed in `parts` partials on
    `nt` threads."""
    cdef _Plan plan = _Plan(geo)
    acc = per_thread(parts, plan.g.O * plan.g.K, x.dtype)  # one dw per part
    stride_one = geo.stride == (1, 1, 1)
    if stride_one:
        bufs = _plane_buffers(nt, geo.in_size, geo.pad_before, geo.pad_after, x.dtype)
    else:
        bufs = per_thread(nt, plan.g.out[2], x.dtype)
    _run_weight(plan, x.reshape(-1), dy.reshape(-1), acc, bufs, stride_one, nt)
    return acc[:, : plan.g.O * plan.g.K].sum(axis=0).reshape(geo.w_shape)
