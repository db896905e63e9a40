"""Move a minidl model to PyTorch (to train at scale) or to ONNX (to serve).

* :func:`to_torch` gives a ``torch.nn.Module`` with the same structure, PyTorch's parameter
  names and the same weights, computing the same outputs and gradients, whatever profile the
  model was built under;
* :func:`to_onnx` writes an ONNX model (opset :data:`OPSET`) that ONNX Runtime runs to minidl's
  eval outputs.

Both take ``nn.Sequential`` models (nested too) of minidl's layers; a model with its own
``forward`` raises ``NotImplementedError`` naming it. torch and onnx are optional: ``pip install
"minidl[export]"``. ``docs/export.md`` lists what exports and what does not.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..nn.module import Module
from ._describe import exportable_layers

if TYPE_CHECKING:
    import torch

__all__ = ["OPSET", "exportable_layers", "to_onnx", "to_torch"]

OPSET = 19  # the ONNX opset to_onnx writes (Pad 'wrap' for circular padding needs 19)
INSTALL = 'pip install "minidl[export]"'


def require(package: str, purpose: str) -> Any:
    """Import an optional package, or ImportError naming the install command."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the {package!r} package, which minidl does not install by "
            f"default: {INSTALL} ({error})"
        ) from None


def to_torch(model: Module) -> torch.nn.Module:
    """A ``torch.nn.Module`` computing what ``model`` computes: same structure (``nn.Sequential``
    children under the same names), PyTorch's parameter names and layouts, the same weights
    and dtype, the same train/eval mode. A padding rule that PyTorch's layer arguments cannot
    express (MindSpore's TF-style 'same' at a stride, asymmetric amounts, transposed-conv
    windows) becomes a subclass of PyTorch's layer that pads or crops explicitly."""
    require("torch", "minidl.export.to_torch")
    from . import _torch

    return _torch.to_torch(model)


def to_onnx(model: Module, example_input: Any, path: str | os.PathLike) -> None:
    """Write ``model`` in eval mode as an ONNX model (opset :data:`OPSET`) to ``path``.

    ``example_input`` (a minidl Tensor or numpy array) fixes the input's shape and the graph's
    dtype (float32 or float64; the parameters are cast to it); the batch dimension stays free.
    The graph is built with ``onnx.helper`` (no torch needed) and checked with
    ``onnx.checker``."""
    require("onnx", "minidl.export.to_onnx")
    from . import _onnx

    _onnx.to_onnx(model, example_input, path, OPSET)
