"""Stateless ops with PyTorch's names and semantics (``import minidl.nn.functional as F``)."""

from ._basic_functional import (
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    embedding,
    flatten,
    gelu,
    leaky_relu,
    linear,
    log_softmax,
    one_hot,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from ._conv_functional import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    pad,
)
from ._interpolate_functional import interpolate
from ._loss_functional import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)
from ._norm_functional import batch_norm, layer_norm
from ._pool_functional import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "pad",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    # layers
    "linear",
    "leaky_relu",
    "gelu",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "embedding",
    "one_hot",
    "interpolate",
    "flatten",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool2d",
    "batch_norm",
    "layer_norm",
    # losses
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "binary_cross_entropy_with_logits",
]
