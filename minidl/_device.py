"""Devices as in PyTorch. minidl runs on the CPU only: ``device('cuda')`` can be named (so
``device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`` works), but moving a
tensor or a module there raises a RuntimeError that says so."""

from __future__ import annotations

from typing import Any

_TYPES = (
    "cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga",
    "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone",
)


class device:
    """A device name: ``device('cpu')``, ``device('cuda:1')``, ``device('cuda', 1)``."""

    __slots__ = ("type", "index")

    def __init__(self, type: Any, index: int | None = None) -> None:
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(device, index): give the index in the device itself")
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device() takes a string such as 'cpu', got {type!r}")
        name, index = _parse(type, index)
        self.type, self.index = name, index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type={self.type!r})"
        return f"device(type={self.type!r}, index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self) -> tuple:
        return device, (self.type, self.index)


def _parse(spec: str, index: int | None) -> tuple[str, int | None]:
    if not spec:
        raise RuntimeError("Device string must not be empty")
    name, colon, number = spec.partition(":")
    if name not in _TYPES:
        raise RuntimeError(
            f"Expected one of {', '.join(_TYPES)} device type at start of device string: {spec}"
        )
    if colon:
        if index is not None:
            raise RuntimeError(
                "type (string) must not include an index because index was passed "
                f"explicitly: {spec}"
            )
        if not number.isdigit():
            raise RuntimeError(f"Invalid device string: {spec!r}")
        index = int(number)
    if index is not None and index < 0:
        raise RuntimeError("Device index must not be negative")
    return name, index


CPU = device("cpu")


def cpu_device(spec: Any) -> device:
    """``device('cpu')`` for any name of the CPU; a RuntimeError for any other device.

    ``spec`` is a :class:`device` or a string ('cpu', 'cpu:0', 'cuda', ...); this is the check
    behind ``Tensor.to(device)`` and ``Module.to(device)``.
    """
    dev = spec if isinstance(spec, device) else device(spec)
    if dev.type != "cpu":
        raise RuntimeError(
            f"minidl runs on the CPU only: cannot move to device {str(dev)!r} "
            "(minidl.cuda.is_available() is False; use device('cpu'))"
        )
    return CPU
