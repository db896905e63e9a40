"""Tensor: a numpy array with reverse-mode autograd.

Every differentiable op builds its output with :func:`_result` and defines, right beside the
forward, a ``backward(g)`` closure that maps the output gradient to one gradient per parent
(``None`` where a parent needs none). :meth:`Tensor.backward` walks the graph in an iterative
topological order (deep graphs cannot overflow the stack), accumulates into leaf ``.grad`` and
frees each node as it goes, so the saved arrays are released after every backward.

In-place ops (:mod:`minidl._inplace`) follow PyTorch's autograd rules with version counting
(:mod:`minidl._versions`); the methods that PyTorch scripts use beyond the core ones here live
in :mod:`minidl._tensor_ops`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _dtypes, _versions, runtime
from ._device import cpu_device
from ._dtypes import float32, float64, int64
from ._ext import elementwise as _elementwise
from ._grad_mode import (  # noqa: F401  (re-exported)
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from ._inplace import InplaceOps
from ._state import grad_mode as _thread_mode
from ._tensor_ops import TensorOps

Backward = Callable[[np.ndarray], Sequence[np.ndarray | None]]
MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """PyTorch's dtype rules: Python floats become float32, Python ints int64; numpy arrays
    keep their dtype (float64 stays float64, int32 stays int32), but half precision becomes
    float32 (minidl has none)."""
    if isinstance(data, Tensor):
        data = data._data
    elif hasattr(data, "detach") and hasattr(data, "numpy"):  # a torch tensor
        data = data.detach().cpu().numpy()
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    array = np.array(data)
    if array.dtype == np.float64 and not _is_float64_source(data):
        return array.astype(np.float32)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and not isinstance(data, (np.ndarray, np.integer)):
        return array.astype(np.int64)  # Python ints; numpy integer arrays keep their dtype
    if array.dtype.kind not in "fbiu":
        raise TypeError(f"cannot make a tensor from data of dtype {array.dtype}")
    return array


def _is_float64_source(data: Any) -> bool:
    return isinstance(data, (np.ndarray, np.floating)) and data.dtype == np.float64


def _result(data: np.ndarray, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
    """The output of an op; records the graph only when a parent needs a gradient."""
    out = Tensor.__new__(Tensor)
    out._data = data
    out.grad = None
    out._backward = None
    out._parents = ()
    out.requires_grad = False
    if _thread_mode.enabled:
        for parent in parents:
            if parent.requires_grad:
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
                out._epoch = _clock
                break
    return out


def _fresh_gradients(backward: Backward) -> Backward:
    """Mark ``backward`` as returning gradients that nothing else refers to (arrays it made,
    or views of them): a leaf takes such a gradient as its ``.grad`` without copying it, as
    PyTorch's gradient accumulation takes one that no one else holds (a conv's input
    gradient is as large as its input: bench case ResNet 1x1)."""
    backward.fresh = True  # type: ignore[attr-defined]
    return backward


def _view(data: np.ndarray, parent: Tensor, backward: Backward) -> Tensor:
    """The output of a view op: :func:`_result`, remembering the tensor it views (in-place
    ops through views need it)."""
    out = _result(data, (parent,), backward)
    out._base = parent
    return out


_clock = 0
"""Counts the in-place ops run in this process; graph nodes record it (``_epoch``) so that
backward can tell what was written after a node was made. While it is 0, backward skips the
version checks."""


def _tick() -> None:
    global _clock
    _clock += 1


def _leaf(data: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A leaf tensor around ``data`` itself (no copy, no dtype change)."""
    out = _result(data, (), _freed)
    if requires_grad:
        out.requires_grad_(True)
    return out


def _freed(_: np.ndarray) -> Sequence[None]:
    raise RuntimeError(
        "Trying to backward through the graph a second time: the graph is freed after "
        "backward(); compute the output again"
    )


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _normalize_dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} out of range for a tensor of {ndim} dims")
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def _expand_reduced(grad: np.ndarray, dims: tuple[int, ...], keepdim: bool, shape) -> np.ndarray:
    if not keepdim and shape:
        grad = np.expand_dims(grad, dims)
    return np.broadcast_to(grad, shape)


