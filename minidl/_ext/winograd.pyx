# cython: language_level=3
"""Winograd fast path for 2-D 3x3 stride-1 convolutions: F(2x2, 3x3) and F(4x4, 3x3).

The output is cut into m x m tiles (m = 2 or 4); each reads an a x a input patch (a = m + 2).
With the transforms of Lavin & Gray (2015)

    U = G w G^T     (a x a per (o, c); once per call, one numpy GEMM)
    V = B^T d B     (a x a per (c, tile))
    M[xi] = U[xi] @ V[xi]    for each of the a*a positions xi: (O, C) @ (C, tiles), a BLAS GEMM
    y = A^T M A     (m x m per (o, tile))

the GEMMs do a*a / m^2 times fewer multiplications than direct convolution / im2col: 2.25x
fewer for m = 2, 4x fewer for m = 4.  The price is precision (the transforms' coefficients
grow with m: in float32, m = 2 is as precise as the GEMM path, m = 4 ~20x less) and the
transforms themselves, which are vectorised over a block of tiles: every buffer is laid out
(..., tile) so each coefficient of B^T / A^T is one axpy over the block.

Backward-data is the same kernel (a 3x3 conv of dy with the flipped, in/out-swapped weight and
padding 2 - p, hence pads 0..2).  Backward-weight is the gradient of the Winograd form itself:
dU[xi] = sum over tiles of (A dy A^T)[xi] @ V[xi]^T (GEMMs reducing over tiles, one dU per
range of blocks), dw = G^T dU G.

Work items are blocks of T consecutive tiles (numbered over the whole batch); each OpenMP
thread has its own buffers and calls single-threaded BLAS (threadpoolctl), as in
``minidl._ext.gemm``.  Backward-weight splits the blocks into ``parts`` contiguous ranges, sums
one dU per range and adds them in order (_common.pxd, part_start): the bits depend on ``parts``
(the thread count set by the user), not on the threads that run them.

Note: a NaN or Inf in a tile's input patch spreads to the whole m x m output tile (the input
transform mixes the patch), where direct convolution confines it to its receptive field.
"""

import operator

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from minidl._ext._common cimport part_start
from minidl._ext.gemm import _single_threaded_blas
from minidl._geometry import int_tuple
from minidl.runtime import get_num_threads

_INT_MAX = 2**31 - 1
# Bytes of transformed input + GEMM output (V and M) per work item: sized to stay in L2.
_BLOCK_BYTES = 2 << 20
_WEIGHT_BLOCK_BYTES = 4 << 20  # the weight gradient's GEMMs reduce over tiles: bigger blocks
_MAX_TILES = 512
_MIN_TILES = 64  # fewer made 256-channel GEMMs (O x C) @ (C x T) markedly slower

# ---- transform matrices (Lavin & Gray; wincnn points 0, -1, 1 and 0, 1, -1, 2, -2) ----------
_BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    4: np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], np.float64),
}
_G = {
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
    4: np.array([[1.0 / 4, 0, 0],
                 [-1.0 / 6, -1.0 / 6, -1.0 / 6],
                 [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                 [1.0 / 24, 1.0 / 12, 1.0 / 6],
                 [1.0 / 24, -1.0 / 12, 1.0 / 6],
                 [0, 0, 1]], np.float64),
}
_AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    4: np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64),
}


cdef struct WG:
    Py_ssize_t N, C, O, H, W, oH, oW, pt, pl
    Py_ssize_t m, a             # output tile size, input patch size a = m + 2
    Py_ssize_t ntw, ntiles      # tiles per output row, per image
    Py_ssize_t T, nblk          # tiles per block (buffer leading dimension), blocks in all
    Py_ssize_t sV, sM           # strides of V and M between positions xi (padded, see _Plan)
    double bt[36]               # B^T (a x a), row-major
    double at[24]               # A^T (m x a), row-major
    double a_[24]               # A (a x m), row-major: transforms dy for the weight gradient


