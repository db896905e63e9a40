"""minidl.runtime: one thread count for the OpenMP kernels and BLAS."""

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import minidl
import minidl.nn.functional as F
from minidl import runtime as threads


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = threads.get_num_threads()
    yield
    threads.set_num_threads(before)


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_round_trip(n: int) -> None:
    threads.set_num_threads(n)
    assert threads.get_num_threads() == n
    assert minidl.get_num_threads() == n


def test_importing_minidl_leaves_every_blas_on_one_thread() -> None:
    """Both BLAS libraries (numpy's and scipy's, which the GEMM kernel calls) are loaded before
    the limit is applied, so neither keeps threads that would spin beside the kernels."""
    import subprocess
    import sys

    code = ("import minidl; from threadpoolctl import threadpool_info; "
            "print(sorted({i['num_threads'] for i in threadpool_info() "
            "if i['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1]"


def test_blas_stays_single_threaded() -> None:
    """OpenMP does the parallel work; a second (BLAS) pool would oversubscribe the cores."""
    threads.set_num_threads(2)
    assert _blas_threads() == {threads.BLAS_THREADS} == {1}


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_count_raises_value_error(bad: int) -> None:
    before = threads.get_num_threads()
    with pytest.raises(ValueError, match=">= 1"):
        threads.set_num_threads(bad)
    assert threads.get_num_threads() == before


def test_non_integer_raises_type_error() -> None:
    with pytest.raises(TypeError):
        threads.set_num_threads(1.5)  # type: ignore[arg-type]


def test_default_honours_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert threads.default_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.default_num_threads() >= 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_num_threads() >= 1


def _conv_and_grads(n_threads: int) -> list[np.ndarray]:
    """Forward, dx and dw of a conv whose work splits into several tiles per image."""
    threads.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((3, 8, 20, 20), dtype=np.float32), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((16, 8, 3, 3), dtype=np.float32), requires_grad=True)
    y = F.conv2d(x, w, stride=1, padding=1)
    y.backward(np.ones(y.shape, dtype=np.float32))
    return [y.numpy(), x.grad.numpy(), w.grad.numpy()]


def test_results_identical_with_one_and_two_threads() -> None:
    y1, dx1, dw1 = _conv_and_grads(1)
    y2, dx2, dw2 = _conv_and_grads(2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    # dw sums one accumulator per thread: the same terms, added in another order
    np.testing.assert_allclose(dw1, dw2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_repeated_calls_are_bit_identical(n_threads: int) -> None:
    """Every pass of every algorithm gives the same bits on repeated calls with a given
    thread count (static schedules, per-thread sums added in thread order)."""
    from minidl._ext import dispatch

    for algorithm in ("gemm", "direct", "winograd", None):
        with dispatch.force(algorithm):
            runs = [_conv_and_grads(n_threads) for _ in range(6)]
        for run in runs[1:]:
            for a, b in zip(runs[0], run):
                np.testing.assert_array_equal(a, b)
