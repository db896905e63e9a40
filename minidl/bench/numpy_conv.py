"""A plain numpy im2col convolution: the baseline minidl's Cython kernels should beat.

im2col is ``np.lib.stride_tricks.sliding_window_view`` over the zero-padded input, copied into a
``(N, groups, P, K)`` column matrix; the products are ``np.matmul`` / ``np.tensordot`` (BLAS);
col2im adds the column gradient back tap by tap. Any number of spatial dims, stride, symmetric
padding and groups; no dilation. Layouts as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])


def im2col(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
           padding: tuple[int, ...], groups: int) -> np.ndarray:
    """Columns ``(N, groups, P, (C // groups) * kvol)`` of x ``(N, C, *spatial)``."""
    nd = len(kernel)
    axes = tuple(range(2, 2 + nd))
    win = sliding_window_view(_pad(x, padding), kernel, axis=axes)  # (N, C, *out_full, *k)
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
    n, c, out = x.shape[0], x.shape[1], win.shape[2 : 2 + nd]
    win = win.reshape(n, groups, c // groups, *out, *kernel)
    win = np.moveaxis(win, 2, 2 + nd)  # (N, G, *out, Cg, *k)
    return win.reshape(n, groups, math.prod(out), -1)  # the im2col copy


def conv_forward(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...],
                 padding: tuple[int, ...], groups: int = 1) -> np.ndarray:
    """y ``(N, O, *out)`` = cross-correlation of x ``(N, C, *spatial)`` with w ``(O, C/G, *k)``."""
    kernel = w.shape[2:]
    cols = im2col(x, kernel, stride, padding, groups)  # (N, G, P, K)
    wg = w.reshape(groups, w.shape[0] // groups, -1).transpose(0, 2, 1)  # (G, K, Og)
    y = np.matmul(cols, wg)  # (N, G, P, Og)
    out = _out_size(x.shape[2:], kernel, stride, padding)
    return np.ascontiguousarray(y.transpose(0, 1, 3, 2)).reshape(x.shape[0], w.shape[0], *out)


def conv_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: tuple[int, ...],
                  padding: tuple[int, ...], groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of :func:`conv_forward` for the output gradient dy."""
    cols = im2col(x, w.shape[2:], stride, padding, groups)
    return conv_backward_data(dy, w, x.shape[2:], stride, padding, groups), _weight_grad(
        cols, dy, w.shape, groups
    )


def conv_backward_data(dy: np.ndarray, w: np.ndarray, in_size: tuple[int, ...],
                       stride: tuple[int, ...], padding: tuple[int, ...],
                       groups: int = 1) -> np.ndarray:
    """dx ``(N, C, *in_size)``: the column gradient ``dy^T @ w`` folded back by col2im."""
    n, o = dy.shape[:2]
    kernel, cg = w.shape[2:], w.shape[1]
    dyg = dy.reshape(n, groups, o // groups, -1).transpose(0, 1, 3, 2)  # (N, G, P, Og)
    dcols = np.matmul(dyg, w.reshape(groups, o // groups, -1))  # (N, G, P, K)
    return col2im(dcols, (n, cg * groups, *in_size), kernel, stride, padding, groups)


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, ...],
           stride: tuple[int, ...], padding: tuple[int, ...], groups: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every tap's column back onto the padded input."""
    n, c, *size = x_shape
    nd = len(kernel)
    out = _out_size(tuple(size), kernel, stride, padding)
    d = dcols.reshape(n, groups, *out, c // groups, *kernel)
    d = np.moveaxis(d, 2 + nd, 2)  # (N, G, Cg, *out, *k)
    dxp = np.zeros((n, c, *(s + 2 * p for s, p in zip(size, padding, strict=True))), dcols.dtype)
    dxp_g = dxp.reshape(n, groups, c // groups, *dxp.shape[2:])
    for tap in np.ndindex(*kernel):
        region = tuple(
            slice(t, t + st * (o - 1) + 1, st) for t, st, o in zip(tap, stride, out, strict=True)
        )
        dxp_g[(slice(None),) * 3 + region] += d[(Ellipsis, *tap)]
    inner = tuple(slice(p, p + s) for p, s in zip(padding, size, strict=True))
    return np.ascontiguousarray(dxp[(slice(None), slice(None)) + inner])


def _weight_grad(cols: np.ndarray, dy: np.ndarray, w_shape: tuple[int, ...],
                 groups: int) -> np.ndarray:
    """dw = sum over images of ``dy_g (Og, P) @ cols_g (P, K)``, one tensordot per group."""
    n, o = dy.shape[:2]
    dyg = dy.reshape(n, groups, o // groups, -1)
    per_group = [np.tensordot(dyg[:, g], cols[:, g], axes=([0, 2], [0, 1])) for g in range(groups)]
    return np.stack(per_group).reshape(w_shape)


def _out_size(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              padding: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(
        (n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True)
    )


# ---- ConvTranspose: the same three products with the roles swapped -------------------------
def conv_transpose_forward(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...],
                           padding: tuple[int, ...], groups: int = 1) -> np.ndarray:
    """y = ConvTranspose(x) with w ``(C_in, C_out / G, *k)``: a conv's backward-data."""
    sizes = zip(x.shape[2:], w.shape[2:], stride, padding, strict=True)
    out = tuple((n - 1) * s - 2 * p + k for n, k, s, p in sizes)
    return conv_backward_data(x, w, out, stride, padding, groups)


def conv_transpose_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray,
                            stride: tuple[int, ...], padding: tuple[int, ...],
                            groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw): dx is the conv forward of dy; dw the conv's weight gradient with dy as input."""
    dx = conv_forward(dy, w, stride, padding, groups)
    cols = im2col(dy, w.shape[2:], stride, padding, groups)
    return dx, _weight_grad(cols, x, w.shape, groups)
