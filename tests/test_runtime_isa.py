"""minidl.runtime: the instruction set chosen at import, MINIDL_MAX_ISA, show_config, and the
OpenMP wait policy (left alone)."""

import os
import subprocess
import sys

import pytest

import minidl
from minidl import runtime
from minidl._ext import cpu, dispatch


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MINIDL_MAX_ISA",
                                                              "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env})


def test_widest_supported_instruction_set_within_the_cap():
    """The widest the CPU supports, unless this run caps it (CI runs every narrower path)."""
    cap = os.environ.get("MINIDL_MAX_ISA") or "avx512"
    allowed = runtime.ISAS[: runtime.ISAS.index(cap) + 1]
    assert runtime.isa() == [name for name in cpu.supported() if name in allowed][-1]
    assert dispatch.direct.isa() == dispatch.depthwise.__name__.rsplit("_", 1)[-1]


@pytest.mark.parametrize("cap", runtime.ISAS)
def test_max_isa_caps_the_choice(cap):
    expected = [name for name in cpu.supported() if runtime.ISAS.index(name)
                <= runtime.ISAS.index(cap)][-1]
    code = ("import minidl; from minidl._ext import dispatch; "
            "print(minidl.runtime.isa(), dispatch.direct.isa())")
    result = _run(code, MINIDL_MAX_ISA=cap)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected, expected]


def test_bad_max_isa_is_a_clear_error():
    result = _run("import minidl", MINIDL_MAX_ISA="avx1024")
    assert result.returncode != 0
    assert "MINIDL_MAX_ISA must be one of baseline, avx2, avx512, got 'avx1024'" in result.stderr


def test_show_config_prints_and_returns(capsys):
    config = minidl.show_config()
    assert config["isa"] == runtime.isa()
    assert config["threads"] == minidl.get_num_threads()
    assert config["retains_freed_memory"] == runtime.retaining_freed_memory()
    printed = capsys.readouterr().out
    assert f"isa                    {runtime.isa()}" in printed


def test_the_openmp_wait_policy_is_left_to_the_user():
    code = "import os, minidl; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _run(code).stdout.strip() == "None"
    assert _run(code, OMP_WAIT_POLICY="passive").stdout.strip() == "passive"
