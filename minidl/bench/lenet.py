"""A LeNet-5 training step (batch 64, SGD) in minidl and PyTorch, from the same weights.

conv 1->6 5x5 pad 2, relu, pool 2, conv 6->16 5x5, relu, pool 2, flatten, linear 400->120,
relu, linear 120->84, relu, linear 84->10, cross-entropy; the step is zero_grad, forward,
backward, ``SGD.step``. It needs minidl's ``nn.Conv2d``, ``nn.Linear``, ``nn.MaxPool2d`` (or
``nn.AvgPool2d``), ``nn.functional.cross_entropy`` and ``optim.SGD``: without them the row is
reported unavailable, never faked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .workloads import Timed, nothing

BATCH = 64
LEARNING_RATE = 0.01
_REQUIRED = (
    ("nn", "Conv2d"),
    ("nn", "Linear"),
    ("nn.functional", "cross_entropy"),
    ("optim", "SGD"),
)


def missing_parts() -> list[str]:
    """The minidl names LeNet-5 needs and that do not exist (yet)."""
    import importlib

    missing = []
    for module, name in _REQUIRED:
        if not hasattr(importlib.import_module(f"minidl.{module}"), name):
            missing.append(f"minidl.{module}.{name}")
    if _pool_name() is None:
        missing.append("minidl.nn.MaxPool2d / AvgPool2d")
    return missing


def _pool_name() -> str | None:
    import minidl.nn

    for name in ("MaxPool2d", "AvgPool2d"):
        if hasattr(minidl.nn, name):
            return name
    return None


def _build(nn: Any, pool_name: str) -> tuple[list[Any], Any]:
    layers = [
        nn.Conv2d(1, 6, 5, padding=2),
        nn.Conv2d(6, 16, 5),
        nn.Linear(400, 120),
        nn.Linear(120, 84),
        nn.Linear(84, 10),
    ]
    return layers, getattr(nn, pool_name)(2)


def _forward(F: Any, layers: list[Any], pool: Any, x: Any) -> Any:
    conv1, conv2, fc1, fc2, fc3 = layers
    x = pool(F.relu(conv1(x)))
    x = pool(F.relu(conv2(x)))
    x = x.flatten(1)
    return fc3(F.relu(fc2(F.relu(fc1(x)))))


def _copy_weights(src: list[Any], dst: list[Any]) -> None:
    """PyTorch layer weights into the matching minidl layers (in place, shapes checked)."""
    for s, d in zip(src, dst, strict=True):
        for name in ("weight", "bias"):
            target, source = getattr(d, name)._data, getattr(s, name).detach().numpy()
            if target.shape != source.shape:
                raise ValueError(f"{name}: minidl {target.shape} vs PyTorch {source.shape}")
            target[...] = source


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    return x, rng.integers(0, 10, BATCH).astype(np.int64)


def _step_fn(F: Any, optim: Any, layers: list[Any], pool: Any, x: Any, y: Any) -> Callable:
    params = [p for layer in layers for p in layer.parameters()]
    opt = optim.SGD(params, lr=LEARNING_RATE)

    def step() -> float:
        opt.zero_grad()
        loss = F.cross_entropy(_forward(F, layers, pool, x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def training_steps() -> dict[str, Callable[[], float]]:
    """One step function per framework (each returns its loss), same weights and data."""
    import torch

    import minidl

    pool_name = _pool_name()
    if missing_parts() or pool_name is None:
        raise RuntimeError(f"LeNet-5 needs {', '.join(missing_parts())}")
    torch.manual_seed(0)
    t_layers, t_pool = _build(torch.nn, pool_name)
    m_layers, m_pool = _build(minidl.nn, pool_name)
    _copy_weights(t_layers, m_layers)
    x, y = _data()
    return {
        "minidl": _step_fn(minidl.nn.functional, minidl.optim, m_layers, m_pool,
                           minidl.tensor(x), minidl.tensor(y)),
        "torch": _step_fn(torch.nn.functional, torch.optim, t_layers, t_pool,
                          torch.from_numpy(x), torch.from_numpy(y)),
    }


def workloads() -> tuple[dict[str, Timed], dict[str, float]]:
    """The timed step per framework, and each framework's first loss (they must agree)."""
    steps = training_steps()
    first_loss = {name: step() for name, step in steps.items()}
    ops = {name: Timed(nothing, lambda _, s=step: s()) for name, step in steps.items()}
    return ops, first_loss
