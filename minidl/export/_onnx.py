"""The ONNX side of :func:`minidl.export.to_onnx`: one emitter per record of ``_describe``.

The graph is built with ``onnx.helper`` alone. The model runs once on the example input, layer
by layer, so every emitter knows its input's shape: TF-style 'same' padding becomes fixed pads
and an adaptive pool fixed averaging matrices. The graph's input keeps the example's shape but
for the batch dimension, which stays free. Parameters are initializers under PyTorch's names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .._geometry import tf_same_split
from .._grad_mode import no_grad
from ..nn._basic_functional import _softmax_dim
from ..nn._pool_functional import _adaptive_matrix, _adaptive_output_size
from ..nn.module import Module
from ..profiles.padding import SamePadding, TransposeWindow
from ..tensor import Tensor
from . import _describe as d

ONNX_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                  "circular": "wrap"}
ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class Graph:
    """Nodes and initializers being collected; ``name`` makes unique value names."""

    def __init__(self, dtype: np.dtype) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.dtype = dtype
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, name: str, array: np.ndarray, dtype: Any = None) -> str:
        array = np.asarray(array, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        output = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


class Layer:
    """What an emitter gets: the layer, its name, its weights (PyTorch's names and layout),
    the shape of its input and the graph value holding that input."""

    def __init__(self, graph: Graph, name: str, module: Module, shape: tuple[int, ...],
                 value: str) -> None:
        self.graph, self.name, self.module, self.shape, self.value = (
            graph, name, module, shape, value)
        self.weights = module.state_dict(profile="torch")

    def weight(self, key: str, array: np.ndarray | None = None) -> str:
        full = f"{self.name}.{key}" if self.name else key
        values = self.weights[key] if array is None else array
        return self.graph.constant(full, values)

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        return self.graph.node(op, inputs, self.name or op, **attributes)


def _onnx_pads(before: tuple[int, ...], after: tuple[int, ...]) -> list[int]:
    """ONNX's pads: every dim's start, then every dim's end."""
    return [*before, *after]


def _pad(layer: Layer, value: str, before, after, mode: str = "constant") -> str:
    """A Pad node over the spatial dims (negative amounts crop)."""
    zero = (0, 0)
    pads = layer.graph.constant(layer.graph.name("pads"),
                                np.array(_onnx_pads(zero + tuple(before), zero + tuple(after))),
                                np.int64)
    return layer.node("Pad", [value, pads], mode=mode)


# ---- convs -------------------------------------------------------------------------------------
def _conv(op: d.Conv, layer: Layer) -> str:
    spec, rule = op.spec, op.spec.padding
    if isinstance(rule, TransposeWindow):
        return _transposed(op, rule, layer)
    size = layer.shape[-spec.nd:]
    if isinstance(rule, SamePadding):
        before, after, mode = *tf_same_split(size, spec.kernel_size, spec.stride,
                                             spec.dilation), "zeros"
    else:
        before, after, mode = rule.before, rule.after, rule.mode
    value = layer.value
    if mode != "zeros":
        value = _pad(layer, value, before, after, ONNX_PAD_MODES[mode])
        before = after = (0,) * spec.nd
    inputs = [value, layer.weight("weight")] + ([layer.weight("bias")] if spec.bias else [])
    return layer.node("Conv", inputs, kernel_shape=list(spec.kernel_size),
                      strides=list(spec.stride), dilations=list(spec.dilation),
                      group=spec.groups, pads=_onnx_pads(before, after))


def _transposed(op: d.Conv, window: TransposeWindow, layer: Layer) -> str:
    """ConvTranspose with pads cropping the full result; what pads cannot do (extending with
    bias-only positions, appending zeros after the bias) is done by Pad nodes around the Add of
    the bias."""
    spec, nd = op.spec, op.spec.nd
    crop_before = tuple(max(0, b) for b in window.before)
    crop_after = tuple(max(0, a) for a in window.after)
    extend = (tuple(max(0, -b) for b in window.before), tuple(max(0, -a) for a in window.after))
    simple = not any(extend[0] + extend[1] + window.zeros)
    inputs = [layer.value, layer.weight("weight")]
    if spec.bias and simple:
        inputs.append(layer.weight("bias"))
    value = layer.node("ConvTranspose", inputs, kernel_shape=list(spec.kernel_size),
                       strides=list(spec.stride), dilations=list(spec.dilation),
                       group=spec.groups, pads=_onnx_pads(crop_before, crop_after))
    if simple:
        return value
    if any(extend[0] + extend[1]):
        value = _pad(layer, value, *extend)
    if spec.bias:
        bias = layer.weights["bias"].reshape((-1,) + (1,) * nd)
        value = layer.node("Add", [value, layer.weight("bias", bias)])
    if any(window.zeros):
        value = _pad(layer, value, (0,) * nd, window.zeros)
    return value


# ---- the other layers ---------------------------------------------------------------------------
def _linear(op: d.Linear, layer: Layer) -> str:
    if len(layer.shape) == 2:
        inputs = [layer.value, layer.weight("weight")]
        inputs += [layer.weight("bias")] if op.bias else []
        return layer.node("Gemm", inputs, transB=1)
    weight_t = layer.graph.constant(f"{layer.name}.weight.T", layer.weights["weight"].T)
    value = layer.node("MatMul", [layer.value, weight_t])
    return layer.node("Add", [value, layer.weight("bias")]) if op.bias else value


def _batch_norm(op: d.BatchNorm, layer: Layer) -> str:
    if not op.track_running_stats:
        raise NotImplementedError(
            f"{layer.name}: BatchNorm without running statistics normalises with the batch's "
            "statistics even in eval mode; to_onnx exports eval-mode BatchNorm with running "
            "statistics only"
        )
    ones, zeros = np.ones(op.num_features), np.zeros(op.num_features)
    scale = layer.weight("weight") if op.affine else layer.weight("weight", ones)
    shift = layer.weight("bias") if op.affine and op.bias else layer.weight("bias", zeros)
    inputs = [layer.value, scale, shift, layer.weight("running_mean"),
              layer.weight("running_var")]
    return layer.node("BatchNormalization", inputs, epsilon=op.eps)


def _pool(op: d.Pool, layer: Layer) -> str:
    where = layer.name or "pool"
    if op.return_indices:
        raise NotImplementedError(f"{where}: to_onnx cannot export return_indices=True")
    rule = op.padding
    if isinstance(rule, SamePadding):
        size = layer.shape[-op.nd:]
        before, after = tf_same_split(size, op.kernel_size, op.stride, op.dilation)
    else:
        before, after = rule.before, rule.after
    if any(max(b, a) >= k for b, a, k in zip(before, after, op.kernel_size, strict=True)):
        raise NotImplementedError(f"{where}: ONNX pools pad by less than the kernel size")
    common = dict(kernel_shape=list(op.kernel_size), strides=list(op.stride),
                  pads=_onnx_pads(before, after), ceil_mode=int(op.ceil_mode))
    if op.kind == "max":
        return layer.node("MaxPool", [layer.value], dilations=list(op.dilation), **common)
    if op.divisor_override is None:
        include = op.count_include_pad and not isinstance(rule, SamePadding)
        return layer.node("AveragePool", [layer.value], count_include_pad=int(include),
                          **common)
    if op.ceil_mode:
        raise NotImplementedError(
            f"{where}: to_onnx cannot export divisor_override together with ceil_mode=True")
    # every window lies inside the padded input: its sum is the padded mean times its size
    value = layer.node("AveragePool", [layer.value], count_include_pad=1, **common)
    factor = math.prod(op.kernel_size) / op.divisor_override
    return layer.node("Mul", [value, layer.graph.constant(layer.graph.name("factor"),
                                                          np.array(factor))])


def _adaptive(op: d.AdaptiveAvgPool2d, layer: Layer) -> str:
    """rows @ x @ cols.T with PyTorch's averaging matrices for this input size."""
    height, width = layer.shape[-2:]
    out_h, out_w = _adaptive_output_size("AdaptiveAvgPool2d", op.output_size, (height, width))
    dtype = layer.graph.dtype.str
    rows = layer.graph.constant(layer.graph.name("rows"), _adaptive_matrix(height, out_h, dtype))
    cols = layer.graph.constant(layer.graph.name("cols"),
                                _adaptive_matrix(width, out_w, dtype).T)
    return layer.node("MatMul", [layer.node("MatMul", [rows, layer.value]), cols])


def _gelu(layer: Layer, approximate: str) -> str:
    """0.5 x (1 + erf(x / sqrt 2)), or the tanh form (Gelu is an op from opset 20 only)."""
    graph, x = layer.graph, layer.value

    def const(value: float) -> str:
        return graph.constant(graph.name("c"), np.array(value))

    if approximate == "tanh":
        cube = layer.node("Mul", [layer.node("Mul", [x, x]), x])
        inner = layer.node("Add", [x, layer.node("Mul", [cube, const(0.044715)])])
        core = layer.node("Tanh", [layer.node("Mul", [inner, const(math.sqrt(2 / math.pi))])])
    else:
        core = layer.node("Erf", [layer.node("Mul", [x, const(1 / math.sqrt(2))])])
    half_x = layer.node("Mul", [x, const(0.5)])
    return layer.node("Mul", [half_x, layer.node("Add", [core, const(1.0)])])


def _activation(op: d.Activation, layer: Layer) -> str:
    name, x = op.name, layer.value
    if name == "leaky_relu":
        return layer.node("LeakyRelu", [x], alpha=op.argument)
    if name == "gelu":
        return _gelu(layer, op.argument)
    if name in ("softmax", "log_softmax"):
        axis = _softmax_dim(name, len(layer.shape), op.argument)
        return layer.node("Softmax" if name == "softmax" else "LogSoftmax", [x], axis=axis)
    return layer.node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[name], [x])


