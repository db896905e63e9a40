# cython: language_level=3
"""The Adam and SGD updates, one pass per parameter, with PyTorch's roundings.

numpy needs a dozen whole-array operations per parameter for Adam (and float64 temporaries for
its fused multiply-adds), a large part of a small CNN's step (bench case: the main job). Here
every element is updated in one loop, with the operations of ``torch.optim``'s single-tensor
updates in their order and roundings: ``fma`` wherever PyTorch's CPU kernels fuse a multiply
and an add (``lerp``, ``addcmul``, ``add(alpha=)``), plain float arithmetic elsewhere. The
loops are compiled twice: for FMA hardware (x86 with AVX2, chosen unless minidl.runtime's
instruction set is the baseline) and portably, where ``fma`` is the C library's (exact, slower).
Every element is computed on its own, so the result does not depend on the thread count.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange

from minidl import runtime

cdef extern from *:
    """
    #include <math.h>
    /* no contraction of a product and a sum into an fma beyond the ones written out (PyTorch
       rounds p * decay before its addcdiv_, for one) */
    #pragma GCC optimize ("fp-contract=off")
    #include "_targets.h"

    /* Adam (torch.optim.Adam, single tensor), per element:
         g = sign * g                       sign = -1 if maximize
         p = p * decay                      decay = 1 - lr*wd with decoupled weight decay
                                            (AdamW), else 1
         g = fma(p, wd, g)                  L2 weight decay (l2: wd != 0, not decoupled)
         m = fma(m1, g - m, base)           lerp_(g, w1), w1 = 1 - beta1, torch's two
                                            branches: (m1, base) = (w1, m) or (w1 - 1, g)
         v = fma(c2 * g, g, v * beta2)      c2 = 1 - beta2: mul_(beta2).addcmul_(g, g, c2)
         vmax = max(vmax, v)                amsgrad (NaN propagates, as torch.maximum)
         p = p + (neg_step * m) / (sqrt(v or vmax) / bc2_sqrt + eps)        addcdiv_
       Flags are selects, not branches, so that the loop vectorizes. */
    #define MINIDL_ADAM_ELEMENT(T, FMA, SQRT, VMAX)                                          \
        T gi = g[i] * sign, pi = p[i] * decay, mi = m[i];                                   \
        gi = l2 ? FMA(pi, wd, gi) : gi;                                                     \
        mi = FMA(m1, gi - mi, w1 < (T)0.5 ? mi : gi);                                       \
        T vi = FMA(c2 * gi, gi, v[i] * beta2);                                              \
        v[i] = vi;                                                                          \
        VMAX                                                                                \
        m[i] = mi;                                                                          \
        p[i] = pi + (neg_step * mi) / (SQRT(vi) / bc2_sqrt + eps);
    #define MINIDL_ADAM(T, FMA, SQRT, NAME, ATTR)                                            \
    static ATTR void NAME(T* __restrict p, const T* __restrict g, T* __restrict m,         \
                          T* __restrict v, T* __restrict vmax, Py_ssize_t n, T sign,        \
                          T decay, int l2, T wd, T w1, T beta2, T c2, T bc2_sqrt, T eps,    \
                          T neg_step)                                                       \
    {                                                                                       \
        const T m1 = w1 < (T)0.5 ? w1 : w1 - (T)1;                                          \
        if (vmax) {                                                                         \
            for (Py_ssize_t i = 0; i < n; i++) {                                            \
                MINIDL_ADAM_ELEMENT(T, FMA, SQRT,                                           \
                    T vm = vmax[i]; vi = (vm != vm || vm >= vi) ? vm : vi; vmax[i] = vi;)   \
            }                                                                               \
        } else {                                                                            \
            for (Py_ssize_t i = 0; i < n; i++) {                                            \
                MINIDL_ADAM_ELEMENT(T, FMA, SQRT, )                                         \
            }                                                                               \
        }                                                                                   \
    }
    /* SGD (torch.optim.SGD, single tensor), per element:
         g = sign * g;  g = fma(p, wd, g) if l2 (wd != 0)
         momentum: b = g on the first step, else fma(g, 1 - dampening, b * momentum);
                   g = fma(b, momentum, g) if nesterov else b
         p = fma(g, -lr, p) */
    #define MINIDL_SGD_ELEMENT(T, FMA, MOMENTUM)                                             \
        T gi = g[i] * sign, pi = p[i];                                                      \
        gi = l2 ? FMA(pi, wd, gi) : gi;                                                     \
        MOMENTUM                                                                            \
        p[i] = FMA(gi, neg_lr, pi);
    #define MINIDL_SGD(T, FMA, NAME, ATTR)                                                   \
    static ATTR void NAME(T* __restrict p, const T* __restrict g, T* __restrict buf,       \
                          Py_ssize_t n, T sign, int l2, T wd, T momentum, T keep,           \
                          int first, int nesterov, T neg_lr)                                \
    {                                                                                       \
        if (buf) {                                                                          \
            for (Py_ssize_t i = 0; i < n; i++) {                                            \
                MINIDL_SGD_ELEMENT(T, FMA,                                                  \
                    T b = first ? gi : FMA(gi, keep, buf[i] * momentum); buf[i] = b;        \
                    gi = nesterov ? FMA(b, momentum, gi) : b;)                              \
            }                                                                               \
        } else {                                                                            \
            for (Py_ssize_t i = 0; i < n; i++) {                                            \
                MINIDL_SGD_ELEMENT(T, FMA, )                                                \
            }                                                                               \
        }                                                                                   \
    }
    MINIDL_ADAM(float, fmaf, sqrtf, minidl_adam_f32_fma, MINIDL_AVX2_TARGET)
    MINIDL_ADAM(double, fma, sqrt, minidl_adam_f64_fma, MINIDL_AVX2_TARGET)
    MINIDL_ADAM(float, fmaf, sqrtf, minidl_adam_f32, )
    MINIDL_ADAM(double, fma, sqrt, minidl_adam_f64, )
    MINIDL_SGD(float, fmaf, minidl_sgd_f32_fma, MINIDL_AVX2_TARGET)
    MINIDL_SGD(double, fma, minidl_sgd_f64_fma, MINIDL_AVX2_TARGET)
    MINIDL_SGD(float, fmaf, minidl_sgd_f32, )
    MINIDL_SGD(double, fma, minidl_sgd_f64, )
    """
    int MINIDL_HAS_AVX2_TARGET
    void minidl_adam_f32_fma(float* p, const float* g, float* m, float* v, float* vmax,
                             Py_ssize_t n, float sign, float decay, int l2, float wd, float w1,
                             float beta2, float c2, float bc2_sqrt, float eps,
                             float neg_step) noexcept nogil
    void minidl_adam_f64_fma(double* p, const double* g, double* m, double* v, double* vmax,
                             Py_ssize_t n, double sign, double decay, int l2, double wd,
                             double w1, double beta2, double c2, double bc2_sqrt, double eps,
                             double neg_step) noexcept nogil
    void minidl_adam_f32(float* p, const float* g, float* m, float* v, float* vmax,
                         Py_ssize_t n, float sign, float decay, int l2, float wd, float w1,
                         float beta2, float c2, float bc2_sqrt, float eps,
                         float neg_step) noexcept nogil
    void minidl_adam_f64(double* p, const double* g, double* m, double* v, double* vmax,
                         Py_ssize_t n, double sign, double decay, int l2, double wd,
                         double w1, double beta2, double c2, double bc2_sqrt, double eps,
                         double neg_step) noexcept nogil
    void minidl_sgd_f32_fma(float* p, const float* g, float* buf, Py_ssize_t n, float sign,
                            int l2, float wd, float momentum, float keep, int first,
                            int nesterov, float neg_lr) noexcept nogil
    void minidl_sgd_f64_fma(double* p, const double* g, double* buf, Py_ssize_t n,
                            double sign, int l2, double wd, double momentum, double keep,
                            int first, int nesterov, double neg_lr) noexcept nogil
    void minidl_sgd_f32(float* p, const float* g, float* buf, Py_ssize_t n, float sign,
                        int l2, float wd, float momentum, float keep, int first, int nesterov,
                        float neg_lr) noexcept nogil
    void minidl_sgd_f64(double* p, const double* g, double* buf, Py_ssize_t n, double sign,
                        int l2, double wd, double momentum, double keep, int first,
                        int nesterov, double neg_lr) noexcept nogil

# Elements per work item; a parameter of one chunk is updated on the calling thread.
cdef Py_ssize_t CHUNK = 32768


def _check(name: str, a: np.ndarray, like: np.ndarray) -> None:
    if a.dtype != like.dtype or a.shape != like.shape or not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous {like.dtype} array of shape "
                         f"{like.shape}, got {a.dtype} {a.shape}")


def _check_param(p: np.ndarray) -> None:
    if p.dtype not in (np.float32, np.float64) or not p.flags.c_contiguous:
        raise ValueError(f"parameter: expected a C-contiguous float array, got {p.dtype}")


def _flat(a):
    return None if a is None else a.reshape(-1)


def adam(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, vmax, *, lr: float,
         beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool,
         maximize: bool, bias_correction1: float, bias_correction2_sqrt: float) -> None:
    """One Adam step of p (float32 or float64, in place, with its state m, v and, for amsgrad,
    vmax); the scalars are rounded to p's dtype as PyTorch rounds a Python scalar."""
    _check_param(p)
    for name, a in (("grad", g), ("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", vmax)):
        if a is not None:
            _check(name, a, p)
    t = p.dtype.type
    decay = 1 - lr * weight_decay if decoupled else 1.0
    l2 = weight_decay != 0 and not decoupled
    _adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), _flat(vmax),
          t(-1 if maximize else 1), t(decay), l2, t(weight_decay), t(1 - beta1), t(beta2),
          t(1 - beta2), t(bias_correction2_sqrt), t(eps), t(-(lr / bias_correction1)),
          _fused())


