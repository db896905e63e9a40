# cython: language_level=3
"""ReLU forward and backward, one pass each over the arrays, on OpenMP threads.

numpy's ``maximum(x, 0)`` and ``g * (y > 0)`` run on one thread and the backward makes a
boolean temporary: on a small CNN's activations (LeNet-5's first conv output, 1.2 MB) they took
several times PyTorch's fused kernels (bench case: the LeNet-5 step). The loops are C with
``restrict`` pointers so that the compiler turns the selects into vector blends (a branch per
element mispredicts on half of random data). Work is split in chunks of ``CHUNK`` elements;
arrays of one chunk run on the calling thread. Every element is computed on its own, so the
results do not depend on the thread count.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange

from minidl._ext._common cimport add_partials, combine_partials

cdef extern from *:
    """
    #define MINIDL_RELU(T, NAME_F, NAME_B)                                                   \\
    static void NAME_F(const T* __restrict x, T* __restrict y, Py_ssize_t n) {               \\
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \\
            T v = x[i];                                                                      \\
            y[i] = (v > 0 || v != v) ? v : (T)0;  /* NaN stays NaN, as PyTorch's relu */      \\
        }                                                                                    \\
    }                                                                                        \\
    static void NAME_B(const T* __restrict g, const T* __restrict y, T* __restrict dx,       \\
                       Py_ssize_t n) {                                                       \\
        /* PyTorch's threshold rule: 0 where y <= 0 (the gradient at 0 is 0), else g */      \\
        for (Py_ssize_t i = 0; i < n; i++) {  /* g loaded unconditionally: a vector blend */ \\
            T gi = g[i];                                                                     \\
            dx[i] = y[i] <= 0 ? (T)0 : gi;                                                   \\
        }                                                                                    \\
    }
    MINIDL_RELU(float, minidl_relu_f32, minidl_relu_backward_f32)
    MINIDL_RELU(double, minidl_relu_f64, minidl_relu_backward_f64)
    """
    void minidl_relu_f32(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void minidl_relu_f64(const double* x, double* y, Py_ssize_t n) noexcept nogil
    void minidl_relu_backward_f32(const float* g, const float* y, float* dx,
                                  Py_ssize_t n) noexcept nogil
    void minidl_relu_backward_f64(const double* g, const double* y, double* dx,
                                  Py_ssize_t n) noexcept nogil

cdef Py_ssize_t CHUNK = 1 << 15
CHUNK_ELEMENTS = CHUNK  # for the tests: arrays of up to one chunk stay on the calling thread


cdef void _forward(const floating* x, floating* y, Py_ssize_t n, int nt) noexcept nogil:
    cdef Py_ssize_t c, chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(chunks, num_threads=nt if chunks > 1 else 1, schedule="static"):
        if floating is float:
            minidl_relu_f32(x + c * CHUNK, y + c * CHUNK, min(CHUNK, n - c * CHUNK))
        else:
            minidl_relu_f64(x + c * CHUNK, y + c * CHUNK, min(CHUNK, n - c * CHUNK))


cdef void _backward(const floating* g, const floating* y, floating* dx, Py_ssize_t n,
                    int nt) noexcept nogil:
    cdef Py_ssize_t c, chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(chunks, num_threads=nt if chunks > 1 else 1, schedule="static"):
        if floating is float:
            minidl_relu_backward_f32(g + c * CHUNK, y + c * CHUNK, dx + c * CHUNK,
                                     min(CHUNK, n - c * CHUNK))
        else:
            minidl_relu_backward_f64(g + c * CHUNK, y + c * CHUNK, dx + c * CHUNK,
                                     min(CHUNK, n - c * CHUNK))


def relu_forward(const floating[::1] x, int nt) -> np.ndarray:
    """max(x, 0) of a flat contiguous float array (NaN propagates)."""
    y = np.empty(x.shape[0], np.float32 if floating is float else np.float64)
    cdef floating[::1] out = y
    if x.shape[0]:
        _forward(&x[0], &out[0], x.shape[0], nt)
    return y


def relu_backward(const floating[::1] g, const floating[::1] y, int nt) -> np.ndarray:
    """0 where y <= 0, else g (flat, contiguous, same length and dtype)."""
    if g.shape[0] != y.shape[0]:
        raise ValueError(
            f"relu_backward: gradient has {g.shape[0]} elements, output {y.shape[0]}"
        )
    dx = np.empty(g.shape[0], np.float32 if floating is float else np.float64)
    cdef floating[::1] out = dx
    if g.shape[0]:
        _backward(&g[0], &y[0], &out[0], g.shape[0], nt)
    return dx


# ---- a conv's bias: added per channel plane, its gradient summed per channel ------------------
# numpy's broadcast add and its two-axis sum run on one thread with strided inner loops: next
# to a small conv they cost a large part of its time (bench case: LeNet-5's first conv).

def add_channel_bias(floating[:, :, ::1] y, const floating[::1] bias, int nt) -> None:
    """y[n, c, :] += bias[c] in place, y as (N, C, plane)."""
    if bias.shape[0] != y.shape[1]:
        raise ValueError(f"add_channel_bias: {bias.shape[0]} biases for {y.shape[1]} channels")
    cdef Py_ssize_t item, i, C = y.shape[1], plane = y.shape[2]
    cdef floating b
    cdef floating* row
    if y.shape[0] * C * plane == 0:
        return
    for item in prange(y.shape[0] * C, nogil=True, schedule="static",
                       num_threads=nt if y.shape[0] * C * plane > CHUNK else 1):
        row = &y[item // C, item % C, 0]
        b = bias[item % C]
        for i in range(plane):
            row[i] = row[i] + b


def channel_sums(const floating[:, :, ::1] g, int nt) -> np.ndarray:
    """sum of g (N, C, plane) over N and the plane, per channel: each (n, c) plane summed in
    float64 by one thread, then the planes of a channel in order of n (the same bits with any
    thread count)."""
    cdef Py_ssize_t N = g.shape[0], C = g.shape[1], plane = g.shape[2], item, n
    partial = np.zeros((N, C), np.float64)
    partials = np.zeros((N * C, 8), np.float64)
    cdef double[:, ::1] part = partial, p8 = partials
    if N * C * plane:
        for item in prange(N * C, nogil=True, schedule="static",
                           num_threads=nt if N * C * plane > CHUNK else 1):
            add_partials(&g[item // C, item % C, 0], plane, &p8[item, 0])
            part[item // C, item % C] = combine_partials(&p8[item, 0])
    sums = np.zeros(C, np.float64)
    for n in range(N):
        sums += partial[n]
    return sums.astype(np.float32 if floating is float else np.float64)
