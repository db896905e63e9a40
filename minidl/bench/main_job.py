"""The main job: an epoch of ``examples/train_digits.py`` in minidl and in PyTorch.

minidl runs the example's own code: its model (``build_cnn``), its data (the digits, in the
order of a ``DataLoader`` shuffled with the example's seed), its optimizer (Adam) and
learning-rate schedule (cosine), its ``train_epoch`` and its ``evaluate``, with the example's
command-line defaults (batch size, learning rate, epochs of the schedule, seed, profile).
PyTorch runs the same model, translated layer by layer from minidl's (:func:`torch_model`) and
starting from minidl's initial weights, on the same batches in the same order, with the same
optimizer and schedule; :func:`torch_train_epoch` and :func:`torch_evaluate` mirror the
example's functions line by line. Both use the thread count the benchmark set.

An epoch is what the example does per epoch, without its progress bar: a training pass over
the training images, the scheduler's step and the evaluation of the test images. Dropout draws
its masks from each framework's own generator, so the two runs' losses are close, not equal.

Without the ``examples`` directory (an installed wheel) or scikit-learn the job is
unavailable, never faked.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"
EpochResult = tuple[float, float, float, float]  # train loss, train acc, test loss, test acc


def load_example(path: Path = EXAMPLE) -> ModuleType:
    """``examples/train_digits.py`` as a module, leaving ``sys.path`` and ``sys.modules`` as
    they were (the example puts its directory on ``sys.path`` to import ``digits_cnn``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found (the examples are not installed)")
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location("_minidl_bench_train_digits", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name == "digits_cnn":
                del sys.modules[name]
    return module


def unavailable_reason() -> str | None:
    """Why the main job cannot run here, or None."""
    try:
        load_example()
        importlib.import_module("sklearn")
    except (ImportError, OSError) as error:
        return str(error)
    return None


def example_settings(example: ModuleType) -> argparse.Namespace:
    """The example's defaults, from its own command line parser."""
    return example.parse_args([])


class NoProgress:
    """Stands in for the example's tqdm bar: takes the same calls, shows nothing."""

    def set_postfix(self, **_: Any) -> None:
        pass

    def update(self, _: int = 1) -> None:
        pass


# ---- the same model in PyTorch -------------------------------------------------------------
_TRANSLATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "Conv2d": lambda tnn, m: tnn.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
        m.groups, bias=m.bias is not None, padding_mode=m.padding_mode),
    "BatchNorm2d": lambda tnn, m: tnn.BatchNorm2d(
        m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats),
    "ReLU": lambda tnn, m: tnn.ReLU(),
    "MaxPool2d": lambda tnn, m: tnn.MaxPool2d(
        m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode),
    "Flatten": lambda tnn, m: tnn.Flatten(m.start_dim, m.end_dim),
    "Dropout": lambda tnn, m: tnn.Dropout(m.p),
    "Linear": lambda tnn, m: tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    "Identity": lambda tnn, m: tnn.Identity(),
}


def torch_module(module: Any) -> Any:
    """The ``torch.nn`` module with the same structure and settings as a minidl one."""
    import torch.nn as tnn

    name = type(module).__name__
    if name == "Sequential":
        return tnn.Sequential(*(torch_module(child) for child in module))
    if name not in _TRANSLATIONS:
        raise NotImplementedError(f"the main job has no PyTorch translation of {name}")
    return _TRANSLATIONS[name](tnn, module)


def torch_model(model: Any) -> Any:
    """``model`` in PyTorch, with a copy of its parameters and buffers (names and shapes must
    match: ``load_state_dict`` is strict)."""
    import torch

    translated = torch_module(model)
    state = {name: torch.tensor(np.array(value)) for name, value in model.state_dict().items()}
    translated.load_state_dict(state, strict=True)
    return translated.train(model.training)


# ---- the same data order ---------------------------------------------------------------------
def shuffled_batches(n: int, batch_size: int, seed: int) -> Iterator[list[np.ndarray]]:
    """The index batches of every epoch in turn, as ``minidl.data.DataLoader(..., shuffle=True,
    seed=seed)`` draws them: one generator, a fresh permutation per epoch."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        yield [order[start:start + batch_size] for start in range(0, n, batch_size)]


def torch_train_epoch(model: Any, optimizer: Any, loader: Any, progress: Any
                      ) -> tuple[float, float]:
    """The example's ``train_epoch`` in PyTorch."""
    from torch.nn import functional

    total_loss = correct = seen = 0
    for images, labels in loader:
        logits = model(images)
        loss = functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        batch = len(labels)
        total_loss += loss.item() * batch
        correct += int((logits.detach().numpy().argmax(1) == labels.numpy()).sum())
        seen += batch
        progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        progress.update(1)
    return total_loss / seen, correct / seen


def torch_evaluate(model: Any, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The example's ``evaluate`` in PyTorch."""
    import torch
    from torch.nn import functional

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(images))
        loss = functional.cross_entropy(logits, torch.from_numpy(labels)).item()
    model.train()
    accuracy = float((logits.numpy().argmax(1) == labels).mean())
    return loss, accuracy


# ---- the two jobs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MainJob:
    """Each framework's next epoch (every call trains and evaluates one more), and the setup."""

    epochs: dict[str, Callable[[], EpochResult]]
    batch_size: int
    train_images: int
    test_images: int
    lr: float
    profile: str


def setup(example: ModuleType | None = None) -> MainJob:
    """Both frameworks ready for their first epoch, from the same initial weights."""
    import minidl

    example = example or load_example()
    args = example_settings(example)
    minidl.manual_seed(args.seed)  # as the example's main() does, before building anything
    train_x, train_y = minidl.data.digits("train")
    test_x, test_y = minidl.data.digits("test")
    loader = minidl.data.DataLoader((train_x, train_y), batch_size=args.batch_size,
                                    shuffle=True, seed=args.seed)
    model = example.build_cnn(args.profile)
    optimizer = minidl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = minidl.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    def minidl_epoch() -> EpochResult:
        train = example.train_epoch(model, optimizer, loader, NoProgress())
        scheduler.step()
        return (*train, *example.evaluate(model, test_x, test_y))

    return MainJob(
        epochs={"minidl": minidl_epoch,
                "torch": _torch_epochs(model, args, (train_x, train_y), (test_x, test_y))},
        batch_size=args.batch_size, train_images=len(train_y), test_images=len(test_y),
        lr=args.lr, profile=args.profile)


def _torch_epochs(minidl_model: Any, args: argparse.Namespace,
                  train: tuple[np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray]) -> Callable[[], EpochResult]:
    import torch

    torch.manual_seed(args.seed)
    model = torch_model(minidl_model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    orders = shuffled_batches(len(train[1]), args.batch_size, args.seed)
    x, y = train

    def epoch() -> EpochResult:
        batches = ((torch.from_numpy(x[i]), torch.from_numpy(y[i])) for i in next(orders))
        result = torch_train_epoch(model, optimizer, batches, NoProgress())
        scheduler.step()
        return (*result, *torch_evaluate(model, *test))

    return epoch