class Tensor(TensorOps, InplaceOps):
    """An n-dimensional array with autograd. Create one with :func:`minidl.tensor`."""

    __slots__ = ("_data", "grad", "requires_grad", "_parents", "_backward", "_epoch", "_base",
                 "_history", "_untracked", "__weakref__")
    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self._data = _as_array(data, dtype)
        self.grad: Tensor | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- basic properties -------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """The values as a new Tensor sharing this one's storage, outside autograd (PyTorch's
        ``.data``): it never requires grad, and in-place changes through it are invisible to
        the checks that catch a saved value modified in place. ``t.data = value`` replaces the
        values (a Tensor or an array, of any shape and dtype)."""
        out = _leaf(self._data)
        out._untracked = True
        return out

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self._data.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def numpy(self) -> np.ndarray:
        return self._data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def tolist(self) -> Any:
        return self._data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = ""
        if self._data.dtype not in (float32, int64, np.dtype(bool)):
            extra += f", dtype={self._data.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

    # ---- autograd ---------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(
                f"only floating point tensors can require gradients, got dtype {self.dtype}"
            )
        if not self.is_leaf:
            raise RuntimeError("requires_grad_() can only be changed on leaf tensors")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph."""
        return _result(self._data, (), _freed)

    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``, then free the graph."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(
                    "grad can be implicitly created only for scalar outputs, "
                    f"got shape {self.shape}"
                )
            seed = np.ones_like(self._data)
        else:
            seed = np.asarray(grad._data if isinstance(grad, Tensor) else grad, self.dtype)
            if seed.shape != self.shape:
                raise ValueError(f"grad has shape {seed.shape}, the tensor has shape {self.shape}")
        if _clock:
            _versions.check_view(self, _clock)
        grads: dict[int, np.ndarray] = {id(self): seed}
        owned: set[int] = set()  # keys of the gradients that only this pass refers to
        for node in reversed(self._topological_order()):
            grad_out = grads.pop(id(node), None)
            if grad_out is None:
                continue
            if node._backward is None:
                node._accumulate(grad_out, owned=id(node) in owned)
                continue
            fresh = getattr(node._backward, "fresh", False)
            parent_grads = node._backward(grad_out)
            for parent, g in zip(node._parents, parent_grads, strict=True):
                if g is None or not parent.requires_grad:
                    continue
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + g
                    owned.add(key)
                else:
                    grads[key] = g
                    if fresh:
                        owned.add(key)
            node._parents, node._backward = (), _freed

    def _topological_order(self) -> list[Tensor]:
        """Nodes reachable from self, parents before children (iterative DFS post-order)."""
        order: list[Tensor] = []
        seen = {id(self)}
        stack: list[tuple[Tensor, int]] = [(self, 0)]
        checking = _clock != 0
        while stack:
            node, next_parent = stack.pop()
            if checking and next_parent == 0 and node._backward is not None:
                _versions.revise(node)
            if next_parent < len(node._parents):
                stack.append((node, next_parent + 1))
                parent = node._parents[next_parent]
                if parent.requires_grad and id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append((parent, 0))
            else:
                order.append(node)
        return order

    def _accumulate(self, g: np.ndarray, owned: bool = False) -> None:
        """Add ``g`` into ``.grad``: one fresh array (``g`` may be shared with other nodes),
        wrapped without a second copy; ``g`` itself if only the backward pass holds it
        (``owned``, see _fresh_gradients)."""
        if g.shape != self._data.shape:
            g = np.broadcast_to(g, self._data.shape)
            owned = False
        if self.grad is None:
            if owned and g.dtype == self._data.dtype and g.flags.writeable:
                total = g
            else:
                total = np.array(g, dtype=self._data.dtype, copy=True)
        else:
            total = np.add(self.grad._data, g, dtype=self._data.dtype)
        self.grad = _result(total, (), _freed)

    # ---- arithmetic ---------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        other = _wrap(other, self)
        a_shape, b_shape = self.shape, other.shape
        return _result(
            self._data + other._data,
            (self, other),
            lambda g: (_unbroadcast(g, a_shape), _unbroadcast(g, b_shape)),
        )

    def __radd__(self, other: Any) -> Tensor:
        return _wrap(other, self) + self

    def __sub__(self, other: Any) -> Tensor:
        other = _wrap(other, self)
        a_shape, b_shape = self.shape, other.shape
        return _result(
            self._data - other._data,
            (self, other),
            lambda g: (_unbroadcast(g, a_shape), _unbroadcast(-g, b_shape)),
        )

    def __rsub__(self, other: Any) -> Tensor:
        return _wrap(other, self) - self

    def __mul__(self, other: Any) -> Tensor:
        other = _wrap(other, self)
        a, b = self._data, other._data
        a_shape, b_shape = a.shape, b.shape
        # save each operand only for the other's gradient, as PyTorch does
        saved_b = b if self.requires_grad else None
        saved_a = a if other.requires_grad else None

        def backward(g):
            return (
                None if saved_b is None else _unbroadcast(g * saved_b, a_shape),
                None if saved_a is None else _unbroadcast(g * saved_a, b_shape),
            )

        return _result(a * b, (self, other), backward)

    def __rmul__(self, other: Any) -> Tensor:
        return _wrap(other, self) * self

    def __truediv__(self, other: Any) -> Tensor:
        other = _wrap(other, self)
        a, b = self._data, other._data
        a_shape, b_shape = a.shape, b.shape
        saved_a = a if other.requires_grad else None

        def backward(g):
            return (
                _unbroadcast(g / b, a_shape),
                None if saved_a is None else _unbroadcast(-g * saved_a / (b * b), b_shape),
            )

        return _result(a / b, (self, other), backward)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _wrap(other, self) / self

    def __neg__(self) -> Tensor:
        return _result(-self._data, (self,), lambda g: (-g,))

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return exp(log(self) * exponent)
        a = self._data
        out = a**exponent
        return _result(out, (self,), lambda g: (g * exponent * a ** (exponent - 1),))

    def __rpow__(self, base: Any) -> Tensor:
        return _wrap(base, self) ** self

    def __matmul__(self, other: Any) -> Tensor:
        other = _wrap(other, self)
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(_wrap(other, self), self)

    def __abs__(self) -> Tensor:
        return self.abs()

    # ---- comparisons (no gradient) ----------------------------------------------------
    def _compare(self, other: Any, op: Callable) -> Tensor:
        return Tensor(op(self._data, other._data if isinstance(other, Tensor) else other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    # ---- shape ------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        shape = _shape_args(shape)
        old = self.shape
        return _view(self._data.reshape(shape), self, lambda g: (g.reshape(old),))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = dim % max(self.ndim, 1)
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def permute(self, *dims: Any) -> Tensor:
        dims = tuple(d % self.ndim for d in _shape_args(dims))
        inverse = tuple(np.argsort(dims))
        return _view(self._data.transpose(dims), self, lambda g: (g.transpose(inverse),))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def contiguous(self) -> Tensor:
        return self

    def expand(self, *shape: Any) -> Tensor:
        shape = tuple(
            old if new == -1 else new
            for old, new in zip(
                (1,) * (len(_shape_args(shape)) - self.ndim) + self.shape,
                _shape_args(shape),
                strict=True,
            )
        )
        old = self.shape
        return _view(np.broadcast_to(self._data, shape), self, lambda g: (_unbroadcast(g, old),))

    def __getitem__(self, index: Any) -> Tensor:
        index = _plain_index(index)
        shape, dtype = self.shape, self.dtype
        basic = _is_basic_index(index)

        def backward(g):
            full = np.zeros(shape, dtype)
            if basic:
                full[index] += g
            else:
                np.add.at(full, index, g)
            return (full,)

        if basic:
            return _view(self._data[index], self, backward)
        return _result(self._data[index], (self,), backward)

    # ---- reductions -------------------------------------------------------------------
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False, *,
            dtype: Any = None) -> Tensor:
        if dtype is not None:
            return self.to(dtype).sum(dim, keepdim)
        dims = _normalize_dims(dim, self.ndim)
        shape = self.shape
        return _result(
            self._data.sum(axis=dims, keepdims=keepdim),
            (self,),
            lambda g: (_expand_reduced(g, dims, keepdim, shape),),
        )

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False, *,
             dtype: Any = None) -> Tensor:
        if dtype is not None:
            return self.to(dtype).mean(dim, keepdim)
        dims = _normalize_dims(dim, self.ndim)
        count = int(np.prod([self.shape[d] for d in dims])) if self.ndim else 1
        shape = self.shape
        return _result(
            self._data.mean(axis=dims, keepdims=keepdim),
            (self,),
            lambda g: (_expand_reduced(g / count, dims, keepdim, shape),),
        )

    def max(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MaxResult:
        """``max()`` returns the largest value (its gradient split evenly among ties, as
        PyTorch does); ``max(dim)`` returns ``(values, indices)`` with the gradient going to
        the returned index; ``max(other)`` is the elementwise :meth:`maximum`."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extreme(dim, keepdim, np.argmax, MaxResult)

    def min(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MinResult:
        """Like :meth:`max`, for the smallest values."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extreme(dim, keepdim, np.argmin, MinResult)

    def _extreme(self, dim, keepdim, arg_fn, result_type) -> Tensor | MaxResult | MinResult:
        a = self._data
        if dim is None:
            value = a.max() if arg_fn is np.argmax else a.min()

            def backward_all(g):
                ties = a == value
                return (ties * (g / ties.sum()),)

            return _result(np.asarray(value), (self,), backward_all)
        dim = dim % a.ndim
        kept_indices = np.expand_dims(arg_fn(a, axis=dim), dim)
        values = np.take_along_axis(a, kept_indices, axis=dim)
        shape, dtype = a.shape, a.dtype

        def backward(g):
            full = np.zeros(shape, dtype)
            g = g if keepdim else np.expand_dims(g, dim)
            np.put_along_axis(full, kept_indices, g, axis=dim)
            return (full,)

        indices = kept_indices
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return result_type(_result(values, (self,), backward), Tensor(indices))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor(np.asarray(self._data.argmax()))
        return Tensor(self._data.argmax(axis=dim, keepdims=keepdim))

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor(np.asarray(self._data.argmin()))
        return Tensor(self._data.argmin(axis=dim, keepdims=keepdim))

    # ---- elementwise ------------------------------------------------------------------
    def exp(self) -> Tensor:
        out = np.exp(self._data)
        return _result(out, (self,), lambda g: (g * out,))

    def log(self) -> Tensor:
        a = self._data
        return _result(np.log(a), (self,), lambda g: (g / a,))

    def sqrt(self) -> Tensor:
        out = np.sqrt(self._data)
        return _result(out, (self,), lambda g: (g / (2 * out),))

    def abs(self) -> Tensor:
        a = self._data
        return _result(np.abs(a), (self,), lambda g: (g * np.sign(a),))

    def tanh(self) -> Tensor:
        out = np.tanh(self._data)
        return _result(out, (self,), lambda g: (g * (1 - out * out),))

    def sigmoid(self) -> Tensor:
        out = _sigmoid(self._data)
        return _result(out, (self,), lambda g: (g * out * (1 - out),))

    def relu(self) -> Tensor:
        a = self._data
        if a.dtype != float32 and a.dtype != float64:
            out = np.maximum(a, 0)
            return _result(out, (self,), lambda g: (g * (out > 0),))
        nt = runtime.threads_in_use()
        out = _elementwise.relu_forward(np.ascontiguousarray(a).reshape(-1), nt).reshape(a.shape)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            g = np.ascontiguousarray(g, dtype=out.dtype).reshape(-1)
            return (_elementwise.relu_backward(g, out.reshape(-1), nt).reshape(out.shape),)

        return _result(out, (self,), backward)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        a = self._data

        def backward(g):
            inside = np.ones(a.shape, bool)
            if min is not None:
                inside &= a >= min
            if max is not None:
                inside &= a <= max
            return (g * inside,)

        return _result(np.clip(a, min, max), (self,), backward)

    clip = clamp

    def softmax(self, dim: int) -> Tensor:
        out = _softmax(self._data, dim)

        def backward(g):
            return (out * (g - (g * out).sum(axis=dim, keepdims=True)),)

        return _result(out, (self,), backward)

    def log_softmax(self, dim: int) -> Tensor:
        a = self._data
        shifted = a - a.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))

        def backward(g):
            return (g - np.exp(out) * g.sum(axis=dim, keepdims=True),)

        return _result(out, (self,), backward)


# ---- helpers and free functions ---------------------------------------------------------
def _wrap(value: Any, like: Tensor) -> Tensor:
    """Make ``value`` a Tensor; Python and numpy scalars take ``like``'s dtype (as in torch)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool, np.number)):
        dtype = like.dtype if like.dtype.kind == "f" else None
        return Tensor(np.asarray(value, dtype=dtype))
    return Tensor(value)


def _shape_args(args: tuple) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _plain_index(index: Any) -> Any:
    """``index`` with tensors replaced by their arrays (numpy indexes with those)."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


def _mask_array(mask: Any, shape: tuple[int, ...], op: str) -> np.ndarray:
    """A bool mask that broadcasts to ``shape`` (PyTorch refuses masks of other dtypes)."""
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype {m.dtype}")
    if np.broadcast_shapes(m.shape, shape) != tuple(shape):
        raise RuntimeError(f"{op}: the mask of shape {list(m.shape)} does not broadcast to the "
                           f"tensor's shape {list(shape)}")
    return m


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # exp of a negative number only, so large |a| cannot overflow
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(a: np.ndarray, dim: int) -> np.ndarray:
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """Create a tensor (a copy of ``data``): float32 by default for Python floats, float64
    kept when given; ``device`` must name the CPU."""
    if device is not None:
        cpu_device(device)
    return Tensor(data, requires_grad=requires_grad,
                  dtype=None if dtype is None else _dtypes.as_dtype(dtype))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with numpy's (and PyTorch's) broadcasting and vector rules."""
    x, y = a._data, b._data
    # treat vectors as 1-row / 1-column matrices; keep each only for the other's gradient
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    x_shape, y_shape, x2_shape, y2_shape = x.shape, y.shape, x2.shape, y2.shape
    saved_x = x2 if b.requires_grad else None
    saved_y = y2 if a.requires_grad else None

    def backward(g):
        g2 = np.reshape(g, np.broadcast_shapes(x2_shape[:-2], y2_shape[:-2])
                        + (x2_shape[-2], y2_shape[-1]))
        ga = gb = None
        if saved_y is not None:
            ga = _unbroadcast(g2 @ np.swapaxes(saved_y, -1, -2), x2_shape).reshape(x_shape)
        if saved_x is not None:
            gb = _unbroadcast(np.swapaxes(saved_x, -1, -2) @ g2, y2_shape).reshape(y_shape)
        return ga, gb

    return _result(x @ y, (a, b), backward)


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = tuple(tensors)
    dim = dim % tensors[0].ndim
    bounds = np.cumsum([t.shape[dim] for t in tensors])[:-1]
    return _result(
        np.concatenate([t._data for t in tensors], axis=dim),
        tensors,
        lambda g: tuple(np.split(g, bounds, axis=dim)),
    )


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = tuple(tensors)
    dim = dim % (tensors[0].ndim + 1)
    return _result(
        np.stack([t._data for t in tensors], axis=dim),
        tensors,
        lambda g: tuple(np.moveaxis(g, dim, 0)),
    )


def where(condition: Any, a: Any, b: Any) -> Tensor:
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = _wrap(b, a)
    a_shape, b_shape = a.shape, b.shape
    return _result(
        np.where(cond, a._data, b._data),
        (a, b),
        lambda g: (_unbroadcast(np.where(cond, g, 0), a_shape),
                   _unbroadcast(np.where(cond, 0, g), b_shape)),
    )
