"""The bundled digits and IDX files; the DataLoader and datasets of ``minidl.utils.data``.

* :class:`Dataset`, :class:`TensorDataset`, :class:`DataLoader`, :func:`default_collate` -
  the same objects as in :mod:`minidl.utils.data` (PyTorch's ``torch.utils.data``): a
  DataLoader takes any dataset, a numpy array, or (minidl's shortcut) a tuple of equally long
  arrays, and cuts the batches of array data with one fancy index.
* :func:`digits` - scikit-learn's 8x8 handwritten digits (real data, bundled, no download)
  with a fixed seeded stratified train/test split.
* :func:`idx` - read an MNIST-format IDX file (plain or gzip) that the user already has.

Nothing here downloads anything.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import zlib

import numpy as np

from .utils.data import DataLoader, Dataset, TensorDataset, default_collate

__all__ = ["DataLoader", "Dataset", "TensorDataset", "default_collate", "digits", "idx"]


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
