# Included by direct_avx512.pyx, direct_avx2.pyx and direct_baseline.pyx: one source, compiled
# once per instruction set.
"""Direct float32 convolution kernels: SIMD register blocking on a padded grid, no im2col.

With stride 1 the input can be zero-padded once and then every output position reads the
padded input at one fixed offset per tap.  The padded input is stored channel-major,
(C, N, Dp, Hp, Wp), and outputs are computed on its grid: position
``q = ((n * Dp + od) * Hp + oh) * Wp + ow`` and tap ``t = (c, kd, kh, kw)`` read
``x_pad[q + off[t]]`` with ``off[t] = ((c * N * Dp + kd * dd) * Hp + kh * dh) * Wp + kw * dw``.
Consecutive positions read consecutive inputs, so a block of them is one vector load per tap,
across image boundaries too.  The grid also holds positions with ``ow >= oW`` (or ``oh >= oH``,
``od >= oD``) that are computed and thrown away: the price of the constant offsets, a few
percent on 56x56 images, up to 2x on 8x8 to 14x14 ones.

- forward: ``CB`` output channels x ``NV`` vectors of positions stay in registers over all taps
  of a group (per tap ``NV`` loads, ``CB`` weight broadcasts, ``CB * NV`` fused multiply-adds),
  then the real outputs are scattered into y.  A strided forward (dilation 1) is first split
  into input phases: a stride-1 conv over more channels (see _split_phases).
- backward-data (stride 1): this forward on dy with the weight flipped and its channel roles
  swapped.
- backward-data (strided, dilation 1): one stride-1 backward-data per phase of dx (see
  _data_phase_problems).
- backward-weight (stride 1): dy transposed to (position, channel) so that a position's output
  channels are one vector; ``WT`` taps x 1-2 channel vectors accumulate outer products over a
  chunk of positions, per thread, summed at the end.  With fewer output channels than half a
  vector, the lanes hold positions instead (see _weight_positions).
- the compact layout (any stride; see below): the real output positions only, SIMD over
  output channels, for the forward, the stride-1 backward-data and the backward-weight.

The kernels are C with GCC vector extensions (below) sized to the instruction set the compiler
targets: 16-float vectors and 32 registers' worth of blocks in the AVX-512 module, 8-float
vectors and blocks for 16 registers in the AVX2 module, 4-float vectors in the baseline one.  They skip the unfolding of im2col + BLAS
and, where the BLAS library is held to narrower vectors than the machine has, use the wider
ones; python -m minidl.bench shows where each algorithm wins.  minidl._ext.dispatch decides
where they are used (the instruction set, the geometry and the pass).
"""

import itertools
import math
from functools import lru_cache

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from minidl._ext._common cimport ceil_div, pad_plane, part_start

