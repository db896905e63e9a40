"""Peak memory of one forward+backward, measured the same way for minidl and PyTorch.

Each framework runs in a fresh subprocess (``python -m minidl.bench.memory``): import, make the
inputs, warm up on a batch of 1 (so that code pages and JIT kernels are in), reset the kernel's
RSS high-water mark (``/proc/self/clear_refs``), then one forward+backward. The figure is the
high-water mark afterwards (``VmHWM``) minus the resident size before the call. Where the reset
is impossible the high-water marks before and after (``ru_maxrss``) are subtracted instead. The
child runs with glibc's mmap threshold fixed at 64 KiB, so every large buffer is mapped on
allocation and unmapped on free: RSS then follows the live buffers instead of a heap that keeps
what the warm-up freed. For minidl the tracemalloc peak (which sees every numpy allocation) is
reported too.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tracemalloc
from dataclasses import replace

from .cases import CASES, ConvCase, case_by_name
from .machine import child_env
from .workloads import WORKLOADS, conv_inputs

METHOD = (
    "RSS high-water mark of one forward+backward minus RSS before it, fresh subprocess per "
    "framework, glibc mmap threshold 64 KiB (VmHWM reset via /proc/self/clear_refs; else "
    "ru_maxrss after minus before)"
)
# glibc: buffers >= 64 KiB are mmapped and returned on free (fixing the threshold also stops
# glibc from raising it after each free, which would let the heap absorb big buffers)
# (and minidl must not set its own thresholds: minidl.runtime keeps freed memory otherwise)
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "131072",
    "MINIDL_RETAIN_MEMORY": "0",
}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _forward_backward(framework: str, case: ConvCase, seed: int = 0):
    op = WORKLOADS[framework](case, conv_inputs(case, seed))["forward_backward"]
    return lambda: op.run(op.setup())


def measure_in_this_process(framework: str, case: ConvCase, threads: int) -> dict[str, object]:
    """The child's work: peak RSS growth (and for minidl the tracemalloc peak) in MiB."""
    _set_threads(framework, threads)
    _forward_backward(framework, replace(case, batch=1))()  # warm-up
    run = _forward_backward(framework, case)
    gc.collect()
    if _reset_high_water_mark() and _status_kib("VmHWM") is not None:
        before, method = _status_kib("VmRSS"), "VmHWM-reset"
        run()
        after = _status_kib("VmHWM")
    else:
        before, method = _ru_maxrss_kib(), "ru_maxrss"
        run()
        after = _ru_maxrss_kib()
    result: dict[str, object] = {"peak_rss_mib": (after - before) / 1024, "rss_method": method}
    if framework == "minidl":
        result["tracemalloc_peak_mib"] = _tracemalloc_peak(run)
    return result


def _tracemalloc_peak(run) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def _set_threads(framework: str, threads: int) -> None:
    from minidl import runtime as minidl_threads

    minidl_threads.set_num_threads(threads)
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)


def measure(case: ConvCase, threads: int) -> dict[str, dict[str, object]]:
    """Run the child once per framework (minidl, torch); their results by framework.

    ``case`` must be one of :data:`minidl.bench.cases.CASES` (the child looks it up by name).
    """
    return {fw: _run_child(fw, case, threads) for fw in ("minidl", "torch")}


def _run_child(framework: str, case: ConvCase, threads: int) -> dict[str, object]:
    cmd = [sys.executable, "-m", "minidl.bench.memory", framework, case.name, str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(MALLOC_ENV),
                          timeout=600)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("framework", choices=("minidl", "torch"))
    parser.add_argument("case")
    parser.add_argument("threads", type=int)
    args = parser.parse_args(argv)
    case = case_by_name(args.case, CASES)
    print(json.dumps(measure_in_this_process(args.framework, case, args.threads)))


if __name__ == "__main__":
    main()
