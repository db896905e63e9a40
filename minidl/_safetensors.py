"""The safetensors format, written and read with numpy and json alone (no package needed).

A file is: 8 bytes, the header's length ``n`` (unsigned, little-endian); ``n`` bytes of JSON,
``{name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}`` with an
optional ``"__metadata__"`` of strings (padded with spaces to a multiple of 8 bytes); then the
tensors' bytes, little-endian in C order, at offsets counted from the end of the header, one
after another with no gap. Nothing in it is code. Reading checks every part of that.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

METADATA = "__metadata__"
MAX_HEADER = 100_000_000  # the safetensors package's own limit
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
BF16 = "BF16"  # no numpy dtype: read as float32, as minidl reads PyTorch's bfloat16


def dumps(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file holding ``arrays`` in their order."""
    header: dict[str, object] = {}
    if metadata:
        header[METADATA] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, array in arrays.items():
        if name == METADATA:
            raise ValueError(f"safetensors reserves the name {METADATA!r} for its metadata")
        code = CODES.get(array.dtype.newbyteorder("="))
        if code is None:
            raise TypeError(
                f"{name!r} has dtype {array.dtype}, which safetensors cannot hold (it takes "
                f"{', '.join(DTYPES)})"
            )
        data = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def looks_like(raw: bytes) -> bool:
    """A header length that fits the file, then a JSON object: the safetensors layout."""
    if len(raw) < 10:
        return False
    size = int.from_bytes(raw[:8], "little")
    return 2 <= size <= min(len(raw) - 8, MAX_HEADER) and raw[8:9] == b"{"


def loads(raw: bytes, name: str) -> OrderedDict[str, np.ndarray]:
    """The arrays of a safetensors file, in the order of their data; ValueError naming
    ``name`` and the fault for anything that is not a valid file."""
    try:
        return _loads(raw)
    except _Invalid as error:
        raise ValueError(f"minidl.load: {name} is not a valid safetensors file: {error}") from None


class _Invalid(Exception):
    pass


def _loads(raw: bytes) -> OrderedDict[str, np.ndarray]:
    size = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Invalid(f"its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise _Invalid("its header is not a JSON object")
    _check_metadata(header.pop(METADATA, {}))
    data = memoryview(raw)[8 + size:]
    entries = sorted(((_entry(key, value), key) for key, value in header.items()),
                     key=lambda item: item[0][2])
    end = 0
    for (_, _, (begin, stop)), key in entries:
        if begin != end:
            raise _Invalid(f"the data of {key!r} starts at {begin}, not where the previous "
                           f"ends ({end})")
        end = stop
    if end != len(data):
        raise _Invalid(f"the tensors take {end} bytes but the file holds {len(data)} after "
                       "the header")
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for (dtype, shape, (begin, stop)), key in entries:
        arrays[key] = _array(data[begin:stop], dtype, shape)
    return arrays


def _check_metadata(metadata: object) -> None:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _Invalid(f"{METADATA!r} must map strings to strings, got {metadata!r:.80}")


def _entry(key: str, value: object) -> tuple[np.dtype | str, tuple[int, ...], tuple[int, int]]:
    """(dtype, shape, (begin, end)) of one header entry, checked."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise _Invalid(f"the entry {key!r} must hold exactly dtype, shape and data_offsets")
    code, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if code != BF16 and code not in DTYPES:
        raise _Invalid(f"{key!r} has an unknown dtype {code!r}")
    if not _ints(shape) or not _ints(offsets) or len(offsets) != 2:
        raise _Invalid(f"{key!r} needs a shape and two data_offsets of integers >= 0")
    itemsize = 2 if code == BF16 else DTYPES[code].itemsize
    begin, end = offsets
    if end - begin != math.prod(shape) * itemsize:
        raise _Invalid(f"{key!r} of shape {shape} and dtype {code} needs "
                       f"{math.prod(shape) * itemsize} bytes, its offsets give {end - begin}")
    return (BF16 if code == BF16 else DTYPES[code]), tuple(shape), (begin, end)


def _ints(values: object) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    )


def _array(data: memoryview, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == BF16:  # the high half of a float32
        halves = np.frombuffer(data, np.dtype("<u2"))
        return (halves.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    array = np.frombuffer(data, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)