cdef extern from *:
    """
    /* register blocks per instruction set (override with CFLAGS=-DMINIDL_CB=... to tune):
       forward CB output channels x NV vectors of positions, backward-weight WT taps x 1-2
       channel vectors, in accumulators that fit the vector registers (32 with AVX-512, 16
       with AVX2 and SSE).  AVX-512: 8 x 3 beat 4 x 4 on the bench case ResNet 256@14;
       AVX2: 4 x 3 and 6 taps beat 4 x 2 / 6 x 2 and 4 taps on LeNet conv2 and digits. */
    #if defined(__AVX512F__)
    #define MINIDL_VW 16
    #define MINIDL_DEFAULT_NV 3
    #define MINIDL_DEFAULT_CB 8
    #define MINIDL_DEFAULT_WT 12
    #elif defined(__AVX__)
    #define MINIDL_VW 8
    #define MINIDL_DEFAULT_NV 3
    #define MINIDL_DEFAULT_CB 4
    #define MINIDL_DEFAULT_WT 6
    #else
    #define MINIDL_VW 4
    #define MINIDL_DEFAULT_NV 2
    #define MINIDL_DEFAULT_CB 4
    #define MINIDL_DEFAULT_WT 4
    #endif
    #ifndef MINIDL_NV
    #define MINIDL_NV MINIDL_DEFAULT_NV
    #endif
    #ifndef MINIDL_CB
    #define MINIDL_CB MINIDL_DEFAULT_CB
    #endif
    #ifndef MINIDL_WT
    #define MINIDL_WT MINIDL_DEFAULT_WT
    #endif
    #define MINIDL_BLOCK (MINIDL_VW * MINIDL_NV)
    /* aligned(4): loads at any float offset */
    typedef float minidl_vf __attribute__((vector_size(4 * MINIDL_VW), aligned(4)));

    /* Which taps a forward block runs: in each of `segments` runs of taps `stride` apart
       (a (channel, depth) pair's kH x kW taps), `count` taps from `first` (the kernel rows
       whose input rows are not all padding for any of the block's outputs); every tap:
       segments 1, first 0, count taps. */
    typedef struct { Py_ssize_t segments, stride, first, count; } minidl_taps;
    #define MINIDL_FOR_TAPS(tp, t)                                                          \
        for (Py_ssize_t seg_ = 0; seg_ < (tp)->segments; seg_++)                            \
            for (Py_ssize_t t = seg_ * (tp)->stride + (tp)->first;                          \
                 t < seg_ * (tp)->stride + (tp)->first + (tp)->count; t++)

    /* Where a forward block's NV vectors of positions read and write: vector v reads
       x[pos[v] + off[t] + lane] and stores the first lanes[v] lanes of channel j at out[v] +
       j * ldo[v] (in y itself; the grid's blocks: see minidl_direct_kernel). */
    typedef struct {
        Py_ssize_t pos[MINIDL_NV];
        float* out[MINIDL_NV];
        Py_ssize_t ldo[MINIDL_NV];
        int lanes[MINIDL_NV];
    } minidl_vectors;

    #if defined(__AVX2__)
    #include <immintrin.h>
    #endif
    /* the first `lanes` lanes of a at p; the memory of the others is not touched (the
       masked store does not fault on it either) */
    static inline __attribute__((always_inline)) void
    minidl_store_lanes(float* p, minidl_vf a, int lanes)
    {
        if (lanes == MINIDL_VW) {
            *(minidl_vf*)p = a;
            return;
        }
    #if defined(__AVX512F__)
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << lanes) - 1), (__m512)a);
    #elif defined(__AVX2__)  /* half, quarter, lane: vmaskmovps measured slower */
        __m128 part = _mm256_castps256_ps128((__m256)a);
        if (lanes >= 4) {
            _mm_storeu_ps(p, part);
            part = _mm256_extractf128_ps((__m256)a, 1);
            p += 4;
            lanes -= 4;
        }
        if (lanes >= 2) {
            _mm_storel_pi((__m64*)p, part);
            part = _mm_movehl_ps(part, part);
            p += 2;
            lanes -= 2;
        }
        if (lanes) _mm_store_ss(p, part);
    #else
        for (int l = 0; l < lanes; l++) p[l] = a[l];
    #endif
    }

    /* forward: channel j < cb of vector v = sum over taps t of w[t * cb + j] * x[pos[v] +
       off[t] + lane]; channels j < nstore are stored.  `rows` = 0: the vectors are known to
       be consecutive and whole (the grid's blocks), which keeps one pointer for the loads. */
    static inline __attribute__((always_inline)) void
    minidl_direct_kernel(const float* x, const minidl_vectors* vec, const Py_ssize_t* off,
                         const float* w, const minidl_taps* tp, int nstore, const int cb,
                         const int rows)
    {
        minidl_vf acc[MINIDL_CB][MINIDL_NV] = {{{0}}};
        const float* xs[MINIDL_NV];
        for (int v = 0; v < MINIDL_NV; v++)
            xs[v] = x + (rows ? vec->pos[v] : vec->pos[0] + MINIDL_VW * v);
        MINIDL_FOR_TAPS(tp, t) {
            const Py_ssize_t o = off[t];
            minidl_vf xv[MINIDL_NV];
            for (int v = 0; v < MINIDL_NV; v++) xv[v] = *(const minidl_vf*)(xs[v] + o);
            for (int j = 0; j < cb; j++) {
                float s = w[t * cb + j];
                for (int v = 0; v < MINIDL_NV; v++) acc[j][v] += s * xv[v];
            }
        }
        /* unrolled whole, so that acc stays in registers (GCC left these loops rolled and
           acc on the stack, zeroed there by every call: costly next to LeNet conv1's 25
           taps) */
        #pragma GCC unroll 16
        for (int j = 0; j < cb; j++)
            #pragma GCC unroll 4
            for (int v = 0; v < MINIDL_NV; v++)
                if (j >= nstore)
                    ;
                else if (rows)
                    minidl_store_lanes(vec->out[v] + j * vec->ldo[v], acc[j][v], vec->lanes[v]);
                else
                    *(minidl_vf*)(vec->out[0] + j * vec->ldo[0] + MINIDL_VW * v) = acc[j][v];
    }
    /* one instance per channel count: fewer channels than CB (LeNet's 6) leave no
       accumulator idle */
    #define MINIDL_DIRECT_CASES(rows)                                                          \
        switch (cb) {                                                                       \
        case 1: minidl_direct_kernel(x, vec, off, w, tp, nstore, 1, rows); break;           \
        case 2: minidl_direct_kernel(x, vec, off, w, tp, nstore, 2, rows); break;           \
        case 3: minidl_direct_kernel(x, vec, off, w, tp, nstore, 3, rows); break;           \
        MINIDL_DIRECT_WIDE_CASES(rows)                                                        \
        default: minidl_direct_kernel(x, vec, off, w, tp, nstore, MINIDL_CB, rows); break;  \
        }
    #if MINIDL_CB > 4
    #define MINIDL_DIRECT_WIDE_CASES(rows)                                                     \
        case 4: minidl_direct_kernel(x, vec, off, w, tp, nstore, 4, rows); break;           \
        case 5: minidl_direct_kernel(x, vec, off, w, tp, nstore, 5, rows); break;           \
        case 6: minidl_direct_kernel(x, vec, off, w, tp, nstore, 6, rows); break;           \
        case 7: minidl_direct_kernel(x, vec, off, w, tp, nstore, 7, rows); break;
    #else
    #define MINIDL_DIRECT_WIDE_CASES(rows)
    #endif
    static void minidl_direct_block(const float* x, const minidl_vectors* vec,
                                    const Py_ssize_t* off, const float* w,
                                    const minidl_taps* tp, int nstore, int cb, int rows)
    {
        if (rows) {
            MINIDL_DIRECT_CASES(1)
        } else {
            MINIDL_DIRECT_CASES(0)
        }
    }

    /* backward-weight: dw[u * ldw + v * VW + lane] +=
           sum over q < n of x[off[u] + q] * dyt[q * ldd + v * VW + lane]
       for u < WT taps and v < nv (1 or 2) vectors of output channels: outer products, dy
       transposed so that a position's output channels are one vector. */
    static inline __attribute__((always_inline)) void
    minidl_weight_kernel(const float* x, const Py_ssize_t* off, const float* dyt,
                         Py_ssize_t ldd, Py_ssize_t n, float* dw, Py_ssize_t ldw, const int nv)
    {
        minidl_vf a[MINIDL_WT][2] = {{{0}}};  /* this chunk's sums, then added to dw: blocked
                                                 summation, shorter float32 rounding chains */
        for (Py_ssize_t q = 0; q < n; q++) {
            minidl_vf d[2];
            for (int v = 0; v < nv; v++) d[v] = *(const minidl_vf*)(dyt + q * ldd + MINIDL_VW * v);
            for (int u = 0; u < MINIDL_WT; u++) {
                float s = x[off[u] + q];
                for (int v = 0; v < nv; v++) a[u][v] += s * d[v];
            }
        }
        #pragma GCC unroll 16  /* whole, as the forward's: a stays in registers */
        for (int u = 0; u < MINIDL_WT; u++)
            #pragma GCC unroll 2
            for (int v = 0; v < nv; v++) *(minidl_vf*)(dw + u * ldw + MINIDL_VW * v) += a[u][v];
    }
    static void minidl_weight_block(const float* x, const Py_ssize_t* off, const float* dyt,
                                    Py_ssize_t ldd, Py_ssize_t n, float* dw, Py_ssize_t ldw,
                                    int nv)
    {
        if (nv == 2) minidl_weight_kernel(x, off, dyt, ldd, n, dw, ldw, 2);
        else minidl_weight_kernel(x, off, dyt, ldd, n, dw, ldw, 1);
    }

    /* backward-weight with few output channels: grid positions in the vector lanes,
       dw[(o * ldw + u) * VW + lane] += sum over q < n, q % VW == lane of
       dyg[o * ldd + q] * x[off[u] + q] for o < ob channels (up to PV_O) and u < PV_T taps;
       n is a multiple of VW.  The lanes stay apart in dw (the caller sums them once at the
       end: summed per chunk, they rivalled the products on CIFAR's first conv). */
    #ifndef MINIDL_PV_O
    #if defined(__AVX512F__)
    #define MINIDL_PV_O 4
    #define MINIDL_PV_T 6
    #else
    #define MINIDL_PV_O 4
    #define MINIDL_PV_T 3
    #endif
    #endif
    static inline __attribute__((always_inline)) void
    minidl_weight_pv_kernel(const float* x, const Py_ssize_t* off, const float* dyg,
                            Py_ssize_t ldd, Py_ssize_t n, float* dw, Py_ssize_t ldw,
                            const int ob)
    {
        minidl_vf acc[MINIDL_PV_O][MINIDL_PV_T] = {{{0}}};
        for (Py_ssize_t q = 0; q < n; q += MINIDL_VW) {
            minidl_vf d[MINIDL_PV_O];
            for (int o = 0; o < ob; o++) d[o] = *(const minidl_vf*)(dyg + o * ldd + q);
            for (int u = 0; u < MINIDL_PV_T; u++) {
                minidl_vf xv = *(const minidl_vf*)(x + off[u] + q);
                for (int o = 0; o < ob; o++) acc[o][u] += d[o] * xv;
            }
        }
        #pragma GCC unroll 8  /* whole, as the forward's: acc stays in registers */
        for (int o = 0; o < ob; o++)
            #pragma GCC unroll 8
            for (int u = 0; u < MINIDL_PV_T; u++)
                *(minidl_vf*)(dw + (o * ldw + u) * MINIDL_VW) += acc[o][u];
    }
    static void minidl_weight_pv_block(const float* x, const Py_ssize_t* off, const float* dyg,
                                       Py_ssize_t ldd, Py_ssize_t n, float* dw,
                                       Py_ssize_t ldw, int ob)
    {
        switch (ob) {  /* one instance per channel count up to PV_O (at most 6) */
        case 1: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, 1); break;
        case 2: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, 2); break;
        case 3: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, 3); break;
    #if MINIDL_PV_O > 4
        case 4: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, 4); break;
        case 5: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, 5); break;
    #endif
        default: minidl_weight_pv_kernel(x, off, dyg, ldd, n, dw, ldw, MINIDL_PV_O); break;
        }
    }

    /* The compact layout: only real output positions, SIMD over output channels.
       MINIDL_ACC accumulator vectors: NP = ACC / CV positions x CV channel vectors. */
    #if defined(__AVX512F__)
    #define MINIDL_ACC 24
    #else
    #define MINIDL_ACC 12
    #endif
    #ifndef MINIDL_MAX_CV
    #define MINIDL_MAX_CV 4
    #endif

    /* forward: out[(i * cv + v) * VW + lane] = sum over taps t of
           x[pos[i] + off[t]] * w[(t * cv + v) * VW + lane]
       for i < np positions and v < cv vectors of output channels.  The position loop is
       unrolled whole (GCC stops at 16 iterations on its own: with 24 positions of one vector
       the accumulators stayed in memory, a load and a store around every multiply-add). */
    static inline __attribute__((always_inline)) void
    minidl_compact_kernel(const float* x, const Py_ssize_t* pos, const Py_ssize_t* off,
                          const float* w, const minidl_taps* tp, float* out, const int cv,
                          const int np)
    {
        minidl_vf acc[MINIDL_ACC] = {{0}};
        const float* xs[MINIDL_ACC];
        for (int i = 0; i < np; i++) xs[i] = x + pos[i];
        MINIDL_FOR_TAPS(tp, t) {
            const Py_ssize_t o = off[t];
            minidl_vf wv[MINIDL_MAX_CV];
            for (int v = 0; v < cv; v++) wv[v] = *(const minidl_vf*)(w + (t * cv + v) * MINIDL_VW);
            #pragma GCC unroll 32
            for (int i = 0; i < np; i++) {
                float s = xs[i][o];
                for (int v = 0; v < cv; v++) acc[i * cv + v] += s * wv[v];
            }
        }
        #pragma GCC unroll 32  /* whole, as the forward's: acc stays in registers */
        for (int i = 0; i < np * cv; i++) *(minidl_vf*)(out + i * MINIDL_VW) = acc[i];
    }
    static void minidl_compact_block(const float* x, const Py_ssize_t* pos,
                                     const Py_ssize_t* off, const float* w,
                                     const minidl_taps* tp, float* out, int cv)
    {
        switch (cv) {
        case 1: minidl_compact_kernel(x, pos, off, w, tp, out, 1, MINIDL_ACC / 1); break;
        case 2: minidl_compact_kernel(x, pos, off, w, tp, out, 2, MINIDL_ACC / 2); break;
        case 3: minidl_compact_kernel(x, pos, off, w, tp, out, 3, MINIDL_ACC / 3); break;
        default: minidl_compact_kernel(x, pos, off, w, tp, out, 4, MINIDL_ACC / 4); break;
        }
    }

    /* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (ldd < 0: dst's rows in
       reverse): 8 x 8 blocks transposed in registers (AVX2 and AVX-512 builds), two of them
       (16 rows) per column block, so that src is read along 16 rows at once and each dst row
       gets 16 consecutive floats. */
    static inline void minidl_transpose8(const float* src, Py_ssize_t lds, float* dst,
                                         Py_ssize_t ldd)
    {
    #if defined(__AVX2__)
        __m256 r[8], t[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
            _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
        }
    #else
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) dst[j * ldd + i] = src[i * lds + j];
    #endif
    }
    static void minidl_transpose(const float* src, Py_ssize_t rows, Py_ssize_t cols,
                                 Py_ssize_t lds, float* dst, Py_ssize_t ldd)
    {
        Py_ssize_t r0 = 0;
        while (r0 + 8 <= rows) {
            const Py_ssize_t nr = r0 + 16 <= rows ? 16 : 8, r1 = r0 + nr;
            Py_ssize_t c0 = 0;
            for (; c0 + 8 <= cols; c0 += 8)
                for (Py_ssize_t r = r0; r < r1; r += 8)
                    minidl_transpose8(src + r * lds + c0, lds, dst + c0 * ldd + r, ldd);
            for (Py_ssize_t r = r0; r < r1; r++)  /* the last columns */
                for (Py_ssize_t c = c0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
            r0 = r1;
        }
        for (Py_ssize_t r = r0; r < rows; r++)  /* the last rows */
            for (Py_ssize_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
    }

    /* The compact forward's outputs, channel by channel: y[co * P + dst[i]] = tile[i * width
       + co] for co < nco and i < n, transposed segment by segment where dst is consecutive
       (within an image: its positions follow each other in y). */
    static void minidl_store_channels(const float* tile, Py_ssize_t width, Py_ssize_t n,
                                      const Py_ssize_t* dst, float* y, Py_ssize_t P,
                                      Py_ssize_t nco)
    {
        Py_ssize_t s = 0;
        while (s < n) {
            Py_ssize_t e = s + 1;
            while (e < n && dst[e] == dst[e - 1] + 1) e++;
            minidl_transpose(tile + s * width, e - s, nco, width, y + dst[s], P);
            s = e;
        }
    }

    /* backward-weight on a list of positions: as minidl_weight_kernel with x read at
       pos[q] + off[u] and dyt holding only those positions' rows. */
    static inline __attribute__((always_inline)) void
    minidl_weight_list_kernel(const float* x, const Py_ssize_t* pos, const Py_ssize_t* off,
                              const float* dyt, Py_ssize_t ldd, Py_ssize_t n, float* dw,
                              Py_ssize_t ldw, const int nv)
    {
        minidl_vf a[MINIDL_WT][2] = {{{0}}};
        for (Py_ssize_t q = 0; q < n; q++) {
            const float* xq = x + pos[q];
            minidl_vf d[2];
            for (int v = 0; v < nv; v++) d[v] = *(const minidl_vf*)(dyt + q * ldd + MINIDL_VW * v);
            for (int u = 0; u < MINIDL_WT; u++) {
                float s = xq[off[u]];
                for (int v = 0; v < nv; v++) a[u][v] += s * d[v];
            }
        }
        #pragma GCC unroll 16  /* whole, as the forward's: a stays in registers */
        for (int u = 0; u < MINIDL_WT; u++)
            #pragma GCC unroll 2
            for (int v = 0; v < nv; v++) *(minidl_vf*)(dw + u * ldw + MINIDL_VW * v) += a[u][v];
    }
    static void minidl_weight_list_block(const float* x, const Py_ssize_t* pos,
                                         const Py_ssize_t* off, const float* dyt,
                                         Py_ssize_t ldd, Py_ssize_t n, float* dw,
                                         Py_ssize_t ldw, int nv)
    {
        if (nv == 2) minidl_weight_list_kernel(x, pos, off, dyt, ldd, n, dw, ldw, 2);
        else minidl_weight_list_kernel(x, pos, off, dyt, ldd, n, dw, ldw, 1);
    }
    """
    enum: MINIDL_VW
    enum: MINIDL_NV
    enum: MINIDL_CB
    enum: MINIDL_BLOCK
    enum: MINIDL_WT
    ctypedef struct minidl_vectors:
        Py_ssize_t pos[MINIDL_NV]
        float* out[MINIDL_NV]
        Py_ssize_t ldo[MINIDL_NV]
        int lanes[MINIDL_NV]
    ctypedef struct minidl_taps:
        Py_ssize_t segments, stride, first, count
    void minidl_direct_block(const float* x, const minidl_vectors* vec, const Py_ssize_t* off,
                             const float* w, const minidl_taps* tp, int nstore, int cb,
                             bint rows) noexcept nogil
    void minidl_weight_block(const float* x, const Py_ssize_t* off, const float* dyt,
                             Py_ssize_t ldd, Py_ssize_t n, float* dw, Py_ssize_t ldw,
                             int nv) noexcept nogil
    enum: MINIDL_ACC
    enum: MINIDL_PV_O
    enum: MINIDL_PV_T
    void minidl_weight_pv_block(const float* x, const Py_ssize_t* off, const float* dyg,
                                Py_ssize_t ldd, Py_ssize_t n, float* dw, Py_ssize_t ldw,
                                int ob) noexcept nogil
    enum: MINIDL_MAX_CV
    void minidl_compact_block(const float* x, const Py_ssize_t* pos, const Py_ssize_t* off,
                              const float* w, const minidl_taps* tp, float* out,
                              int cv) noexcept nogil
    void minidl_weight_list_block(const float* x, const Py_ssize_t* pos, const Py_ssize_t* off,
                                  const float* dyt, Py_ssize_t ldd, Py_ssize_t n, float* dw,
                                  Py_ssize_t ldw, int nv) noexcept nogil
    void minidl_store_channels(const float* tile, Py_ssize_t width, Py_ssize_t n,
                               const Py_ssize_t* dst, float* y, Py_ssize_t P,
                               Py_ssize_t nco) noexcept nogil
    void minidl_transpose(const float* src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                          float* dst, Py_ssize_t ldd) noexcept nogil

