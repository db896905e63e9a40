"""Grad mode, per thread as in PyTorch: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``.

Each is a context manager and a decorator (``@no_grad()``; ``no_grad``, ``enable_grad`` and
``inference_mode`` also work without the parentheses, as in PyTorch). Switching the mode in
one thread leaves every other thread's mode alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._state import grad_mode


def is_grad_enabled() -> bool:
    """Whether ops in this thread record a graph."""
    return grad_mode.enabled


def is_inference_mode_enabled() -> bool:
    """Whether this thread is inside ``inference_mode()``."""
    return grad_mode.inference


class _Mode:
    """Sets this thread's mode on entry (:meth:`_apply`) and restores the previous on exit."""

    def __new__(cls, *args: Any) -> Any:
        if len(args) == 1 and callable(args[0]):  # used as ``@no_grad``, without parentheses
            return cls()(args[0])
        return super().__new__(cls)

    def _apply(self) -> None:
        raise NotImplementedError

    def _copy(self) -> _Mode:
        """A fresh manager with the same setting, so a decorated function may be re-entered."""
        return type(self)()

    def __enter__(self) -> None:
        self._previous = (grad_mode.enabled, grad_mode.inference)
        self._apply()

    def __exit__(self, *exc: object) -> None:
        grad_mode.enabled, grad_mode.inference = self._previous

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_Mode):
    """Ops inside record no graph: their results need no gradient."""

    def _apply(self) -> None:
        grad_mode.enabled = False


class enable_grad(_Mode):
    """Ops inside record a graph again (inside ``no_grad``, for example)."""

    def _apply(self) -> None:
        grad_mode.enabled = True


class inference_mode(_Mode):
    """``no_grad`` for inference: nothing inside records a graph.

    PyTorch also marks the tensors made inside as inference tensors that autograd refuses
    later; minidl does not track that, so they behave like tensors made under ``no_grad``.
    ``inference_mode(False)`` switches inference mode off and autograd on, as in PyTorch.
    """

    def __new__(cls, mode: Any = True) -> Any:
        return super().__new__(cls, *((mode,) if callable(mode) else ()))

    def __init__(self, mode: bool = True) -> None:
        self._mode = bool(mode)

    def _copy(self) -> inference_mode:
        return inference_mode(self._mode)

    def _apply(self) -> None:
        grad_mode.enabled, grad_mode.inference = not self._mode, self._mode


class set_grad_enabled(_Mode):
    """``set_grad_enabled(False)`` switches this thread's autograd off at once (a plain call
    works); used with ``with``, the previous mode comes back on exit; as a decorator it sets
    the mode only while the function runs."""

    def __new__(cls, mode: bool) -> set_grad_enabled:
        return object.__new__(cls)

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled() takes a bool, got {type(mode).__name__}")
        self._mode = mode
        self._previous = (grad_mode.enabled, grad_mode.inference)
        grad_mode.enabled = mode

    def __enter__(self) -> None:
        pass  # the mode was set by the constructor; __exit__ restores the one before it

    def _copy(self) -> _Mode:
        manager = _Enabled()
        manager._mode = self._mode
        return manager

    def __call__(self, fn: Callable) -> Callable:
        grad_mode.enabled = self._previous[0]  # a decorator changes nothing until called
        return super().__call__(fn)


class _Enabled(_Mode):
    """The manager behind a ``@set_grad_enabled(mode)`` function: sets ``mode`` on entry."""

    _mode = True

    def _apply(self) -> None:
        grad_mode.enabled = self._mode
