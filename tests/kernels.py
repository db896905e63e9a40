"""The three conv primitives as the kernel tests state them: 5-D arrays and the 3-D
parameters ``(stride, dilation, pad_before, pad_after, groups)``, on a chosen algorithm.

The geometry is built by ``minidl._geometry`` (the one parse) and run by
``minidl._ext.dispatch``; ``algorithm=None`` takes the dispatcher's choice.
"""

import numpy as np

from minidl._ext import dispatch
from minidl._geometry import conv_geometry


def geometry(x_shape, w_shape, stride, dilation, pad_before, pad_after, groups):
    pairs = tuple(zip(pad_before, pad_after))
    return conv_geometry("conv3d", 3, tuple(x_shape), tuple(w_shape), stride, pairs, dilation,
                         groups)


def conv_forward(x, w, *params, algorithm=None):
    geo = geometry(x.shape, w.shape, *params)
    return dispatch.conv_forward(x, w, geo, algorithm)


def conv_backward_data(dy, w, input_size, *params, algorithm=None):
    x_shape = (dy.shape[0], w.shape[1] * params[-1]) + tuple(input_size)
    geo = geometry(x_shape, w.shape, *params)
    return dispatch.conv_backward_data(dy, w, geo, algorithm)


def conv_backward_weight(x, dy, kernel_size, *params, algorithm=None):
    w_shape = (dy.shape[1], x.shape[1] // params[-1]) + tuple(kernel_size)
    geo = geometry(x.shape, w_shape, *params)
    return dispatch.conv_backward_weight(x, dy, geo, algorithm)


def algorithms(pass_, x_shape, w_shape, params, dtype):
    """Every algorithm that can compute this pass on this machine (the default one first)."""
    geo = geometry(x_shape, w_shape, *params)
    default = dispatch.choose(pass_, geo, np.dtype(dtype))
    others = [a for a in dispatch.ALGORITHMS
              if a != default and dispatch.applicable(a, pass_, geo, np.dtype(dtype))]
    return [default] + others