def _flatten(op: d.Flatten, layer: Layer) -> str:
    """A Reshape: dims before start_dim copied (0), the flattened ones -1, the rest fixed."""
    rank = len(layer.shape)
    start, end = op.start_dim % max(rank, 1), op.end_dim % max(rank, 1)
    if start > end:
        raise ValueError(f"{layer.name}: flatten start_dim must not come after end_dim")
    shape = [0] * start + [-1] + list(layer.shape[end + 1:])
    if start == 0:
        shape = [-1] + list(layer.shape[end + 1:])
    target = layer.graph.constant(layer.graph.name("shape"), np.array(shape), np.int64)
    return layer.node("Reshape", [layer.value, target])


def _layer_norm(op: d.LayerNorm, layer: Layer) -> str:
    shape = op.normalized_shape
    if op.elementwise_affine:
        scale = layer.weight("weight")
    else:
        scale = layer.weight("weight", np.ones(shape))
    inputs = [layer.value, scale]
    if op.elementwise_affine and op.bias:
        inputs.append(layer.weight("bias"))
    return layer.node("LayerNormalization", inputs, axis=-len(shape), epsilon=op.eps)


EMITTERS: dict[type, Callable[[Any, Layer], str]] = {
    d.Conv: _conv,
    d.Linear: _linear,
    d.BatchNorm: _batch_norm,
    d.Pool: _pool,
    d.AdaptiveAvgPool2d: _adaptive,
    d.Activation: _activation,
    d.Flatten: _flatten,
    d.Dropout: lambda op, layer: layer.node("Identity", [layer.value]),
    d.Identity: lambda op, layer: layer.node("Identity", [layer.value]),
    d.LayerNorm: _layer_norm,
}


