"""A LeNet-5 training step, an epoch of the main job (examples/train_digits.py), and the
machine's sgemm peak the conv GFLOP/s compare with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minidl.bench import lenet, main_job
from minidl.bench.machine import blas_settle
from minidl.bench.report import MAIN_JOB_LABEL

SGEMM_SIZE = 2048


@pytest.mark.parametrize("framework", ["minidl", "torch"])
def test_lenet_train_step(benchmark: Any, framework: str) -> None:
    missing = lenet.missing_parts()
    if missing:
        pytest.skip(f"LeNet-5 needs {', '.join(missing)}")
    step = lenet.training_steps()[framework]
    benchmark.group = f"LeNet-5 training step, N={lenet.BATCH}, SGD"
    benchmark.pedantic(step, rounds=30, warmup_rounds=3)


@pytest.mark.parametrize("framework", ["minidl", "torch"])
def test_main_job_epoch(benchmark: Any, framework: str) -> None:
    reason = main_job.unavailable_reason()
    if reason:
        pytest.skip(f"the main job is unavailable: {reason}")
    epoch = main_job.setup().epochs[framework]
    benchmark.group = MAIN_JOB_LABEL
    benchmark.pedantic(epoch, rounds=5, warmup_rounds=1)


def test_sgemm_peak(benchmark: Any, threads: int) -> None:
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    a, b = (np.asfortranarray(rng.standard_normal((SGEMM_SIZE,) * 2, dtype=np.float32))
            for _ in range(2))
    c = np.zeros((SGEMM_SIZE,) * 2, dtype=np.float32, order="F")
    benchmark.group = "sgemm peak"
    benchmark.extra_info["gflop"] = 2 * SGEMM_SIZE**3 / 1e9
    with threadpool_limits(threads, user_api="blas"):
        benchmark.pedantic(sgemm, args=(1.0, a, b),
                           kwargs={"beta": 0.0, "c": c, "overwrite_c": True},
                           rounds=5, warmup_rounds=1)
    blas_settle()
