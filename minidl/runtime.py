"""What importing minidl changes in the process, in one place: threads, memory, kernels.

Both settings are process-wide and described in the README ("What importing minidl changes").

**One thread count, BLAS on one thread.** minidl computes with two kinds of threads: the
OpenMP threads of its Cython kernels (``minidl._ext``) and the threads of OpenBLAS (through
numpy and scipy). OpenBLAS keeps its own pthreads pool, and after every call its workers
busy-wait for new work for a while before they sleep; an OpenMP region started in that window
shares the cores with them and runs several times slower. So minidl has one pool doing the
parallel work, OpenMP's, with ``n`` threads, and keeps BLAS on one thread: the GEMM kernel calls
single-threaded BLAS from each of its ``n`` OpenMP threads on independent tiles, and numpy's own
products (``Linear`` and friends) run on the calling thread. At any moment at most ``n``
threads compute; the price is that a large matmul outside the kernels uses one core. ``n``
defaults to ``OMP_NUM_THREADS`` (its first entry) or else the usable cores;
:func:`set_num_threads` changes it. This module owns the count: the dispatcher
(``minidl._ext.dispatch``) hands it to the kernels.

**Cores that other processes keep busy are left to them.** With ``n`` threads on ``n`` cores and
another process busy on one of them, the thread that shares its core runs at half speed and
every kernel waits for it, while the OpenMP threads that finished spin and take CPU time the
other process wanted (bench: the busy-machine section, a LeNet-5 step). So the kernels run on
:func:`threads_in_use` threads: :func:`get_num_threads`, less one for each core that other
processes kept busy over the last tenth of a second (``/proc/stat``'s busy time of this
process's cores, less this process's own CPU time; Linux only). The work is still split into
:func:`get_num_threads` parts whose partial sums are added in a fixed order (the weight
gradients; ``minidl/_ext/_common.pxd``), so fewer threads give the same bits. Waiting threads
spin as OpenMP does by default (``OMP_WAIT_POLICY=passive`` made every parallel region pay a
wake-up: a small CNN's step has dozens). ``MINIDL_SHARE_CORES=0`` turns the watch off; a thread
count above the usable cores is taken as the user's choice and not watched. README, "What
importing minidl changes", has the measurements.

**The widest instruction set the CPU has.** The kernels whose speed is their vectors are built
for several instruction sets (setup.py); :func:`isa` is the one in use: the widest that the CPU
supports, capped by ``MINIDL_MAX_ISA`` (``baseline``, ``avx2`` or ``avx512``, as
``ONEDNN_MAX_CPU_ISA`` caps oneDNN), chosen once at import.

**Freed memory stays in the process.** A training step allocates and frees the same large
arrays over and over. glibc's malloc serves large blocks with fresh ``mmap`` pages and trims
freed memory from the top of the heap, so the next array of that size page-faults every page in
again and the kernel zeroes it. Like frameworks with a caching allocator, minidl keeps that
memory: importing it calls :func:`retain_freed_memory`, which sets glibc's
``M_MMAP_THRESHOLD`` to 256 MiB (larger blocks still get their own mapping) and
``M_TRIM_THRESHOLD`` to 1 GiB (up to that much freed memory stays with the process). The cost:
the resident size stays near its peak. ``MINIDL_RETAIN_MEMORY=0`` before importing minidl, or
``retain_freed_memory(False)``, keeps glibc's defaults. Without glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import operator
import os
import time

from threadpoolctl import ThreadpoolController

from ._ext import cpu as _cpu

__all__ = [
    "BLAS_THREADS",
    "ISAS",
    "default_num_threads",
    "get_num_threads",
    "isa",
    "retain_freed_memory",
    "retaining_freed_memory",
    "set_num_threads",
    "show_config",
    "threads_in_use",
]

BLAS_THREADS = 1  # see the module docstring
_num_threads = 1


# ---- threads ---------------------------------------------------------------------------------
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
    numpy's and scipy's own products. ``TypeError`` if ``n`` is not an int, ``ValueError`` if
    ``n < 1``.
    """
    global _num_threads
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    _num_threads = n
    # A fresh controller sees every BLAS library loaded so far; the limit stays in force
    # (it is only undone when used as a context manager).
    ThreadpoolController().limit(limits=BLAS_THREADS, user_api="blas")


def get_num_threads() -> int:
    """Number of OpenMP threads minidl's kernels use."""
    return _num_threads


def threads_in_use() -> int:
    """Threads the kernels run on now: :func:`get_num_threads`, less the cores that other
    processes keep busy (at least one; see the module doc)."""
    n = _num_threads
    if n == 1 or not _watch.enabled or n > _watch.cores:
        return n
    return max(1, min(n, _watch.free_cores()))


