"""In-place ops (``add_``, ``mul_``, ``copy_``, ``t[i] = v``, ``+=``, ...) with PyTorch's
autograd rules.

- Under ``no_grad`` (how optimizers and initialisers work), or when nothing involved needs a
  gradient, an in-place op only writes the data and bumps the version.
- With grad on, an in-place op on a leaf that requires grad raises RuntimeError, as in PyTorch.
- Otherwise the op is differentiable: the tensor keeps its identity and data buffer, and its
  graph becomes ``op(old state, operands)``; the old state moves to a new node kept in the
  tensor's ``_history`` (see :mod:`minidl._versions`), so nodes made before the op still reach
  it. Writing in place through a view of a tensor whose graph this would change is not
  supported (PyTorch rewrites the base's graph; minidl raises a RuntimeError that says so).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _versions
from . import tensor as _t
from .random import generator

if TYPE_CHECKING:
    from .tensor import Tensor

InplaceBackward = Callable[[np.ndarray], Sequence[np.ndarray | None]]


def _operand(value: Any, like: Tensor) -> Tensor:
    return _t._wrap(value, like)


def _check_broadcast(t: Tensor, *operands: Tensor) -> None:
    for o in operands:
        shape = _broadcast(t.shape, o.shape)
        if shape != t.shape:
            raise RuntimeError(
                f"output with shape {list(t.shape)} doesn't match the broadcast shape "
                f"{list(shape)}"
            )


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise RuntimeError(f"the shapes {list(a)} and {list(b)} do not broadcast together") \
            from None


def _check_writable(t: Tensor, op: str) -> None:
    if not t._data.flags.writeable:
        raise RuntimeError(
            f"{op}: unsupported operation: more than one element of the written-to tensor "
            "refers to a single memory location (an expand()ed tensor, for example); "
            "clone() the tensor before the in-place operation"
        )


def _root(t: Tensor) -> Tensor | None:
    """The tensor that ``t`` is a view of (following views of views); None if not a view."""
    base = getattr(t, "_base", None)
    if base is None or not np.may_share_memory(base._data, t._data):
        return None
    while getattr(base, "_base", None) is not None:
        base = base._base
    return base


def apply(t: Tensor, op: str, operands: Sequence[Tensor], write: Callable[[np.ndarray], Any],
          backward: Callable[[], InplaceBackward] | None) -> Tensor:
    """Run the in-place op ``op`` on ``t``.

    ``write(data)`` writes the new values into ``t``'s buffer. ``backward()`` (None for an op
    without a gradient, such as an integer fill) is called before the write, when a graph is
    recorded, and returns the closure ``g -> (grad of the old t, *grads of operands)``; it may
    save what it needs of the old values then.
    """
    grad_on = _t._thread_mode.enabled
    if grad_on and t.requires_grad and t.is_leaf:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    record = (grad_on and backward is not None and t.dtype.kind == "f"
              and (t.requires_grad or any(o.requires_grad for o in operands)))
    _check_writable(t, op)
    if record:
        _check_view(t, op)
        grad_fn = backward()
        old = _snapshot(t)
    _write(t, op, write)
    if not getattr(t, "_untracked", False):  # a ``.data`` tensor: outside autograd (PyTorch)
        _t._tick()
        _versions.bump(t._data, _t._clock, record)
    if record:
        history = [h for h in getattr(t, "_history", ()) if h[1]() is not None]
        t._history = (*history, (_t._clock, weakref.ref(old)))
        t._parents = (old, *operands)
        t._backward = grad_fn
        t._epoch = _t._clock
        t.requires_grad = True
    return t


def _check_view(t: Tensor, op: str) -> None:
    root = _root(t)
    if root is None:
        return
    if root.requires_grad and root.is_leaf:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    raise RuntimeError(
        f"{op}: minidl does not support a differentiable in-place op on a view (shape "
        f"{list(t.shape)} of a tensor of shape {list(root.shape)}); write into the tensor "
        "itself (t[index] = value), use the out-of-place op, or clone() the view first"
    )


def _snapshot(t: Tensor) -> Tensor:
    """A node with ``t``'s current graph state (the state nodes made so far point at)."""
    old = _t.Tensor.__new__(_t.Tensor)
    old._data = t._data
    old.grad = None
    old.requires_grad = t.requires_grad
    old._parents = t._parents
    old._backward = t._backward
    if t._backward is not None:
        old._epoch = t._epoch
    return old


def _write(t: Tensor, op: str, write: Callable[[np.ndarray], Any]) -> None:
    try:
        write(t._data)
    except TypeError as error:  # numpy refuses the cast of the result into t's dtype
        if "cast" not in str(error).lower():
            raise
        raise RuntimeError(f"{op}: result type can't be cast to the desired output type "
                           f"{t.dtype} of the tensor written in place ({error})") from None


def _cast_check(t: Tensor, op: str, *operands: Tensor) -> None:
    """PyTorch's rule for in-place ops: a floating result cannot be written into an integer or
    bool tensor, nor a numeric result into a bool tensor."""
    for o in operands:
        kinds = {t.dtype.kind, o.dtype.kind}
        result = "f" if "f" in kinds else "i" if kinds & {"i", "u"} else "b"
        if (result == "f" and t.dtype.kind != "f") or (result != "b" and t.dtype.kind == "b"):
            raise RuntimeError(f"{op}: result type {_KIND_NAMES[result]} can't be cast to the "
                               f"desired output type {_versions._describe(t).split()[0]}")


_KIND_NAMES = {"f": "Float", "i": "Long", "b": "Bool"}


