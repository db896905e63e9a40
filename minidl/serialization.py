"""``minidl.save`` / ``minidl.load``: state dicts as ``.npz`` files, and PyTorch files in.

A checkpoint is a flat mapping of names to arrays, in whatever layout it was exported with
(``model.state_dict(profile='megengine')`` writes MegEngine's shapes); pass the same
``profile=`` to ``load_state_dict``. ``load`` also reads a PyTorch ``.pt``/``.pth`` file
when torch is installed (tensors become numpy arrays). MegEngine state dicts are already
name -> numpy, MindSpore parameter dicts convert with ``{k: p.asnumpy() for ...}``; both load
directly with ``load_state_dict(sd, profile=...)``.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .nn.module import Module, _to_numpy

__all__ = ["save", "load"]

PathLike = str | os.PathLike
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".tar")


def save(obj: Mapping[str, Any], path: PathLike) -> None:
    """Write a mapping of names to arrays (numpy, minidl or torch tensors, numbers) to
    ``path`` as an uncompressed ``.npz``, exactly at ``path`` (no suffix is added)."""
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
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load(path: PathLike) -> OrderedDict[str, np.ndarray]:
    """Read a file written by :func:`save` (or any ``.npz``), or a PyTorch checkpoint
    (``.pt``, ``.pth``: needs torch; loaded with ``weights_only=True``), as name -> numpy."""
    path = os.fspath(path)
    if path.endswith(TORCH_SUFFIXES) or _is_torch_zip(path):
        return _load_torch(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # as open() and torch.load report them
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"minidl.load: {path!r} is neither an .npz file nor a PyTorch checkpoint ({error}). "
            "MindSpore .ckpt files: load them with mindspore.load_checkpoint and pass "
            "{name: p.asnumpy()}; MegEngine .pkl files: megengine.load, then pass the dict"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"minidl.load: {path!r} holds one array (.npy), not a mapping of names to arrays; "
            "read it with numpy.load"
        )
    with data:
        return OrderedDict((key, data[key]) for key in data.files)


def _is_torch_zip(path: str) -> bool:
    """PyTorch's zip format: one top-level folder holding ``data.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def _load_torch(path: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"minidl.load: {path!r} is a PyTorch checkpoint; reading it needs torch "
            "(pip install torch), or save it as .npz: "
            "numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()})"
        ) from None
    return _numpy_tree(torch.load(path, map_location="cpu", weights_only=True))


def _numpy_tree(value: Any) -> Any:
    """torch tensors -> numpy, through dicts, lists and tuples (a checkpoint may nest the
    state dict, e.g. ``{'model': ..., 'epoch': 3}``)."""
    if isinstance(value, Mapping):
        return OrderedDict((key, _numpy_tree(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_numpy_tree(item) for item in value)
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value