VECTOR_WIDTH = MINIDL_VW  # floats per SIMD vector in this build
_BLOCK = MINIDL_BLOCK  # output positions per kernel call


def isa() -> str:
    """The vector instruction set these kernels were compiled for."""
    return {16: "avx512", 8: "avx2"}.get(MINIDL_VW, "baseline")


def forward(x: np.ndarray, w: np.ndarray, geo, nt: int, compact: bool = False) -> np.ndarray:
    """y = conv(x, w) for float32 x (N, C, D, H, W) and w (O, C/groups, kD, kH, kW): any
    stride with dilation 1, or stride 1 with any dilation; on the grid or, with ``compact``,
    on the real output positions."""
    stride, before, after = geo.stride, geo.pad_before, geo.pad_after
    if compact:
        return _forward_compact(x, w, geo.dilation, before, after, geo.groups, nt, stride)
    if stride == (1, 1, 1):
        return _forward1(x, w, geo.dilation, before, after, geo.groups, nt, False)
    out, sub = _strided_sizes(x.shape[2:], w.shape[2:], stride, before, after)
    size = [o + k - 1 for o, k in zip(out, sub)]
    xs = _split_phases(x, stride, w.shape[2:], before, size)
    return _forward1(xs, _split_weight(w, stride), (1, 1, 1), (0, 0, 0), (0, 0, 0), geo.groups,
                     nt, False)


def backward_data(dy: np.ndarray, w: np.ndarray, geo, nt: int,
                  compact: bool = False) -> np.ndarray:
    """dx (N, C, *in) of a stride-1 y = conv(x, w): the forward of dy, zero-padded by the
    dilated kernel extent less the conv's padding, with the weight flipped and its channel
    roles swapped.  Needs pad_before <= the extent (data_padding_fits).  A strided conv
    (dilation 1) is split into input phases, one stride-1 backward-data each."""
    if geo.stride != (1, 1, 1):
        return _data_phases(dy, w, geo, nt, compact)
    return _data1(dy, w, geo, nt, compact)


def _data1(dy, w, geo, nt, compact, shared=None) -> np.ndarray:
    """The stride-1 backward-data (shared: see _forward1)."""
    before, after = _data_padding(geo)
    return _forward1(dy, w, geo.dilation, before, after, geo.groups, nt, compact,
                     flip_swap=True, shared=shared)


def data_padding_fits(geo) -> bool:
    """Whether backward_data takes this geometry (each phase's, if strided)."""
    if geo.stride == (1, 1, 1):
        before, after = _data_padding(geo)
        return min(before) >= 0 and min(after) >= 0
    if geo.dilation != (1, 1, 1):
        return False
    return all(data_padding_fits(p[1]) for p in _data_phase_problems(geo))


def _data_padding(geo) -> tuple:
    extent = [d * (k - 1) for d, k in zip(geo.dilation, geo.kernel)]
    before = [e - b for e, b in zip(extent, geo.pad_before)]
    after = [i - o + b for i, o, b in zip(geo.in_size, geo.out_size, geo.pad_before)]
    return before, after


# ---- the backward-data of a strided conv, phase by phase ----------------------------------------
# dx at input position i = m * s + r (phase r) takes the taps k = a + s * j with
# a = (r + pad_before) % s, from dy at m + c - j with c = (r + pad_before) // s: the
# backward-data of a stride-1 conv of phase r's inputs with the sub-kernel w[a::s] and padding
# c before (and whatever makes its output dy's size after; a negative one means the phase's
# last inputs get nothing: they stay zero).

