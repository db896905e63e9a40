"""DataLoader, datasets, the bundled digits and IDX files."""

import collections
import gzip
import struct
import sys

import numpy as np
import pytest

import minidl
from minidl.data import DataLoader, Dataset, TensorDataset, default_collate, digits, idx


def _arrays(n=10):
    x = np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)
    y = np.arange(n, dtype=np.int64)
    return x, y


# ---- DataLoader --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n,batch,drop_last,sizes",
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (9, 3, True, [3, 3, 3]),
        (2, 5, False, [2]),
        (2, 5, True, []),
        (0, 4, False, []),
    ],
)
def test_batch_shapes_and_count(n, batch, drop_last, sizes):
    x, y = _arrays(n)
    loader = DataLoader((x, y), batch_size=batch, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [xb.shape for xb, _ in batches] == [(s, 2, 3) for s in sizes]
    assert [yb.shape for _, yb in batches] == [(s,) for s in sizes]
    for xb, yb in batches:
        assert isinstance(xb, minidl.Tensor) and isinstance(yb, minidl.Tensor)
        assert xb.dtype == np.float32 and yb.dtype == np.int64
    if sizes:
        seen = np.concatenate([yb.numpy() for _, yb in batches])
        np.testing.assert_array_equal(seen, np.arange(sum(sizes)))  # in order without shuffle


def test_single_array_and_tensor_dataset():
    x, y = _arrays(7)
    batches = list(DataLoader(x, batch_size=4))
    assert [type(b) for b in batches] == [minidl.Tensor, minidl.Tensor]
    np.testing.assert_array_equal(batches[1].numpy(), x[4:])
    ds = TensorDataset(x, minidl.tensor(y))
    assert len(ds) == 7
    xi, yi = ds[2]  # Tensors, as torch's TensorDataset gives
    assert isinstance(xi, minidl.Tensor) and isinstance(yi, minidl.Tensor)
    np.testing.assert_array_equal(xi.numpy(), x[2])
    assert yi.shape == () and yi.item() == 2
    (xb, yb), _ = list(DataLoader(ds, batch_size=4))
    np.testing.assert_array_equal(xb.numpy(), x[:4])
    np.testing.assert_array_equal(yb.numpy(), y[:4])


class _Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "y": i * i}


class _Pairs(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_generic_dataset_is_collated():
    batches = list(DataLoader(_Squares(5), batch_size=2))
    assert len(batches) == 3
    np.testing.assert_array_equal(batches[1]["x"].numpy(), [[2, 2], [3, 3]])
    np.testing.assert_array_equal(batches[1]["y"].numpy(), [4, 9])
    assert batches[1]["y"].dtype == np.int64
    assert batches[2]["x"].shape == (1, 2)
    x, y = _arrays(9)
    fast = list(DataLoader((x, y), batch_size=4, shuffle=True, seed=3))
    slow = list(DataLoader(_Pairs(x, y), batch_size=4, shuffle=True, seed=3))
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):  # the same order either way
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
    samples = [(np.ones(2, np.float32), 1.5), (np.zeros(2, np.float32), 2.5)]
    xb, fb = default_collate(samples)
    assert xb.shape == (2, 2) and fb.dtype == np.float64  # Python floats, as torch
    assert list(DataLoader([1, 2, 3], batch_size=2))[0].numpy().tolist() == [1, 2]


def _epoch_labels(loader):
    return np.concatenate([yb.numpy() for _, yb in loader])


def test_shuffle_is_a_permutation_and_repeats_with_the_seed():
    x, y = _arrays(100)
    loader = DataLoader((x, y), batch_size=16, shuffle=True, seed=7)
    first, second = _epoch_labels(loader), _epoch_labels(loader)
    np.testing.assert_array_equal(np.sort(first), y)
    assert not np.array_equal(first, y)
    assert not np.array_equal(first, second)  # a new order every epoch
    again = DataLoader((x, y), batch_size=16, shuffle=True, seed=7)
    np.testing.assert_array_equal(_epoch_labels(again), first)
    np.testing.assert_array_equal(_epoch_labels(again), second)
    other = DataLoader((x, y), batch_size=16, shuffle=True, seed=8)
    assert not np.array_equal(_epoch_labels(other), first)
    for xb, yb in DataLoader((x, y), batch_size=16, shuffle=True, seed=7):
        np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])  # rows stay paired


