"""``minidl.save`` / ``minidl.load``: state dicts as ``.npz`` files, and PyTorch files in.

A checkpoint is a flat mapping of names to arrays, in whatever layout it was exported with
(``model.state_dict(profile='megengine')`` writes MegEngine's shapes); pass the same
``profile=`` to ``load_state_dict``. ``save`` always writes ``.npz`` bytes, whatever the file
is called (``net.pth`` included), and ``load`` recognises a file by its content, never by its
name:

* an ``.npz`` archive (a zip of ``.npy`` entries) - what :func:`save` writes;
* a PyTorch checkpoint in the zip format ``torch.save`` writes (since torch 1.6). It is read
  without torch and without running code, as ``torch.load(weights_only=True)`` does: the
  pickled index may only name tensors, storages, ``torch.Size``, ``torch.device`` (read as
  a ``minidl.device``) and plain containers; tensors
  become numpy arrays (bfloat16 as float32), through nested dicts, lists and tuples;
* anything else - a plain pickle, PyTorch's legacy (pre-1.6) format - is refused with a
  ValueError: unpickling arbitrary data can run arbitrary code.

MegEngine state dicts are already name -> numpy, MindSpore parameter dicts convert with
``{k: p.asnumpy() for ...}``; both load directly with ``load_state_dict(sd, profile=...)``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from ._device import cpu_device, device
from .nn.module import Module, _to_numpy

__all__ = ["save", "load"]

PathLike = str | os.PathLike
FileLike = PathLike | IO[bytes]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_PICKLE_PROTOCOL = b"\x80"


def save(obj: Mapping[str, Any], f: FileLike) -> None:
    """Write a mapping of names to arrays (numpy, minidl or torch tensors, numbers) to ``f`` (a
    path or a binary file object) as an uncompressed ``.npz``, exactly at that path (no suffix
    is added: ``save(model.state_dict(), 'net.pth')`` writes ``net.pth``)."""
    if isinstance(obj, Module):
        raise TypeError(
            "minidl.save takes a state dict: save(model.state_dict(), path) (or "
            "state_dict(profile='megengine') for another framework's layout)"
        )
    if not isinstance(obj, Mapping):
        raise TypeError(f"minidl.save takes a mapping of names to arrays, got {type(obj).__name__}")
    arrays = OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"minidl.save: keys must be strings, got {key!r}")
        if isinstance(value, Mapping):
            raise TypeError(
                f"minidl.save: {key!r} holds a nested mapping; save a flat name -> array dict"
            )
        try:
            array = _to_numpy(value)
        except ValueError:  # a ragged nested sequence
            array = np.empty((), object)
        if array.dtype == object:
            raise TypeError(f"minidl.save: {key!r} is not an array or a number: {value!r:.80}")
        arrays[key] = array
    if hasattr(f, "write"):
        np.savez(f, **arrays)
        return
    with open(f, "wb") as file:
        np.savez(file, **arrays)


def load(
    f: FileLike,
    map_location: Any = None,
    pickle_module: Any = None,
    *,
    weights_only: bool | None = None,
    mmap: bool | None = None,
) -> Any:
    """Read a checkpoint, recognised by its content: a file written by :func:`save` (any
    ``.npz``) gives an ``OrderedDict`` name -> numpy; a PyTorch zip checkpoint gives what was
    saved, with every tensor as a numpy array. ``f`` is a path or a binary file object.

    PyTorch's keywords are accepted: ``map_location`` may name the CPU (a string, a device, or
    a dict mapping to the CPU; any other device raises); loading is always weights only,
    whatever ``weights_only`` says, and ``mmap`` changes nothing. ``pickle_module`` is refused:
    minidl never unpickles."""
    _check_map_location(map_location)
    if pickle_module is not None:
        raise TypeError("minidl.load never unpickles, so it takes no pickle_module")
    name, raw = _read(f)
    if raw[:4] in _ZIP_MAGIC:
        return _load_zip(name, raw)
    if raw[:6] == b"\x93NUMPY":
        raise ValueError(
            f"minidl.load: {name} holds one array (.npy), not a mapping of names to arrays; "
            "read it with numpy.load"
        )
    if raw[:1] == _PICKLE_PROTOCOL:
        raise ValueError(
            f"minidl.load: {name} is a pickle, not an .npz file or a PyTorch zip checkpoint. "
            "minidl never unpickles (it can run arbitrary code). A PyTorch file in the legacy "
            "(pre-1.6) format: load it with torch and save it again with torch.save's default "
            "zip format"
        )
    raise ValueError(
        f"minidl.load: {name} is neither an .npz file nor a PyTorch checkpoint (it starts with "
        f"{raw[:8]!r}). MindSpore .ckpt files: load them with mindspore.load_checkpoint and "
        "pass {name: p.asnumpy()}; MegEngine .pkl files: megengine.load, then pass the dict"
    )


def _check_map_location(map_location: Any) -> None:
    if map_location is None:
        return
    if isinstance(map_location, Mapping):
        for target in map_location.values():
            cpu_device(target)
    elif isinstance(map_location, (str, device)):
        cpu_device(map_location)
    else:
        raise TypeError(
            "map_location must be None, a device, a string or a dict of them, got "
            f"{type(map_location).__name__}"
        )


def _read(f: FileLike) -> tuple[str, bytes]:
    if hasattr(f, "read"):
        return repr(getattr(f, "name", "the file object")), f.read()
    with open(f, "rb") as file:
        return repr(os.fspath(f)), file.read()


def _load_zip(name: str, raw: bytes) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as error:
        raise ValueError(f"minidl.load: {name} is a corrupt zip archive ({error})") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if pickles:
            return _TorchArchive(archive, pickles[0].split("/")[0], name).load()
        if all(n.endswith(".npy") for n in names):
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                try:
                    return OrderedDict((key, data[key]) for key in data.files)
                except ValueError as error:  # an object array: it would need pickle
                    raise ValueError(f"minidl.load: {name}: {error}") from None
    raise ValueError(
        f"minidl.load: {name} is a zip archive but neither an .npz file (only .npy entries) "
        f"nor a PyTorch checkpoint (a folder holding data.pkl); it holds {names[:5]}"
    )


# ---- PyTorch's zip format, read without torch -----------------------------------------------
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",  # no numpy dtype: widened to float32
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class _StorageType:
    """Stands for ``torch.<X>Storage`` in the pickle: only its element type matters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: np.ndarray, offset: int, size: Any, stride: Any, *_: Any):
    """``torch._utils._rebuild_tensor_v2``: a strided view of the storage, copied out."""
    size, stride = tuple(size), tuple(stride)
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if offset < 0 or last >= storage.size or any(s < 0 for s in stride):
        raise ValueError(
            f"tensor of size {size} and stride {stride} at offset {offset} does not fit its "
            f"storage of {storage.size} elements"
        )
    if not size:
        return np.array(storage[offset])
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool, *_: Any) -> np.ndarray:
    return data