class InplaceOps:
    """The in-place methods of :class:`minidl.Tensor`."""

    __slots__ = ()

    # ---- arithmetic ------------------------------------------------------------------------
    def add_(self, other: Any, *, alpha: float = 1) -> Tensor:
        return self._add_("add_", other, alpha)

    def sub_(self, other: Any, *, alpha: float = 1) -> Tensor:
        return self._add_("sub_", other, -alpha)

    def _add_(self, op: str, other: Any, alpha: float) -> Tensor:
        other = _operand(other, self)
        _check_broadcast(self, other)
        _cast_check(self, op, other)
        scaled = other._data if alpha == 1 else other._data * alpha
        shape, dtype = other.shape, other.dtype

        def backward():
            return lambda g: (g, _t._unbroadcast(g * alpha, shape).astype(dtype, copy=False))

        return apply(self, op, (other,), lambda a: np.add(a, scaled, out=a, casting="unsafe"),
                     backward)

    def mul_(self, other: Any) -> Tensor:
        other = _operand(other, self)
        _check_broadcast(self, other)
        _cast_check(self, "mul_", other)

        def backward():
            b = other._data if self.requires_grad else None  # saved as PyTorch saves them
            a = self._data.copy() if other.requires_grad else None
            shape = other.shape
            return lambda g: (None if b is None else g * b,
                              None if a is None else _t._unbroadcast(g * a, shape))

        return apply(self, "mul_", (other,),
                     lambda a: np.multiply(a, other._data, out=a, casting="unsafe"), backward)

    def div_(self, other: Any) -> Tensor:
        other = _operand(other, self)
        _check_broadcast(self, other)
        if self.dtype.kind != "f":  # true division: a float result
            _cast_check(self, "div_", _t.Tensor(np.zeros((), np.float32)))

        def backward():
            b = other._data
            a = self._data.copy() if other.requires_grad else None
            shape = other.shape
            return lambda g: (g / b, None if a is None else _t._unbroadcast(-g * a / (b * b),
                                                                             shape))

        return apply(self, "div_", (other,),
                     lambda a: np.divide(a, other._data, out=a, casting="unsafe"), backward)

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def clamp_(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")

        def backward():
            a = self._data
            inside = np.ones(a.shape, bool)
            if min is not None:
                inside &= a >= min
            if max is not None:
                inside &= a <= max
            return lambda g: (g * inside,)

        return apply(self, "clamp_", (), lambda a: np.clip(a, min, max, out=a), backward)

    def clip_(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        return self.clamp_(min, max)

    # ---- filling ----------------------------------------------------------------------------
    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, _t.Tensor):
            if value.ndim != 0:
                raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor "
                                   f"with {value.ndim} dimensions.")
            operands: tuple[Tensor, ...] = (value,)
            fill = value._data
        else:
            operands, fill = (), value

        def backward():
            return lambda g: (np.zeros_like(g),
                              *((g.sum().astype(value.dtype),) if operands else ()))

        return apply(self, "fill_", operands, lambda a: a.fill(fill), backward)

    def copy_(self, src: Any, non_blocking: bool = False) -> Tensor:
        src = src if isinstance(src, _t.Tensor) else _t.Tensor(src)
        _check_broadcast(self, src)
        shape, dtype = src.shape, src.dtype

        def backward():
            return lambda g: (np.zeros_like(g),
                              _t._unbroadcast(g, shape).astype(dtype, copy=False))

        return apply(self, "copy_", (src,), lambda a: np.copyto(a, src._data, casting="unsafe"),
                     backward)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Fill with normal samples from minidl's generator (``minidl.manual_seed``)."""
        values = generator().normal(mean, std, self.shape)
        return apply(self, "normal_", (), lambda a: np.copyto(a, values, casting="unsafe"),
                     _no_gradient)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Fill with uniform samples on [a, b) from minidl's generator."""
        values = generator().uniform(a, b, self.shape)
        return apply(self, "uniform_", (), lambda x: np.copyto(x, values, casting="unsafe"),
                     _no_gradient)

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        where = _t._mask_array(mask, self.shape, "masked_fill_")
        if isinstance(value, _t.Tensor):
            if value.ndim != 0:
                raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, "
                                   f"but got tensor with {value.ndim} dimension(s).")
            operands: tuple[Tensor, ...] = (value,)
            fill = value._data
        else:
            operands, fill = (), value
        vdtype = value.dtype if operands else None

        def backward():
            return lambda g: (np.where(where, 0, g).astype(g.dtype, copy=False),
                              *((np.where(where, g, 0).sum().astype(vdtype),) if operands
                                else ()))

        return apply(self, "masked_fill_", operands,
                     lambda a: np.copyto(a, fill, where=np.broadcast_to(where, a.shape),
                                         casting="unsafe"),
                     backward)

    def __setitem__(self, index: Any, value: Any) -> None:
        index = _t._plain_index(index)
        value = value if isinstance(value, _t.Tensor) else _t._wrap(value, self)
        target = self._data[index]
        if _broadcast(np.shape(target), value.shape) != np.shape(target):
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} "
                               f"cannot be broadcast to indexing result of shape "
                               f"{list(np.shape(target))}")
        vshape, vdtype = value.shape, value.dtype

        def backward():
            def grads(g):
                old = g.copy()
                old[index] = 0
                return old, _t._unbroadcast(g[index], vshape).astype(vdtype, copy=False)

            return grads

        def write(a):
            a[index] = value._data

        apply(self, "__setitem__", (value,), write, backward)


def _no_gradient() -> InplaceBackward:
    """The old values were overwritten: they get a zero gradient (as in PyTorch)."""
    return lambda g: (np.zeros_like(g),)
