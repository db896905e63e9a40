"""One architecture, four convention profiles: how the conventions change training.

    python examples/profile_switch.py [--seeds 3] [--epochs 8] [--out runs/profile_switch]

Two experiments on the same digits batches, for several seeds, under 'torch', 'megengine',
'mindspore' and 'mindspore-2.1':

1. the CNN of ``digits_cnn.py`` (without batch norm, so each framework's initialisation
   reaches the activations), whose convs follow the profile: parameters, conv output shapes,
   initial weight statistics, final loss and accuracy (mean +- std over seeds), and a plot of
   the test-accuracy curves;
2. a second model where every layer follows the profile - two conv-BN-ReLU-maxpool blocks,
   dropout and a dense head, written once with positional arguments as a port would be -
   with what each convention made of it: feature-map sizes (conv padding, pool stride), the
   dense weights' initial std, the dropout probability actually used, the BatchNorm momentum
   in PyTorch's terms, and the final loss and accuracy.
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


# ---- experiment 2: every layer follows the profile -----------------------------------------
class BlockCNN(nn.Module):
    """conv-BN-ReLU-maxpool twice (3x3 then 2x2 kernels, so that PyTorch's shrinking convs
    and pools fit 8x8 digits), dropout, a dense head: one definition, the active profile's
    meaning (MindSpore: 'same' convs without bias, MaxPool2d(2) at stride 1, Dropout(0.25) keeps
    25%; MegEngine has no Flatten module, so the forward flattens, as MegEngine code does)."""

    def __init__(self, profile: str, image_size: int = 8, classes: int = 10) -> None:
        super().__init__()
        with minidl.use_profile(profile):
            self.block1 = nn.Sequential(
                nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.block2 = nn.Sequential(
                nn.Conv2d(8, 16, 2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.dropout = nn.Dropout(0.25)
            probe = minidl.zeros(2, 1, image_size, image_size)
            with minidl.no_grad():
                self.sizes = [tuple(self.block1(probe).shape[2:])]
                self.sizes.append(tuple(self.block2(self.block1(probe)).shape[2:]))
            self.head = nn.Linear(16 * self.sizes[-1][0] * self.sizes[-1][1], classes)
        self.block1[1].reset_running_stats(), self.block2[1].reset_running_stats()

    def forward(self, x):
        x = self.block2(self.block1(x))
        return self.head(self.dropout(nn.functional.flatten(x, 1)))


def train_blocks(profile: str, seed: int, epochs: int, lr: float, data) -> dict:
    (train_x, train_y), (test_x, test_y) = data
    minidl.manual_seed(seed)
    model = BlockCNN(profile)
    facts = {
        "sizes": model.sizes,
        "dense std": float(model.head.weight.numpy().std()),
        "dropout p": model.dropout._spec.p,
        "bn momentum": model.block1[1]._spec.momentum,
    }
    optimizer = minidl.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = minidl.data.DataLoader((train_x, train_y), batch_size=32, shuffle=True, seed=seed)
    for _ in range(epochs):
        for images, labels in loader:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {**facts, "final": evaluate(model, test_x, test_y)}


def summarise_blocks(profile: str, runs: list[dict]) -> str:
    losses = np.array([run["final"][0] for run in runs])
    accs = np.array([run["final"][1] for run in runs])
    first = runs[0]
    sizes = " -> ".join("x".join(map(str, s)) for s in first["sizes"])
    return (f"| {profile} | {sizes} | {first['dense std']:.4f} | {first['dropout p']:.2f} | "
            f"{first['bn momentum']:.2f} | {losses.mean():.4f} +- {losses.std():.4f} | "
            f"{accs.mean():.4f} +- {accs.std():.4f} |")


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[dict]]]:
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

    blocks = {profile: [train_blocks(profile, seed, args.epochs, args.lr, data)
                        for seed in range(args.seeds)] for profile in PROFILES}
    print("\nEvery layer under its profile: conv-BN-ReLU-MaxPool2d(2) x 2, Dropout(0.25), "
          "Linear\n")
    print("| profile | feature maps | dense init std | dropout p | BN momentum (PyTorch's) | "
          "final test loss | final test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for profile, runs in blocks.items():
        print(summarise_blocks(profile, runs))
    return {"convs": results, "all layers": blocks}


if __name__ == "__main__":
    main()
