"""The PyTorch-style example scripts run to their end on minidl, and the very same files run on
PyTorch (so they are valid PyTorch code); their import blocks are the only difference.

Each run uses small settings (a few batches); the full runs are the scripts' defaults."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "pytorch_style_mnist.py"
CIFAR = ROOT / "examples" / "pytorch_style_cifar.py"
NET_KEYS = {
    MNIST: ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
            "fc2.weight", "fc2.bias"],
    CIFAR: ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
            "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"],
}
MNIST_FAST = ["--epochs", "1", "--train-size", "64", "--batch-size", "32", "--log-interval", "1",
              "--save-model", "digits.pt"]
CIFAR_FAST = ["--train-size", "48", "--test-size", "24", "--epochs", "1", "--log-every", "4"]


def _run(script, args, cwd, backend):
    env = dict(os.environ, PYTORCH_STYLE_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script.name} on {backend} failed:\n{done.stderr}"
    return done.stdout


_SWITCH = re.compile(r'^if os\.environ.*== "torch":\n((?:    .*\n)+)else:\n((?:    .*\n)+)', re.M)


@pytest.mark.parametrize("script", [MNIST, CIFAR], ids=lambda p: p.name)
def test_the_imports_are_the_only_difference(script):
    text = script.read_text()
    match = _SWITCH.search(text)
    assert match, f"{script.name} has no backend switch"
    theirs, ours = ([line.strip() for line in block.splitlines()] for block in match.groups())
    renamed = ["import minidl as torch" if line == "import torch"
               else re.sub(r"\btorch\.", "minidl.", line) for line in theirs]
    assert renamed == ours
    code = text[: match.start()] + text[match.end():]
    code = code.split('"""', 2)[2]  # without the module docstring
    assert "minidl" not in code  # outside the switch the code only says torch
    assert "import minidl as torch" in ours


def _check_mnist_output(out):
    assert out.count("Test set: Average loss:") == 1
    assert re.search(r"Accuracy: \d+/359 \(\d+%\)", out)
    assert "loaded them into a new Net" in out
    accuracy = float(re.search(r"final test accuracy: ([\d.]+)", out)[1])
    assert 0.0 <= accuracy <= 1.0
    return accuracy


def test_mnist_style_script_runs_on_minidl(tmp_path):
    _check_mnist_output(_run(MNIST, MNIST_FAST, tmp_path, "minidl"))
    state = minidl.load(tmp_path / "digits.pt")
    assert list(state) == NET_KEYS[MNIST]
    assert state["fc1.weight"].shape == (128, 9216)


def _script_module(script, backend, monkeypatch):
    monkeypatch.setenv("PYTORCH_STYLE_BACKEND", backend)
    spec = importlib.util.spec_from_file_location(f"{script.stem}_{backend}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnist_style_script_runs_on_torch_and_its_weights_load_in_minidl(torch, tmp_path,
                                                                        monkeypatch):
    _check_mnist_output(_run(MNIST, MNIST_FAST, tmp_path, "torch"))
    theirs = _script_module(MNIST, "torch", monkeypatch)
    ours = _script_module(MNIST, "minidl", monkeypatch)
    torch_net, minidl_net = theirs.Net(), ours.Net()
    torch_net.load_state_dict(torch.load(tmp_path / "digits.pt", weights_only=True))
    minidl_net.load_state_dict(minidl.load(tmp_path / "digits.pt"))
    torch_net.eval()
    minidl_net.eval()
    images = ours.digits_28x28().tensors[0][:16]
    with minidl.no_grad():
        out = minidl_net(images).numpy()
    expected = torch_net(torch.from_numpy(images.numpy())).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert (out.argmax(1) == expected.argmax(1)).all()


def _check_cifar_output(out, tmp_path):
    lines = out.strip().splitlines()
    assert "Finished Training" in lines
    assert any(line.startswith("GroundTruth: ") for line in lines)
    assert any(line.startswith("Predicted: ") for line in lines)
    assert re.search(r"Accuracy of the network on the 24 test images: \d+ %", out)
    per_class = [line for line in lines if line.startswith("Accuracy for class: ")]
    assert len(per_class) == 10
    assert lines[-1] == "cpu"
    assert list(minidl.load(tmp_path / "cifar_net.pth")) == NET_KEYS[CIFAR]


def test_cifar_style_script_runs_on_minidl(tmp_path):
    """With the tutorial's num_workers=2 (minidl loads in the main process)."""
    out = _run(CIFAR, [*CIFAR_FAST, "--num-workers", "2"], tmp_path, "minidl")
    _check_cifar_output(out, tmp_path)


def test_cifar_style_script_runs_on_torch(torch, tmp_path):
    """Without worker processes, which would only add their start-up time here."""
    _check_cifar_output(_run(CIFAR, [*CIFAR_FAST, "--num-workers", "0"], tmp_path, "torch"),
                        tmp_path)
