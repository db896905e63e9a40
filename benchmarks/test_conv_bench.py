"""Convolutions: forward, backward (alone, on a fresh graph) and forward+backward."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minidl.bench.cases import CASES, PASSES, ConvCase
from minidl.bench.machine import blas_settle
from minidl.bench.workloads import FRAMEWORKS, WORKLOADS, Timed, conv_inputs, forward_output


@cache
def _reference(case: ConvCase) -> np.ndarray:
    return forward_output("torch", case, conv_inputs(case))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv(benchmark: Any, run_timed: Callable[[Timed], None], threads: int,
              case: ConvCase, pass_name: str, framework: str) -> None:
    inputs = conv_inputs(case)
    if pass_name == "forward" and framework != "torch":  # time nothing that is wrong
        np.testing.assert_allclose(forward_output(framework, case, inputs), _reference(case),
                                   rtol=1e-3, atol=1e-3 * float(np.abs(_reference(case)).max()))
    benchmark.group = case.label
    benchmark.extra_info.update(framework=framework, pass_name=pass_name,
                                gflop=case.gflop(pass_name))
    op = WORKLOADS[framework](case, inputs)[pass_name]
    if framework != "numpy":
        run_timed(op)
        return
    with threadpool_limits(threads, user_api="blas"):  # minidl keeps BLAS on one thread
        run_timed(op)
    blas_settle()  # OpenBLAS workers spin after their last call: let them sleep
