"""Slow, obviously correct numpy versions of the three convolution primitives.

The semantics of ``minidl._ext.dispatch``'s primitives, with the 3-D parameters ``(stride,
dilation, pad_before, pad_after, groups)`` as arguments (as ``tests/kernels.py`` states them),
written the direct way: pad the input
with zeros, then for every kernel tap take the strided window of the padded input that the tap
sees and contract it with that tap's weights.  Computed in float64, returned in the input dtype.
Used by the tests as the oracle for the Cython kernels (and itself checked against PyTorch).
No validation beyond what numpy does: feed it valid arguments.
"""

from itertools import product

import numpy as np


def _output_size(in_size, kernel, stride, dilation, pad_before, pad_after):
    return tuple(
        (i + b + a - d * (k - 1) - 1) // s + 1
        for i, k, s, d, b, a in zip(
            in_size, kernel, stride, dilation, pad_before, pad_after, strict=True
        )
    )


def _window(kernel_pos, stride, dilation, out):
    """Slices of the padded input read by one kernel tap, for every output position."""
    return tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s)
        for k, s, d, o in zip(kernel_pos, stride, dilation, out, strict=True)
    )


def _taps(kernel):
    return product(*(range(k) for k in kernel))


def conv_forward(x, w, stride, dilation, pad_before, pad_after, groups):
    dtype, x, w = x.dtype, np.asarray(x, np.float64), np.asarray(w, np.float64)
    N = x.shape[0]
    O, Cg = w.shape[:2]
    Og = O // groups
    out = _output_size(x.shape[2:], w.shape[2:], stride, dilation, pad_before, pad_after)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(pad_before, pad_after, strict=True)))
    y = np.zeros((N, O) + out)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for tap in _taps(w.shape[2:]):
            patch = xp[(slice(None), cin) + _window(tap, stride, dilation, out)]
            y[:, cout] += np.einsum("ncdhw,oc->nodhw", patch, w[(cout, slice(None)) + tap])
    return y.astype(dtype)


def conv_backward_data(dy, w, input_size, stride, dilation, pad_before, pad_after, groups):
    dtype, dy, w = dy.dtype, np.asarray(dy, np.float64), np.asarray(w, np.float64)
    N, O = dy.shape[:2]
    Cg = w.shape[1]
    Og = O // groups
    out = dy.shape[2:]
    padded = tuple(i + b + a for i, b, a in zip(input_size, pad_before, pad_after, strict=True))
    dxp = np.zeros((N, Cg * groups) + padded)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for tap in _taps(w.shape[2:]):
            window = (slice(None), cin) + _window(tap, stride, dilation, out)
            dxp[window] += np.einsum("nodhw,oc->ncdhw", dy[:, cout], w[(cout, slice(None)) + tap])
    crop = tuple(slice(b, b + i) for b, i in zip(pad_before, input_size, strict=True))
    return dxp[(slice(None), slice(None)) + crop].astype(dtype)


def conv_backward_weight(x, dy, kernel_size, stride, dilation, pad_before, pad_after, groups):
    dtype, x, dy = x.dtype, np.asarray(x, np.float64), np.asarray(dy, np.float64)
    C = x.shape[1]
    O = dy.shape[1]
    Cg, Og = C // groups, O // groups
    out = dy.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(pad_before, pad_after, strict=True)))
    dw = np.zeros((O, Cg) + tuple(kernel_size))
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for tap in _taps(kernel_size):
            patch = xp[(slice(None), cin) + _window(tap, stride, dilation, out)]
            dw[(cout, slice(None)) + tap] = np.einsum("nodhw,ncdhw->oc", dy[:, cout], patch)
    return dw.astype(dtype)
