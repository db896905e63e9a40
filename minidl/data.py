"""Datasets and a batching DataLoader over numpy arrays; the bundled digits; IDX files.

* :class:`Dataset` - the abstract ``__getitem__``/``__len__`` interface; :class:`TensorDataset`
  wraps equally long arrays.
* :class:`DataLoader` - batches (as minidl Tensors) from an array, a tuple of arrays, a
  :class:`TensorDataset` (fancy-indexed, no per-sample Python loop) or any dataset.
* :func:`digits` - scikit-learn's 8x8 handwritten digits (real data, bundled, no download)
  with a fixed seeded stratified train/test split.
* :func:`idx` - read an MNIST-format IDX file (plain or gzip) that the user already has.

Nothing here downloads anything.
"""

from __future__ import annotations

import abc
import functools
import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .random import generator
from .tensor import Tensor

__all__ = ["DataLoader", "Dataset", "TensorDataset", "default_collate", "digits", "idx"]


# ---- datasets ------------------------------------------------------------------------------
class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` the i-th (any structure of arrays
    and numbers, collated by :func:`default_collate`)."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Any: ...

    @abc.abstractmethod
    def __len__(self) -> int: ...


def _array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a first (sample) dimension, got a scalar")
    return array


class TensorDataset(Dataset):
    """Samples are rows of equally long arrays: ``ds[i] == (a[i], b[i], ...)`` (numpy).

    Accepts numpy arrays, minidl Tensors or anything ``np.asarray`` takes."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_array(a, f"array {i}") for i, a in enumerate(arrays))
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset arrays differ in length (first dimension): {lengths}")

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into a batch: arrays, numbers and Tensors become one Tensor
    (a new leading batch dimension), tuples/lists and dicts are collated field by field,
    anything else is returned as a list."""
    if len(samples) == 0:
        raise ValueError("default_collate needs at least one sample")
    first = samples[0]
    if isinstance(first, Tensor):
        return Tensor(_stack([s.data for s in samples]))
    if isinstance(first, (np.ndarray, np.generic, int, float, bool)):
        return Tensor(_stack([np.asarray(s) for s in samples]))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("each sample in a batch must have the same number of fields")
        return tuple(default_collate(list(field)) for field in zip(*samples, strict=True))
    return list(samples)


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"default_collate: the samples of a batch must have one shape to be stacked, got "
            f"shapes {sorted(shapes)}"
        )
    return np.stack(arrays)


def _check_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return seed


# ---- loader ----------------------------------------------------------------------------------
class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``, yielding minidl Tensors.

    ``dataset`` may be:

    * a numpy array (or a Tensor): each batch is one Tensor;
    * a tuple of equally long arrays, or a :class:`TensorDataset`: each batch is a tuple of
      Tensors. Both are batched by fancy indexing (no per-sample loop);
    * any other object with ``__getitem__`` and ``__len__`` (a :class:`Dataset`, a list of
      samples): samples are fetched one by one and combined by ``collate_fn``
      (:func:`default_collate`).

    With ``shuffle=True`` every epoch visits a new random permutation, drawn from a generator
    seeded with ``seed`` (created once, so a new loader with the same seed repeats the same
    sequence of epochs), or, without ``seed``, from minidl's generator at the start of the
    epoch (so ``minidl.manual_seed`` makes it repeat). ``drop_last`` drops a final short batch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        collate_fn: Any = None,
    ) -> None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or (batch_size <= 0)
        ):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _check_seed(seed)
        self.collate_fn = collate_fn or default_collate
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._arrays, self._single = self._fast_arrays(dataset)
        if self._arrays is None and not (
            hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
        ):
            raise TypeError(
                "DataLoader needs an array, a tuple of arrays or a dataset with __getitem__ "
                f"and __len__, got {type(dataset).__name__}"
            )
        self._n = len(self._arrays[0]) if self._arrays is not None else len(dataset)

    @staticmethod
    def _fast_arrays(dataset: Any) -> tuple[tuple[np.ndarray, ...] | None, bool]:
        if isinstance(dataset, (np.ndarray, Tensor)):
            return (_array(dataset, "dataset"),), True
        if isinstance(dataset, TensorDataset):
            return dataset.arrays, False
        if isinstance(dataset, tuple):
            if not dataset:
                raise ValueError("DataLoader got an empty tuple of arrays")
            arrays = tuple(_array(a, f"array {i}") for i, a in enumerate(dataset))
            lengths = [len(a) for a in arrays]
            if len(set(lengths)) != 1:
                raise ValueError(f"DataLoader arrays differ in length (first dimension): {lengths}")
            return arrays, False
        return None, False

    def __len__(self) -> int:
        if self.drop_last:
            return self._n // self.batch_size
        return math.ceil(self._n / self.batch_size)

    def _order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        rng = self._rng if self._rng is not None else generator()
        return rng.permutation(self._n)

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        stop = len(self) * self.batch_size if self.drop_last else self._n
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, self._n)
            index = slice(start, end) if order is None else order[start:end]
            if self._arrays is not None:
                batch = tuple(Tensor(a[index]) for a in self._arrays)
                yield batch[0] if self._single else batch
            else:
                positions = range(start, end) if order is None else order[start:end].tolist()
                yield self.collate_fn([self.dataset[i] for i in positions])

    def __repr__(self) -> str:
        return (
            f"DataLoader(samples={self._n}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )


# ---- the digits ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "minidl.data.digits() reads the digits bundled with scikit-learn, which is not "
            'installed: pip install "minidl[examples]"'
        ) from error
    bunch = load_digits()
    images = (bunch.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=8)
def _stratified_split(labels_key: bytes, test_size: float, seed: int) -> tuple[np.ndarray, ...]:
    labels = np.frombuffer(labels_key, dtype=np.int64)
    n = len(labels)
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves an empty train or test split of {n}")
    classes, counts = np.unique(labels, return_counts=True)
    # allocate the test samples to classes in proportion (largest remainder), then draw each
    # class's share with one seeded generator
    exact = counts * (n_test / n)
    share = np.floor(exact).astype(np.int64)
    extra = np.argsort(-(exact - share), kind="stable")[: n_test - int(share.sum())]
    share[extra] += 1
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [
            rng.permutation(np.flatnonzero(labels == c))[:k]
            for c, k in zip(classes, share, strict=True)
        ]
    )
    test = np.sort(test)
    train = np.setdiff1d(np.arange(n), test)
    return train, test


def digits(
    split: str = "train", test_size: float = 0.2, seed: int = 0, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 handwritten digits bundled with scikit-learn (``load_digits``), as
    ``(images, labels)``: images float32 of shape (N, 1, 8, 8), pixel / 16 in [0, 1], labels
    int64 in 0..9.

    The train/test split is stratified by label and fixed by ``seed`` (``ceil(test_size * N)``
    test images: 360 and 1437 train by default), independent of scikit-learn's version. With
    ``normalize`` the images are standardised by the mean and standard deviation of the
    *training* split's pixels (one scalar each), so both splits share the same transform.
    Needs scikit-learn (``pip install "minidl[examples]"``)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (float, int))
        or not (0.0 < test_size < 1.0)
    ):
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if _check_seed(seed) is None:
        raise TypeError("seed must be an int, got None")
    images, labels = _load_digits()
    train, test = _stratified_split(labels.tobytes(), float(test_size), int(seed))
    chosen = train if split == "train" else test
    x, y = images[chosen], labels[chosen].copy()
    if normalize:
        pixels = images[train].astype(np.float64)
        mean, std = pixels.mean(), pixels.std()
        x = ((x - mean) / std).astype(np.float32)
    return x, y


# ---- IDX files -------------------------------------------------------------------------------
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed, into a numpy array.

    The header is two zero bytes, a data-type code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each dimension as
    a big-endian uint32; the data follow, big-endian, row-major. Raises ValueError for a bad
    magic number, an unknown type, or data whose size does not match the dimensions."""
    with open(path, "rb") as f:
        raw = f.read()
    name = os.fspath(path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{name}: corrupt gzip data ({error})") from error
    if len(raw) < 4:
        raise ValueError(f"{name}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{name}: bad IDX magic number 0x{magic:08x} (an IDX file starts with two zero "
            "bytes, then the type code and the number of dimensions)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(
            f"{name}: unknown IDX data type code 0x{code:02x} in magic number 0x{magic:08x} "
            "(known: 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"
        )
    if ndim == 0:
        raise ValueError(f"{name}: IDX magic number 0x{magic:08x} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    count = math.prod(dims)
    expected, actual = count * dtype.itemsize, len(raw) - header
    if actual != expected:
        raise ValueError(
            f"{name}: IDX dimensions {dims} of {dtype.itemsize}-byte values need {expected} "
            f"bytes of data, the file has {actual}"
            + (" (truncated)" if actual < expected else " (trailing bytes)")
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))
