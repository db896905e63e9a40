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
