"""The small CNN both examples train, defined once for every convention profile.

The conv layers are built with positional arguments only, so each profile applies its own
defaults (MindSpore pads 'same' and has no bias by default; PyTorch and MegEngine pad 0 and
have a bias). The classifier's input size is therefore not hard-coded: a shape-inference pass
runs one dummy image through the feature extractor and sizes the first Linear from it.
"""

from __future__ import annotations

import numpy as np

import minidl
from minidl import nn


def build_cnn(
    profile: str = "torch", image_size: int = 8, classes: int = 10, batch_norm: bool = True
) -> nn.Module:
    """conv-[bn]-relu-conv-[bn]-relu-maxpool, then a two-layer classifier; the convs follow
    ``profile`` (``examples/profile_switch.py`` builds a second model where every layer does).

    Without batch norm the convs' initialisation reaches the activations unnormalised, which
    is what the profile-switching experiment studies."""
    norm = nn.BatchNorm2d if batch_norm else (lambda channels: nn.Identity())
    with minidl.use_profile(profile):  # only the convs: the other layers stay PyTorch's here
        conv1, conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
    features = nn.Sequential(
        conv1,
        norm(32),
        nn.ReLU(),
        conv2,
        norm(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    with minidl.no_grad():
        features.eval()
        flat = features(minidl.tensor(np.zeros((1, 1, image_size, image_size), np.float32)))
        features.train()
    return nn.Sequential(
        features,
        nn.Dropout(0.25),
        nn.Linear(flat.shape[1], 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    )


def conv_output_shapes(model: nn.Module, image_size: int = 8) -> list[tuple[int, ...]]:
    """The output shape (without batch) of every conv layer, for one image."""
    shapes: list[tuple[int, ...]] = []
    x = minidl.tensor(np.zeros((1, 1, image_size, image_size), np.float32))
    model.eval()
    with minidl.no_grad():
        for layer in model[0]:
            x = layer(x)
            if "Conv" in type(layer).__name__:
                shapes.append(tuple(x.shape[1:]))
    model.train()
    return shapes


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) over a whole split, in eval mode."""
    model.eval()
    with minidl.no_grad():
        logits = model(minidl.tensor(images))
        loss = nn.functional.cross_entropy(logits, minidl.tensor(labels)).item()
    model.train()
    accuracy = float((logits.numpy().argmax(1) == labels).mean())
    return loss, accuracy