def _emit(record: Any, layer: Layer) -> str:
    emitter = EMITTERS.get(type(record))
    if emitter is None:
        kind = type(layer.module).__name__
        raise NotImplementedError(
            f"to_onnx cannot export {kind}{f' (at {layer.name!r})' if layer.name else ''}: "
            f"docs/export.md lists what exports to ONNX; to_torch exports {kind}"
        )
    return emitter(record, layer)


# ---- the model ----------------------------------------------------------------------------------
def _leaves(op: Any, model: Module, prefix: str = ""):
    """(name, module, record) of every layer, in the order the model runs them."""
    if isinstance(op, d.Chain):
        children = dict(model.named_children())
        for name, child in op.children:
            yield from _leaves(child, children[name], f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, model, op


def _example(example_input: Any) -> Tensor:
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input))
    if x.dtype not in ELEMENT_TYPES:
        raise TypeError(f"to_onnx: the example input must be float32 or float64, got {x.dtype}")
    if x.ndim < 1:
        raise ValueError("to_onnx: the example input needs a batch dimension")
    return x


def build_graph(model: Module, example_input: Any) -> onnx.GraphProto:
    op = d.describe(model)
    x = _example(example_input)
    graph = Graph(x.dtype)  # the graph's dtype is the example's; the parameters are cast to it
    value, shape = "input", tuple(x.shape)
    free_batch = ["N", *shape[1:]]
    weights = next(model.parameters(), None)
    if weights is not None:  # the shapes are traced in the model's own dtype
        x = Tensor(x._data.astype(weights.dtype))
    with no_grad():
        for name, module, record in _leaves(op, model):  # the shape each layer gets
            value = _emit(record, Layer(graph, name, module, shape, value))
            x = module(x)
            shape = tuple(x.shape)
    graph.nodes.append(helper.make_node("Identity", [value], ["output"], name="output"))
    element = ELEMENT_TYPES[graph.dtype]
    inputs = [helper.make_tensor_value_info("input", element, free_batch)]
    # the output's first dim follows the batch (or is a product with it: Flatten(0, ...))
    outputs = [helper.make_tensor_value_info("output", element, [None, *shape[1:]])]
    return helper.make_graph(graph.nodes, "minidl", inputs, outputs, graph.initializers)


def to_onnx(model: Module, example_input: Any, path: str | os.PathLike, opset: int) -> None:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        graph = build_graph(model, example_input)
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                   producer_name="minidl")
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, os.fspath(path))