def sgd(p: np.ndarray, g: np.ndarray, buf, *, lr: float, momentum: float, dampening: float,
        weight_decay: float, nesterov: bool, maximize: bool, first: bool) -> None:
    """One SGD step of p in place; ``buf`` is the momentum buffer (None without momentum),
    set to the gradient on the ``first`` step."""
    _check_param(p)
    for name, a in (("grad", g), ("momentum_buffer", buf)):
        if a is not None:
            _check(name, a, p)
    t = p.dtype.type
    _sgd(p.reshape(-1), g.reshape(-1), _flat(buf), t(-1 if maximize else 1),
         weight_decay != 0, t(weight_decay), t(momentum), t(1 - dampening), first, nesterov,
         t(-lr), _fused())


def _fused() -> bool:
    """The loops compiled for FMA hardware, unless the instruction set in use is the
    baseline."""
    return bool(MINIDL_HAS_AVX2_TARGET) and runtime.isa() != "baseline"


def _adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
          floating[::1] vmax, floating sign, floating decay, bint l2, floating wd,
          floating w1, floating beta2, floating c2, floating bc2_sqrt, floating eps,
          floating neg_step, bint fused):
    cdef Py_ssize_t n = p.shape[0], c, i, chunks = (n + CHUNK - 1) // CHUNK
    cdef floating* vm = NULL if vmax is None else &vmax[0]
    cdef int nt = runtime.threads_in_use() if chunks > 1 else 1
    for c in prange(chunks, nogil=True, num_threads=nt, schedule="static"):
        i = c * CHUNK
        if floating is float:
            (minidl_adam_f32_fma if fused else minidl_adam_f32)(
                &p[i], &g[i], &m[i], &v[i], NULL if vm == NULL else vm + i, min(CHUNK, n - i),
                sign, decay, l2, wd, w1, beta2, c2, bc2_sqrt, eps, neg_step)
        else:
            (minidl_adam_f64_fma if fused else minidl_adam_f64)(
                &p[i], &g[i], &m[i], &v[i], NULL if vm == NULL else vm + i, min(CHUNK, n - i),
                sign, decay, l2, wd, w1, beta2, c2, bc2_sqrt, eps, neg_step)


def _sgd(floating[::1] p, const floating[::1] g, floating[::1] buf, floating sign, bint l2,
         floating wd, floating momentum, floating keep, bint first, bint nesterov,
         floating neg_lr, bint fused):
    cdef Py_ssize_t n = p.shape[0], c, i, chunks = (n + CHUNK - 1) // CHUNK
    cdef floating* b = NULL if buf is None else &buf[0]
    cdef int nt = runtime.threads_in_use() if chunks > 1 else 1
    for c in prange(chunks, nogil=True, num_threads=nt, schedule="static"):
        i = c * CHUNK
        if floating is float:
            (minidl_sgd_f32_fma if fused else minidl_sgd_f32)(
                &p[i], &g[i], NULL if b == NULL else b + i, min(CHUNK, n - i), sign, l2, wd,
                momentum, keep, first, nesterov, neg_lr)
        else:
            (minidl_sgd_f64_fma if fused else minidl_sgd_f64)(
                &p[i], &g[i], NULL if b == NULL else b + i, min(CHUNK, n - i), sign, l2, wd,
                momentum, keep, first, nesterov, neg_lr)