class _CoreWatch:
    """How many of this process's cores other processes left free, sampled from /proc/stat."""

    # /proc/stat counts in clock ticks (SC_CLK_TCK a second, usually 100): over a tenth of a
    # second a busy core shows about ten of them, enough to tell it from noise
    INTERVAL = 0.1

    def __init__(self, enabled: bool) -> None:
        self.cores = _usable_cores()
        self._lines = self._cpu_lines()
        self.enabled = enabled and self._lines is not None
        self._tick = os.sysconf("SC_CLK_TCK") if self.enabled else 100
        self._last: tuple[float, float, float] | None = None
        self._free = self.cores

    def _cpu_lines(self) -> frozenset[bytes] | None:
        """The /proc/stat lines of the cores this process may run on (None: no /proc/stat)."""
        try:
            with open("/proc/stat", "rb") as f:
                names = {line.split()[0] for line in f if line.startswith(b"cpu")}
            cpus = sorted(os.sched_getaffinity(0))
        except (OSError, AttributeError):
            return None
        lines = frozenset(b"cpu%d" % c for c in cpus)
        return lines if lines <= names else None

    def _busy_seconds(self) -> float:
        """CPU seconds the watched cores spent busy (user, nice, system, irq, softirq)."""
        ticks = 0
        with open("/proc/stat", "rb") as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] in self._lines:
                    ticks += sum(int(fields[i]) for i in (1, 2, 3, 6, 7))
        return ticks / self._tick

    def restart(self) -> None:
        """Forget the last sample (its CPU time was another process's)."""
        self._last = None
        self._free = self.cores

    def free_cores(self) -> int:
        """Cores not kept busy by other processes over the last INTERVAL (rounded)."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.INTERVAL:
            return self._free
        sample = (now, self._busy_seconds(), time.process_time())
        if self._last is not None:
            wall, busy, own = (b - a for a, b in zip(self._last, sample, strict=True))
            others = max(0.0, busy - own) / wall
            self._free = max(1, round(self.cores - others))
        self._last = sample
        return self._free


# ---- instruction set ---------------------------------------------------------------------------
ISAS = ("baseline", "avx2", "avx512")  # narrowest first


def _built(name: str) -> bool:
    return importlib.util.find_spec(f"minidl._ext.direct_{name}") is not None


def _choose_isa(cap: str | None) -> str:
    """The widest instruction set that the CPU supports, minidl was built for, and ``cap``
    allows."""
    cap = (cap or "avx512").strip().lower()
    if cap not in ISAS:
        raise ValueError(f"MINIDL_MAX_ISA must be one of {', '.join(ISAS)}, got {cap!r}")
    allowed = ISAS[: ISAS.index(cap) + 1]
    usable = [name for name in _cpu.supported() if name in allowed and _built(name)]
    return usable[-1] if usable else "baseline"


_isa = _choose_isa(os.environ.get("MINIDL_MAX_ISA"))


def isa() -> str:
    """The instruction set of the kernels in use ('baseline', 'avx2' or 'avx512')."""
    return _isa


def show_config() -> dict[str, object]:
    """Print and return what minidl runs with: instruction set, BLAS, threads, memory."""
    blas = ThreadpoolController().select(user_api="blas").info()
    config: dict[str, object] = {
        "isa": _isa,
        "isa_supported_by_cpu": list(_cpu.supported()),
        "MINIDL_MAX_ISA": os.environ.get("MINIDL_MAX_ISA"),
        "threads": _num_threads,
        "threads_in_use": threads_in_use(),
        "share_cores": _watch.enabled,
        "blas": [
            {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for lib in blas
        ],
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "retains_freed_memory": _retaining,
    }
    for key, value in config.items():
        print(f"{key:22} {value}")
    return config


# ---- memory ----------------------------------------------------------------------------------
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


# Load both BLAS libraries minidl calls (numpy's, and scipy's that the GEMM kernel uses) before
# limiting them: a library loaded after the limit keeps its own thread count, and its spinning
# threads then compete with the OpenMP kernels for the cores.
import numpy  # noqa: E402, F401
import scipy.linalg.cython_blas  # noqa: E402, F401

_watch = _CoreWatch(os.environ.get("MINIDL_SHARE_CORES", "1") != "0")
if hasattr(os, "register_at_fork"):  # a forked child's CPU time starts again from zero
    os.register_at_fork(after_in_child=_watch.restart)
set_num_threads(default_num_threads())
if os.environ.get("MINIDL_RETAIN_MEMORY", "1") != "0":
    retain_freed_memory()
