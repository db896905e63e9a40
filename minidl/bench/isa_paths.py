"""One benchmark run per instruction-set path, each in its own subprocess.

A path is one of the instruction sets minidl has kernels for and the CPU runs
(``minidl._ext.cpu.supported()``). Its subprocess (``python -m minidl.bench.isa_paths``) starts
with ``MINIDL_MAX_ISA`` set to the path, and PyTorch in it is capped the same way on the
narrower paths: oneDNN by ``ONEDNN_MAX_CPU_ISA``, ATen's vectorised kernels by
``ATEN_CPU_CAPABILITY``. On the CPU's widest path PyTorch is left uncapped (both variables
removed). The variables are read when the libraries load, so they are set in the environment
the subprocess starts with, before anything is imported. ``OPENBLAS_CORETYPE`` and everything
else is passed on unchanged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .machine import child_env, describe_caps
from .runner import Settings, log, settings_from_json, settings_to_json

# PyTorch's caps for the paths narrower than the CPU's widest (oneDNN, ATen)
TORCH_CAPS: dict[str, dict[str, str]] = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "baseline": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
}


def select_paths(requested: Sequence[str], supported: Sequence[str]) -> list[str]:
    """The paths to run, widest first: ``requested`` (all of ``supported`` if empty).

    ``supported`` is ordered narrowest first, as ``minidl._ext.cpu.supported()`` is; a
    requested path the CPU does not run is a ``ValueError``."""
    missing = [name for name in requested if name not in supported]
    if missing:
        raise ValueError(f"this CPU has no {', '.join(missing)} path "
                         f"(it runs: {', '.join(supported)})")
    chosen = set(requested or supported)
    return sorted(chosen, key=list(supported).index, reverse=True)


def caps(isa: str, widest: str) -> dict[str, str | None]:
    """The capping variables of a path (None: unset in its subprocess)."""
    torch_caps = TORCH_CAPS[isa] if isa != widest else {}
    return {
        "MINIDL_MAX_ISA": isa,
        "ONEDNN_MAX_CPU_ISA": torch_caps.get("ONEDNN_MAX_CPU_ISA"),
        "ATEN_CPU_CAPABILITY": torch_caps.get("ATEN_CPU_CAPABILITY"),
    }


def path_env(isa: str, widest: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a path's subprocess starts with (``base``: this process's)."""
    return child_env(caps(isa, widest), base)


def run_paths(settings: Settings, paths: Sequence[str], widest: str) -> list[dict[str, Any]]:
    """Each path's results (see :func:`run_path`), in the order given."""
    with tempfile.TemporaryDirectory(prefix="minidl-bench-") as tmp:
        return [run_path(isa, widest, settings, Path(tmp)) for isa in paths]


def run_path(isa: str, widest: str, settings: Settings, workdir: Path) -> dict[str, Any]:
    """Run the benchmark in a subprocess capped to ``isa``: ``{"isa", "widest", "caps",
    "run"}`` with the subprocess's results under "run", or "error" instead if it failed."""
    path_caps = caps(isa, widest)
    out = workdir / f"{isa}.json"
    log(f"==== {isa} path: {describe_caps(path_caps)} ====")
    cmd = [sys.executable, "-m", "minidl.bench.isa_paths", "--isa", isa,
           "--settings", settings_to_json(settings), "--out", str(out)]
    done = subprocess.run(cmd, env=path_env(isa, widest))  # its log goes straight to stderr
    record: dict[str, Any] = {"isa": isa, "widest": isa == widest, "caps": path_caps}
    if done.returncode or not out.exists():
        return {**record, "error": f"the subprocess failed (exit status {done.returncode}); "
                                   "its log is above"}
    return {**record, "run": json.loads(out.read_text())}


def child_main(argv: list[str] | None = None) -> None:
    """The subprocess of one path: the whole benchmark, its results as JSON to ``--out``."""
    from minidl import runtime

    from .runner import run

    parser = argparse.ArgumentParser(description="one instruction-set path of minidl.bench "
                                                 "(started by python -m minidl.bench)")
    parser.add_argument("--isa", required=True)
    parser.add_argument("--settings", required=True, help="minidl.bench.runner.Settings as JSON")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if runtime.isa() != args.isa:
        log(f"warning: minidl's kernels run {runtime.isa()!r}, not {args.isa!r} "
            "(built without that instruction set?)")
    args.out.write_text(json.dumps(run(settings_from_json(args.settings))))


if __name__ == "__main__":
    child_main()
