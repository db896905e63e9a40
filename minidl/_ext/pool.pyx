# cython: language_level=3
"""Max and average pooling kernels with PyTorch semantics.

Every routine works on the 3-D form: ``x`` is ``(N, C, D, H, W)`` and the spatial arguments are
tuples of three ints, so 1-D pooling is ``(1, 1, W)`` and 2-D pooling is ``(1, H, W)``.  The
``N * C`` planes are independent and are processed in parallel with OpenMP.

Conventions follow ``torch.nn.functional.max_pool{1,2,3}d`` / ``avg_pool{1,2,3}d``:

* output size: ``floor_or_ceil((in + 2p - d(k-1) - 1) / s) + 1``; in ceil mode the last window
  must start inside the input or the left padding;
* max pooling pads with -inf, a NaN in the window makes the output NaN (the index is that of the
  last NaN), and ``indices`` are flat offsets into the ``D * H * W`` input volume;
* a max-pool window that covers only padding (possible with dilation) yields -inf with index -1,
  and ``max_pool_backward`` skips -1 (torch emits an out-of-range index there);
* average pooling divides by ``divisor_override`` if given, else by the window size clipped to
  the padded input (``count_include_pad``) or to the input itself.
"""

import operator

import numpy as np

from minidl._geometry import _cached, int_tuple
from minidl.runtime import isa, threads_in_use

cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include "_targets.h"
    /* Max pooling of one plane whose windows all lie inside it (dilation 1, no padding),
       PyTorch's rule: the first maximum, the last NaN. A row of outputs at a time, tap by
       tap: each tap one pass over the row that selects with bit masks, no branch (a row's
       tail, or a whole short row, runs outside the vector loop, where a conditional would be
       a branch), a loop that vectorizes (16-byte vectors in the baseline copy, 32 in the
       AVX2 one). A stride of 2 (2x2 pooling) is its own loop so that the compiler sees it
       constant. in, out, k, s: (D, H, W) sizes, kernel and stride; U: the unsigned integer
       of T's size. */
    #define MINIDL_MAX_TAP_LOOP(T, U, STRIDE)                                               \
        for (Py_ssize_t i = 0; i < out[2]; i++) {                                           \
            T val = xt[i * (STRIDE)], maxval = yr[i];                                       \
            U vb, mb;                                                                       \
            memcpy(&vb, &val, sizeof vb);                                                   \
            memcpy(&mb, &maxval, sizeof mb);                                                \
            int64_t take = -(int64_t)((val > maxval) | (val != val));  /* all ones */      \
            U bits = (vb & (U)take) | (mb & ~(U)take);                                      \
            memcpy(&yr[i], &bits, sizeof bits);                                             \
            ir[i] = ((first + i * (STRIDE)) & take) | (ir[i] & ~take);                      \
        }
    #define MINIDL_MAX_PLANE(T, U, NAME, ATTR)                                              \
    static ATTR void NAME(const T* __restrict x, T* __restrict y, int64_t* __restrict ind,  \
                          const Py_ssize_t* in, const Py_ssize_t* out, const Py_ssize_t* k, \
                          const Py_ssize_t* s)                                             \
    {                                                                                       \
        for (Py_ssize_t od = 0; od < out[0]; od++)                                          \
        for (Py_ssize_t oh = 0; oh < out[1]; oh++) {                                        \
            Py_ssize_t start = (od * s[0] * in[1] + oh * s[1]) * in[2];                     \
            T* yr = y + (od * out[1] + oh) * out[2];                                        \
            int64_t* ir = ind + (od * out[1] + oh) * out[2];                                \
            for (Py_ssize_t i = 0; i < out[2]; i++) {  /* the first tap */                  \
                yr[i] = x[start + i * s[2]];                                                \
                ir[i] = start + i * s[2];                                                   \
            }                                                                               \
            for (Py_ssize_t zd = 0; zd < k[0]; zd++)                                        \
            for (Py_ssize_t zh = 0; zh < k[1]; zh++)                                        \
            for (Py_ssize_t zw = 0; zw < k[2]; zw++) {                                      \
                if (zd == 0 && zh == 0 && zw == 0) continue;                                \
                int64_t first = start + (zd * in[1] + zh) * in[2] + zw;                     \
                const T* xt = x + first;                                                    \
                if (s[2] == 2) { MINIDL_MAX_TAP_LOOP(T, U, 2) }                             \
                else { MINIDL_MAX_TAP_LOOP(T, U, s[2]) }                                    \
            }                                                                               \
        }                                                                                   \
    }
    MINIDL_MAX_PLANE(float, uint32_t, minidl_max_plane_f32_avx2, MINIDL_AVX2_TARGET)
    MINIDL_MAX_PLANE(double, uint64_t, minidl_max_plane_f64_avx2, MINIDL_AVX2_TARGET)
    MINIDL_MAX_PLANE(float, uint32_t, minidl_max_plane_f32, )
    MINIDL_MAX_PLANE(double, uint64_t, minidl_max_plane_f64, )
    """
    int MINIDL_HAS_AVX2_TARGET
    void minidl_max_plane_f32_avx2(const float* x, float* y, int64_t* ind,
                                   const Py_ssize_t* in_, const Py_ssize_t* out,
                                   const Py_ssize_t* k, const Py_ssize_t* s) noexcept nogil
    void minidl_max_plane_f64_avx2(const double* x, double* y, int64_t* ind,
                                   const Py_ssize_t* in_, const Py_ssize_t* out,
                                   const Py_ssize_t* k, const Py_ssize_t* s) noexcept nogil
    void minidl_max_plane_f32(const float* x, float* y, int64_t* ind, const Py_ssize_t* in_,
                              const Py_ssize_t* out, const Py_ssize_t* k,
                              const Py_ssize_t* s) noexcept nogil
    void minidl_max_plane_f64(const double* x, double* y, int64_t* ind, const Py_ssize_t* in_,
                              const Py_ssize_t* out, const Py_ssize_t* k,
                              const Py_ssize_t* s) noexcept nogil


def _triple(value, name):
    """The kernels' 3-D form: an int or 3 ints (minidl.nn.functional lifts 1-D and 2-D)."""
    return int_tuple(value, 3, name, "pool kernel", single=False)


