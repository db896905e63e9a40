"""Safetensors checkpoints: minidl.save writes files the real ``safetensors`` package reads, and
minidl.load reads the package's files, exactly, in every profile's naming; files that are not
safetensors, or carry code, are refused."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
from extras import import_extra

import minidl
from minidl import nn

PROFILES = ("torch", "megengine", "mindspore", "mindspore-2.1")


@pytest.fixture(scope="module")
def st_numpy():
    import_extra("safetensors")
    return import_extra("safetensors.numpy")


def model(profile: str) -> nn.Sequential:
    minidl.manual_seed(0)
    with minidl.use_profile(profile):  # the layers whose parameters each framework lays out
        first, norm = nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4)
        if profile in ("torch", "megengine"):
            second = nn.Conv2d(4, 4, 3, 1, groups=2)
        else:
            second = nn.Conv2d(4, 4, 3, 1, group=2, has_bias=True)
        head = nn.Linear(4 * 2 * 2, 3)
    return nn.Sequential(first, norm, nn.ReLU(), second, nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         head)


def assert_same(loaded, expected) -> None:
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        assert np.array_equal(loaded[key], value), key


@pytest.mark.parametrize("layout", PROFILES)
@pytest.mark.parametrize("built", PROFILES)
def test_round_trip_in_any_profile_layout(st_numpy, built, layout, tmp_path):
    net = model(built)
    net(minidl.randn(2, 3, 16, 16))  # running statistics away from their start
    state = net.state_dict(profile=layout)
    path = tmp_path / "model.safetensors"
    minidl.save(state, path)
    assert_same(minidl.load(path), state)  # exact, in order
    read = st_numpy.load_file(str(path))  # the real package reads it
    assert sorted(read) == sorted(state)
    for key, value in state.items():
        assert np.array_equal(read[key], value) and read[key].dtype == np.asarray(value).dtype
    other = model(built)
    other.load_state_dict(minidl.load(path), profile=layout)
    assert_same(other.state_dict(profile=layout), state)


def test_files_of_the_safetensors_package_load(st_numpy, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((3, 2)), "f32": rng.standard_normal(5).astype(np.float32),
        "f16": rng.standard_normal((2, 2)).astype(np.float16), "i64": np.arange(6).reshape(2, 3),
        "i8": np.array([-3, 4], np.int8), "u8": np.array([1, 255], np.uint8),
        "flag": np.array([True, False]), "scalar": np.array(7, np.int64),
        "empty": np.zeros((0, 3), np.float32),
    }
    path = tmp_path / "other.safetensors"
    st_numpy.save_file(arrays, str(path), metadata={"format": "np"})
    loaded = minidl.load(path)
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value), key


def test_bfloat16_reads_as_float32(torch, tmp_path):
    import_extra("safetensors")
    from safetensors.torch import save_file

    values = torch.tensor([1.5, -2.25, 3.0e5, 1e-3], dtype=torch.bfloat16)
    save_file({"w": values}, str(tmp_path / "bf16.safetensors"))
    loaded = minidl.load(tmp_path / "bf16.safetensors")["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.float().numpy())


def test_format_by_name_or_argument(st_numpy, tmp_path):
    state = {"w": np.arange(4.0)}
    minidl.save(state, tmp_path / "a.npz")
    minidl.save(state, tmp_path / "b.bin", format="safetensors")
    buffer = io.BytesIO()
    minidl.save(state, buffer, format="safetensors")
    assert (tmp_path / "a.npz").read_bytes()[:2] == b"PK"
    assert st_numpy.load(buffer.getvalue())["w"].tolist() == [0, 1, 2, 3]
    assert minidl.load(tmp_path / "b.bin")["w"].tolist() == [0, 1, 2, 3]  # by content
    with pytest.raises(ValueError, match="format must be one of"):
        minidl.save(state, tmp_path / "c", format="pickle")


def test_what_safetensors_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="complex128.*cannot hold"):
        minidl.save({"z": np.ones(2, complex)}, tmp_path / "z.safetensors")
    with pytest.raises(ValueError, match="reserves the name '__metadata__'"):
        minidl.save({"__metadata__": np.ones(2)}, tmp_path / "m.safetensors")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_carrying_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": RunsCode()}, protocol=4))
    with pytest.raises(ValueError, match="is a pickle.*never unpickles"):
        minidl.load(path)
    assert not (tmp_path / "pwned").exists()


def test_a_torch_checkpoint_carrying_code_is_refused(torch, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(2), "hook": RunsCode()}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="never runs code"):
        minidl.load(tmp_path / "model.safetensors")
    assert not (tmp_path / "pwned").exists()


def header(entries: dict, data: bytes = b"", raw: bytes | None = None) -> bytes:
    import json

    text = raw if raw is not None else json.dumps(entries).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize(("content", "why"), [
    (header({}, raw=b"{not json"), "header is not JSON"),
    (header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
     "take 8 bytes but the file holds 4"),
    (header({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
     "needs 12 bytes"),
    (header({"w": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
     "unknown dtype"),
    (header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "code": "x"}},
            b"\0" * 8), "exactly dtype, shape and data_offsets"),
    (header({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\0" * 4),
     "starts at 2"),
    (header({"__metadata__": {"k": 1}}), "must map strings to strings"),
    (header({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}),
     "integers >= 0"),
])
def test_invalid_safetensors_files_are_refused(content, why, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a valid safetensors file") as error:
        minidl.load(path)
    assert why in str(error.value)


def test_neither_format_is_refused(tmp_path):
    path = tmp_path / "text.safetensors"
    path.write_bytes(b"just some text, not a checkpoint")
    with pytest.raises(ValueError, match="neither an .npz file nor a PyTorch checkpoint nor a "
                                         "safetensors file"):
        minidl.load(path)
