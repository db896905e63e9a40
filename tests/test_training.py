"""End-to-end training: LeNet-5 against PyTorch, flat memory, a smoke run, the examples."""

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import nn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytest.importorskip("sklearn", reason="the digits data comes with scikit-learn (test extra)")


def lenet5_minidl() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def lenet5_torch(torch):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10),
    )


def digits_28x28(split: str):
    """The real 8x8 digits, upsampled 3x and padded to LeNet's 28x28."""
    images, labels = minidl.data.digits(split)
    big = np.kron(images, np.ones((1, 1, 3, 3), np.float32))
    return np.pad(big, ((0, 0), (0, 0), (2, 2), (2, 2))), labels


def test_lenet5_loss_curve_equals_torch_over_20_sgd_steps(torch):
    images, labels = digits_28x28("train")
    theirs = lenet5_torch(torch)
    ours = lenet5_minidl()
    ours.load_state_dict(theirs.state_dict())  # real torch tensors, copied weights
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    m_opt = minidl.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
    loader = minidl.data.DataLoader((images, labels), batch_size=64, shuffle=True, seed=0)
    our_losses, their_losses = [], []
    for step, (x, y) in enumerate(loader):
        if step == 20:
            break
        loss = nn.functional.cross_entropy(ours(x), y)
        m_opt.zero_grad()
        loss.backward()
        m_opt.step()
        our_losses.append(loss.item())
        t_loss = torch.nn.functional.cross_entropy(
            theirs(torch.tensor(x.numpy())), torch.tensor(y.numpy()))
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        their_losses.append(t_loss.item())
    assert len(our_losses) == 20
    assert their_losses[-1] < their_losses[0]  # the comparison is over a curve that moves
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-4, atol=1e-4)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-3, atol=1e-4,
                                   err_msg=name)


def test_memory_stays_flat_over_a_long_training_loop():
    """The graph is released every step: no growth between step 50 and step 400."""
    minidl.manual_seed(0)
    images, labels = minidl.data.digits("train")
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = minidl.tensor(images[:32]), minidl.tensor(labels[:32])

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    tracemalloc.start()
    try:
        for _ in range(50):
            step()
        warm, _ = tracemalloc.get_traced_memory()
        for _ in range(350):
            step()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - warm < 200_000, f"memory grew by {after - warm} bytes over 350 steps"


def test_one_epoch_smoke_run_learns():
    minidl.manual_seed(1)
    images, labels = minidl.data.digits("train")
    test_images, test_labels = minidl.data.digits("test")
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(72, 10))
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for x, y in minidl.data.DataLoader((images, labels), batch_size=32, shuffle=True):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    quarter = len(losses) // 4
    assert np.mean(losses[-quarter:]) < 0.5 * np.mean(losses[:quarter])
    with minidl.no_grad():
        accuracy = (model(minidl.tensor(test_images)).numpy().argmax(1) == test_labels).mean()
    assert accuracy > 0.5, f"accuracy {accuracy} after one epoch (chance is 0.1)"


@pytest.fixture
def examples_on_path(monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield
    for name in ("train_digits", "profile_switch", "digits_cnn"):
        sys.modules.pop(name, None)


def test_main_example_runs_and_saves_checkpoint_and_plot(tmp_path, examples_on_path, capsys):
    import train_digits

    accuracy = train_digits.main(["--epochs", "1", "--out", str(tmp_path)])
    assert "test accuracy: " in capsys.readouterr().out
    assert accuracy > 0.5
    assert (tmp_path / "curves.png").stat().st_size > 0
    state = minidl.load(tmp_path / "model.npz")
    model = train_digits.build_cnn("torch")
    model.load_state_dict(state)


@pytest.mark.parametrize("profile", ["megengine", "mindspore", "mindspore-2.1"])
def test_main_example_builds_under_every_profile(profile, examples_on_path):
    from digits_cnn import build_cnn, conv_output_shapes

    model = build_cnn(profile)
    shapes = conv_output_shapes(model)
    expected = [(32, 8, 8), (64, 8, 8)] if profile.startswith("mindspore") else [
        (32, 6, 6), (64, 4, 4)]
    assert shapes == expected


def test_profile_switch_experiment_runs(tmp_path, examples_on_path, capsys):
    import profile_switch

    results = profile_switch.main(["--seeds", "1", "--epochs", "1", "--out", str(tmp_path)])
    profiles = {"torch", "megengine", "mindspore", "mindspore-2.1"}
    assert set(results["convs"]) == set(results["all layers"]) == profiles
    out = capsys.readouterr().out
    assert "| mindspore |" in out and (tmp_path / "profile_switch.png").exists()
    blocks = {profile: runs[0] for profile, runs in results["all layers"].items()}
    # MindSpore: 'same' convs, MaxPool2d(2) at stride 1, Dropout(0.25) = keep_prob 0.25
    assert blocks["mindspore"]["sizes"] == [(7, 7), (6, 6)]
    assert blocks["torch"]["sizes"] == blocks["megengine"]["sizes"] == [(3, 3), (1, 1)]
    assert blocks["mindspore"]["dropout p"] == 0.75 and blocks["megengine"]["dropout p"] == 0.25
    assert {round(run["bn momentum"], 12) for run in blocks.values()} == {0.1}
    assert blocks["mindspore"]["dense std"] < 0.02 < blocks["mindspore-2.1"]["dense std"]