# --------------------------------------------------------------------------------------------
# Validation and geometry (Python level, before any nogil code runs)
# --------------------------------------------------------------------------------------------

cdef struct Geometry:
    Py_ssize_t in_d, in_h, in_w
    Py_ssize_t out_d, out_h, out_w
    Py_ssize_t k_d, k_h, k_w
    Py_ssize_t s_d, s_h, s_w
    Py_ssize_t p_d, p_h, p_w
    Py_ssize_t dil_d, dil_h, dil_w


def pool_output_size(in_size, k, s, p, d, ceil_mode):
    """Output length of one pooled dimension, exactly as PyTorch computes it.

    May return a value < 1 (the callers reject it); raises ValueError if k, s or d < 1.
    """
    in_size, k, s, p, d = (operator.index(v) for v in (in_size, k, s, p, d))
    if k < 1 or s < 1 or d < 1:
        raise ValueError(
            f"kernel size, stride and dilation must be >= 1, got kernel_size={k}, "
            f"stride={s}, dilation={d}"
        )
    numerator = in_size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1  # Python ints: floor division, like torch's div_rtn
    if ceil_mode and (out - 1) * s >= in_size + p:
        out -= 1  # the last window would start in the right padding
    return out


def _check_float_array(a, name, ndim=5):
    a = np.asarray(a)
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim} (N, C, D, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a)


def _check_input_size(input_size, dy_shape):
    """Spatial (D, H, W) size of the forward input; (N, C, D, H, W) is accepted too."""
    size = tuple(operator.index(v) for v in input_size)
    if len(size) == 5:
        if size[:2] != tuple(dy_shape[:2]):
            raise ValueError(
                f"input_size {size} does not match the batch/channel dims of dy {dy_shape}"
            )
        size = size[2:]
    if len(size) != 3:
        raise ValueError(f"input_size must be (D, H, W), got {input_size!r}")
    if min(size) < 1:
        raise ValueError(f"input_size must be positive, got {size}")
    return size


