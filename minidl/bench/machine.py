"""What the numbers are relative to: the measured sgemm peak and the machine's setup."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# OpenBLAS workers busy-wait ~0.1 s after a call (2**28 cycles): let them fall asleep before
# timing anything else, or they compete with the next OpenMP threads for the cores.
BLAS_SETTLE_SECONDS = 0.3


def blas_settle() -> None:
    time.sleep(BLAS_SETTLE_SECONDS)


def sgemm_peak_gflops(threads: int, size: int = 2048, repeats: int = 5, attempts: int = 8,
                      max_busy: float = 0.10) -> tuple[float, float]:
    """Best GFLOP/s of scipy's sgemm on ``size x size`` float32 (Fortran order: no copies)
    with ``threads`` BLAS threads, and the share of CPU other processes took meanwhile.

    An attempt (a warm-up call and ``repeats`` timed ones) during which other processes took
    more than ``max_busy`` of the CPU is repeated, up to ``attempts`` times; the best rate of
    the quietest attempt is returned.
    """
    best_rate, best_share = 0.0, float("inf")
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(attempts):
            start = cpu_snapshot()
            rate = _sgemm_best(size, repeats)
            share = foreign_cpu_share(start, cpu_snapshot()) or 0.0
            if share < best_share or (share <= max_busy and rate > best_rate):
                best_rate, best_share = rate, share
            if share <= max_busy:
                break
    blas_settle()
    return best_rate, best_share


def _sgemm_best(size: int, repeats: int) -> float:
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((size, size), dtype=np.float32))
    c = np.zeros((size, size), dtype=np.float32, order="F")
    best = float("inf")
    for i in range(repeats + 1):
        start = time.perf_counter()
        sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def blas_libraries() -> list[dict[str, object]]:
    """The BLAS libraries loaded (threadpoolctl): which, version, kernel architecture, threads."""
    keys = ("internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info() if lib["user_api"] == "blas"]


def _cpuinfo_field(name: str) -> str | None:
    """The first value of ``name`` in /proc/cpuinfo (None where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's 'model name' from /proc/cpuinfo, else what the platform module knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


# Environment variables that cap the instruction set of minidl's kernels and of PyTorch
ISA_CAP_VARIABLES = ("MINIDL_MAX_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def describe_caps(caps: Mapping[str, str | None]) -> str:
    """``MINIDL_MAX_ISA=avx2, ONEDNN_MAX_CPU_ISA=AVX2, ...``; unset ones named as such."""
    set_ = [f"{name}={value}" for name, value in caps.items() if value is not None]
    unset = [name for name, value in caps.items() if value is None]
    return ", ".join(set_ + ([" and ".join(unset) + " unset"] if unset else []))


def core_round_trip_ns() -> float | None:
    """Nanoseconds a cache line takes from one core to another and back (None with fewer than
    two usable cores). On a VM it tells where the host placed the vCPUs: the same core complex
    or not, which moves every multi-threaded figure."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    if usable < 2:
        return None
    from minidl._ext import cpu

    return cpu.core_round_trip_ns()


def machine_info(threads: int) -> dict[str, object]:
    """Everything needed to read the results later (and to spot a noisy run)."""
    flags = cpu_flags()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "load_average_1min": os.getloadavg()[0],
        "core_round_trip_ns": core_round_trip_ns(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "blas": blas_libraries(),
        # both frameworks run in this process: glibc keeps freed memory for both (minidl.runtime)
        "minidl_retains_freed_memory": _retaining_freed_memory(),
        "minidl_isa": _isa(),
        "torch_cpu_capability": _torch_cpu_capability(),
        "isa_caps": {name: os.environ.get(name) for name in ISA_CAP_VARIABLES},
    }


def _retaining_freed_memory() -> bool:
    from minidl import runtime as memory

    return memory.retaining_freed_memory()


def _isa() -> str:
    from minidl import runtime

    return runtime.isa()


def _torch_cpu_capability() -> str:
    """The vector width of PyTorch's ATen kernels ('AVX512', 'AVX2', 'DEFAULT', ...)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def blas_warning(info: dict[str, object]) -> str | None:
    """A note when OpenBLAS runs narrower kernels than the CPU has (e.g. forced to Haswell),
    on the AVX-512 path (on a capped path PyTorch and minidl are capped too)."""
    archs = {str(lib.get("architecture")) for lib in info["blas"]}  # type: ignore[union-attr]
    on_avx512_path = info.get("minidl_isa", "avx512") == "avx512"
    if info["avx512f"] and on_avx512_path and archs & {"Haswell", "Zen", "Sandybridge"}:
        forced = info["OPENBLAS_CORETYPE"]
        why = f" (OPENBLAS_CORETYPE={forced})" if forced else ""
        return (
            f"OpenBLAS uses its {'/'.join(sorted(archs))} (AVX2) kernels{why} on a CPU with "
            "AVX-512, so the sgemm peak and every BLAS-bound minidl figure are about half of "
            "what the CPU can do, while PyTorch (oneDNN) uses AVX-512 (minidl's direct kernels, "
            "used where they win, do too)."
        )
    return None


# ---- subprocesses ------------------------------------------------------------------------------
def child_env(overrides: Mapping[str, str | None],
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmark subprocess: ``base`` (this process's by default) with
    ``overrides`` applied (None removes a variable), and the directory holding the minidl
    package first on PYTHONPATH, so that the child runs this very minidl."""
    env = dict(os.environ if base is None else base)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


# ---- how busy the rest of the machine was -------------------------------------------------
@dataclass(frozen=True)
class CpuSnapshot:
    wall: float  # seconds
    busy: float  # CPU seconds the whole machine spent busy (or stolen by the hypervisor)
    own: float  # CPU seconds of this process and its waited-for children


def cpu_snapshot() -> CpuSnapshot | None:
    """None where /proc/stat is unavailable (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    busy = (user + nice + system + irq + softirq + steal) / tick
    return CpuSnapshot(time.perf_counter(), busy, own)


def foreign_cpu_share(start: CpuSnapshot | None, end: CpuSnapshot | None) -> float | None:
    """Share of the machine's CPU time that other processes (and steal) took between the two."""
    if start is None or end is None or end.wall <= start.wall:
        return None
    foreign = (end.busy - start.busy) - (end.own - start.own)
    return max(0.0, foreign) / ((end.wall - start.wall) * (os.cpu_count() or 1))