@lru_cache(maxsize=64)  # checked by the dispatcher and rebuilt by every call otherwise
def _data_phase_problems(geo) -> tuple:
    """(slices of dx, stride-1 geometry, kernel slices of w) of every phase some tap reaches."""
    from minidl._geometry import conv_geometry

    problems = []
    s, before, k = geo.stride, geo.pad_before, geo.kernel
    inp, out = geo.in_size, geo.out_size
    # per dimension, the phases r < min(s, n) some tap reaches: a = (r + pad) % s < k
    reached_phases = [[(a - b) % si for a in range(min(ki, si)) if (a - b) % si < n]
                      for ki, si, b, n in zip(k, s, before, inp)]
    for r in itertools.product(*reached_phases):
        a = [(ri + bi) % si for ri, bi, si in zip(r, before, s)]
        c = [(ri + bi) // si for ri, bi, si in zip(r, before, s)]
        kr = [ceil_div(ki - ai, si) for ki, ai, si in zip(k, a, s)]
        size = [ceil_div(ni - ri, si) for ni, ri, si in zip(inp, r, s)]
        after = [o - n - ci + kri - 1 for o, n, ci, kri in zip(out, size, c, kr)]
        reached = [n + min(0, af) for n, af in zip(size, after)]
        if min(reached) <= 0:
            continue
        pads = tuple((ci, max(0, af)) for ci, af in zip(c, after))
        sub = geo.x_shape[:2] + tuple(reached)
        geo_r = conv_geometry("conv3d", 3, sub, geo.w_shape[:2] + tuple(kr), 1, pads, 1,
                              geo.groups)
        dx_slices = tuple(slice(ri, ri + si * (n - 1) + 1, si)
                          for ri, si, n in zip(r, s, reached))
        problems.append((dx_slices, geo_r, tuple(slice(ai, None, si) for ai, si in zip(a, s))))
    return tuple(problems)


def _data_phases(dy, w, geo, nt, compact) -> np.ndarray:
    problems = _data_phase_problems(geo)
    # zeros only where no phase writes (a phase no tap reaches, or past a phase's reach)
    covered = sum(math.prod(p[1].x_shape[2:]) for p in problems) == math.prod(geo.x_shape[2:])
    dx = np.empty(geo.x_shape, np.float32) if covered else np.zeros(geo.x_shape, np.float32)
    if not problems:  # no tap reaches dx
        return dx
    # dy padded once, by the largest padding of any phase: each phase reads its own padded
    # frame inside it (not the same dy padded again per phase: bench case ResNet 3x3/2)
    pads = [_data_padding(p[1]) for p in problems]
    before = tuple(max(b[d] for b, _ in pads) for d in range(3))
    after = tuple(max(a[d] for _, a in pads) for d in range(3))
    padded = tuple(n + b + a for n, b, a in zip(dy.shape[2:], before, after))
    shared = (_padded_input(dy, padded, before, nt), padded, before)
    for dx_slices, geo_r, taps in problems:
        assert geo_r.y_shape == dy.shape  # each phase's stride-1 conv outputs dy's size
        w_r = w[(slice(None), slice(None)) + taps]  # a view: _pack_weight gathers from it
        _put_phase(_data1(dy, w_r, geo_r, nt, compact, shared),
                   dx[(slice(None), slice(None)) + dx_slices], nt)
    return dx


def _put_phase(const float[:, :, :, :, ::1] phase, float[:, :, :, :, :] dst, int nt):
    """dst (a strided view of dx) = phase, plane by plane on the threads (numpy's assignment
    ran on one thread, reading what the others had just written: slow when the cores are
    far apart)."""
    cdef Py_ssize_t item, C = phase.shape[1], d, h, x
    for item in prange(phase.shape[0] * C, nogil=True, num_threads=nt, schedule="static"):
        for d in range(phase.shape[2]):
            for h in range(phase.shape[3]):
                for x in range(phase.shape[4]):
                    dst[item // C, item % C, d, h, x] = phase[item // C, item % C, d, h, x]


# ---- phase decomposition of a strided conv --------------------------------------------------
# With stride s (and no dilation) tap k = s * k' + r of output p reads padded input s * (p + k')
# + r: phase r of the input, x_r[m] = x_pad[s * m + r], at p + k'.  So the conv is a stride-1
# conv over channels (c, r0, r1, r2) with a kernel of ceil(k / s) taps per dimension (taps past
# k are zero).  Phases r >= k are never read and left out: a 1x1 kernel with stride 2 keeps one
# phase, not four.  The split is one copy of the input.  Only the forward uses it: measured on
# the ResNet stem and a 4x4/2 ConvTranspose, strided backward-data and backward-weight on the
# phases were no faster than im2col + GEMM (the weight kernel is load-bound there).

def _strided_sizes(size, kernel, stride, pad_before, pad_after) -> tuple:
    """Output size and sub-kernel size ceil(k / s) per dimension."""
    out = [(n + b + a - k) // s + 1
           for n, k, s, b, a in zip(size, kernel, stride, pad_before, pad_after)]
    return out, [ceil_div(k, s) for k, s in zip(kernel, stride)]


def _phases(stride, kernel) -> tuple:
    """Phases kept per dimension: min(s, k)."""
    return tuple(min(s, k) for s, k in zip(stride, kernel))


def _split(a, stride, phases, sizes) -> np.ndarray:
    """(A, B, s0 * n0, s1 * n1, s2 * n2) -> (A, B * R, n0, n1, n2), channels (b, r0, r1, r2)
    for the phases r < R (R = min(s, k) per dimension)."""
    (s0, s1, s2), (r0, r1, r2), (n0, n1, n2) = stride, phases, sizes
    split = a.reshape(a.shape[:2] + (n0, s0, n1, s1, n2, s2))[:, :, :, :r0, :, :r1, :, :r2]
    split = np.ascontiguousarray(split.transpose(0, 1, 3, 5, 7, 2, 4, 6))
    return split.reshape((a.shape[0], a.shape[1] * r0 * r1 * r2) + tuple(sizes))


def _split_phases(x, stride, kernel, pad_before, phase_size) -> np.ndarray:
    """x (N, C, *n) zero-padded before by pad_before, cut or zero-extended to s * m, as
    (N, C * R, *m)."""
    full = np.zeros(x.shape[:2] + tuple(s * m for s, m in zip(stride, phase_size)), np.float32)
    src, dst = _overlap(x.shape[2:], pad_before, full.shape[2:])
    full[(...,) + dst] = x[(...,) + src]
    return _split(full, stride, _phases(stride, kernel), phase_size)


def _overlap(size, pad_before, full_size) -> tuple:
    """Slices of x (size) and of the padded array (full_size) where x lands at pad_before."""
    lengths = [max(0, min(n, f - b)) for n, b, f in zip(size, pad_before, full_size)]
    src = tuple(slice(0, n) for n in lengths)
    dst = tuple(slice(b, b + n) for b, n in zip(pad_before, lengths))
    return src, dst


def _split_weight(w, stride) -> np.ndarray:
    """w (O, Cg, *k) as the phase conv's (O, Cg * R, *ceil(k / s))."""
    kernel = w.shape[2:]
    sub = [ceil_div(k, s) for k, s in zip(kernel, stride)]
    full = np.zeros(w.shape[:2] + tuple(s * k for s, k in zip(stride, sub)), np.float32)
    full[..., : kernel[0], : kernel[1], : kernel[2]] = w
    return _split(full, stride, _phases(stride, kernel), sub)


cdef struct Grid:
    Py_ssize_t N, C, G, Cg, Og, Opad    # Opad: Og rounded up to cb
    Py_ssize_t cb                       # output channels per kernel call (at most CB)
    Py_ssize_t plane                    # Dp * Hp * Wp, one padded input plane
    Py_ssize_t Hp, Wp, oD, oH, oW, P    # P = oD * oH * oW
    Py_ssize_t taps                     # Cg * kvol
    Py_ssize_t length                   # grid positions: (N - 1) * plane + last output + 1
    Py_ssize_t segments, span           # the forward's blocks tile `segments` ranges of `span`
                                        # positions, `plane` apart (see make_grid)
    bint rows                           # or, instead, every output row starts a vector:
    Py_ssize_t row_vectors, vectors     # ceil(oW / VW) per row, N * oD * oH * that in all


cdef struct TapRows:
    # the kernel's rows in the taps (channel, kd, kh, kw) and where they read: a block of
    # outputs skips the kernel rows that read only padding rows for all of them (a valid
    # conv's backward-data reads its dy padded by the kernel extent: LeNet conv2's 10x10 dy
    # on 18x18, half of a full window's products on zeros)
    Py_ssize_t kh, kw             # the taps: runs of kH * kW, one per (channel, kd)
    Py_ssize_t dil, pad, rows     # dilation and padding before along H, the input's H
    Py_ssize_t Wp, Hp             # the padded grid


cdef TapRows tap_rows_of(x_shape, kernel, dilation, pad_before, padded):
    cdef TapRows r
    r.kh, r.kw = kernel[1], kernel[2]
    r.dil, r.pad, r.rows = dilation[1], pad_before[1], x_shape[3]
    r.Hp, r.Wp = padded[1], padded[2]
    return r


cdef inline minidl_taps taps_for_rows(const TapRows* r, Py_ssize_t taps, Py_ssize_t q_first,
                                      Py_ssize_t q_last) noexcept nogil:
    """The taps that a block of outputs needs, the first at grid position q_first, the last at
    q_last (in output order): the kernel rows whose input rows are real for at least one of
    them.  Within one (image, depth) slab the windows' first rows only grow along the
    outputs; a block across slabs takes every row."""
    cdef minidl_taps t
    cdef Py_ssize_t a = q_first // r.Wp, b = q_last // r.Wp  # rows of the stacked grid
    cdef Py_ssize_t lo_row = 0, hi_row = r.Hp - 1, lo, hi
    if a // r.Hp == b // r.Hp:
        lo_row, hi_row = a % r.Hp, b % r.Hp
    # kh with row + kh * dil in [pad, pad + rows) for some row in [lo_row, hi_row]
    lo = 0 if hi_row >= r.pad else (r.pad - hi_row + r.dil - 1) // r.dil
    hi = -1
    if lo_row <= r.pad + r.rows - 1:
        hi = min(r.kh - 1, (r.pad + r.rows - 1 - lo_row) // r.dil)
    t.segments, t.stride = taps // (r.kh * r.kw), r.kh * r.kw
    t.first, t.count = lo * r.kw, max(0, hi - lo + 1) * r.kw
    return t


cdef inline minidl_taps all_taps(Py_ssize_t taps) noexcept nogil:
    cdef minidl_taps t
    t.segments, t.stride, t.first, t.count = 1, 0, 0, taps
    return t


def _round_up(a: int, b: int) -> int:
    return ceil_div(a, b) * b


def _sizes(x_shape, kernel, dilation, pad_before, pad_after) -> tuple:
    """The padded input size and the output size of a stride-1 conv."""
    padded = tuple(s + b + a for s, b, a in zip(x_shape[2:], pad_before, pad_after))
    out = tuple(p - d * (k - 1) for p, d, k in zip(padded, dilation, kernel))
    return padded, out


cdef enum:
    _COPY_TAPS = 32  # an output's copy out of the tile, in taps of products (make_grid)


cdef Grid make_grid(x_shape, O, kernel, padded, out, groups):
    N, C = x_shape[:2]
    cdef Grid g
    g.N, g.C, g.G, g.Cg, g.Og = N, C, groups, C // groups, O // groups
    g.cb = ceil_div(g.Og, ceil_div(g.Og, MINIDL_CB))  # equal blocks: 12 as 6 + 6, not 8 + 4
    g.Opad = ceil_div(g.Og, g.cb) * g.cb
    g.Hp, g.Wp = padded[1], padded[2]
    g.plane = padded[0] * padded[1] * padded[2]
    g.oD, g.oH, g.oW = out
    g.P = out[0] * out[1] * out[2]
    g.taps = g.Cg * kernel[0] * kernel[1] * kernel[2]
    image = ((out[0] - 1) * g.Hp + out[1] - 1) * g.Wp + out[2]  # up to an image's last output
    g.length = (N - 1) * g.plane + image
    # Blocks run over the whole grid, across image boundaries, or per image: per image skips
    # the padding rows after each image's last output (a quarter of LeNet conv2's grid) but
    # rounds each image up to whole blocks; the one with fewer blocks is taken.
    if N * ceil_div(image, MINIDL_BLOCK) < ceil_div(g.length, MINIDL_BLOCK):
        g.segments, g.span = N, image
    else:
        g.segments, g.span = 1, g.length
    # Or vectors start at every output row: no padding columns computed, and the vectors
    # stored straight into y (a row's last one with its lanes past the row left alone)
    # instead of copied out of the tile row segment by row segment, which costs an output
    # about as much as _COPY_TAPS taps of its products (fitted on the bench cases CIFAR's
    # first conv, 27 taps, and ResNet 1x1's backward-data, 64 taps).
    # Taken where it costs less: rows narrower than a vector waste lanes (LeNet conv2's 10
    # per row), and so do the last vectors of rows that vectors do not divide.
    g.row_vectors = ceil_div(g.oW, MINIDL_VW)
    g.vectors = N * g.oD * g.oH * g.row_vectors
    grid_positions = g.segments * ceil_div(g.span, MINIDL_BLOCK) * MINIDL_BLOCK
    g.rows = (g.vectors * MINIDL_VW * g.taps
              < grid_positions * g.taps + _COPY_TAPS * N * g.P)
    return g


def _pad(const float[::1] x, float[::1] xp, Py_ssize_t N, Py_ssize_t C, shape, padded,
         before, int nt):
    cdef Py_ssize_t item, D = shape[0], H = shape[1], W = shape[2]
    cdef Py_ssize_t Hp = padded[1], Wp = padded[2], pd = before[0], ph = before[1], pw = before[2]
    cdef Py_ssize_t plane_in = D * H * W, plane = padded[0] * Hp * Wp
    cdef float* dst
    for item in prange(N * C, nogil=True, num_threads=nt, schedule="static"):
        # x plane (n, c) goes to (c, n): channel-major; zeroed here, by the thread that fills
        # it and whose kernel work reads it (zeroed by the calling thread, half the lines
        # would cross to the other core first)
        dst = &xp[(item % C * N + item // C) * plane]
        if plane == plane_in:  # no padding: one copy
            memcpy(dst, &x[item * plane_in], plane * sizeof(float))
            continue
        memset(dst, 0, plane * sizeof(float))
        pad_plane(&x[item * plane_in], dst, D, H, W, Hp, Wp, pd, ph, pw)


def _padded_input(x, padded, pad_before, nt) -> np.ndarray:
    """x zero-padded and channel-major, flat (C, N, Dp, Hp, Wp), with _BLOCK zeros after the
    last plane: the kernels' last block of positions reads up to that far past it."""
    N, C = x.shape[:2]
    size = C * N * padded[0] * padded[1] * padded[2]
    xp = np.empty(size + _BLOCK, np.float32)
    xp[size:] = 0
    _pad(x.reshape(-1), xp, N, C, x.shape[2:], padded, pad_before, nt)
    return xp


@lru_cache(maxsize=64)  # costly next to a small conv: built once per shape
def _tap_offsets(N, Cg, kernel, dilation, padded) -> np.ndarray:
    """off[t] for taps t = (c, kd, kh, kw) in weight order: where tap t reads in the
    channel-major padded input, relative to the grid position q.  Read-only (shared)."""
    Dp, Hp, Wp = padded
    c, kd, kh, kw = np.meshgrid(*(np.arange(n) for n in (Cg,) + tuple(kernel)), indexing="ij")
    off = ((c * N * Dp + kd * dilation[0]) * Hp + kh * dilation[1]) * Wp + kw * dilation[2]
    off = off.reshape(-1).astype(np.intp)
    off.flags.writeable = False
    return off


# ---- forward -------------------------------------------------------------------------------

cdef void forward_block(const Grid* g, const float* xp, const Py_ssize_t* off, const float* wp,
                        float* y, float* tile, Py_ssize_t item) noexcept nogil:
    """All output channels of one group at one block of grid positions (item = (group,
    segment, block)); with one segment a block may span the end of one image and the start of
    the next."""
    cdef Py_ssize_t per_segment = (g.span + MINIDL_BLOCK - 1) // MINIDL_BLOCK
    cdef Py_ssize_t grp = item // (g.segments * per_segment)
    cdef Py_ssize_t seg = item // per_segment % g.segments, blk = item % per_segment
    cdef Py_ssize_t q0 = seg * g.plane + blk * MINIDL_BLOCK
    cdef Py_ssize_t end = min(MINIDL_BLOCK, g.span - blk * MINIDL_BLOCK)
    cdef Py_ssize_t Dp = g.plane // (g.Hp * g.Wp), ob, i, n, r, od, oh, ow, co, k, run
    cdef const float* w = wp + grp * g.Opad * g.taps
    cdef const float* src
    cdef float* dst
    cdef minidl_vectors vec
    cdef minidl_taps taps = all_taps(g.taps)
    vec.pos[0], vec.ldo[0] = q0, MINIDL_BLOCK  # consecutive whole vectors: the first tells all
    for ob in range(g.Opad // g.cb):
        vec.out[0] = tile + ob * g.cb * MINIDL_BLOCK
        minidl_direct_block(xp + grp * g.Cg * g.N * g.plane, &vec, off, w + ob * g.cb * g.taps,
                            &taps, g.cb, g.cb, False)
    # copy the real outputs out, one grid row segment at a time (contiguous in the tile and in
    # y); grid coordinates are stepped along, not divided out per position
    n = q0 // g.plane
    r = q0 - n * g.plane
    ow = r % g.Wp
    oh = r // g.Wp % g.Hp
    od = r // g.Wp // g.Hp
    i = 0
    while i < end:
        run = min(g.Wp - ow, end - i)  # positions left in this grid row and block
        if oh < g.oH and od < g.oD and ow < g.oW:
            src = tile + i
            dst = y + (n * g.G + grp) * g.Og * g.P + (od * g.oH + oh) * g.oW + ow
            for co in range(g.Og):
                for k in range(min(run, g.oW - ow)):
                    dst[co * g.P + k] = src[co * MINIDL_BLOCK + k]
        i += run
        ow += run
        if ow == g.Wp:
            ow = 0
            oh += 1
            if oh == g.Hp:
                oh = 0
                od += 1
                if od == Dp:
                    od = 0
                    n += 1


cdef void forward_rows_block(const Grid* g, const TapRows* tr, const float* xp,
                             const Py_ssize_t* off, const float* wp, const Py_ssize_t* table,
                             float* y, Py_ssize_t item) noexcept nogil:
    """All output channels of one group at NV vectors that start at output rows (item =
    (group, block); table: see _row_vectors), stored straight into y: a row's last vector,
    when VW does not divide oW, with its lanes past the row left alone; padding channels not
    at all."""
    cdef Py_ssize_t blocks = (g.vectors + MINIDL_NV - 1) // MINIDL_NV
    cdef Py_ssize_t grp = item // blocks, first = item % blocks * MINIDL_NV, ob
    cdef int v
    cdef const float* w = wp + grp * g.Opad * g.taps
    cdef float* yg = y + grp * g.Og * g.P
    cdef minidl_vectors vec
    for v in range(MINIDL_NV):
        vec.lanes[v], vec.pos[v], vec.out[v] = 0, 0, yg  # past the last vector: not stored
        vec.ldo[v] = g.P
        if first + v < g.vectors:
            vec.pos[v] = table[first + v]
            vec.out[v] = yg + table[g.vectors + first + v]
            vec.lanes[v] = <int>table[2 * g.vectors + first + v]
    cdef minidl_taps taps = taps_for_rows(
        tr, g.taps, vec.pos[0], vec.pos[min(MINIDL_NV, g.vectors - first) - 1])
    for ob in range(g.Opad // g.cb):
        minidl_direct_block(xp + grp * g.Cg * g.N * g.plane, &vec, off, w + ob * g.cb * g.taps,
                            &taps, min(g.cb, g.Og - ob * g.cb), g.cb, True)
        for v in range(MINIDL_NV):
            vec.out[v] += g.cb * g.P


def forward_on_rows(x_shape, w_shape, geo) -> bool:
    """Whether the stride-1 forward of this geometry runs with vectors starting at output rows
    (see make_grid)."""
    padded, out = _sizes(x_shape, w_shape[2:], geo.dilation, geo.pad_before, geo.pad_after)
    return make_grid(x_shape, w_shape[0], w_shape[2:], padded, out, geo.groups).rows


@lru_cache(maxsize=64)  # divisions per vector cost as much as a few-tap kernel: built once
def _row_vectors(N, G, Og, oD, oH, oW, Hp, Wp, plane) -> np.ndarray:
    """(3, vectors): for every vector of every output row (n, od, oh) in order, where it
    reads on the grid, where it writes in y (channel 0 of group 0) and its lanes in the row.
    Read-only (shared)."""
    n, od, oh, col = np.meshgrid(np.arange(N), np.arange(oD), np.arange(oH),
                                 np.arange(0, oW, VECTOR_WIDTH), indexing="ij")
    table = np.stack([n * plane + (od * Hp + oh) * Wp + col,
                      n * G * Og * oD * oH * oW + (od * oH + oh) * oW + col,
                      np.minimum(VECTOR_WIDTH, oW - col)]).reshape(3, -1).astype(np.intp)
    table.flags.writeable = False
    return table


cdef _run_forward(Grid g, TapRows tr, const float[::1] xp, const Py_ssize_t[::1] off,
                  const float[::1] wp, float[::1] y, float[:, ::1] tiles, int nt):
    cdef Py_ssize_t item, n_blocks = g.segments * ((g.span + MINIDL_BLOCK - 1) // MINIDL_BLOCK)
    cdef const Py_ssize_t[:, ::1] table
    if g.rows:
        n_blocks = (g.vectors + MINIDL_NV - 1) // MINIDL_NV
        table = _row_vectors(g.N, g.G, g.Og, g.oD, g.oH, g.oW, g.Hp, g.Wp, g.plane)
        for item in prange(g.G * n_blocks, nogil=True, num_threads=nt, schedule="static"):
            forward_rows_block(&g, &tr, &xp[0], &off[0], &wp[0], &table[0, 0], &y[0], item)
        return
    for item in prange(g.G * n_blocks, nogil=True, num_threads=nt, schedule="static"):
        forward_block(&g, &xp[0], &off[0], &wp[0], &y[0], &tiles[threadid(), 0], item)


def _forward1(x: np.ndarray, w: np.ndarray, dilation, pad_before, pad_after, groups: int,
              nt: int, compact: bool, flip_swap: bool = False, shared=None) -> np.ndarray:
    """Stride-1 conv of float32 x (N, C, D, H, W) with w (O, C/groups, kD, kH, kW), or with
    w's flip_swap (see _pack_weight).  shared: x already padded by at least pad_before and
    pad_after, (_padded_input, its padded size, its padding before)."""
    if compact:
        return _forward_compact(x, w, dilation, pad_before, pad_after, groups, nt,
                                flip_swap=flip_swap, shared=shared)
    N, O = x.shape[0], _out_channels(w, groups, flip_swap)
    padded, out = _sizes(x.shape, w.shape[2:], dilation, pad_before, pad_after)
    xp, padded = _input_in(x, padded, pad_before, nt, shared)
    cdef Grid g = make_grid(x.shape, O, w.shape[2:], padded, out, groups)
    y = np.empty((N, O) + out, np.float32)
    off = _tap_offsets(N, g.Cg, w.shape[2:], dilation, padded)
    _run_forward(g, tap_rows_of(x.shape, w.shape[2:], dilation, pad_before, padded), xp, off,
                 _pack_weight(w, groups, g.Opad, g.cb, nt, flip_swap), y.reshape(-1),
                 np.empty((nt, g.Opad * _BLOCK), np.float32), nt)
    return y


def _input_in(x, padded, pad_before, nt, shared) -> tuple:
    """(the padded input from where this conv's padded frame starts, the padded size its
    rows and planes are laid out in): x padded here, or a view into ``shared``'s larger
    padding (the positions between the frames' rows are computed as padding columns)."""
    if shared is None:
        return _padded_input(x, padded, pad_before, nt), padded
    xp, big, big_before = shared
    d, h, w = (bb - b for bb, b in zip(big_before, pad_before))  # where the frame starts
    assert min(d, h, w) >= 0 and all(b >= p for b, p in zip(big, padded))
    return xp[(d * big[1] + h) * big[2] + w:], big


def _out_channels(w, groups, flip_swap) -> int:
    """The output channels of the conv with w, or with its flip_swap (w's input channels)."""
    return w.shape[1] * groups if flip_swap else w.shape[0]


def _pack_weight(const float[:, :, :, :, :] w, int groups, Py_ssize_t Opad, Py_ssize_t width,
                 int nt, bint flip_swap=False) -> np.ndarray:
    """w (O, Cg, *k), any strides, as (groups, Opad / width, taps, width): the ``width``
    weights of a tap side by side, output channels padded with zeros to Opad, a multiple of
    width.  With flip_swap, the weight of the stride-1 backward-data instead: w's channel
    roles swapped within each group ((C, O / groups, *k)) and its kernel flipped.  One pass
    in the packed order (numpy's strided copies, of a strided phase's sub-kernel above all,
    moved a few floats per row: longer than the products on a ConvTranspose 4x4/2)."""
    cdef Py_ssize_t O = w.shape[0], Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3]
    cdef Py_ssize_t kw = w.shape[4], kvol = kd * kh * kw
    cdef Py_ssize_t Oe = Cg if flip_swap else O // groups  # the packed conv's, per group
    cdef Py_ssize_t Ce = O // groups if flip_swap else Cg
    cdef Py_ssize_t taps = Ce * kvol, blocks = Opad // width
    cdef Py_ssize_t item, grp, t, ce, k, a, b, e, j, oe
    packed = np.zeros(groups * Opad * taps, np.float32)
    cdef float[::1] p = packed
    # C-contiguous: a block of w's rows transposed, or with flip_swap, for each of w's output
    # channels, a block of its input channels' kernels, transposed into rows in reverse
    cdef bint rows = w.is_c_contig()
    for item in prange(groups * blocks, nogil=True, num_threads=nt, schedule="static"):
        grp = item // blocks
        if rows and not flip_swap:
            minidl_transpose(&w[grp * Oe + item % blocks * width, 0, 0, 0, 0],
                             min(width, Oe - item % blocks * width), taps, taps,
                             &p[item * taps * width], width)
            continue
        if rows:
            for ce in range(Ce):
                minidl_transpose(&w[grp * Ce + ce, item % blocks * width, 0, 0, 0],
                                 min(width, Oe - item % blocks * width), kvol, kvol,
                                 &p[(item * taps + (ce + 1) * kvol - 1) * width], -width)
            continue
        for t in range(taps):
            ce, k = t // kvol, t % kvol
            a, b, e = k // (kh * kw), k // kw % kh, k % kw
            for j in range(min(width, Oe - item % blocks * width)):
                oe = item % blocks * width + j
                if flip_swap:
                    p[(item * taps + t) * width + j] = w[grp * Ce + ce, oe, kd - 1 - a,
                                                         kh - 1 - b, kw - 1 - e]
                else:
                    p[(item * taps + t) * width + j] = w[grp * Oe + oe, ce, a, b, e]
    return packed


# ---- backward-weight -----------------------------------------------------------------------

# Grid positions per work item of the backward-weight: the rows of dy^T and the window of x
# that the item reads stay in L1/L2 while every (tap block, channel block) pair runs over them.
_WEIGHT_CHUNK = 256


def backward_weight(x: np.ndarray, dy: np.ndarray, geo, nt: int, parts: int,
                    compact: bool = False, lanes: bool = False) -> np.ndarray:
    """dw (O, C/groups, *kernel) of a float32 conv (stride 1; any stride with ``compact``),
    from x and dy (N, O, *out).

    dw[o, t] = sum over grid positions q of dy^T[q, o] * x_pad[q + off[t]], with dy laid on
    the grid transposed, (position, channel), zeros at the positions that are not outputs
    (``compact``: over the real output positions only, dy^T without the zero rows; ``lanes``:
    grid positions in the vector lanes, see _weight_positions).
    The work items split into ``parts`` contiguous ranges, each summed into its own dw^T, and
    those are added in order (_common.pxd, part_start): the same bits on ``nt`` threads or
    fewer."""
    if compact:
        return _weight_compact(x, dy, geo, nt, parts)
    if lanes:
        return _weight_positions(x, dy, geo, nt, parts)
    kernel, dilation, groups = geo.kernel, geo.dilation, geo.groups
    pad_before, pad_after = geo.pad_before, geo.pad_after
    N, O = dy.shape[:2]
    padded, out = _sizes(x.shape, kernel, dilation, pad_before, pad_after)
    cdef Grid g = make_grid(x.shape, O, kernel, padded, out, groups)
    xp = _padded_input(x, padded, pad_before, nt)

    # output channels in one vector (nv = 1) or blocks of two (nv = 2)
    nv = 1 if g.Og <= VECTOR_WIDTH else 2
    Opad = _round_up(g.Og, nv * VECTOR_WIDTH)
    dyt = np.empty((groups, N * g.plane + 1, Opad), np.float32)
    dyt[:, -1] = 0
    _transpose_dy(dy.reshape(-1), dyt.reshape(-1), g, Opad, nt)

    taps_pad = _round_up(g.taps, MINIDL_WT)
    off = np.zeros(taps_pad, np.intp)  # padding taps read x[q] into rows that are dropped
    off[: g.taps] = _tap_offsets(N, g.Cg, kernel, dilation, padded)
    chunks = max(ceil_div(g.length, _WEIGHT_CHUNK), ceil_div(2 * parts, groups))
    acc = np.empty((parts, groups, taps_pad, Opad), np.float32)  # dw^T per part
    _run_weight(xp, off, dyt.reshape(-1), Opad, nv, acc.reshape(parts, -1), g,
                ceil_div(g.length, chunks), nt)
    return _sum_parts_transposed(acc, g.taps, g.Og, nt).reshape((O, g.Cg) + tuple(kernel))


def _transpose_dy(const float[::1] dy, float[::1] dyt, Grid g, Py_ssize_t Opad, int nt):
    """dyt[group, q, co] = dy[n, group * Og + co, od, oh, ow] at grid position q of (n, od,
    oh, ow), zeros elsewhere but in its last row (the caller's), one grid row per work item
    (numpy's strided copy was several times slower on the LeNet conv1 case).  Each row is
    zeroed by the thread that fills it (by the caller, its lines would cross cores first)."""
    cdef Py_ssize_t Dp = g.plane // (g.Hp * g.Wp), length = g.N * g.plane + 1
    cdef Py_ssize_t rows = g.N * Dp * g.Hp, row, n, od, oh, grp, q0
    cdef const float* src
    cdef float* dst
    for row in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        oh = row % g.Hp
        od = row // g.Hp % Dp
        n = row // g.Hp // Dp
        q0 = ((n * Dp + od) * g.Hp + oh) * g.Wp
        for grp in range(g.G):
            dst = &dyt[(grp * length + q0) * Opad]
            memset(dst, 0, g.Wp * Opad * sizeof(float))
            if od >= g.oD or oh >= g.oH:
                continue
            src = &dy[((n * g.G + grp) * g.Og * g.oD + od) * g.oH * g.oW + oh * g.oW]
            minidl_transpose(src, g.Og, g.oW, g.P, dst, Opad)


cdef _run_weight(const float[::1] xp, const Py_ssize_t[::1] off, const float[::1] dyt,
                 Py_ssize_t Opad, int nv, float[:, ::1] acc, Grid g, Py_ssize_t chunk,
                 int nt):
    cdef Py_ssize_t part, parts = acc.shape[0], item, grp, q0, ob, tb, taps_pad = off.shape[0]
    cdef Py_ssize_t chunks = (g.length + chunk - 1) // chunk, width = nv * MINIDL_VW
    cdef Py_ssize_t n_items = g.G * chunks
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):
        memset(&acc[part, 0], 0, acc.shape[1] * sizeof(float))  # by its own thread
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            q0 = item % chunks * chunk
            grp = item // chunks
            for ob in range(Opad // width):
                for tb in range(taps_pad // MINIDL_WT):
                    minidl_weight_block(
                        &xp[grp * g.Cg * g.N * g.plane + q0], &off[tb * MINIDL_WT],
                        &dyt[(grp * (g.N * g.plane + 1) + q0) * Opad + ob * width], Opad,
                        min(chunk, g.length - q0),
                        &acc[part, (grp * taps_pad + tb * MINIDL_WT) * Opad + ob * width],
                        Opad, nv)


def _sum_parts_transposed(float[:, :, :, ::1] acc, Py_ssize_t taps, Py_ssize_t Og,
                          int nt) -> np.ndarray:
    """dw (groups, Og, taps) from the parts' dw^T, acc (parts, groups, >= taps, >= Og):
    the parts summed in order (as acc.sum(axis=0)) into the first, 16 taps at a time, and
    those rows transposed while in cache (numpy's strided copy of the transpose missed it at
    every element, a visible share of ResNet 256@14's weight gradient: 2304 taps x 256
    channels)."""
    cdef Py_ssize_t parts = acc.shape[0], G = acc.shape[1], T = 16
    cdef Py_ssize_t tiles = ceil_div(taps, T), item, grp, t0, t, o, p, rows
    dw = np.empty((G, Og, taps), np.float32)
    cdef float[:, :, ::1] out = dw
    for item in prange(G * tiles, nogil=True, num_threads=nt, schedule="static"):
        grp = item // tiles
        t0 = item % tiles * T
        rows = min(T, taps - t0)
        for p in range(1, parts):
            for t in range(t0, t0 + rows):
                for o in range(Og):
                    acc[0, grp, t, o] += acc[p, grp, t, o]
        minidl_transpose(&acc[0, grp, t0, 0], rows, Og, acc.shape[3], &out[grp, 0, t0], taps)
    return dw


# ---- the compact layout: real output positions only, SIMD over output channels --------------
# On small images most of the grid is padding (an 8x8 image with a 3x3 kernel: 36 outputs on
# 64 grid positions).  The compact kernels visit only the real outputs: a block holds NP of
# them (anywhere on the grid, each at its own position q) x CV vectors of output channels, and
# a tap is CV weight-vector loads and NP input broadcasts.  They need enough output channels
# per group to fill the vectors; dispatch chooses between the layouts.

def _channel_blocks(Og: int) -> tuple:
    """(vectors per block, blocks): Og channels in blocks of at most MINIDL_MAX_CV vectors,
    as even as possible."""
    vectors = ceil_div(Og, VECTOR_WIDTH)
    blocks = ceil_div(vectors, MINIDL_MAX_CV)
    return ceil_div(vectors, blocks), blocks


@lru_cache(maxsize=64)
def _positions(N, padded, out, multiple, stride=(1, 1, 1)) -> np.ndarray:
    """Grid positions q of the real outputs in output order (n, od, oh, ow) (a window's first
    tap: output o at padded input o * stride), repeated at the end to a multiple of
    ``multiple`` (those extra results are dropped).  Read-only."""
    Dp, Hp, Wp = padded
    n, od, oh, ow = np.meshgrid(np.arange(N), *(np.arange(o) * s for o, s in zip(out, stride)),
                                indexing="ij")
    q = (((n * Dp + od) * Hp + oh) * Wp + ow).reshape(-1).astype(np.intp)
    q = np.concatenate([q, np.full(_round_up(q.size, multiple) - q.size, q[q.size - 1], np.intp)])
    q.flags.writeable = False
    return q


# Positions per work item of the compact forward (whole kernel blocks of NP): stored channel
# by channel, a channel's outputs of an item are one run of about this many floats in y.
cdef enum:
    _COMPACT_RUN = 48


cdef struct Compact:
    Py_ssize_t G, Og, P, total        # total = N * P real outputs per group
    Py_ssize_t group_stride           # Cg * N * plane: one group's padded input
    Py_ssize_t taps, cv, width, blocks, np
    Py_ssize_t run, items             # positions per work item (a multiple of np), items per group
    Py_ssize_t parts, runs            # the outputs split in `parts` equal ranges of `runs` items


cdef void compact_block(const Compact* c, const TapRows* tr, const float* xp,
                        const Py_ssize_t* pos, const Py_ssize_t* off, const float* wp, float* y,
                        float* tile, Py_ssize_t* dst, Py_ssize_t item) noexcept nogil:
    """Every output channel of one group at one run of real positions (blocks of NP): run r of
    range k, item = (group * parts + k) * runs + r.  Equal ranges, one per thread, keep the
    threads' shares equal (whole runs did not: 11 runs of the main job's conv2 on 2 threads)."""
    cdef Py_ssize_t grp = item // c.items, k = item % c.items // c.runs, r = item % c.runs
    cdef Py_ssize_t blocks = (c.total + c.np - 1) // c.np  # ranges start on whole blocks
    cdef Py_ssize_t end = min(c.total, part_start(blocks, c.parts, k + 1) * c.np)
    cdef Py_ssize_t p0 = part_start(blocks, c.parts, k) * c.np + r * c.run
    cdef Py_ssize_t cb, blk, i, n, real = min(c.run, end - p0)
    cdef minidl_taps taps[_COMPACT_RUN]  # per block of np positions: at most run / np of them
    if real <= 0:
        return
    for i in range(real):  # where each position's channel 0 goes in y
        n = (p0 + i) // c.P
        dst[i] = (n * c.G + grp) * c.Og * c.P + p0 + i - n * c.P
    for blk in range((real + c.np - 1) // c.np):  # each block's taps, for every channel block
        taps[blk] = taps_for_rows(tr, c.taps, pos[p0 + blk * c.np],
                                  pos[p0 + min((blk + 1) * c.np, real) - 1])
    for cb in range(c.blocks):
        for blk in range((real + c.np - 1) // c.np):
            minidl_compact_block(xp + grp * c.group_stride, pos + p0 + blk * c.np, off,
                                 wp + (grp * c.blocks + cb) * c.taps * c.width, &taps[blk],
                                 tile + blk * c.np * c.width, c.cv)
        # channel by channel: a channel's positions are (mostly) consecutive in y, while
        # position by position the stores would be a plane apart
        minidl_store_channels(tile, c.width, real, dst, y + cb * c.width * c.P, c.P,
                              max(0, min(c.width, c.Og - cb * c.width)))


cdef _run_compact(Compact c, TapRows tr, const float[::1] xp, const Py_ssize_t[::1] pos,
                  const Py_ssize_t[::1] off, const float[::1] wp, float[::1] y,
                  float[:, ::1] tiles, Py_ssize_t[:, ::1] dst, int nt):
    cdef Py_ssize_t item
    for item in prange(c.G * c.items, nogil=True, num_threads=nt, schedule="static"):
        compact_block(&c, &tr, &xp[0], &pos[0], &off[0], &wp[0], &y[0], &tiles[threadid(), 0],
                      &dst[threadid(), 0], item)


def _forward_compact(x: np.ndarray, w: np.ndarray, dilation, pad_before, pad_after,
                     groups: int, nt: int, stride=(1, 1, 1), flip_swap=False,
                     shared=None) -> np.ndarray:
    """The forward on the compact layout: any stride and dilation (a position is where its
    window starts); flip_swap: with that of w (see _pack_weight); shared: see _forward1."""
    N, C, O, kernel = x.shape[0], x.shape[1], _out_channels(w, groups, flip_swap), w.shape[2:]
    padded, out = _sizes(x.shape, kernel, dilation, pad_before, pad_after)
    out = tuple((o - 1) // s + 1 for o, s in zip(out, stride))  # every s-th window
    xp, padded = _input_in(x, padded, pad_before, nt, shared)
    cdef Compact c
    c.G, c.Og, c.P = groups, O // groups, out[0] * out[1] * out[2]
    c.total = N * c.P
    c.group_stride = C // groups * N * padded[0] * padded[1] * padded[2]
    c.taps = C // groups * kernel[0] * kernel[1] * kernel[2]
    c.cv, c.blocks = _channel_blocks(c.Og)
    c.width, c.np = c.cv * VECTOR_WIDTH, MINIDL_ACC // c.cv
    c.run = _round_up(_COMPACT_RUN, c.np)
    c.parts = nt
    c.runs = ceil_div(ceil_div(ceil_div(c.total, c.np), c.parts) * c.np, c.run)
    c.items = c.parts * c.runs
    y = np.empty((N, O) + out, np.float32)
    off = _tap_offsets(N, C // groups, kernel, dilation, padded)
    pos = _positions(N, padded, out, c.np, tuple(stride))
    wp = _pack_weight(w, groups, c.blocks * c.width, c.width, nt, flip_swap)
    _run_compact(c, tap_rows_of(x.shape, kernel, dilation, pad_before, padded), xp, pos, off,
                 wp, y.reshape(-1), np.empty((nt, c.run * c.width), np.float32),
                 np.empty((nt, c.run), np.intp), nt)
    return y


def _transpose_dy_compact(const float[::1] dy, float[::1] dyt, Py_ssize_t N, Py_ssize_t G,
                          Py_ssize_t Og, Py_ssize_t P, Py_ssize_t Opad, int nt):
    """dyt[group, n * P + p, co] = dy[n, group * Og + co, p], zeros for co >= Og (by the
    thread that fills the rows, see _transpose_dy)."""
    cdef Py_ssize_t item, n, grp
    cdef const float* src
    cdef float* dst
    for item in prange(N * G, nogil=True, num_threads=nt, schedule="static"):
        n = item // G
        grp = item % G
        src = &dy[item * Og * P]
        dst = &dyt[(grp * N + n) * P * Opad]
        if Og < Opad:
            memset(dst, 0, P * Opad * sizeof(float))
        minidl_transpose(src, Og, P, P, dst, Opad)


cdef _run_weight_list(const float[::1] xp, const Py_ssize_t[::1] pos,
                      const Py_ssize_t[::1] off, const float[::1] dyt, Py_ssize_t Opad,
                      int nv, float[:, ::1] acc, Py_ssize_t G, Py_ssize_t group_stride,
                      Py_ssize_t total, Py_ssize_t chunk, int nt):
    cdef Py_ssize_t part, parts = acc.shape[0], item, grp, p0, ob, tb, taps_pad = off.shape[0]
    cdef Py_ssize_t chunks = (total + chunk - 1) // chunk, width = nv * MINIDL_VW
    cdef Py_ssize_t n_items = G * chunks
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):  # as _run_weight
        memset(&acc[part, 0], 0, acc.shape[1] * sizeof(float))
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            p0 = item % chunks * chunk
            grp = item // chunks
            for ob in range(Opad // width):
                for tb in range(taps_pad // MINIDL_WT):
                    minidl_weight_list_block(
                        &xp[grp * group_stride], &pos[p0], &off[tb * MINIDL_WT],
                        &dyt[(grp * total + p0) * Opad + ob * width], Opad,
                        min(chunk, total - p0),
                        &acc[part, (grp * taps_pad + tb * MINIDL_WT) * Opad + ob * width],
                        Opad, nv)


def _weight_compact(x: np.ndarray, dy: np.ndarray, geo, nt: int, parts: int) -> np.ndarray:
    """backward_weight over the real output positions (any stride: a position is where its
    window starts)."""
    kernel, groups, out = geo.kernel, geo.groups, geo.out_size
    N, O = dy.shape[:2]
    Cg, Og = x.shape[1] // groups, O // groups
    padded = tuple(n + b + a for n, b, a in zip(x.shape[2:], geo.pad_before, geo.pad_after))
    P = out[0] * out[1] * out[2]
    xp = _padded_input(x, padded, geo.pad_before, nt)
    nv = 1 if Og <= VECTOR_WIDTH else 2
    Opad = _round_up(Og, nv * VECTOR_WIDTH)
    dyt = np.empty((groups, N * P, Opad), np.float32)
    _transpose_dy_compact(dy.reshape(-1), dyt.reshape(-1), N, groups, Og, P, Opad, nt)
    taps = Cg * kernel[0] * kernel[1] * kernel[2]
    off = np.zeros(_round_up(taps, MINIDL_WT), np.intp)  # padding taps: rows that are dropped
    off[:taps] = _tap_offsets(N, Cg, kernel, geo.dilation, padded)
    # chunks in a multiple of the parts: every part gets the same share
    chunks = _round_up(ceil_div(N * P, _WEIGHT_CHUNK), parts)
    acc = np.empty((parts, groups, off.shape[0], Opad), np.float32)  # dw^T per part
    _run_weight_list(xp, _positions(N, padded, out, 1, geo.stride), off, dyt.reshape(-1),
                     Opad, nv, acc.reshape(parts, -1), groups,
                     Cg * N * padded[0] * padded[1] * padded[2], N * P, ceil_div(N * P, chunks),
                     nt)
    return _sum_parts_transposed(acc, taps, Og, nt).reshape((O, Cg) + tuple(kernel))


# ---- backward-weight with positions in the lanes ---------------------------------------------
# With fewer output channels than half a vector (LeNet's first conv: 6 of 16 AVX-512 lanes) the
# channel vectors above are mostly empty; with few taps on a large grid (CIFAR's first conv)
# transposing dy costs more than the products.  Here the lanes hold grid positions instead: dy is
# laid on the grid channel-major (zeros where no output is), and a block of PV_O channels x
# PV_T taps accumulates dy(channel) * x(tap) over a chunk of positions, vector by vector.

cdef Py_ssize_t _PV_CHUNK = 1024  # grid positions per work item (a multiple of every vector width)


def _grid_dy(const float[::1] dy, float[::1] dyg, Grid g, Py_ssize_t L, int nt):
    """dyg[group, co, q] = dy[n, group * Og + co, od, oh, ow] at grid position q of (n, od,
    oh, ow), zeros elsewhere but past the last image (the caller's); rows of L positions per
    (group, channel).  An image's positions are zeroed by the thread that fills them (see
    _transpose_dy)."""
    cdef Py_ssize_t item, n, c, od, oh, rows = g.oD * g.oH
    cdef Py_ssize_t Dp = g.plane // (g.Hp * g.Wp)
    for item in prange(g.N * g.G * g.Og, nogil=True, num_threads=nt, schedule="static"):
        n = item // (g.G * g.Og)
        c = item % (g.G * g.Og)  # group * Og + co: dy's channel and dyg's row
        memset(&dyg[c * L + n * g.plane], 0,
               max(0, min(g.plane, L - n * g.plane)) * sizeof(float))
        for od in range(g.oD):
            for oh in range(g.oH):
                memcpy(&dyg[c * L + ((n * Dp + od) * g.Hp + oh) * g.Wp],
                       &dy[(item * g.oD + od) * g.oH * g.oW + oh * g.oW], g.oW * sizeof(float))


cdef _run_weight_pv(const float[::1] xp, const Py_ssize_t[::1] off, const float[::1] dyg,
                    Py_ssize_t L, float[:, ::1] acc, Grid g, Py_ssize_t taps_pad, int nt):
    cdef Py_ssize_t part, parts = acc.shape[0], item, grp, q0, ob, tb
    cdef Py_ssize_t chunks = (L + _PV_CHUNK - 1) // _PV_CHUNK, n_items = g.G * chunks
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):  # as _run_weight
        memset(&acc[part, 0], 0, acc.shape[1] * sizeof(float))
        for item in range(part_start(n_items, parts, part), part_start(n_items, parts, part + 1)):
            q0 = item % chunks * _PV_CHUNK
            grp = item // chunks
            for ob in range((g.Og + MINIDL_PV_O - 1) // MINIDL_PV_O):
                for tb in range(taps_pad // MINIDL_PV_T):
                    minidl_weight_pv_block(
                        &xp[grp * g.Cg * g.N * g.plane + q0], &off[tb * MINIDL_PV_T],
                        &dyg[(grp * g.Og + ob * MINIDL_PV_O) * L + q0], L,
                        min(_PV_CHUNK, L - q0),
                        &acc[part, ((grp * g.Og + ob * MINIDL_PV_O) * taps_pad
                                    + tb * MINIDL_PV_T) * MINIDL_VW],
                        taps_pad, min(MINIDL_PV_O, g.Og - ob * MINIDL_PV_O))


def _weight_positions(x: np.ndarray, dy: np.ndarray, geo, nt: int, parts: int) -> np.ndarray:
    """backward_weight with the grid positions in the vector lanes."""
    kernel, groups = geo.kernel, geo.groups
    N, O = dy.shape[:2]
    padded, out = _sizes(x.shape, kernel, geo.dilation, geo.pad_before, geo.pad_after)
    cdef Grid g = make_grid(x.shape, O, kernel, padded, out, groups)
    xp = _padded_input(x, padded, geo.pad_before, nt)
    # whole vectors: the last one reads up to VW - 1 positions past the last output (dy is
    # zero there; x has _BLOCK zeros after its last plane)
    L = _round_up(g.length, VECTOR_WIDTH)
    dyg = np.empty((groups * g.Og, L), np.float32)
    dyg[:, N * g.plane:] = 0
    _grid_dy(dy.reshape(-1), dyg.reshape(-1), g, L, nt)
    taps_pad = _round_up(g.taps, MINIDL_PV_T)
    off = np.zeros(taps_pad, np.intp)  # padding taps read x[q] into columns that are dropped
    off[: g.taps] = _tap_offsets(N, g.Cg, kernel, geo.dilation, padded)
    # dw per part, its lanes apart; summed lanes first, then parts (the same bits on any
    # number of threads in use)
    acc = np.empty((parts, groups * g.Og, taps_pad, VECTOR_WIDTH), np.float32)
    _run_weight_pv(xp, off, dyg.reshape(-1), L, acc.reshape(parts, -1), g, taps_pad, nt)
    dw = acc.sum(axis=3).sum(axis=0)[:, : g.taps]
    return np.ascontiguousarray(dw).reshape((O, g.Cg) + tuple(kernel))