def _geometry(in_size, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate the pooling parameters and return (output size, Geometry as a dict)."""
    k = _triple(kernel_size, "kernel_size")
    s = k if stride is None else _triple(stride, "stride")
    p = _triple(padding, "padding")
    d = _triple(dilation, "dilation")
    if min(k) < 1:
        raise ValueError(f"kernel_size must be >= 1, got {k}")
    if min(s) < 1:
        raise ValueError(f"stride must be >= 1, got {s}")
    if min(d) < 1:
        raise ValueError(f"dilation must be >= 1, got {d}")
    if min(p) < 0:
        raise ValueError(f"padding must be >= 0, got {p}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(
            f"pad should be at most half of effective kernel size, but got padding={p}, "
            f"kernel_size={k} and dilation={d} (need padding <= kernel_size // 2)"
        )
    if min(in_size) < 1:
        raise ValueError(f"input spatial size must be positive, got {tuple(in_size)}")
    out = tuple(
        pool_output_size(i, ki, si, pi, di, ceil_mode)
        for i, ki, si, pi, di in zip(in_size, k, s, p, d)
    )
    if min(out) < 1:
        raise ValueError(
            f"Given input size {tuple(in_size)}, calculated output size {out} is too small "
            f"(kernel_size={k}, stride={s}, padding={p}, dilation={d})"
        )
    geom = {
        "in_d": in_size[0], "in_h": in_size[1], "in_w": in_size[2],
        "out_d": out[0], "out_h": out[1], "out_w": out[2],
        "k_d": k[0], "k_h": k[1], "k_w": k[2],
        "s_d": s[0], "s_h": s[1], "s_w": s[2],
        "p_d": p[0], "p_h": p[1], "p_w": p[2],
        "dil_d": d[0], "dil_h": d[1], "dil_w": d[2],
    }
    return out, geom


def _check_divisor(divisor_override):
    if divisor_override is None:
        return 0
    divisor = operator.index(divisor_override)
    if divisor == 0:
        raise ValueError("divisor_override must be non-zero")
    return divisor


# --------------------------------------------------------------------------------------------
# Per-plane kernels (nogil). Pointers address one contiguous D*H*W (input) or out volume. The
# geometry is passed by value so the compiler knows that stores to the outputs (the int64
# indices in particular) cannot alias it and keeps it in registers.
# --------------------------------------------------------------------------------------------

cdef inline Py_ssize_t _first_valid(Py_ssize_t start, Py_ssize_t dilation) noexcept nogil:
    """First tap start + j*dilation (j >= 0) that is >= 0."""
    while start < 0:
        start += dilation
    return start


cdef void _max_forward_plane(
    const floating* x, floating* y, int64_t* ind, Geometry g
) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, zd, zh, zw, row, best, last_nan, o = 0
    cdef Py_ssize_t mask
    cdef floating val, maxval
    for od in range(g.out_d):
        d0 = od * g.s_d - g.p_d
        d1 = min(d0 + (g.k_d - 1) * g.dil_d + 1, g.in_d)
        d0 = _first_valid(d0, g.dil_d)
        for oh in range(g.out_h):
            h0 = oh * g.s_h - g.p_h
            h1 = min(h0 + (g.k_h - 1) * g.dil_h + 1, g.in_h)
            h0 = _first_valid(h0, g.dil_h)
            for ow in range(g.out_w):
                w0 = ow * g.s_w - g.p_w
                w1 = min(w0 + (g.k_w - 1) * g.dil_w + 1, g.in_w)
                w0 = _first_valid(w0, g.dil_w)
                # torch keeps the first maximum, but a NaN replaces it and later NaNs replace
                # that: track the non-NaN max and the last NaN separately (branch-free selects,
                # random data would defeat the branch predictor), then combine.
                maxval = -INFINITY
                best = -1  # window made of padding only
                if d0 < d1 and h0 < h1 and w0 < w1:
                    best = (d0 * g.in_h + h0) * g.in_w + w0
                last_nan = -1
                zd = d0
                while zd < d1:
                    zh = h0
                    while zh < h1:
                        row = (zd * g.in_h + zh) * g.in_w
                        zw = w0
                        while zw < w1:
                            val = x[row + zw]
                            mask = -<Py_ssize_t>(val > maxval)  # all ones if val is larger
                            best = ((row + zw) & mask) | (best & ~mask)
                            mask = -<Py_ssize_t>(val != val)
                            last_nan = ((row + zw) & mask) | (last_nan & ~mask)
                            maxval = val if val > maxval else maxval  # maxss
                            zw += g.dil_w
                        zh += g.dil_h
                    zd += g.dil_d
                if last_nan >= 0:
                    maxval = x[last_nan]
                    best = last_nan
                y[o] = maxval
                ind[o] = best
                o += 1


cdef void _max_forward_inside_plane(
    const floating* x, floating* y, int64_t* ind, Geometry g, bint avx2
) noexcept nogil:
    """_max_forward_plane where every window lies inside the input with dilation 1 (no
    padding; the common 2x2 stride 2), with the same first-max / last-NaN rule, in C above:
    window by window every compare was a branch, and on random data half of them were
    mispredicted (bench case: LeNet-5's first pooling)."""
    cdef Py_ssize_t in_[3]
    cdef Py_ssize_t out[3]
    cdef Py_ssize_t k[3]
    cdef Py_ssize_t s[3]
    in_[:] = [g.in_d, g.in_h, g.in_w]
    out[:] = [g.out_d, g.out_h, g.out_w]
    k[:] = [g.k_d, g.k_h, g.k_w]
    s[:] = [g.s_d, g.s_h, g.s_w]
    if floating is float:
        (minidl_max_plane_f32_avx2 if avx2 else minidl_max_plane_f32)(x, y, ind, in_, out, k, s)
    else:
        (minidl_max_plane_f64_avx2 if avx2 else minidl_max_plane_f64)(x, y, ind, in_, out, k, s)


cdef Py_ssize_t _max_backward_plane(
    const floating* dy, const int64_t* ind, floating* dx, Py_ssize_t n_out, Py_ssize_t n_in
) noexcept nogil:
    """Zero dx and scatter-add dy into it; returns the number of invalid indices (skipped).
    (Zeroed here, by the thread that fills the plane, not by the caller: its lines would
    cross to the other core first.)"""
    cdef Py_ssize_t o, bad = 0
    cdef int64_t i
    memset(dx, 0, n_in * sizeof(floating))
    for o in range(n_out):
        i = ind[o]
        if 0 <= i < n_in:
            dx[i] += dy[o]
        elif i != -1:
            bad += 1
    return bad


cdef inline Py_ssize_t _avg_window(
    Py_ssize_t o, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t k, Py_ssize_t size,
    Py_ssize_t* lo, Py_ssize_t* hi,
) noexcept nogil:
    """Input range [lo, hi) of window o along one dim; returns its length within the padding."""
    cdef Py_ssize_t start = o * stride - pad
    cdef Py_ssize_t end = min(start + k, size + pad)
    lo[0] = max(start, 0)
    hi[0] = min(end, size)
    return end - start


cdef inline Py_ssize_t _avg_divisor(
    Py_ssize_t divisor_override, bint count_include_pad, Py_ssize_t padded, Py_ssize_t valid
) noexcept nogil:
    if divisor_override != 0:
        return divisor_override
    return padded if count_include_pad else valid


cdef void _avg_forward_plane(
    const floating* x, floating* y, Geometry g,
    bint count_include_pad, Py_ssize_t divisor_override,
) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, zd, zh, zw, row, o = 0
    cdef Py_ssize_t len_d, len_h, len_w, divisor
    cdef floating total
    for od in range(g.out_d):
        len_d = _avg_window(od, g.s_d, g.p_d, g.k_d, g.in_d, &d0, &d1)
        for oh in range(g.out_h):
            len_h = _avg_window(oh, g.s_h, g.p_h, g.k_h, g.in_h, &h0, &h1)
            for ow in range(g.out_w):
                len_w = _avg_window(ow, g.s_w, g.p_w, g.k_w, g.in_w, &w0, &w1)
                total = 0
                if d0 < d1 and h0 < h1 and w0 < w1:  # always true for valid parameters
                    for zd in range(d0, d1):
                        for zh in range(h0, h1):
                            row = (zd * g.in_h + zh) * g.in_w
                            for zw in range(w0, w1):
                                total = total + x[row + zw]
                    divisor = _avg_divisor(
                        divisor_override, count_include_pad,
                        len_d * len_h * len_w, (d1 - d0) * (h1 - h0) * (w1 - w0),
                    )
                    total = total / <floating>divisor
                y[o] = total
                o += 1


cdef void _avg_backward_plane(
    const floating* dy, floating* dx, Geometry g,
    bint count_include_pad, Py_ssize_t divisor_override,
) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, zd, zh, zw, row, o = 0
    cdef Py_ssize_t len_d, len_h, len_w, divisor
    cdef floating grad
    for od in range(g.out_d):
        len_d = _avg_window(od, g.s_d, g.p_d, g.k_d, g.in_d, &d0, &d1)
        for oh in range(g.out_h):
            len_h = _avg_window(oh, g.s_h, g.p_h, g.k_h, g.in_h, &h0, &h1)
            for ow in range(g.out_w):
                len_w = _avg_window(ow, g.s_w, g.p_w, g.k_w, g.in_w, &w0, &w1)
                divisor = _avg_divisor(
                    divisor_override, count_include_pad,
                    len_d * len_h * len_w, (d1 - d0) * (h1 - h0) * (w1 - w0),
                )
                grad = dy[o] / <floating>divisor
                o += 1
                for zd in range(d0, d1):
                    for zh in range(h0, h1):
                        row = (zd * g.in_h + zh) * g.in_w
                        for zw in range(w0, w1):
                            dx[row + zw] += grad


# --------------------------------------------------------------------------------------------
# Parallel drivers over the N*C planes. Arrays are viewed as (planes, volume), C-contiguous.
# --------------------------------------------------------------------------------------------

@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _max_forward(
    const floating[:, ::1] x, floating[:, ::1] y, int64_t[:, ::1] ind, Geometry g
):
    cdef Py_ssize_t plane
    cdef int nt = threads_in_use()
    cdef bint avx2 = MINIDL_HAS_AVX2_TARGET and isa() != "baseline"
    cdef bint inside = (
        g.p_d == 0 and g.p_h == 0 and g.p_w == 0
        and g.dil_d == 1 and g.dil_h == 1 and g.dil_w == 1
        and (g.out_d - 1) * g.s_d + g.k_d <= g.in_d
        and (g.out_h - 1) * g.s_h + g.k_h <= g.in_h
        and (g.out_w - 1) * g.s_w + g.k_w <= g.in_w
    )
    with nogil:
        for plane in prange(x.shape[0], num_threads=nt, schedule="static"):
            if inside:
                _max_forward_inside_plane(&x[plane, 0], &y[plane, 0], &ind[plane, 0], g, avx2)
            else:
                _max_forward_plane(&x[plane, 0], &y[plane, 0], &ind[plane, 0], g)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _max_backward(
    const floating[:, ::1] dy, const int64_t[:, ::1] ind, floating[:, ::1] dx
):
    cdef Py_ssize_t plane, bad = 0
    cdef int nt = threads_in_use()
    with nogil:
        for plane in prange(dy.shape[0], num_threads=nt, schedule="static"):
            bad += _max_backward_plane(
                &dy[plane, 0], &ind[plane, 0], &dx[plane, 0], dy.shape[1], dx.shape[1]
            )
    return bad


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _avg_forward(
    const floating[:, ::1] x, floating[:, ::1] y, Geometry g,
    bint count_include_pad, Py_ssize_t divisor_override,
):
    cdef Py_ssize_t plane
    cdef int nt = threads_in_use()
    with nogil:
        for plane in prange(x.shape[0], num_threads=nt, schedule="static"):
            _avg_forward_plane(
                &x[plane, 0], &y[plane, 0], g, count_include_pad, divisor_override
            )


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _avg_backward(
    const floating[:, ::1] dy, floating[:, ::1] dx, Geometry g,
    bint count_include_pad, Py_ssize_t divisor_override,
):
    cdef Py_ssize_t plane
    cdef int nt = threads_in_use()
    with nogil:
        for plane in prange(dy.shape[0], num_threads=nt, schedule="static"):
            _avg_backward_plane(
                &dy[plane, 0], &dx[plane, 0], g, count_include_pad, divisor_override
            )


def _planes(a):
    """View an (N, C, ...) C-contiguous array as (N*C, volume)."""
    return a.reshape(a.shape[0] * a.shape[1], -1)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def max_pool_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling of x (N, C, D, H, W); returns (y, indices) with int64 flat D*H*W indices.

    ``stride=None`` means ``stride = kernel_size``.
    """
    x = _check_float_array(x, "x")
    out, geom = _cached(_geometry, x.shape[2:], kernel_size, stride, padding, dilation,
                        bool(ceil_mode))
    shape = x.shape[:2] + out
    y = np.empty(shape, dtype=x.dtype)
    indices = np.empty(shape, dtype=np.int64)
    if y.size == 0:
        return y, indices
    cdef Geometry g = geom
    if x.dtype == np.float32:
        _max_forward[float](_planes(x), _planes(y), _planes(indices), g)
    else:
        _max_forward[double](_planes(x), _planes(y), _planes(indices), g)
    return y, indices


def max_pool_backward(dy, indices, input_size):
    """Gradient of max pooling: dx (N, C, *input_size) with dy scatter-added at indices.

    Index -1 (a window with no input element) is skipped; any other index outside
    [0, D*H*W) raises ValueError.
    """
    dy = _check_float_array(dy, "dy")
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != dy.shape:
        raise ValueError(f"indices shape {indices.shape} does not match dy shape {dy.shape}")
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    size = _check_input_size(input_size, dy.shape)
    dx = np.empty(dy.shape[:2] + size, dtype=dy.dtype)
    if dy.size == 0:
        dx[...] = 0
        return dx
    cdef Py_ssize_t bad
    if dy.dtype == np.float32:
        bad = _max_backward[float](_planes(dy), _planes(indices), _planes(dx))
    else:
        bad = _max_backward[double](_planes(dy), _planes(indices), _planes(dx))
    if bad:
        raise ValueError(
            f"{bad} indices are outside the input volume {size} "
            f"(valid range 0..{size[0] * size[1] * size[2] - 1})"
        )
    return dx


def avg_pool_forward(
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    """Average pooling of x (N, C, D, H, W). ``stride=None`` means ``stride = kernel_size``."""
    x = _check_float_array(x, "x")
    divisor = _check_divisor(divisor_override)
    out, geom = _cached(_geometry, x.shape[2:], kernel_size, stride, padding, (1, 1, 1),
                        bool(ceil_mode))
    y = np.empty(x.shape[:2] + out, dtype=x.dtype)
    if y.size == 0:
        return y
    cdef Geometry g = geom
    cdef bint include_pad = bool(count_include_pad)
    if x.dtype == np.float32:
        _avg_forward[float](_planes(x), _planes(y), g, include_pad, divisor)
    else:
        _avg_forward[double](_planes(x), _planes(y), g, include_pad, divisor)
    return y


def avg_pool_backward(
    dy, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    """Gradient of average pooling: dx of shape (N, C, *input_size)."""
    dy = _check_float_array(dy, "dy")
    size = _check_input_size(input_size, dy.shape)
    divisor = _check_divisor(divisor_override)
    out, geom = _cached(_geometry, size, kernel_size, stride, padding, (1, 1, 1),
                        bool(ceil_mode))
    if dy.shape[2:] != out:
        raise ValueError(
            f"dy shape {dy.shape} does not match the pooled output size {out} of an input "
            f"of spatial size {size}"
        )
    dx = np.zeros(dy.shape[:2] + size, dtype=dy.dtype)
    if dy.size == 0:
        return dx
    cdef Geometry g = geom
    cdef bint include_pad = bool(count_include_pad)
    if dy.dtype == np.float32:
        _avg_backward[float](_planes(dy), _planes(dx), g, include_pad, divisor)
    else:
        _avg_backward[double](_planes(dy), _planes(dx), g, include_pad, divisor)
    return dx
