"""minidl.runtime: glibc keeps freed memory for reuse (see the module for why)."""

import os
import platform
import resource
import subprocess
import sys

import numpy as np
import pytest

import minidl
from minidl import runtime as memory

GLIBC = platform.libc_ver()[0] == "glibc"


def _page_faults_of_reuse(nbytes=64 << 20, rounds=5):
    """Minor page faults while an array of nbytes is allocated, written and freed `rounds`
    times (after one warm-up round)."""
    np.ones(nbytes // 8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        np.ones(nbytes // 8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_retained_by_default_where_malloc_is_glibc():
    assert memory.retaining_freed_memory() == GLIBC


def test_freed_memory_is_reused_without_page_faults():
    """64 MiB written 5 times: with glibc's defaults every round maps fresh memory and faults
    at least once per 2 MiB huge page (once per 4 KiB page without huge pages; 2720 faults
    measured here), with the freed memory kept (almost) never (0 measured)."""
    if not GLIBC:
        assert memory.retain_freed_memory() is False
        return
    try:
        assert memory.retain_freed_memory(False)
        faults_default = _page_faults_of_reuse()
        assert memory.retain_freed_memory(True)
        faults_retained = _page_faults_of_reuse()
    finally:
        memory.retain_freed_memory(True)
    assert faults_default >= 5 * 32
    assert faults_retained <= faults_default // 20


@pytest.mark.parametrize("env, expected", [("0", False), ("1", GLIBC)])
def test_environment_opt_out(env, expected):
    code = "import minidl; print(minidl.runtime.retaining_freed_memory())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "MINIDL_RETAIN_MEMORY": env}, check=True)
    assert result.stdout.strip() == str(expected)


def test_runtime_module_is_exported_as_minidl_runtime():
    assert minidl.runtime is memory
