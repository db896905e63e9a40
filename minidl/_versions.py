"""Version counting for in-place ops, with PyTorch's rules.

Every in-place op bumps the version of the storage it writes (views share storage, so they
share the version) and stamps it with the process-wide op clock (``tensor._clock``). A graph
node records the clock when it is made (``_epoch``). Before backward runs a node, and only once
some in-place op has run in the process, :func:`revise` compares the two:

- an array the node's ``backward`` closure holds (one it saved) that was written after the node
  was made makes backward raise PyTorch's "modified by an inplace operation" error, where
  PyTorch raises it too, instead of computing with the new values;
- a parent that was itself rewritten by a differentiable in-place op after the node was made
  is replaced by the parent's state at that time, kept in the parent's ``_history``, so the
  gradient reaches the graph the node was built on (PyTorch's edges point at the old node too).

What a node saved is read off its closure: the arrays (and tensors) it captured. minidl's ops
capture what PyTorch saves (a mul saves the other operand only when this one needs a gradient),
so the error comes exactly where PyTorch's does, and never a gradient from changed values.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _dtypes

if TYPE_CHECKING:
    from .tensor import Tensor


class _Storage:
    """The version record of one numpy buffer, made at its first in-place write."""

    __slots__ = ("version", "epoch", "rebased", "ref")

    def __init__(self) -> None:
        self.version = 0
        self.epoch = 0  # clock of the last write
        self.rebased = 0  # clock of the last write that changed a tensor's graph


_records: dict[int, _Storage] = {}


def _owner(array: np.ndarray) -> Any:
    """The object that owns ``array``'s memory: views of one buffer share it."""
    base = array.base
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base if isinstance(base, np.ndarray) else array


def record(array: np.ndarray) -> _Storage | None:
    """The version record of ``array``'s buffer; None if it was never written in place."""
    owner = _owner(array)
    found = _records.get(id(owner))
    if found is not None and found.ref() is owner:
        return found
    return None


def version(array: np.ndarray) -> int:
    found = record(array)
    return 0 if found is None else found.version


def bump(array: np.ndarray, clock: int, rebased: bool) -> None:
    """Count one in-place write of ``array``'s buffer at op clock ``clock``."""
    found = record(array)
    if found is None:
        owner = _owner(array)
        key = id(owner)
        found = _records[key] = _Storage()
        found.ref = weakref.ref(owner, lambda _, key=key: _records.pop(key, None))
    found.version += 1
    found.epoch = clock
    if rebased:
        found.rebased = clock


# ---- the check before backward runs a node --------------------------------------------------
def revise(node: Tensor) -> None:
    """Raise if ``node`` saved an array that was written since; point its edges at the
    parents' states of the time it was made. Called only once some in-place op has run."""
    epoch = node._epoch
    for t in (node, *node._parents):
        found = record(t._data)
        if found is not None and found.epoch > epoch and _holds(node._backward, t._data):
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: [{_describe(t)}], which is at version {found.version}; "
                "it was written after the op that saved it ran. Hint: clone() it before the "
                "in-place op, or use the out-of-place op."
            )
    for p in node._parents:
        check_view(p, epoch)
    if any(_rewritten_since(p, epoch) for p in node._parents):
        node._parents = tuple(as_of(p, epoch) for p in node._parents)


def check_view(view: Tensor, used_at: int) -> None:
    """Raise if ``view`` is used at op clock ``used_at`` after the tensor it views was changed
    by a differentiable in-place op: PyTorch rebuilds such a view's graph, minidl does not (a
    use from before the change is fine: the view's graph is right for it)."""
    if getattr(view, "_base", None) is None or not view.requires_grad or view.is_leaf:
        return
    found = record(view._data)
    if found is not None and view._epoch < found.rebased <= used_at:
        raise RuntimeError(
            f"a view ([{_describe(view)}]) is used after the tensor it views was changed by a "
            "differentiable in-place op; minidl cannot rebuild the view's graph (PyTorch can): "
            "take the view again after the in-place op, or clone() it first"
        )


def _rewritten_since(tensor: Tensor, epoch: int) -> bool:
    found = record(tensor._data)
    return found is not None and found.rebased > epoch


def as_of(tensor: Tensor, epoch: int) -> Tensor:
    """``tensor``'s graph state at op clock ``epoch``: itself unless a differentiable in-place
    op rewrote it since; then the state it had just before the first such rewrite."""
    for when, old in getattr(tensor, "_history", ()):
        if when > epoch:
            state = old()
            if state is None:
                raise RuntimeError(
                    "Trying to backward through the graph a second time: the graph of a "
                    "tensor changed in place was freed by an earlier backward()"
                )
            return state
    return tensor


def _describe(t: Tensor) -> str:
    try:
        name = _dtypes.type_name(t.dtype)
    except TypeError:
        name = str(t.dtype)
    return f"{name} {list(t.shape)}"


def _holds(fn: Any, array: np.ndarray, depth: int = 3) -> bool:
    """Whether the function ``fn`` captured an array (or a tensor) sharing memory with
    ``array``: its closure cells, default arguments, partial arguments, and the functions
    those hold in turn (to ``depth``)."""
    if depth == 0 or fn is None:
        return False
    if isinstance(fn, functools.partial):
        values = [fn.func, *fn.args, *fn.keywords.values()]
    else:
        cells = getattr(fn, "__closure__", None) or ()
        values = [_cell(c) for c in cells] + list(getattr(fn, "__defaults__", None) or ())
        if hasattr(fn, "__self__"):
            values.append(fn.__self__)
    return any(_value_holds(v, array, depth) for v in values)


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _value_holds(value: Any, array: np.ndarray, depth: int) -> bool:
    from .tensor import Tensor

    if isinstance(value, np.ndarray):
        return np.may_share_memory(value, array)
    if isinstance(value, Tensor):
        return np.may_share_memory(value._data, array)
    if isinstance(value, (tuple, list)):
        return any(_value_holds(v, array, depth) for v in value)
    if callable(value) and not isinstance(value, type):
        return _holds(value, array, depth - 1)
    return False
