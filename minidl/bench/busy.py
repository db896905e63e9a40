"""A LeNet-5 training step on a busy machine: idle, then beside one busy process.

Each framework's step (:func:`minidl.bench.lenet.training_steps`, batch 64) is warmed up and
timed step by step on the machine as it is ("idle"), then again while a second Python process
spins (``while True: pass``: one core's worth of someone else's work). The figures are the busy
median and 90th percentile over the idle median. The issue's contention target holds minidl to
a busy median <= 2x and a busy p90 <= 2.5x its idle median; PyTorch, with the same thread
count, is shown for comparison and held to nothing.

The section runs once per ``python -m minidl.bench``, in its own process, so on the
instruction-set path that process runs with (not once per ``--isa`` path). The busy process is
killed and reaped whatever happens (:func:`busy_process`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import lenet, machine
from .runner import Settings, log, set_threads
from .timing import time_once
from .workloads import Timed, nothing

BUSY_CODE = "while True: pass"  # the other process: one core, spinning
SETTLE_SECONDS = 0.5  # after starting and after killing the busy process
PERCENTILE = 90
MEDIAN_TARGET = 2.0  # minidl's busy median / idle median
P90_TARGET = 2.5  # minidl's busy 90th percentile / idle median
TARGET_FRAMEWORK = "minidl"  # PyTorch is shown for comparison
FRAMEWORKS = ("minidl", "torch")


@dataclass(frozen=True)
class Steps:
    """How many steps to run untimed, then to time one by one, per framework and phase."""

    warmup: int
    timed: int


FULL_STEPS = Steps(warmup=20, timed=300)
QUICK_STEPS = Steps(warmup=5, timed=60)


@contextmanager
def busy_process() -> Iterator[subprocess.Popen]:
    """A process spinning on one core for the duration of the ``with`` block; killed and
    reaped on the way out, also when the block raises."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE], stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def step_times(step: Callable[[], Any], steps: Steps) -> dict[str, Any]:
    """``steps.warmup`` untimed steps, then ``steps.timed`` timed one by one (milliseconds,
    in order), and the share of CPU time other processes took meanwhile."""
    for _ in range(steps.warmup):
        step()
    op = Timed(nothing, lambda _: step())
    start = machine.cpu_snapshot()
    ms = [time_once(op) * 1e3 for _ in range(steps.timed)]
    return {"ms": ms, "foreign_cpu_share": machine.foreign_cpu_share(start, machine.cpu_snapshot())}


def summary(sample: dict[str, Any]) -> dict[str, Any]:
    """Median, 90th percentile and max of a :func:`step_times` sample, in milliseconds."""
    ms = np.asarray(sample["ms"])
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, PERCENTILE)),
            "max_ms": float(ms.max()), "reps": len(ms),
            "foreign_cpu_share": sample["foreign_cpu_share"]}


def idle_and_busy(step: Callable[[], Any], steps: Steps,
                  settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """One framework's step timed idle, then beside the busy process; its busy figures over
    its idle median."""
    idle = summary(step_times(step, steps))
    with busy_process() as proc:
        time.sleep(settle_seconds)
        loaded = step_times(step, steps)
        if proc.poll() is not None:
            raise RuntimeError(f"the busy process exited early (status {proc.returncode})")
    time.sleep(settle_seconds)
    busy = summary(loaded)
    return {"idle": idle, "busy": busy,
            "busy_median_ratio": busy["median_ms"] / idle["median_ms"],
            "busy_p90_ratio": busy["p90_ms"] / idle["median_ms"]}


def meets_target(figures: dict[str, Any]) -> bool:
    return (figures["busy_median_ratio"] <= MEDIAN_TARGET
            and figures["busy_p90_ratio"] <= P90_TARGET)


def steps_for(settings: Settings) -> Steps:
    return QUICK_STEPS if settings.quick else FULL_STEPS


def run(settings: Settings, steps: Steps | None = None,
        settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """The section's results, JSON-ready: each framework's idle and busy figures and whether
    minidl met the target ("available": False, with "missing" or "error", if not measured)."""
    missing = lenet.missing_parts()
    if missing:
        log(f"busy machine: LeNet-5 unavailable, missing {', '.join(missing)}")
        return {"available": False, "missing": missing}
    steps = steps or steps_for(settings)
    log(f"busy machine: LeNet-5 step idle and beside one busy process ({steps.timed} steps)")
    set_threads(settings.threads)
    try:
        step_fns = lenet.training_steps()
        figures = {fw: idle_and_busy(step_fns[fw], steps, settle_seconds) for fw in FRAMEWORKS}
    except Exception as error:  # reported like a failed path, the rest of the report stands
        log(f"busy machine: failed: {error!r}")
        return {"available": False, "error": f"{type(error).__name__}: {error}"}
    info = machine.machine_info(settings.threads)
    return {
        "available": True,
        "minidl_isa": info["minidl_isa"],
        "torch_cpu_capability": info["torch_cpu_capability"],
        "isa_caps": info["isa_caps"],
        "threads": settings.threads,
        "batch": lenet.BATCH,
        "steps": asdict(steps),
        "busy_command": f"python -c '{BUSY_CODE}'",
        "target": {"framework": TARGET_FRAMEWORK, "busy_median_ratio": MEDIAN_TARGET,
                   "busy_p90_ratio": P90_TARGET},
        "frameworks": figures,
        "passed": meets_target(figures[TARGET_FRAMEWORK]),
    }
