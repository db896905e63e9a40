"""Module, Parameter, Sequential, ModuleList and ModuleDict, with PyTorch's names and state_dict
semantics.

A module may store a parameter in another framework's layout (the conv profiles do). Two hooks
carry that into checkpoints: ``_export_state(profile)`` gives a module's own entries in the
layout of ``profile`` and ``_import_state(entries, profile)`` reads them back; the defaults
below are the identity, and conv layers override them.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from itertools import chain
from typing import Any

import numpy as np

from .._device import cpu_device
from .._tensor_ops import _to_arguments
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (``requires_grad=True`` by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _to_numpy(value: Any) -> np.ndarray:
    """numpy arrays, minidl Tensors, torch tensors (0-d included) -> numpy."""
    if isinstance(value, Tensor):
        return value._data
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _checkpoint_array(key: str, value: Any) -> np.ndarray:
    """A checkpoint entry as a numeric array; TypeError naming the key when it is not one."""
    try:
        array = _to_numpy(value)
    except ValueError:  # a ragged nested sequence
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(
            f"load_state_dict: {key!r} must be an array or tensor of numbers, got "
            f"{type(value).__name__} {value!r:.60}"
        )
    return array


class Module:
    """Base class of every layer: parameters, buffers and children are attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- attribute registry -------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call Module.__init__() before assigning {name!r}")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        for registry in ("_parameters", "_modules", "_buffers"):
            values = self.__dict__.get(registry, {})
            if name in values:
                return values[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._modules, self._buffers):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param``; ``None`` records an absent parameter (``bias=False``)."""
        _check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign {type(param).__name__!r} object to parameter {name!r} "
                "(minidl.nn.Parameter or None required)"
            )
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            self.__setattr__(name, param)

    def register_buffer(self, name: str, value: Tensor | np.ndarray | None) -> None:
        """A non-trainable tensor saved in the state_dict (BatchNorm's running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = None if value is None else Tensor(value)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name`` (PyTorch's checks and errors)."""
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {type(name).__name__}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if "." in name:
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError('module name can\'t be empty string ""')
        self.__dict__.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = ""):
        for module_prefix, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), buf

    def buffers(self) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers())

    def apply(self, fn) -> Module:
        for module in self.modules():
            fn(module)
        return self

    # ---- modes and gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def set_train(self, mode: bool = True) -> Module:
        """MindSpore's name for :meth:`train`: the same switch (docs/conventions.md, "Training
        mode")."""
        return self.train(mode)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(tensor)``, in place, as
        PyTorch's. minidl runs on the CPU: ``'cpu'`` is accepted (nothing moves), any other
        device raises. A floating dtype casts every floating parameter, gradient and buffer
        (float64 for gradient checks); integer buffers keep their dtype."""
        dtype, _ = _to_arguments(args, kwargs)  # Tensor.to's parsing; raises for a non-CPU device
        if dtype is None:
            return self
        if dtype.kind != "f":
            raise TypeError(
                "nn.Module.to only accepts floating point dtypes, but got desired dtype="
                f"{dtype}"
            )
        for p in self.parameters():
            p._data = p._data.astype(dtype)
            if p.grad is not None:
                p.grad = Tensor(p.grad._data.astype(dtype))
        for module in self.modules():
            for name, buf in module._buffers.items():
                if buf is not None and buf.dtype.kind == "f":
                    module._buffers[name] = Tensor(buf._data.astype(dtype))
        return self

    def cpu(self) -> Module:
        """Already there: minidl keeps every tensor in main memory."""
        return self

    def cuda(self, device: Any = None) -> Module:
        """Always raises: minidl has no CUDA backend."""
        cpu_device("cuda")
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ---- checkpoints ------------------------------------------------------------------------
    def _export_state(self, profile: str | None) -> dict[str, np.ndarray]:
        """This module's own parameters and buffers, in the layout of ``profile``."""
        entries = {n: p._data.copy() for n, p in self._parameters.items()}
        entries.update({n: b._data.copy() for n, b in self._buffers.items() if b is not None})
        return entries

    def _import_state(self, entries: dict[str, np.ndarray], profile: str | None) -> None:
        """Assign this module's own entries, given in the layout of ``profile``."""
        for name, value in entries.items():
            target = self._parameters.get(name)
            if target is None:
                target = self._buffers[name]
            target._data = np.array(value, dtype=target.dtype)

    def state_dict(self, profile: str | None = None) -> OrderedDict[str, np.ndarray]:
        """Names -> numpy arrays (copies). ``profile`` exports in that framework's layout."""
        return OrderedDict(
            (_key(prefix, name), value)
            for prefix, _, own in self._exported(profile)
            for name, value in own.items()
        )

    def _exported(self, profile: str | None) -> list[tuple[str, Module, dict[str, Any]]]:
        """(prefix, module, its own exported state) for every module, in order."""
        return [(prefix, m, m._export_state(profile)) for prefix, m in self.named_modules()]

    def load_state_dict(
        self, state_dict: dict[str, Any], strict: bool = True, profile: str | None = None
    ) -> tuple[list[str], list[str]]:
        """Load numpy arrays, minidl Tensors or torch tensors, given in the layout of
        ``profile`` (default: this model's own). Returns ``(missing, unexpected)`` keys."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        exported = self._exported(profile)
        expected = {
            _key(prefix, name): value for prefix, _, own in exported for name, value in own.items()
        }
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        given = {k: _checkpoint_array(k, state_dict[k]) for k in expected if k in state_dict}
        for key in expected:
            if key in given and given[key].shape != expected[key].shape:
                raise ValueError(
                    f"load_state_dict: {key!r} has shape {given[key].shape} in the checkpoint "
                    f"but {expected[key].shape} in the model"
                    + (f" (layout of profile {profile!r})" if profile else "")
                )
        for prefix, module, own in exported:
            if own:
                entries = {name: given.get(_key(prefix, name), v) for name, v in own.items()}
                module._import_state(entries, profile)
        return missing, unexpected

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        if not children:
            return f"{self._display_name()}({self.extra_repr()})"
        extra = [f"  {self.extra_repr()}"] if self.extra_repr() else []
        return f"{self._display_name()}(\n" + "\n".join(extra + children) + "\n)"

    def _display_name(self) -> str:
        """The class name ``repr`` shows (a profiled layer shows its framework's: ``Dense``)."""
        return type(self).__name__


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_name(kind: str, name: Any) -> None:
    """PyTorch's rule for the name of a child module or parameter."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if name == "" or "." in name:  # "a.b" would clash with the key of a nested entry
        raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` for :meth:`Module.to`: float32 or float64, what minidl computes in."""
    try:
        value = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except (TypeError, ValueError):
        value = None
    if value not in (np.float32, np.float64):
        shown = dtype if value is None else value.name
        raise TypeError(
            f"Module.to only accepts the floating point dtypes float32 and float64, got "
            f"dtype={shown!r}"
        )
    return value


class Sequential(Module):
    """Chain modules: ``Sequential(a, b, c)(x) == c(b(a(x)))``; also from an OrderedDict."""

    def __init__(self, *modules: Module | OrderedDict) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: int) -> Module:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return modules[index]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be integers, got {type(index).__name__}")
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(modules)}")
        return modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self


