"""Keep freed memory in the process instead of handing it back to the operating system.

A training step allocates and frees the same large arrays (activations, gradients, column
buffers) over and over.  glibc's malloc serves blocks above its mmap threshold (128 KiB at
first, adjusted as blocks are freed) with fresh ``mmap`` pages and trims freed memory from the
top of the heap: the next array of that size then page-faults every 4 KiB page in again and the
kernel zeroes it.  On the 2-core machine of the README a LeNet-5 step (batch 64) took 8.9-9.4
ms (median) that way and 4.7-6.2 ms with the memory kept.

So minidl, like frameworks with a caching allocator, keeps it: importing minidl calls
:func:`retain_freed_memory`, which sets glibc's ``M_MMAP_THRESHOLD`` to 256 MiB (larger blocks
still get their own mapping) and ``M_TRIM_THRESHOLD`` to 1 GiB (up to that much freed memory
stays with the process).  The settings are process-wide, so PyTorch in the same process (the
benchmark's) gets them too.  The cost: the resident size stays near its peak.  Set
``MINIDL_RETAIN_MEMORY=0`` before importing minidl, or call ``retain_freed_memory(False)``, to
keep glibc's defaults.  Without glibc (other C libraries, Windows, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["retain_freed_memory", "retaining_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT = 128 * 1024  # both thresholds' initial values
_MMAP_THRESHOLD = 256 << 20
_TRIM_THRESHOLD = 1 << 30
_retaining = False


def _mallopt():
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no dlopen(NULL) (Windows) or no mallopt (not glibc)
        return None


def retain_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory for reuse (True) or go back to glibc's default thresholds (False).

    Returns whether the setting took effect (False where malloc is not glibc's)."""
    global _retaining
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mmap, trim = (_MMAP_THRESHOLD, _TRIM_THRESHOLD) if enabled else (_GLIBC_DEFAULT,) * 2
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    if ok:
        _retaining = enabled
    return ok


def retaining_freed_memory() -> bool:
    """Whether minidl has set glibc to keep freed memory."""
    return _retaining


if os.environ.get("MINIDL_RETAIN_MEMORY", "1") != "0":
    retain_freed_memory()
