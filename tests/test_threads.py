"""minidl.runtime: one thread count for the OpenMP kernels and BLAS."""

import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import minidl
import minidl.nn.functional as F
from minidl import runtime as threads
from minidl._ext import dispatch
from minidl._geometry import conv_geometry


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


# ---- fewer threads in use than set: the same bits ---------------------------------------------

# (x shape, w shape, stride, padding, groups): geometries that reach every algorithm's kernels
_CASES = {
    "3x3_pad1": ((3, 8, 20, 20), (16, 8, 3, 3), 1, 1, 1),
    "one_image": ((1, 8, 40, 40), (16, 8, 3, 3), 1, 1, 1),
    "small_image": ((4, 16, 8, 8), (32, 16, 3, 3), 1, 1, 1),
    "2_out_channels": ((4, 8, 20, 20), (2, 8, 3, 3), 1, 0, 1),
    "stride_2": ((3, 8, 21, 21), (32, 8, 3, 3), 2, 1, 1),
    "depthwise": ((3, 8, 20, 20), (8, 1, 3, 3), 1, 1, 8),
    "pointwise": ((3, 16, 12, 12), (32, 16, 1, 1), 1, 0, 1),
}
_PASSES = {"forward": dispatch.conv_forward, "data": dispatch.conv_backward_data,
           "weight": dispatch.conv_backward_weight}


def _geometry(case: str):
    x_shape, w_shape, stride, padding, groups = _CASES[case]
    return conv_geometry("conv2d", 2, x_shape, w_shape, stride, padding, 1, groups)


def _runs() -> list:
    return [pytest.param(case, pass_, algorithm, dtype, id=f"{case}-{pass_}-{algorithm}-{dtype}")
            for case in _CASES for pass_ in _PASSES for algorithm in dispatch.ALGORITHMS
            for dtype in ("float32", "float64")
            if dispatch.applicable(algorithm, pass_, _geometry(case), np.dtype(dtype))]


class _Watch:
    """Stands in for runtime's /proc/stat watch: `free` cores left by other processes."""
    enabled = True
    cores = 64

    def __init__(self, free: int) -> None:
        self.free = free

    def free_cores(self) -> int:
        return self.free


@pytest.mark.parametrize("case, pass_, algorithm, dtype", _runs())
def test_fewer_threads_in_use_give_the_same_bits(monkeypatch, case, pass_, algorithm, dtype):
    """The work is split into get_num_threads() parts whatever threads_in_use() is: a busy
    machine takes threads away without changing a bit of any pass."""
    geo = _geometry(case)
    rng = np.random.default_rng(1)
    first, second = {"forward": (geo.x_shape, geo.w_shape), "data": (geo.y_shape, geo.w_shape),
                     "weight": (geo.x_shape, geo.y_shape)}[pass_]
    a = rng.standard_normal(first).astype(dtype)
    b = rng.standard_normal(second).astype(dtype)
    threads.set_num_threads(3)
    results = []
    for free in (3, 2, 1):
        monkeypatch.setattr(threads, "_watch", _Watch(free))
        assert threads.threads_in_use() == free
        results.append(_PASSES[pass_](a, b, geo, algorithm=algorithm))
    for result in results[1:]:
        np.testing.assert_array_equal(results[0], result)


def test_a_training_step_repeats_exactly_on_fewer_threads(monkeypatch) -> None:
    """Conv, bias, ReLU, BatchNorm, pooling, Linear, loss and Adam: the parameters after
    three steps on 2 threads and with one of them taken away are the same bits."""
    from minidl import nn

    def train(free: int) -> list[np.ndarray]:
        threads.set_num_threads(2)
        monkeypatch.setattr(threads, "_watch", _Watch(free))
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(16 * 4 * 4, 10))
        opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = minidl.tensor(rng.standard_normal((16, 1, 12, 12), dtype=np.float32))
            target = minidl.tensor(rng.integers(0, 10, 16))
            opt.zero_grad()
            F.cross_entropy(model(x), target).backward()
            opt.step()
        return [p.detach().numpy().copy() for p in model.parameters()]

    for a, b in zip(train(2), train(1)):
        np.testing.assert_array_equal(a, b)


def test_threads_in_use_follow_the_free_cores(monkeypatch) -> None:
    threads.set_num_threads(4)
    for free, expected in ((8, 4), (4, 4), (3, 3), (1, 1)):
        monkeypatch.setattr(threads, "_watch", _Watch(free))
        assert threads.threads_in_use() == expected
    assert threads.get_num_threads() == 4  # the user's setting is kept


def _threads_seen_within(seconds: float, wanted: int) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if threads.threads_in_use() == wanted:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(threads._usable_cores() < 2, reason="needs two cores to share one")
def test_a_busy_process_takes_a_thread_away_and_gives_it_back() -> None:
    """The real /proc/stat watch: one spinning process costs one thread, and its end gives the
    thread back (the watch samples every tenth of a second)."""
    assert threads._watch.enabled  # Linux with /proc/stat, MINIDL_SHARE_CORES unset
    n = threads._usable_cores()
    threads.set_num_threads(n)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert _threads_seen_within(3.0, n - 1)
    finally:
        busy.kill()
        busy.wait()
    assert _threads_seen_within(3.0, n)


def _threads_seen_in_child(queue) -> None:
    first = threads.threads_in_use()
    time.sleep(0.15)  # past the watch's sampling interval
    queue.put((first, threads.threads_in_use()))


@pytest.mark.skipif(threads._usable_cores() < 2, reason="needs two cores to share one")
def test_a_forked_child_starts_its_own_watch() -> None:
    """A forked child's CPU time starts from zero: measured against its parent's last sample
    it would read as other processes' work and take threads away on an idle machine."""
    n = threads._usable_cores()
    threads.set_num_threads(n)
    threads.threads_in_use()  # the parent has a sample
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_threads_seen_in_child, args=(queue,))
    child.start()
    seen = queue.get(timeout=10)
    child.join()
    assert seen == (n, n)
