"""pytest-benchmark suite: ``pytest benchmarks --benchmark-only`` (from the repo root).

minidl, PyTorch and the numpy im2col baseline on the shapes of ``minidl.bench.cases``, one
benchmark group per shape. Both frameworks get the same thread count (``--bench-threads``,
default 2). For medians of *interleaved* runs, the targets and the report, use
``python -m minidl.bench``: pytest-benchmark runs each benchmark on its own, one after another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from minidl.bench.workloads import Timed


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-threads", type=int, default=2,
                     help="threads for minidl (kernels and BLAS) and PyTorch (default 2)")


@pytest.fixture(scope="session")
def torch() -> Any:
    return pytest.importorskip("torch", reason="the benchmarks compare against PyTorch")


@pytest.fixture(scope="session", autouse=True)
def threads(request: pytest.FixtureRequest, torch: Any) -> int:
    from minidl import runtime as minidl_threads

    n = request.config.getoption("--bench-threads")
    minidl_threads.set_num_threads(n)
    torch.set_num_threads(n)
    return n


def rounds_for(op: Timed, seconds: float = 1.0, low: int = 3, high: int = 50) -> int:
    """Rounds that take about `seconds`, from one call (which also warms the op up)."""
    state = op.setup()
    start = time.perf_counter()
    op.run(state)
    elapsed = time.perf_counter() - start
    return max(low, min(high, int(seconds / max(elapsed, 1e-6))))


@pytest.fixture
def run_timed(benchmark: Any) -> Callable[[Timed], None]:
    """Benchmark a Timed op: its setup runs untimed before every round."""

    def run(op: Timed) -> None:
        benchmark.pedantic(op.run, setup=lambda: ((op.setup(),), {}), rounds=rounds_for(op),
                           warmup_rounds=1)

    return run