def _index(container: Module, idx: Any) -> str:
    """The key of list position ``idx`` (negative counts from the end)."""
    idx = operator.index(idx)
    if not -len(container) <= idx < len(container):
        raise IndexError(f"index {idx} is out of range")
    return str(idx + len(container) if idx < 0 else idx)


class ModuleList(Module):
    """A list of modules, each registered as a child named by its position (``'0'``, ``'1'``,
    ...), so ``state_dict`` keys read ``layers.0.weight`` as in PyTorch."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Module | ModuleList:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[_index(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, _index(self, idx), module)

    def __delitem__(self, idx: int | slice) -> None:
        if isinstance(idx, slice):
            for k in range(len(self._modules))[idx]:
                delattr(self, str(k))
        else:
            delattr(self, _index(self, idx))
        renumbered = OrderedDict(
            (str(i), m) for i, m in enumerate(self._modules.values())
        )
        object.__setattr__(self, "_modules", renumbered)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        combined = ModuleList()
        for i, module in enumerate(chain(self, other)):
            combined.add_module(str(i), module)
        return combined

    def insert(self, index: int, module: Module) -> None:
        for i in range(len(self._modules), index, -1):
            self._modules[str(i)] = self._modules[str(i - 1)]
        self._modules[str(index)] = module

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def pop(self, key: int | slice) -> Module:
        value = self[key]
        del self[key]
        return value

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError(
                "ModuleList.extend should be called with an iterable, but got "
                + type(modules).__name__
            )
        offset = len(self)
        for i, module in enumerate(modules):
            self.add_module(str(offset + i), module)
        return self

    def __repr__(self) -> str:
        """Runs of identical children print once, as ``(0-2): 3 x Linear(...)`` (PyTorch's)."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return "ModuleList()"
        runs: list[list[Any]] = []
        for i, text in enumerate(reprs):
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = []
        for start, end, text in runs:
            label = f"({start})" if start == end else f"({start}-{end}): {end - start + 1} x"
            line = f"{label}: {text}" if start == end else f"{label} {text}"
            lines.append(line.replace("\n", "\n  "))
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """An ordered dict of modules, each registered as a child under its key."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[Any] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        value = self[key]
        del self[key]
        return value

    def keys(self) -> KeysView[str]:
        return self._modules.keys()

    def items(self) -> ItemsView[str, Module]:
        return self._modules.items()

    def values(self) -> ValuesView[Module]:
        return self._modules.values()

    def update(self, modules: Mapping[str, Module] | Iterable[Any]) -> None:
        """Add modules from a mapping (in its order) or from ``(key, module)`` pairs."""
        if not isinstance(modules, Iterable):
            raise TypeError(
                "ModuleDict.update should be called with an iterable of key/value pairs, but "
                "got " + type(modules).__name__
            )
        if isinstance(modules, (Mapping, ModuleDict)):
            for key, module in modules.items():
                self[key] = module
            return
        for j, pair in enumerate(modules):
            if not isinstance(pair, Iterable):
                raise TypeError(
                    f"ModuleDict update sequence element #{j} should be Iterable; is"
                    + type(pair).__name__
                )
            if len(pair) != 2:
                raise ValueError(
                    f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is "
                    "required"
                )
            self[pair[0]] = pair[1]


__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
