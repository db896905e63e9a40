"""Grad mode as in PyTorch: per thread, and set_grad_enabled / enable_grad / inference_mode."""

import threading

import pytest

import minidl


def _flags(lib, script):
    """Run ``script(lib, log)`` and return what it logged (each entry from the same calls)."""
    log = []
    script(lib, log)
    return log


def _nesting(lib, log):
    x = lib.tensor([1.0, 1.0], requires_grad=True)
    log.append(lib.is_grad_enabled())
    with lib.no_grad():
        log.append(lib.is_grad_enabled())
        with lib.enable_grad():
            log.append(lib.is_grad_enabled())
            log.append((x * 2).requires_grad)
        log.append((x * 2).requires_grad)
        with lib.set_grad_enabled(True):
            log.append(lib.is_grad_enabled())
        log.append(lib.is_grad_enabled())
    with lib.inference_mode():
        log.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
        log.append((x * 2).requires_grad)
        with lib.inference_mode(False):
            log.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
    with lib.no_grad():
        with lib.inference_mode(False):
            log.append(lib.is_grad_enabled())
    log.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
    lib.set_grad_enabled(False)  # a plain call switches at once
    log.append(lib.is_grad_enabled())
    lib.set_grad_enabled(True)
    log.append(lib.is_grad_enabled())


def _decorators(lib, log):
    x = lib.tensor([1.0, 1.0], requires_grad=True)

    @lib.no_grad()
    def a():
        return (x * 2).requires_grad

    @lib.no_grad
    def b():
        return (x * 2).requires_grad

    @lib.set_grad_enabled(False)
    def c():
        return lib.is_grad_enabled()

    log.append(lib.is_grad_enabled())  # defining c did not switch the mode off

    @lib.inference_mode
    def d():
        return lib.is_inference_mode_enabled()

    @lib.inference_mode()
    def e():
        return lib.is_grad_enabled()

    @lib.enable_grad
    def f():
        return lib.is_grad_enabled()

    log.extend([a(), b(), c(), d(), e(), a.__name__, c.__name__])
    with lib.no_grad():
        log.append(f())
        log.append(lib.is_grad_enabled())
    log.append(lib.is_grad_enabled())


@pytest.mark.parametrize("script", [_nesting, _decorators])
def test_grad_mode_managers_match_torch(torch, script):
    assert _flags(minidl, script) == _flags(torch, script)


def test_grad_mode_restored_after_an_exception():
    with pytest.raises(KeyError):
        with minidl.no_grad():
            raise KeyError
    assert minidl.is_grad_enabled()
    with pytest.raises(KeyError):
        with minidl.set_grad_enabled(False):
            raise KeyError
    assert minidl.is_grad_enabled()


def test_set_grad_enabled_needs_a_bool(torch):
    with pytest.raises(TypeError):
        torch.set_grad_enabled("no")
    with pytest.raises(TypeError, match="bool"):
        minidl.set_grad_enabled("no")
    assert minidl.is_grad_enabled()


def test_no_grad_in_one_thread_leaves_other_threads_alone():
    """Thread A sits inside no_grad while thread B builds a graph and backpropagates."""
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        with minidl.no_grad():
            inside.set()
            done.wait(10)
            seen["a"] = minidl.is_grad_enabled()

    def thread_b():
        inside.wait(10)
        x = minidl.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        seen["b"] = (minidl.is_grad_enabled(), y.requires_grad)
        y.backward()
        seen["grad"] = x.grad.tolist()
        done.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"a": False, "b": (True, True), "grad": [2.0, 4.0]}
    assert minidl.is_grad_enabled()


def test_a_new_thread_starts_with_grad_on():
    seen = []
    with minidl.no_grad():
        t = threading.Thread(target=lambda: seen.append(minidl.is_grad_enabled()))
        t.start()
        t.join(10)
    assert seen == [True]