def _size(values: Any = ()) -> tuple[int, ...]:
    return tuple(values)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("builtins", "set"): set,
    ("builtins", "complex"): complex,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): _size,
    ("torch", "device"): device,
}


class _TorchUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; storages come from the archive."""

    def __init__(self, data: bytes, archive: _TorchArchive) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 spells builtins as in Python 2
            module = "builtins"
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"the checkpoint names {module}.{name}, which is not a tensor, a storage or a "
            "plain container; minidl loads weights only and never runs code from a file"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r}")
        return self._archive.storage(str(key), storage_type.dtype, int(numel))


class _TorchArchive:
    def __init__(self, archive: zipfile.ZipFile, prefix: str, name: str) -> None:
        self.archive, self.prefix, self.name = archive, prefix, name
        self.cache: dict[str, np.ndarray] = {}
        byteorder = self._entry("byteorder", b"little").decode().strip()
        if byteorder not in ("little", "big"):
            raise ValueError(f"minidl.load: {name}: unknown byte order {byteorder!r}")
        self.order = "<" if byteorder == "little" else ">"

    def _entry(self, entry: str, default: bytes | None = None) -> bytes:
        path = f"{self.prefix}/{entry}"
        if default is not None and path not in self.archive.namelist():
            return default
        try:
            return self.archive.read(path)
        except KeyError:
            raise ValueError(f"minidl.load: {self.name} has no entry {path!r}") from None

    def storage(self, key: str, dtype: Any, numel: int) -> np.ndarray:
        if key not in self.cache:
            raw = self._entry(f"data/{key}")
            if isinstance(dtype, str):  # bfloat16: the high half of a float32
                halves = np.frombuffer(raw, np.dtype(self.order + "u2"), count=numel)
                array = (halves.astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, np.dtype(dtype).newbyteorder(self.order), count=numel)
                array = array.astype(np.dtype(dtype).newbyteorder("="))
            self.cache[key] = array
        return self.cache[key]

    def load(self) -> Any:
        try:
            return _TorchUnpickler(self._entry("data.pkl"), self).load()
        except (pickle.UnpicklingError, ValueError, EOFError, TypeError) as error:
            raise ValueError(f"minidl.load: {self.name}: {error}") from None
