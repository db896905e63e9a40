# cython: language_level=3
"""Direct float32 convolution for stride 1: a SIMD register-blocked kernel, no im2col.

With stride 1 the input can be zero-padded once and then every output position reads the
padded input at one fixed offset per tap.  Laid out on the padded grid -- position
``q = (od * Hp + oh) * Wp + ow`` -- a tap ``t = (c, kd, kh, kw)`` reads ``x_pad[q + off[t]]``
with ``off[t] = ((c * Dp + kd * dd) * Hp + kh * dh) * Wp + kw * dw``: consecutive output positions
read consecutive inputs, so a block of them is one vector load per tap.  The grid also holds
positions with ``ow >= oW`` (or ``oh >= oH``) that are computed and thrown away: the price of
the constant offsets (10-30% extra work on LeNet-sized images, a few percent on 56x56).

The kernel keeps ``CB`` output channels x ``NV`` vectors of positions in registers and runs
over all taps of a group: per tap, ``NV`` loads, ``CB`` broadcasts of a weight and ``CB * NV``
fused multiply-adds.  It is written with GCC vector extensions sized to the instruction set the
compiler targets (setup.py builds with -march=native), so an AVX-512 build uses 16-float
vectors.  Against im2col + OpenBLAS this skips the unfolding and, where OpenBLAS is held to its
AVX2 kernels (OPENBLAS_CORETYPE=Haswell), uses the wider vectors: LeNet and digits convs run
2-3x faster, ResNet 3x3 ones ~1.5x (measured, README).

conv.pyx decides when to use it (``available()`` and the shape); its backward-data with
stride 1 is this forward run on dy with the flipped, transposed weight.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define MINIDL_VW 16
    #define MINIDL_NV 4
    #elif defined(__AVX__)
    #define MINIDL_VW 8
    #define MINIDL_NV 2
    #else
    #define MINIDL_VW 4
    #define MINIDL_NV 2
    #endif
    #define MINIDL_CB 4
    #define MINIDL_BLOCK (MINIDL_VW * MINIDL_NV)
    /* aligned(4): loads at any float offset */
    typedef float minidl_vf __attribute__((vector_size(4 * MINIDL_VW), aligned(4)));

    /* out[j * ldo + i] = sum over taps t of w[t * CB + j] * x[off[t] + i]
       for j < CB output channels and i < VW * NV positions. */
    static void minidl_direct_block(const float* x, const Py_ssize_t* off, const float* w,
                                    Py_ssize_t taps, float* out, Py_ssize_t ldo)
    {
        minidl_vf acc[MINIDL_CB][MINIDL_NV] = {{{0}}};
        for (Py_ssize_t t = 0; t < taps; t++) {
            const float* xt = x + off[t];
            minidl_vf xv[MINIDL_NV];
            for (int v = 0; v < MINIDL_NV; v++) xv[v] = *(const minidl_vf*)(xt + MINIDL_VW * v);
            for (int j = 0; j < MINIDL_CB; j++) {
                float s = w[t * MINIDL_CB + j];
                for (int v = 0; v < MINIDL_NV; v++) acc[j][v] += s * xv[v];
            }
        }
        for (int j = 0; j < MINIDL_CB; j++)
            for (int v = 0; v < MINIDL_NV; v++)
                *(minidl_vf*)(out + j * ldo + MINIDL_VW * v) = acc[j][v];
    }
    """
    enum: MINIDL_VW
    enum: MINIDL_NV
    enum: MINIDL_CB
    enum: MINIDL_BLOCK
    void minidl_direct_block(const float* x, const Py_ssize_t* off, const float* w,
                             Py_ssize_t taps, float* out, Py_ssize_t ldo) noexcept nogil

VECTOR_WIDTH = MINIDL_VW  # floats per SIMD vector in this build
_BLOCK = MINIDL_BLOCK  # output positions per kernel call
_CB = MINIDL_CB


def available() -> bool:
    """True when this build has AVX-512 vectors: only then does the direct kernel beat
    im2col + BLAS on the shapes measured."""
    return MINIDL_VW >= 16


cdef struct Grid:
    Py_ssize_t N, C, G, Cg, Og, Opad    # Opad: Og rounded up to CB
    Py_ssize_t plane                    # Dp * Hp * Wp, one padded input channel
    Py_ssize_t Hp, Wp, oD, oH, oW, P    # P = oD * oH * oW
    Py_ssize_t taps                     # Cg * kvol
    Py_ssize_t n_blocks                 # blocks of _BLOCK grid positions per (image, group)


cdef void pad_plane(const float* src, float* dst, Py_ssize_t D, Py_ssize_t H, Py_ssize_t W,
                    Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t pd, Py_ssize_t ph,
                    Py_ssize_t pw) noexcept nogil:
    """Copy one (D, H, W) plane into the zeroed padded plane at offset (pd, ph, pw)."""
    cdef Py_ssize_t z, r
    for z in range(D):
        for r in range(H):
            memcpy(dst + ((z + pd) * Hp + r + ph) * Wp + pw, src + (z * H + r) * W,
                   W * sizeof(float))


