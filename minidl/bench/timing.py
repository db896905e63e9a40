"""Interleaved timing: A B A B ..., so that drifts in the machine hit every framework alike.

On a shared machine other processes come and go. Rounds are therefore run in chunks of about
``chunk_seconds``; a chunk during which other processes took more than ``max_busy`` of the
CPU time is thrown away and run again, for at most ``patience`` times the budget, after which
whatever comes is kept (and counted as such).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field

from .machine import cpu_snapshot, foreign_cpu_share
from .workloads import Timed


@dataclass(frozen=True)
class Budget:
    """How long to measure one pass (all frameworks together)."""

    seconds: float
    min_reps: int
    max_reps: int
    warmup: int = 2
    chunk_seconds: float = 0.25
    max_busy: float = 0.10
    patience: float = 2.5


FULL_BUDGET = Budget(seconds=2.0, min_reps=7, max_reps=200)
QUICK_BUDGET = Budget(seconds=0.8, min_reps=5, max_reps=60, warmup=1, patience=1.0)
NUMPY_BUDGET = Budget(seconds=1.0, min_reps=3, max_reps=50, warmup=1, patience=1.0)


@dataclass
class Measurement:
    samples: dict[str, list[float]]  # seconds per op, rounds kept
    discarded_rounds: int = 0  # thrown away: the machine was busy
    busy_rounds_kept: int = 0  # kept anyway once patience ran out
    busy_shares: list[float] = field(default_factory=list)  # of the kept chunks


def time_once(op: Timed) -> float:
    """Seconds of one ``op.run``; its ``setup`` and the garbage collector stay outside."""
    state = op.setup()
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        op.run(state)
        return time.perf_counter() - start
    finally:
        if gc_enabled:
            gc.enable()


def _round(ops: dict[str, Timed]) -> dict[str, float]:
    return {name: time_once(op) for name, op in ops.items()}


def interleaved(ops: dict[str, Timed], budget: Budget) -> Measurement:
    """Warm up, then time every op once per round, round after round, in quiet chunks."""
    round_seconds = 0.0
    for _ in range(budget.warmup):
        round_seconds = sum(_round(ops).values())
    reps = _repetitions(round_seconds, budget)
    per_chunk = max(1, min(reps, int(budget.chunk_seconds / max(round_seconds, 1e-9))))
    deadline = time.perf_counter() + budget.patience * max(budget.seconds, reps * round_seconds)
    result = Measurement({name: [] for name in ops})
    while len(next(iter(result.samples.values()))) < reps:
        start = cpu_snapshot()
        chunk = [_round(ops) for _ in range(per_chunk)]
        share = foreign_cpu_share(start, cpu_snapshot())
        busy = share is not None and share > budget.max_busy
        if busy and time.perf_counter() < deadline:
            result.discarded_rounds += len(chunk)
            continue
        result.busy_rounds_kept += len(chunk) if busy else 0
        result.busy_shares.append(share or 0.0)
        for timings in chunk:
            for name, seconds in timings.items():
                result.samples[name].append(seconds)
    return result


def _repetitions(round_seconds: float, budget: Budget) -> int:
    wanted = int(budget.seconds / max(round_seconds, 1e-9))
    return max(budget.min_reps, min(budget.max_reps, wanted))


def summary(samples: list[float]) -> dict[str, float]:
    """Median (the quoted figure), min and interquartile range, in milliseconds."""
    ms = sorted(s * 1e3 for s in samples)
    q1, _, q3 = statistics.quantiles(ms, n=4) if len(ms) > 1 else (ms[0], ms[0], ms[0])
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "iqr_ms": q3 - q1, "reps": len(ms)}


def noise(m: Measurement) -> dict[str, object]:
    """The measurement's record of how quiet the machine was."""
    return {
        "discarded_rounds": m.discarded_rounds,
        "busy_rounds_kept": m.busy_rounds_kept,
        "max_busy_share_kept": max(m.busy_shares, default=0.0),
    }
