"""minidl.save / minidl.load decide by the file's content: .npz from minidl.save under any name,
PyTorch zip checkpoints read without torch and without running code, pickles refused."""

import io
import os
import pickle
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn


def _model(dtype=np.float32):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    model(minidl.tensor(np.ones((2, 1, 4, 4), np.float32)))  # moves BatchNorm's buffers
    return model.to(dtype)


@pytest.mark.parametrize("name", ["net.pth", "net.pt", "net.npz", "net", "net.tar"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trips_exactly_under_any_name(tmp_path, name, dtype):
    model = _model(dtype)
    minidl.save(model.state_dict(), tmp_path / name)
    minidl.manual_seed(1)
    fresh = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    fresh.to(dtype)
    assert not np.array_equal(fresh[0].weight.numpy(), model[0].weight.numpy())
    fresh.load_state_dict(minidl.load(tmp_path / name))
    for (key, a), (key2, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert key == key2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert fresh[1].num_batches_tracked.numpy() == 1


def test_save_and_load_file_objects():
    buffer = io.BytesIO()
    minidl.save({"w": np.arange(3.0)}, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(minidl.load(buffer)["w"], [0.0, 1.0, 2.0])


def _torch_values(torch):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6) / 7
    return OrderedDict(
        [
            ("float", torch.randn(3, 4, generator=torch.Generator().manual_seed(0))),
            ("double", base),
            ("view_with_offset", base[1:3, 2:5]),  # shares base's storage, offset 8
            ("transposed", base.t()),
            ("strided", base[:, ::2]),
            ("half", (base * 3).half()),
            ("bfloat16", (base * 5).bfloat16()),
            ("int", torch.tensor([[1, -2], [3, 4]], dtype=torch.int32)),
            ("long", torch.arange(5)),
            ("uint8", torch.tensor([0, 255], dtype=torch.uint8)),
            ("bool", torch.tensor([True, False])),
            ("complex", torch.tensor([1 + 2j, -3j], dtype=torch.complex64)),
            ("scalar", torch.tensor(2.5)),
            ("empty", torch.zeros(0, 3)),
            ("parameter", torch.nn.Parameter(torch.ones(2, 2))),
        ]
    )


def _expected(torch, value):
    if value.dtype == torch.bfloat16:
        return value.float().numpy()
    return value.detach().numpy()


def test_torch_checkpoint_tensors_match_torch_load(torch, tmp_path):
    values = _torch_values(torch)
    torch.save(values, tmp_path / "tensors.pt")
    theirs = torch.load(tmp_path / "tensors.pt", weights_only=True)
    ours = minidl.load(tmp_path / "tensors.pt")
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        expected = _expected(torch, value)
        assert isinstance(ours[key], np.ndarray), key
        assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)


def test_torch_checkpoint_nested_and_named_anything(torch, tmp_path):
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    reference(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    checkpoint = {
        "model": reference.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "history": [0.5, 0.25],
        "shape": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "tags": {"a", "b"},
    }
    path = tmp_path / "checkpoint.npz"  # the name says npz, the content is torch's
    torch.save(checkpoint, path)
    ours = minidl.load(path)
    assert ours["epoch"] == 3 and ours["history"] == [0.5, 0.25]
    assert ours["shape"] == (2, 3) and ours["tags"] == {"a", "b"}
    assert ours["device"] == minidl.device("cpu")
    assert isinstance(ours["model"], OrderedDict)
    assert list(ours["model"]) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(ours["model"][key], value.numpy())
    state = ours["optimizer"]["state"][0]
    np.testing.assert_array_equal(state["exp_avg"], optimizer.state[reference[0].weight]["exp_avg"])
    assert ours["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert ours["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_torch_checkpoint_loads_into_a_model_without_torch(torch, tmp_path, monkeypatch):
    reference = torch.nn.Linear(5, 2)
    torch.save(reference.state_dict(), tmp_path / "linear.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError):
        import torch as _  # noqa: F401
    layer = nn.Linear(5, 2)
    layer.load_state_dict(minidl.load(tmp_path / "linear.pth"))
    monkeypatch.undo()
    np.testing.assert_array_equal(layer.weight.numpy(), reference.weight.detach().numpy())
    np.testing.assert_array_equal(layer.bias.numpy(), reference.bias.detach().numpy())


class _Remove:
    """Unpickling this would delete ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.remove, (self.path,))


def _torch_style_zip(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/version", "3\n")


def test_code_in_a_checkpoint_is_never_run(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    _torch_style_zip(tmp_path / "evil.pth", {"weight": _Remove(str(victim))})
    with pytest.raises(ValueError, match=r"names posix\.remove|names nt\.remove"):
        minidl.load(tmp_path / "evil.pth")
    assert victim.read_text() == "still here"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"w": _Remove(str(victim))}))
    with pytest.raises(ValueError, match="is a pickle"):
        minidl.load(tmp_path / "evil.pkl")
    assert victim.exists()


def test_plain_pickles_and_legacy_torch_files_are_refused(torch, tmp_path):
    (tmp_path / "weights.pth").write_bytes(pickle.dumps({"w": np.ones(2)}))
    with pytest.raises(ValueError, match="minidl never unpickles"):
        minidl.load(tmp_path / "weights.pth")
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy"):
        minidl.load(tmp_path / "old.pt")


def test_other_files_name_what_they_are(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="neither an .npz file nor a PyTorch checkpoint"):
        minidl.load(tmp_path / "junk.pth")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"zip archive but neither.*readme\.txt"):
        minidl.load(tmp_path / "other.zip")
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):
        minidl.load(tmp_path / "objects.npz")
    with zipfile.ZipFile(tmp_path / "nodata.pth", "w") as archive:
        archive.writestr(
            "archive/data.pkl",
            pickle.dumps({"w": np.ones(1)}, protocol=2),  # names numpy globals
        )
    with pytest.raises(ValueError, match="numpy"):
        minidl.load(tmp_path / "nodata.pth")


def test_a_torch_checkpoint_missing_a_storage(torch, tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "full.pt")
    with zipfile.ZipFile(tmp_path / "full.pt") as source, zipfile.ZipFile(
        tmp_path / "broken.pt", "w"
    ) as target:
        for item in source.infolist():
            if not item.filename.endswith("/data/0"):
                target.writestr(item, source.read(item))
    with pytest.raises(ValueError, match=r"has no entry 'full/data/0'"):
        minidl.load(tmp_path / "broken.pt")


def test_torch_load_keywords_are_accepted(tmp_path):
    minidl.save({"w": np.ones(2)}, tmp_path / "w.pth")
    for kwargs in [dict(weights_only=True), dict(map_location="cpu"), dict(weights_only=False),
                   dict(map_location=minidl.device("cpu"), mmap=True),
                   dict(map_location={"cuda:0": "cpu"})]:
        np.testing.assert_array_equal(minidl.load(tmp_path / "w.pth", **kwargs)["w"], [1, 1])
    with pytest.raises(RuntimeError, match="CPU only"):
        minidl.load(tmp_path / "w.pth", map_location="cuda:0")
    with pytest.raises(TypeError, match="never unpickles"):
        minidl.load(tmp_path / "w.pth", pickle_module=pickle)
