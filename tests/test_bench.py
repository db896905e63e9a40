"""The benchmark's pure parts. Nothing is timed."""

import os

import minidl
from minidl.bench import machine


def test_child_env_runs_this_minidl():
    env = machine.child_env({"A": "1", "B": None}, {"B": "2", "PYTHONPATH": "elsewhere"})
    root = os.path.dirname(os.path.dirname(minidl.__file__))
    assert env["A"] == "1" and "B" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "elsewhere"]


def test_describe_caps_names_unset_variables():
    caps = {"MINIDL_MAX_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": None, "ATEN_CPU_CAPABILITY": None}
    assert machine.describe_caps(caps) == (
        "MINIDL_MAX_ISA=avx2, ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY unset")
