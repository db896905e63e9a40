"""Train a small CNN on the 8x8 handwritten digits bundled with scikit-learn.

    python examples/train_digits.py [--profile torch] [--epochs 15] [--out runs/digits]

Shows a progress bar with loss and accuracy, prints one line per epoch, ends with
``test accuracy: 0.9xxx`` and saves the checkpoint (``model.npz``) and the training curves
(``curves.png``) to ``--out``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import minidl
from minidl import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_cnn import build_cnn, evaluate  # noqa: E402

EXTRAS_HINT = 'the examples need scikit-learn, tqdm and matplotlib: pip install -e ".[examples]"'


def require(module: str):
    try:
        return __import__(module)
    except ImportError:
        sys.exit(f"missing package {module!r}: {EXTRAS_HINT}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="torch",
                        choices=["torch", "megengine", "mindspore", "mindspore-2.1"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/digits"))
    return parser.parse_args(argv)


def train_epoch(model, optimizer, loader, progress) -> tuple[float, float]:
    """One pass over the loader; returns the running (loss, accuracy)."""
    total_loss = correct = seen = 0
    for images, labels in loader:
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        batch = len(labels)
        total_loss += loss.item() * batch
        correct += int((logits.numpy().argmax(1) == labels.numpy()).sum())
        seen += batch
        progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        progress.update(1)
    return total_loss / seen, correct / seen


def save_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], label="train")
    ax_loss.plot(epochs, history["test_loss"], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, history["train_acc"], label="train")
    ax_acc.plot(epochs, history["test_acc"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    tqdm = require("tqdm").tqdm
    require("sklearn")
    minidl.manual_seed(args.seed)
    train_x, train_y = minidl.data.digits("train")
    test_x, test_y = minidl.data.digits("test")
    loader = minidl.data.DataLoader((train_x, train_y), batch_size=args.batch_size,
                                    shuffle=True, seed=args.seed)
    model = build_cnn(args.profile)
    optimizer = minidl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = minidl.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"digits: {len(train_y)} train / {len(test_y)} test images, profile {args.profile!r}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")

    history: dict[str, list[float]] = {k: [] for k in
                                       ("train_loss", "train_acc", "test_loss", "test_acc")}
    start = time.perf_counter()
    with tqdm(total=args.epochs * len(loader), unit="batch", dynamic_ncols=True) as progress:
        for epoch in range(1, args.epochs + 1):
            progress.set_description(f"epoch {epoch}/{args.epochs}")
            train_loss, train_acc = train_epoch(model, optimizer, loader, progress)
            scheduler.step()
            test_loss, test_acc = evaluate(model, test_x, test_y)
            epoch_values = (train_loss, train_acc, test_loss, test_acc)
            for key, value in zip(history, epoch_values, strict=True):
                history[key].append(value)
            progress.write(f"epoch {epoch:2d}  train loss {train_loss:.4f} acc {train_acc:.4f}"
                           f"  test loss {test_loss:.4f} acc {test_acc:.4f}")
    elapsed = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    minidl.save(model.state_dict(), args.out / "model.npz")
    save_curves(history, args.out / "curves.png", f"digits CNN, profile {args.profile}")
    print(f"trained in {elapsed:.1f} s; saved {args.out / 'model.npz'} and "
          f"{args.out / 'curves.png'}")
    print(f"test accuracy: {history['test_acc'][-1]:.4f}")
    return history["test_acc"][-1]


if __name__ == "__main__":
    main()
