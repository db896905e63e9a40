"""The Optimizer base class: parameter groups, per-parameter state, state_dict.

The layout follows ``torch.optim.Optimizer``: ``param_groups`` is a list of dicts, each holding
``'params'`` (a list of tensors) and its own copy of every hyper-parameter; ``state`` maps a
parameter to its dict of numpy buffers. ``state_dict()`` packs parameters as indices
(``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``), so a checkpoint
loads into a fresh optimizer built over the same parameters in the same order, and a state dict
written by ``torch.optim`` (tensors converted to numpy) loads as well.

Updates run on each parameter's numpy array in place and record no graph.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..tensor import Tensor


def _to_numpy(value: Any) -> Any:
    """minidl / torch tensors -> numpy; anything else unchanged."""
    if isinstance(value, Tensor):
        return value._data
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def _copy_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


class Optimizer:
    """Base class of the optimizers. Subclasses implement :meth:`_check_group` (validate one
    group's hyper-parameters, raising ``ValueError``) and :meth:`_update_group`."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if (
            isinstance(params, (Tensor, np.ndarray))
            or (hasattr(params, "detach") and hasattr(params, "numpy"))
            or not isinstance(params, Iterable)
        ):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets changes between runs; use a list instead"
            )
        self._check_group(defaults)
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- hooks for subclasses ------------------------------------------------------------
    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid hyper-parameter of ``group``."""

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---- parameter groups ------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones take the defaults).

        ``params`` may hold tensors or ``(name, tensor)`` pairs (``model.named_parameters()``);
        names are kept as ``'param_names'``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group has no 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets changes between runs; use a list instead"
            )
        else:
            params = list(params)
        for p in params:
            if isinstance(p, tuple) and (len(p) != 2 or not isinstance(p[0], str)):
                raise TypeError(
                    f"named optimizer params must be (name, tensor) pairs, got a tuple of "
                    f"{len(p)}: {p!r}"
                )
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names; some names are missing"
                )
            group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize minidl Tensors, but one of the params is a "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p._data.dtype.kind != "f":
                raise TypeError(f"can only optimize floating point tensors, got dtype {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        if self.param_groups and ("param_names" in group) != (
            "param_names" in self.param_groups[0]
        ):
            raise ValueError(
                "all optimizer param groups should be with/without names; "
                "cannot mix named and unnamed parameters"
            )
        self.param_groups.append(group)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    # ---- gradients and steps -----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``.grad`` to None, or fill it with zeros."""
        for p in self._params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif p.grad._data.flags.writeable:
                p.grad._data.fill(0)
            else:
                p.grad._data = np.zeros_like(p.grad._data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` if given (it is
        called first and should recompute the loss and gradients)."""
        loss = None
        if closure is not None:
            loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {name: array}}, 'param_groups': [{..., 'params': [index]}]}``,
        parameters numbered in group order; arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p in self._params():
            entry = self.state.get(p)
            if entry:
                state[index[id(p)]] = {k: _copy_value(v) for k, v in entry.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (numpy arrays, minidl or torch tensors); groups keep this
        optimizer's parameters and take the saved hyper-parameters."""
        _check_optimizer_state(state_dict)
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved['params'])} "
                    f"parameters, this optimizer's has {len(group['params'])}"
                )
        by_index: dict[int, Tensor] = {}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            for key, p in zip(saved["params"], group["params"], strict=True):
                by_index[int(key)] = p
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for key, entry in state_dict["state"].items():
            if int(key) not in by_index:
                raise ValueError(
                    f"loaded state dict has state for parameter {key}, which no group holds"
                )
            p = by_index[int(key)]
            new_state[p] = {name: self._load_value(p, name, v) for name, v in entry.items()}
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            new_group = {
                k: _copy_value(_to_numpy(v) if k != "params" else v) for k, v in saved.items()
            }
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                new_group["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                new_group.setdefault(name, default)
            self._check_group(new_group)
            new_groups.append(new_group)
        self.state = new_state
        self.param_groups = new_groups

    @staticmethod
    def _load_value(p: Tensor, name: str, value: Any) -> Any:
        value = _to_numpy(value)
        if value is None or not isinstance(value, (np.ndarray, np.generic, float, int)):
            return copy.deepcopy(value)
        if name == "step":
            return np.array(value, dtype=np.float32)
        array = np.array(value, dtype=p.dtype)
        if array.shape != p.shape:
            raise ValueError(
                f"loaded state {name!r} has shape {array.shape}, its parameter has shape {p.shape}"
            )
        return array

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _check_optimizer_state(state_dict: Any) -> None:
    """The structure of :meth:`Optimizer.state_dict`: TypeError for a wrong container type,
    ValueError for a missing entry."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"optimizer load_state_dict expects a dict with the keys 'state' and "
            f"'param_groups', got {type(state_dict).__name__}"
        )
    if not {"state", "param_groups"} <= state_dict.keys():
        raise ValueError(
            f"an optimizer state dict has the keys 'state' and 'param_groups', got "
            f"{sorted(map(str, state_dict))}"
        )
    if not isinstance(state_dict["state"], Mapping):
        raise TypeError(
            "an optimizer state dict's 'state' maps parameter indices to dicts, got "
            f"{type(state_dict['state']).__name__}"
        )
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in groups):
        raise TypeError(
            f"an optimizer state dict's 'param_groups' is a list of dicts, got {groups!r}"
        )
    for i, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"the saved parameter group {i} has no 'params' entry")


def _param_arrays(p: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(parameter data, writable and C-contiguous, updated in place; gradient as a
    C-contiguous array of the same dtype and shape)."""
    data = p._data
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = p._data = np.array(data, order="C")
    grad = p.grad._data if isinstance(p.grad, Tensor) else np.asarray(p.grad)
    if grad.shape != data.shape:
        raise ValueError(f"gradient of shape {grad.shape} for a parameter of shape {data.shape}")
    return data, np.ascontiguousarray(grad, dtype=data.dtype)


def _state_array(state: dict[str, Any], key: str, like: np.ndarray) -> np.ndarray:
    """``state[key]``, zeros like ``like`` when missing; a loaded one is made a writable
    C-contiguous array of like's dtype (the update kernels write it in place)."""
    value = state.get(key)
    if value is None:
        value = state[key] = np.zeros_like(like)
    elif not (isinstance(value, np.ndarray) and value.dtype == like.dtype
              and value.flags.c_contiguous and value.flags.writeable):
        value = state[key] = np.array(value, dtype=like.dtype, order="C")
    return value


def _fma(a: Any, b: Any, c: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a * b + c`` rounded once, as torch's CPU kernels compute ``add(x, alpha=)``,
    ``addcmul`` and ``lerp`` (with fused multiply-adds). For float32 the product and sum are
    formed in float64 (the product is exact) and rounded to float32 at the end; scalars are
    first rounded to the array dtype, as torch does. Other dtypes use plain arithmetic."""
    dtype = c.dtype
    if dtype == np.float32:
        a = a if isinstance(a, np.ndarray) else np.float32(a)
        b = b if isinstance(b, np.ndarray) else np.float32(b)
        result = np.multiply(a, b, dtype=np.float64)
        result += c
    else:
        result = a * b
        result += c
    if out is None:
        return result.astype(dtype, copy=False)
    np.copyto(out, result, casting="same_kind")
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """``start.lerp_(end, weight)`` in place, in torch's two-branch form (each branch one fused
    multiply-add)."""
    weight = start.dtype.type(weight)
    if weight < 0.5:
        return _fma(end - start, weight, start, out=start)
    return _fma(end - start, -(1 - weight), end, out=start)


def _check_nonnegative(group: dict[str, Any], key: str, label: str) -> None:
    """``group[key]`` (when present) is a number >= 0: TypeError for another type, as
    torch.optim raises, ValueError for a negative value or NaN."""
    if key not in group:
        return
    value = group[key]
    if not _is_number(value):
        raise TypeError(f"Invalid {label}: {value!r} (expected a number)")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"Invalid {label}: {value}")


__all__ = ["Optimizer"]
