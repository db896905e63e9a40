"""One architecture, four convention profiles: how the conventions change training.

    python examples/profile_switch.py [--seeds 3] [--epochs 8] [--out runs/profile_switch]

The CNN of ``digits_cnn.py`` (without batch norm, so each framework's initialisation reaches
the activations) is built under 'torch', 'megengine', 'mindspore' and 'mindspore-2.1' with
the same code, trained on the same digits batches for several seeds, and compared in one
table (parameters, conv output shapes, initial weight statistics, final loss and accuracy as
mean +- std over seeds) and one plot of the test-accuracy curves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import minidl
from minidl import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_cnn import build_cnn, conv_output_shapes, evaluate  # noqa: E402
from train_digits import require  # noqa: E402

PROFILES = ("torch", "megengine", "mindspore", "mindspore-2.1")


def conv_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model[0] if "Conv" in type(m).__name__]


def init_stats(model: nn.Module) -> str:
    """Std of each conv weight and whether it has a bias, e.g. 'w std .0100/.0100, no bias'."""
    convs = conv_layers(model)
    stds = "/".join(f"{conv.weight.numpy().std():.4f}".lstrip("0") for conv in convs)
    bias = "bias" if convs[0].bias is not None else "no bias"
    return f"w std {stds}, {bias}"


def train_one(profile: str, seed: int, epochs: int, lr: float, data) -> dict:
    (train_x, train_y), (test_x, test_y) = data
    minidl.manual_seed(seed)
    model = build_cnn(profile, batch_norm=False)
    stats = init_stats(model)
    optimizer = minidl.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = minidl.data.DataLoader((train_x, train_y), batch_size=32, shuffle=True, seed=seed)
    curve = []
    for _ in range(epochs):
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(evaluate(model, test_x, test_y))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "shapes": conv_output_shapes(model),
        "init": stats,
        "curve": curve,
    }


def summarise(profile: str, runs: list[dict]) -> str:
    losses = np.array([run["curve"][-1][0] for run in runs])
    accs = np.array([run["curve"][-1][1] for run in runs])
    shapes = " -> ".join("x".join(map(str, s)) for s in runs[0]["shapes"])
    return (f"| {profile} | {runs[0]['params']} | {shapes} | {runs[0]['init']} | "
            f"{losses.mean():.4f} +- {losses.std():.4f} | {accs.mean():.4f} +- {accs.std():.4f} |")


def plot(results: dict[str, list[dict]], path: Path) -> None:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for profile, runs in results.items():
        accs = np.array([[acc for _, acc in run["curve"]] for run in runs])
        epochs = np.arange(1, accs.shape[1] + 1)
        ax.plot(epochs, accs.mean(0), label=profile)
        ax.fill_between(epochs, accs.min(0), accs.max(0), alpha=0.2)
    ax.set(xlabel="epoch", ylabel="test accuracy", title="same CNN, four convention profiles")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=Path("runs/profile_switch"))
    args = parser.parse_args(argv)
    require("sklearn")
    data = (minidl.data.digits("train"), minidl.data.digits("test"))
    results = {}
    for profile in PROFILES:
        results[profile] = [train_one(profile, seed, args.epochs, args.lr, data)
                            for seed in range(args.seeds)]
        print(f"{profile}: done", flush=True)
    print(f"\n{args.seeds} seeds x {args.epochs} epochs, SGD(lr={args.lr}, momentum=0.9)\n")
    print("| profile | parameters | conv outputs | init | final test loss | final test accuracy |")
    print("|---|---|---|---|---|---|")
    for profile, runs in results.items():
        print(summarise(profile, runs))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "profile_switch.png")
    print(f"\nsaved {args.out / 'profile_switch.png'}")
    return results


if __name__ == "__main__":
    main()
