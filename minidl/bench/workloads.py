"""The timed operations: one convolution case in minidl, PyTorch and the numpy baseline.

Every framework gives the same three passes (see :data:`minidl.bench.cases.PASSES`):

* ``forward``: the conv of tensors that require no gradient (no graph is recorded);
* ``backward``: the backward alone, ``y.backward(g)`` with an explicit output gradient, on a
  fresh graph built by the untimed ``setup`` of each repetition;
* ``forward_backward``: the conv of an input and a weight that require gradients, then
  ``y.backward(g)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import numpy_conv
from .cases import ConvCase

FRAMEWORKS = ("minidl", "torch", "numpy")


@dataclass(frozen=True)
class Timed:
    """A measurable operation: ``setup()`` runs untimed, then ``run(setup())`` is timed."""

    setup: Callable[[], Any]
    run: Callable[[Any], Any]


Workload = dict[str, Timed]  # pass name -> operation


@dataclass(frozen=True)
class ConvInputs:
    x: np.ndarray
    w: np.ndarray
    g: np.ndarray  # output gradient


def conv_inputs(case: ConvCase, seed: int = 0) -> ConvInputs:
    """float32 input, weight (He-scaled) and output gradient of a case."""
    rng = np.random.default_rng(seed)
    fan_in = case.w_shape[1] * case.kernel**case.nd
    return ConvInputs(
        x=rng.standard_normal(case.x_shape, dtype=np.float32),
        w=rng.standard_normal(case.w_shape, dtype=np.float32) * np.float32((2 / fan_in) ** 0.5),
        g=rng.standard_normal(case.y_shape, dtype=np.float32),
    )


def nothing() -> None:
    """The setup of an operation that needs none."""
    return None


def _conv_kwargs(case: ConvCase) -> dict[str, int]:
    return {"stride": case.stride, "padding": case.padding, "groups": case.groups}


def _functional_name(case: ConvCase) -> str:
    return f"conv_transpose{case.nd}d" if case.transposed else f"conv{case.nd}d"


def _autograd_workload(conv: Callable, leaf: Callable, g: Any, inputs: ConvInputs) -> Workload:
    """The three passes for a framework with PyTorch-style autograd (minidl and torch).

    ``leaf(array, requires_grad)`` makes a tensor; ``conv(x, w)`` runs the convolution.
    """
    x0, w0 = leaf(inputs.x, False), leaf(inputs.w, False)
    x, w = leaf(inputs.x, True), leaf(inputs.w, True)

    def clear_grads() -> None:
        x.grad = None
        w.grad = None

    def fresh_graph() -> Any:
        clear_grads()
        return conv(x, w)

    return {
        "forward": Timed(nothing, lambda _: conv(x0, w0)),
        "backward": Timed(fresh_graph, lambda y: y.backward(g)),
        "forward_backward": Timed(clear_grads, lambda _: conv(x, w).backward(g)),
    }


def minidl_workload(case: ConvCase, inputs: ConvInputs) -> Workload:
    import minidl
    import minidl.nn.functional as F

    fn = getattr(F, _functional_name(case))
    kwargs = _conv_kwargs(case)

    def leaf(a: np.ndarray, requires_grad: bool) -> minidl.Tensor:
        return minidl.tensor(a, requires_grad=requires_grad)

    return _autograd_workload(lambda x, w: fn(x, w, **kwargs), leaf, inputs.g, inputs)


def torch_workload(case: ConvCase, inputs: ConvInputs) -> Workload:
    import torch

    fn = getattr(torch.nn.functional, _functional_name(case))
    kwargs = _conv_kwargs(case)

    def leaf(a: np.ndarray, requires_grad: bool) -> torch.Tensor:
        return torch.from_numpy(a.copy()).requires_grad_(requires_grad)

    g = torch.from_numpy(inputs.g)
    return _autograd_workload(lambda x, w: fn(x, w, **kwargs), leaf, g, inputs)


def numpy_workload(case: ConvCase, inputs: ConvInputs) -> Workload:
    """The im2col baseline: no graph, so backward needs only x, w and g."""
    geometry = ((case.stride,) * case.nd, (case.padding,) * case.nd, case.groups)
    if case.transposed:
        forward, backward = numpy_conv.conv_transpose_forward, numpy_conv.conv_transpose_backward
    else:
        forward, backward = numpy_conv.conv_forward, numpy_conv.conv_backward
    x, w, g = inputs.x, inputs.w, inputs.g

    def forward_backward(_: None) -> tuple[np.ndarray, np.ndarray]:
        forward(x, w, *geometry)
        return backward(x, w, g, *geometry)

    return {
        "forward": Timed(nothing, lambda _: forward(x, w, *geometry)),
        "backward": Timed(nothing, lambda _: backward(x, w, g, *geometry)),
        "forward_backward": Timed(nothing, forward_backward),
    }


WORKLOADS: dict[str, Callable[[ConvCase, ConvInputs], Workload]] = {
    "minidl": minidl_workload,
    "torch": torch_workload,
    "numpy": numpy_workload,
}


def forward_output(framework: str, case: ConvCase, inputs: ConvInputs) -> np.ndarray:
    """The forward result as a numpy array (to check the frameworks agree before timing)."""
    out = WORKLOADS[framework](case, inputs)["forward"].run(None)
    return out.detach().numpy() if hasattr(out, "detach") else np.asarray(out)
