"""One thread count for everything minidl runs in parallel.

minidl computes with two kinds of threads: the OpenMP threads of its Cython kernels
(``minidl._ext.conv``, ``minidl._ext.pool``) and the threads of OpenBLAS (through numpy and
scipy). OpenBLAS keeps its own pthreads pool, separate from OpenMP's, and after every call its
workers busy-wait for new work (about 0.1 s) before they sleep. Any OpenMP region started in
that window shares the cores with them: on 2 cores a conv right after a 512x512 numpy matmul
took 3.6 ms instead of 0.28 ms, and a LeNet-5 training step 16 ms instead of 8.7 ms.

So minidl has one pool doing the parallel work, OpenMP's, with ``n`` threads, and keeps BLAS on
one thread: the convolution kernel calls single-threaded BLAS from each of its ``n`` OpenMP
threads on independent tiles (it also limits BLAS to one thread itself while it runs), and
numpy's own products (``Linear`` and friends) run on the calling thread. At any moment at most
``n`` threads compute. The price is that a large matmul outside the kernels uses one core.

``n`` defaults to ``OMP_NUM_THREADS`` (its first entry) or else the usable cores, and is applied
when this module is imported; :func:`set_num_threads` changes it.
"""

from __future__ import annotations

import os

from threadpoolctl import ThreadpoolController

from ._ext import conv as _conv
from ._ext import pool as _pool
from ._ext._args import thread_count

__all__ = ["BLAS_THREADS", "default_num_threads", "get_num_threads", "set_num_threads"]

BLAS_THREADS = 1  # see the module docstring


def default_num_threads() -> int:
    """``OMP_NUM_THREADS`` (its first entry) if set and valid, else the usable cores."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        n = 0
    return n if n > 0 else _usable_cores()


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Run minidl's kernels on ``n`` OpenMP threads, and BLAS on one (see the module doc).

    Like ``torch.set_num_threads`` this is process-wide: the BLAS setting also applies to
    numpy's and scipy's own products. ``ValueError`` if ``n < 1``.
    """
    n = thread_count(n)
    _conv.set_num_threads(n)
    _pool.set_num_threads(n)
    # A fresh controller sees every BLAS library loaded so far; the limit stays in force
    # (it is only undone when used as a context manager).
    ThreadpoolController().limit(limits=BLAS_THREADS, user_api="blas")


def get_num_threads() -> int:
    """Number of OpenMP threads minidl's kernels use."""
    return _conv.get_num_threads()


set_num_threads(default_num_threads())
