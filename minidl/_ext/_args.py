"""Argument checks shared by the Cython kernel modules (before any unchecked indexing)."""

from __future__ import annotations

import operator


def triple(value, name: str, minimum: int | None = None) -> tuple[int, int, int]:
    """value as a tuple of 3 ints (D, H, W); TypeError / ValueError naming `name` otherwise,
    and, given `minimum`, if an entry is below it."""
    try:
        result = tuple(operator.index(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of 3 ints, got {value!r}") from None
    if len(result) != 3:
        raise ValueError(f"{name} must have 3 entries (D, H, W), got {value!r}")
    if minimum is not None and min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {result}")
    return result


def thread_count(n) -> int:
    """n as a thread count: an int >= 1 (TypeError / ValueError otherwise)."""
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    return n