cdef void run_block(const Grid* g, const float* xp, const Py_ssize_t* off, const float* wp,
                    float* y, float* tile, Py_ssize_t item) noexcept nogil:
    """All output channels of one group of one image at one block of grid positions."""
    cdef Py_ssize_t blk = item % g.n_blocks, grp = (item // g.n_blocks) % g.G
    cdef Py_ssize_t n = item // g.n_blocks // g.G
    cdef Py_ssize_t q0 = blk * MINIDL_BLOCK, ob, i, q, od, oh, ow, co, n_real = 0
    cdef Py_ssize_t lane[64]  # the real outputs among the positions: 64 >= MINIDL_BLOCK
    cdef Py_ssize_t pos[64]
    cdef const float* x = xp + (n * g.C + grp * g.Cg) * g.plane + q0
    cdef const float* w = wp + grp * g.Opad * g.taps
    cdef float* yg = y + (n * g.G + grp) * g.Og * g.P
    for ob in range(g.Opad // MINIDL_CB):
        minidl_direct_block(x, off, w + ob * MINIDL_CB * g.taps, g.taps,
                            tile + ob * MINIDL_CB * MINIDL_BLOCK, MINIDL_BLOCK)
    for i in range(MINIDL_BLOCK):
        q = q0 + i
        ow = q % g.Wp
        oh = q // g.Wp % g.Hp
        od = q // g.Wp // g.Hp
        if ow < g.oW and oh < g.oH and od < g.oD:
            lane[n_real] = i
            pos[n_real] = (od * g.oH + oh) * g.oW + ow
            n_real += 1
    for co in range(g.Og):
        for i in range(n_real):
            yg[co * g.P + pos[i]] = tile[co * MINIDL_BLOCK + lane[i]]


def _pad(const float[::1] x, float[::1] xp, Py_ssize_t n_planes, shape, padded, before,
         int nt):
    cdef Py_ssize_t item, D = shape[0], H = shape[1], W = shape[2]
    cdef Py_ssize_t Hp = padded[1], Wp = padded[2], pd = before[0], ph = before[1], pw = before[2]
    cdef Py_ssize_t plane_in = D * H * W, plane = padded[0] * Hp * Wp
    for item in prange(n_planes, nogil=True, num_threads=nt, schedule="static"):
        pad_plane(&x[item * plane_in], &xp[item * plane], D, H, W, Hp, Wp, pd, ph, pw)


cdef _run(Grid g, const float[::1] xp, const Py_ssize_t[::1] off, const float[::1] wp,
          float[::1] y, float[:, ::1] tiles, int nt):
    cdef Py_ssize_t item
    for item in prange(g.N * g.G * g.n_blocks, nogil=True, num_threads=nt, schedule="dynamic"):
        run_block(&g, &xp[0], &off[0], &wp[0], &y[0], &tiles[threadid(), 0], item)


def forward(x: np.ndarray, w: np.ndarray, dilation, pad_before, pad_after, groups: int,
            nt: int) -> np.ndarray:
    """Stride-1 conv of float32 x (N, C, D, H, W) with w (O, C/groups, kD, kH, kW).

    The caller (conv.pyx) has validated the shapes and parameters."""
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    kernel = w.shape[2:]
    padded = tuple(s + b + a for s, b, a in zip(x.shape[2:], pad_before, pad_after))
    out = tuple(p - d * (k - 1) for p, d, k in zip(padded, dilation, kernel))
    y = np.empty((N, O) + out, np.float32)

    cdef Grid g
    g.N, g.C, g.G, g.Cg, g.Og = N, C, groups, Cg, O // groups
    g.Opad = -(-g.Og // _CB) * _CB
    g.Hp, g.Wp = padded[1], padded[2]
    g.plane = padded[0] * padded[1] * padded[2]
    g.oD, g.oH, g.oW = out
    g.P = out[0] * out[1] * out[2]
    g.taps = Cg * kernel[0] * kernel[1] * kernel[2]
    last = ((out[0] - 1) * g.Hp + out[1] - 1) * g.Wp + out[2]  # one past the last real output
    g.n_blocks = -(-last // _BLOCK)

    # the last block may read up to _BLOCK floats past the last plane: zeros
    xp = np.zeros(N * C * g.plane + _BLOCK, np.float32)
    _pad(x.reshape(-1), xp, N * C, x.shape[2:], padded, pad_before, nt)
    wp = _pack_weight(w, groups, g.Opad)
    _run(g, xp, _tap_offsets(Cg, kernel, dilation, padded), wp, y.reshape(-1),
         np.empty((nt, g.Opad * _BLOCK), np.float32), nt)
    return y


def _tap_offsets(Cg, kernel, dilation, padded) -> np.ndarray:
    """off[t] for taps t = (c, kd, kh, kw) in weight order: where tap t reads, relative to q."""
    Dp, Hp, Wp = padded
    c, kd, kh, kw = np.meshgrid(*(np.arange(n) for n in (Cg,) + tuple(kernel)), indexing="ij")
    off = ((c * Dp + kd * dilation[0]) * Hp + kh * dilation[1]) * Wp + kw * dilation[2]
    return off.reshape(-1).astype(np.intp)


def _pack_weight(w, groups, Opad) -> np.ndarray:
    """w (O, Cg, k...) as (groups, Opad / CB, taps, CB): the CB weights of a tap side by side,
    output channels padded with zeros to a multiple of CB."""
    O = w.shape[0]
    taps = w[0].size
    wg = np.zeros((groups, Opad, taps), np.float32)
    wg[:, : O // groups] = w.reshape(groups, O // groups, taps)
    packed = wg.reshape(groups, Opad // _CB, _CB, taps).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(packed).reshape(-1)