cdef class _Plan:
    cdef WG g

    def __init__(self, N, C, O, H, W, oH, oW, pt, pl, m, T):
        cdef WG* g = &self.g
        cdef int i
        g.N, g.C, g.O, g.H, g.W, g.oH, g.oW, g.pt, g.pl = N, C, O, H, W, oH, oW, pt, pl
        g.m, g.a = m, m + 2
        g.ntw = -(-oW // m)
        g.ntiles = -(-oH // m) * g.ntw
        g.T = T
        g.nblk = -(-(N * g.ntiles) // T)
        # C * T is often a multiple of 4 KiB: the a*a rows written per channel would then
        # all map to the same cache sets (several times slower); 16 elements breaks that
        g.sV, g.sM = C * T + 16, O * T + 16
        bt, at = _BT[m].reshape(-1), _AT[m].reshape(-1)
        for i in range(bt.size):
            g.bt[i] = bt[i]
        for i in range(at.size):
            g.at[i] = at[i]
        a_ = np.ascontiguousarray(_AT[m].T).reshape(-1)
        for i in range(a_.size):
            g.a_[i] = a_[i]


cdef inline void gemm_nn(int m, int n, int k, const floating* a, int lda, const floating* b,
                         int ldb, floating* c, int ldc) noexcept nogil:
    """Column-major c (m x n) = a (m x k) @ b (k x n)."""
    cdef char tr = c'N'
    cdef floating one = 1, zero = 0
    if floating is float:
        sgemm(&tr, &tr, &m, &n, &k, &one, <float*> a, &lda, <float*> b, &ldb, &zero, c, &ldc)
    else:
        dgemm(&tr, &tr, &m, &n, &k, &one, <double*> a, &lda, <double*> b, &ldb, &zero, c, &ldc)


cdef inline void gemm_tn_acc(int m, int n, int k, const floating* a, int lda,
                             const floating* b, int ldb, floating* c, int ldc) noexcept nogil:
    """Column-major c (m x n) += a^T @ b, a stored (k x m), b (k x n)."""
    cdef char ta = c'T', tb = c'N'
    cdef floating one = 1
    if floating is float:
        sgemm(&ta, &tb, &m, &n, &k, &one, <float*> a, &lda, <float*> b, &ldb, &one, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &one, <double*> a, &lda, <double*> b, &ldb, &one, c, &ldc)


cdef inline void axpy_rows(const double* coef, Py_ssize_t ncoef, Py_ssize_t nout,
                           const floating* src, Py_ssize_t src_stride, floating* dst,
                           Py_ssize_t dst_stride, Py_ssize_t n) noexcept nogil:
    """dst[p][:n] = sum_k coef[p * ncoef + k] * src[k][:n] for p < nout (rows at the strides)."""
    cdef Py_ssize_t p, k, t
    cdef floating c
    cdef floating* d
    cdef const floating* s
    cdef bint first
    for p in range(nout):
        d = dst + p * dst_stride
        first = True
        for k in range(ncoef):
            c = <floating> coef[p * ncoef + k]
            if c == 0:
                continue
            s = src + k * src_stride
            if first:
                for t in range(n):
                    d[t] = c * s[t]
                first = False
            else:
                for t in range(n):
                    d[t] += c * s[t]
        if first:
            memset(d, 0, n * sizeof(floating))


cdef inline void gather_run(floating* dst, const floating* row, Py_ssize_t base, Py_ssize_t L,
                            Py_ssize_t m, Py_ssize_t W) noexcept nogil:
    """dst[j] = row[base + j * m] for j < L; 0 where that index is outside [0, W) (padding)."""
    cdef Py_ssize_t j, lo = 0, hi = 0
    if base < 0:
        lo = min(L, (-base + m - 1) // m)
    if W - 1 - base >= 0:
        hi = min(L, (W - 1 - base) // m + 1)
    hi = max(lo, hi)
    for j in range(lo):
        dst[j] = 0
    if m == 2:  # constant strides: the compiler vectorises the strided loads
        for j in range(lo, hi):
            dst[j] = row[base + 2 * j]
    elif m == 4:
        for j in range(lo, hi):
            dst[j] = row[base + 4 * j]
    else:
        for j in range(lo, hi):
            dst[j] = row[base + m * j]
    for j in range(hi, L):
        dst[j] = 0


cdef inline void scatter_run(floating* dst, const floating* src, Py_ssize_t count,
                             Py_ssize_t m) noexcept nogil:
    """dst[j * m] = src[j] for j < count."""
    cdef Py_ssize_t j
    if m == 2:
        for j in range(count):
            dst[2 * j] = src[j]
    elif m == 4:
        for j in range(count):
            dst[4 * j] = src[j]
    else:
        for j in range(count):
            dst[m * j] = src[j]


cdef void input_transform(const WG* g, const floating* x, floating* V, floating* D,
                          floating* E, Py_ssize_t t0, Py_ssize_t nt) noexcept nogil:
    """V[xi][c][t] = (B^T d B)[xi] for the x patches d of tiles [t0, t0 + nt), every channel."""
    cdef Py_ssize_t a = g.a, m = g.m, T = g.T, C = g.C, H = g.H, W = g.W
    cdef Py_ssize_t c, t, r, k, p, tid, y0, x0, yy, n, L
    cdef const floating* xc
    for c in range(C):
        # gather D[r][k][t] = x[n, c, y0 + r, x0 + k], a run of tiles along a tile row at once
        t = 0
        while t < nt:
            n = (t0 + t) // g.ntiles
            tid = t0 + t - n * g.ntiles
            L = min(nt - t, g.ntw - tid % g.ntw)
            y0 = (tid // g.ntw) * m - g.pt
            x0 = (tid % g.ntw) * m - g.pl
            xc = x + (n * C + c) * H * W
            for r in range(a):
                yy = y0 + r
                for k in range(a):
                    if 0 <= yy < H:
                        gather_run(D + (r * a + k) * T + t, xc + yy * W, x0 + k, L, m, W)
                    else:
                        memset(D + (r * a + k) * T + t, 0, L * sizeof(floating))
            t = t + L
        # rows: E[p][k] = sum_r bt[p][r] D[r][k]; each (p, r) pair is one axpy over (k, t)
        axpy_rows(g.bt, a, a, D, a * T, E, a * T, a * T)
        # columns: V[p * a + q][c] = sum_k bt[q][k] E[p][k]
        for p in range(a):
            axpy_rows(g.bt, a, a, E + p * a * T, T, V + p * a * g.sV + c * T, g.sV, nt)


cdef void block(const WG* g, const floating* x, const floating* u, floating* y,
                floating* V, floating* M, floating* D, floating* E,
                Py_ssize_t item) noexcept nogil:
    """Tiles [t0, t0 + nt) of the whole batch (tile numbers run over images), t0 = item * T."""
    cdef Py_ssize_t a = g.a, m = g.m, T = g.T, C = g.C, O = g.O, H = g.H, W = g.W
    cdef Py_ssize_t t0 = item * T, nt = min(T, g.N * g.ntiles - t0)
    cdef Py_ssize_t o, t, r, p, q, tid, y0, x0, xi, n, L
    cdef floating* yo
    cdef floating* yrow
    input_transform(g, x, V, D, E, t0, nt)
    # ---- a*a GEMMs: M[xi] (O x nt, row-major) = U[xi] (O x C) @ V[xi] (C x nt) ----
    for xi in range(a * a):
        gemm_nn(<int> nt, <int> O, <int> C, V + xi * g.sV, <int> T, u + xi * O * C, <int> C,
                M + xi * g.sM, <int> T)
    # ---- output transform, one output channel at a time ----
    for o in range(O):
        # columns: D[i][p] = sum_j at[p][j] M[i * a + j][o]
        for r in range(a):
            axpy_rows(g.at, a, m, M + r * a * g.sM + o * T, g.sM, D + r * m * T, T, nt)
        # rows: E[q][p] = sum_i at[q][i] D[i][p]
        axpy_rows(g.at, a, m, D, m * T, E, m * T, m * T)
        t = 0
        while t < nt:
            n = (t0 + t) // g.ntiles
            tid = t0 + t - n * g.ntiles
            L = min(nt - t, g.ntw - tid % g.ntw)
            y0 = (tid // g.ntw) * m
            x0 = (tid % g.ntw) * m
            yo = y + (n * O + o) * g.oH * g.oW
            for q in range(min(m, g.oH - y0)):
                yrow = yo + (y0 + q) * g.oW + x0
                for p in range(min(m, g.oW - x0)):
                    # tiles j of the run write columns x0 + p + j * m < oW
                    scatter_run(yrow + p, E + (q * m + p) * T + t,
                                min(L, (g.oW - 1 - x0 - p) // m + 1), m)
            t = t + L


cdef void weight_block(const WG* g, const floating* x, const floating* dy, floating* dU,
                       floating* V, floating* Z, floating* D, floating* E,
                       Py_ssize_t item) noexcept nogil:
    """dU[xi] (O x C) += Z[xi] @ V[xi]^T over tiles [t0, t0 + nt), Z = A dy_tile A^T.

    The gradient of y = A^T (U . V) A with respect to U; dw = G^T dU G (done by the caller).
    """
    cdef Py_ssize_t a = g.a, m = g.m, T = g.T, C = g.C, O = g.O
    cdef Py_ssize_t t0 = item * T, nt = min(T, g.N * g.ntiles - t0)
    cdef Py_ssize_t o, t, i, p, q, tid, y0, x0, xi, n, L
    cdef const floating* dyo
    input_transform(g, x, V, D, E, t0, nt)
    for o in range(O):
        # gather D[q][p][t] = dy[n, o, y0 + q, x0 + p], 0 past the output's edge
        t = 0
        while t < nt:
            n = (t0 + t) // g.ntiles
            tid = t0 + t - n * g.ntiles
            L = min(nt - t, g.ntw - tid % g.ntw)
            y0 = (tid // g.ntw) * m
            x0 = (tid % g.ntw) * m
            dyo = dy + (n * O + o) * g.oH * g.oW
            for q in range(m):
                for p in range(m):
                    if y0 + q < g.oH:
                        gather_run(D + (q * m + p) * T + t, dyo + (y0 + q) * g.oW, x0 + p, L,
                                   m, g.oW)
                    else:
                        memset(D + (q * m + p) * T + t, 0, L * sizeof(floating))
            t = t + L
        # rows: E[i][p] = sum_q A[i][q] D[q][p]; columns: Z[i * a + j][o] = sum_p A[j][p] E[i][p]
        axpy_rows(g.a_, m, a, D, m * T, E, m * T, m * T)
        for i in range(a):
            axpy_rows(g.a_, m, a, E + i * m * T, T, Z + i * a * g.sM + o * T, g.sM, nt)
    for xi in range(a * a):  # column-major dU[xi]^T (C x O) += V[xi] (nt x C)^T @ Z[xi]^T
        gemm_tn_acc(<int> C, <int> O, <int> nt, V + xi * g.sV, <int> T, Z + xi * g.sM,
                    <int> T, dU + xi * O * C, <int> C)


def _run_weight(_Plan plan, const floating[::1] x, const floating[::1] dy,
                floating[:, ::1] dU, floating[:, ::1] V, floating[:, ::1] Z,
                floating[:, ::1] D, floating[:, ::1] E, int nt):
    cdef const WG* g = &plan.g
    cdef Py_ssize_t part, parts = dU.shape[0], item
    for part in prange(parts, nogil=True, num_threads=nt, schedule="static"):
        memset(&dU[part, 0], 0, dU.shape[1] * sizeof(floating))  # by its own thread
        for item in range(part_start(g.nblk, parts, part), part_start(g.nblk, parts, part + 1)):
            weight_block(g, &x[0], &dy[0], &dU[part, 0], &V[threadid(), 0],
                         &Z[threadid(), 0], &D[threadid(), 0], &E[threadid(), 0], item)


def _run(_Plan plan, const floating[::1] x, const floating[::1] u, floating[::1] y,
         floating[:, ::1] V, floating[:, ::1] M, floating[:, ::1] D, floating[:, ::1] E,
         int nt):
    cdef const WG* g = &plan.g
    cdef Py_ssize_t item, n_items = g.nblk
    for item in prange(n_items, nogil=True, num_threads=nt, schedule="static"):
        block(g, &x[0], &u[0], &y[0], &V[threadid(), 0], &M[threadid(), 0],
              &D[threadid(), 0], &E[threadid(), 0], item)


# ---- Python level: validation and the two entry points ----------------------------------------

def _pairs(value, name):
    """(H, W) zero paddings in 0..2."""
    result = int_tuple(value, 2, name, "winograd", single=False)
    if min(result) < 0 or max(result) > 2:
        raise ValueError(f"{name} must be 2 ints in 0..2 (H, W), got {value!r}")
    return result


def _tile(m):
    m = operator.index(m)
    if m not in (2, 4):
        raise ValueError(f"tile must be 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)), got {m}")
    return m


def _as4d(name, a):
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if a.ndim == 5:  # (N, C, 1, H, W) as minidl's conv layer passes it
        if a.shape[2] != 1:
            raise ValueError(f"{name} must be 2-D (depth 1), got shape {a.shape}")
        a = a.reshape(a.shape[:2] + a.shape[3:])
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a)


def transform_weight(w, m):
    """U (a*a, O, C) = G w G^T for every (o, c): one GEMM, kron(G, G) (a*a, 9) @ w (9, O*C).

    The Kronecker coefficients are exact in float64 and rounded once to w's dtype.  (A
    float64 numpy version with two products and a transpose was far slower at 256-512 channels.)
    """
    O, C = w.shape[:2]
    kg = np.kron(_G[m], _G[m]).astype(w.dtype)
    return (kg @ w.reshape(O * C, 9).T).reshape((m + 2) ** 2, O, C)


def _output(x_shape, O, pad_before, pad_after):
    N, C, H, W = x_shape
    if min(C, H, W) < 1 or O < 1:
        raise ValueError(f"x {x_shape} and {O} output channels must be non-empty "
                         f"(batch may be 0)")
    oH = H + pad_before[0] + pad_after[0] - 2
    oW = W + pad_before[1] + pad_after[1] - 2
    if oH < 1 or oW < 1:
        raise ValueError(f"3x3 kernel larger than the padded input (x {x_shape}, pads "
                         f"{pad_before} / {pad_after})")
    if max(C, O) * 36 * _MAX_TILES > _INT_MAX:
        raise ValueError("convolution too large for 32-bit BLAS dimensions")
    return oH, oW


def _plan(x, O, oH, oW, pad_before, m, nt, block_bytes, parts):
    """Tiles per block: about block_bytes of V and M, at least `parts` blocks in all; buffers
    for `nt` threads."""
    N, C, H, W = x.shape
    a = m + 2
    total = N * -(-oH // m) * -(-oW // m)
    T = block_bytes // (a * a * (C + O) * x.itemsize)
    T = max(_MIN_TILES, min(_MAX_TILES, T) // 8 * 8)
    T = min(T, -(-total // parts))
    T = -(-total // -(-total // T))                # equal blocks
    plan = _Plan(N, C, O, H, W, oH, oW, pad_before[0], pad_before[1], m, T)
    bufs = [np.zeros((nt, a * a * (ch * T + 16) + 16), x.dtype) for ch in (C, O)]
    bufs += [np.zeros((nt, a * a * T + 16), x.dtype) for _ in range(2)]
    return plan, bufs


def _forward(x, w, pad_before, pad_after, m, nt, parts):
    O = w.shape[0]
    if w.shape[1:] != (x.shape[1], 3, 3):
        raise ValueError(f"weight must be (O, {x.shape[1]}, 3, 3) for x {x.shape}, got {w.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"x and w must share a dtype, got {x.dtype} and {w.dtype}")
    oH, oW = _output(x.shape, O, pad_before, pad_after)
    y = np.empty((x.shape[0], O, oH, oW), x.dtype)
    if x.shape[0] == 0:
        return y
    plan, (V, M, D, E) = _plan(x, O, oH, oW, pad_before, m, nt, _BLOCK_BYTES, parts)
    with _single_threaded_blas():  # numpy's BLAS too: its idle workers spin ~0.1 s
        u = transform_weight(w, m)
        _run(plan, x.reshape(-1), u.reshape(-1), y.reshape(-1), V, M, D, E, nt)
    return y


def _threads(nt, parts):
    """(nt, parts): the work split for `parts` threads (default: minidl.get_num_threads()),
    run on nt <= parts of them (default: parts). The bits depend on parts only: the GEMMs'
    shapes follow the blocks."""
    parts = parts or get_num_threads()
    return min(nt or parts, parts), parts


def conv3x3_forward(x, w, pad_before, pad_after, tile=4, nt=None, parts=None):
    """y (N, O, oH, oW): cross-correlation of x (N, C, H, W) with w (O, C, 3, 3), stride 1.

    pad_before / pad_after are (H, W) zero paddings in 0..2; tile is m of F(m x m, 3x3); nt,
    parts: see _threads.  5-D (N, C, 1, H, W) arrays are accepted too and give a 5-D result.
    """
    five = np.ndim(x) == 5
    x, w = _as4d("x", x), _as4d("w", w)
    y = _forward(x, w, _pairs(pad_before, "pad_before"), _pairs(pad_after, "pad_after"),
                 _tile(tile), *_threads(nt, parts))
    return y[:, :, None] if five else y


def conv3x3_backward_data(dy, w, input_size, pad_before, pad_after, tile=4, nt=None,
                          parts=None):
    """dx (N, C, H, W): gradient of conv3x3_forward w.r.t. x.

    A 3x3 conv of dy with the flipped, in/out-swapped weight and padding 2 - p per side.
    """
    five = np.ndim(dy) == 5
    dy, w = _as4d("dy", dy), _as4d("w", w)
    pb, pa = _pairs(pad_before, "pad_before"), _pairs(pad_after, "pad_after")
    size = tuple(operator.index(s) for s in input_size)
    if len(size) == 3 and size[0] == 1:
        size = size[1:]
    if len(size) != 2:
        raise ValueError(f"input_size must be (H, W), got {input_size!r}")
    if w.ndim != 4 or w.shape[2:] != (3, 3) or dy.shape[1] != w.shape[0]:
        raise ValueError(f"dy {dy.shape} and w {w.shape} don't match a 3x3 conv")
    out = (size[0] + pb[0] + pa[0] - 2, size[1] + pb[1] + pa[1] - 2)
    if dy.shape[2:] != out:
        raise ValueError(f"dy {dy.shape} does not match the forward output {out} of input "
                         f"size {size} with pads {pb} / {pa}")
    wt = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dx = _forward(dy, wt, (2 - pb[0], 2 - pb[1]), (2 - pa[0], 2 - pa[1]), _tile(tile),
                  *_threads(nt, parts))
    return dx[:, :, None] if five else dx


def conv3x3_backward_weight(x, dy, pad_before, pad_after, tile=2, nt=None, parts=None):
    """dw (O, C, 3, 3): gradient of conv3x3_forward w.r.t. w, as the gradient of its Winograd
    form: dU[xi] = sum over tiles of (A dy A^T)[xi] (B^T x B)[xi]^T, dw = G^T dU G.

    Summed in one partial per block of the `parts` split, on nt threads (see _threads).

    5-D (N, C, 1, H, W) x and dy give a 5-D (O, C, 1, 3, 3) result.
    """
    five = np.ndim(x) == 5
    x, dy = _as4d("x", x), _as4d("dy", dy)
    pb, pa = _pairs(pad_before, "pad_before"), _pairs(pad_after, "pad_after")
    m = _tile(tile)
    if x.dtype != dy.dtype:
        raise TypeError(f"x and dy must share a dtype, got {x.dtype} and {dy.dtype}")
    N, C = x.shape[:2]
    O = dy.shape[1]
    oH, oW = _output(x.shape, O, pb, pa)
    if dy.shape != (N, O, oH, oW):
        raise ValueError(f"dy {dy.shape} does not match the forward output {(N, O, oH, oW)} "
                         f"of x {x.shape} with pads {pb} / {pa}")
    shape = (O, C, 1, 3, 3) if five else (O, C, 3, 3)
    if N == 0:
        return np.zeros(shape, x.dtype)
    a = m + 2
    nt, parts = _threads(nt, parts)
    plan, (V, Z, D, E) = _plan(x, O, oH, oW, pb, m, nt, _WEIGHT_BLOCK_BYTES, parts)
    dU = np.empty((parts, a * a * O * C + 16), x.dtype)  # one accumulator per part
    with _single_threaded_blas():
        _run_weight(plan, x.reshape(-1), dy.reshape(-1), dU, V, Z, D, E, nt)
        du = dU[:, : a * a * O * C].sum(axis=0).reshape(a * a, O * C)
        kg = np.kron(_G[m], _G[m]).astype(x.dtype)   # (a*a, 9)
        dw = kg.T @ du                                 # (9, O*C)
    return np.ascontiguousarray(dw.T).reshape(shape)