def test_shuffle_without_seed_follows_manual_seed():
    x, y = _arrays(50)
    loader = DataLoader((x, y), batch_size=8, shuffle=True, drop_last=True)
    minidl.manual_seed(123)
    a = _epoch_labels(loader)
    b = _epoch_labels(loader)
    minidl.manual_seed(123)
    np.testing.assert_array_equal(_epoch_labels(loader), a)
    np.testing.assert_array_equal(_epoch_labels(loader), b)
    assert len(a) == 48 and len(set(a.tolist())) == 48 and not np.array_equal(a, b)


def test_loader_and_dataset_errors():
    x, y = _arrays(5)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, batch_size=0)
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        DataLoader((x, y[:4]))
    with pytest.raises(ValueError, match=r"\[5, 3\]"):
        TensorDataset(x, y[:3])
    with pytest.raises(TypeError, match="DataLoader needs"):
        DataLoader(42)
    with pytest.raises(NotImplementedError, match="implement __getitem__"):
        Dataset()[0]  # as torch's: the base class can be built, not indexed

    class NoLen(Dataset):
        def __getitem__(self, i):
            return i

    with pytest.raises(TypeError):
        len(NoLen())


# ---- digits ------------------------------------------------------------------------------------
def test_digits_shapes_ranges_and_split():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x_train, y_train = digits("train", normalize=False)
    x_test, y_test = digits("test", normalize=False)
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert len(x_train) + len(x_test) == 1797
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    both = np.concatenate([x_train, x_test])
    assert both.min() == 0.0 and both.max() == 1.0
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))
    # stratified: every class keeps ~20% of its images in the test split
    counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.2 * counts) <= 1)
    # disjoint and covering: the two splits together are exactly the 1797 images
    bunch = sklearn_datasets.load_digits()
    full = collections.Counter(
        (row.tobytes(), int(t))
        for row, t in zip((bunch.data / 16).astype(np.float32), bunch.target, strict=True)
    )
    ours = collections.Counter(
        (row.tobytes(), int(t))
        for row, t in zip(both.reshape(-1, 64), np.concatenate([y_train, y_test]), strict=True)
    )
    assert ours == full


def test_digits_split_is_stable_and_seeded():
    pytest.importorskip("sklearn")
    a, la = digits("test", seed=0)
    b, lb = digits("test", seed=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    a[0] = 99.0  # callers get copies
    assert digits("test", seed=0)[0][0, 0, 0, 0] != 99.0
    c, lc = digits("test", seed=1)
    assert c.shape == a.shape and not np.array_equal(lc, la)
    x, _ = digits("train", test_size=0.5)
    assert len(x) == 898 and len(digits("test", test_size=0.5)[0]) == 899


def test_digits_normalization_uses_training_statistics():
    pytest.importorskip("sklearn")
    x_train, _ = digits("train")
    raw_train, _ = digits("train", normalize=False)
    raw_test, _ = digits("test", normalize=False)
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1) < 1e-5
    mean, std = raw_train.astype(np.float64).mean(), raw_train.astype(np.float64).std()
    np.testing.assert_allclose(digits("test")[0], (raw_test - mean) / std, rtol=1e-5, atol=1e-6)
    assert x_train.dtype == np.float32


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        digits("valid")
    with pytest.raises(ValueError, match="test_size"):
        digits(test_size=1.5)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    from minidl import data

    data._load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match=r'pip install "minidl\[examples\]"'):
            digits()
    finally:
        data._load_digits.cache_clear()


# ---- IDX ---------------------------------------------------------------------------------------
_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def _idx_bytes(array):
    header = bytes([0, 0, _CODES[array.dtype.type], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_idx_round_trip_mnist_style(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images))
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(labels))
    got_images = idx(tmp_path / "train-images-idx3-ubyte")
    got_labels = idx(str(tmp_path / "train-labels-idx1-ubyte.gz"))
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] = 1  # a writable array of its own


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_other_types(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 12).astype(dtype)
    path = tmp_path / "a.idx.gz"
    path.write_bytes(gzip.compress(_idx_bytes(array)))
    got = idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic number 0x01000801"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 3) + bytes(5), r"\(2, 3\).*truncated"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + bytes(9), "need 8 bytes.*trailing"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
def test_idx_bad_files_raise(tmp_path, content, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        idx(path)
