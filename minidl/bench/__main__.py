"""``python -m minidl.bench [--quick] [--isa NAME] [--threads N] [--out DIR] [--no-busy]``:
see :mod:`minidl.bench`."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from minidl._ext import cpu
from minidl.runtime import ISAS

from . import busy, report
from .cases import CASES
from .isa_paths import run_paths, select_paths
from .machine import cpu_model
from .runner import Settings, log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m minidl.bench",
        description="Benchmark minidl's convolutions, a LeNet-5 step and an epoch of "
                    "examples/train_digits.py against PyTorch (CPU), same thread count, on "
                    "every instruction-set path of this CPU (one process each).",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads per framework (2)")
    parser.add_argument("--quick", action="store_true",
                        help="about a minute per path: fewer repetitions, batch-8 shapes at "
                             "batch 2")
    parser.add_argument("--isa", action="append", default=[], choices=ISAS, metavar="NAME",
                        help="only this instruction-set path (repeatable; one of "
                             f"{', '.join(ISAS)}; default: every one the CPU runs)")
    parser.add_argument("--out", type=Path, default=Path("bench_results"),
                        help="directory for results.json and ratios_<path>.png "
                             "(./bench_results)")
    parser.add_argument("--numpy", action=argparse.BooleanOptionalAction, default=None,
                        help="numpy im2col baseline column (default: on, off with --quick)")
    parser.add_argument("--case", action="append", default=[], metavar="NAME",
                        choices=[c.name for c in CASES],
                        help="only this conv shape (repeatable; LeNet, the main job and memory "
                             "still run)")
    parser.add_argument("--busy", action=argparse.BooleanOptionalAction, default=True,
                        help="time a LeNet-5 step idle and beside one busy process, once, on "
                             "this process's instruction-set path (default: on)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    supported = cpu.supported()
    try:
        paths = select_paths(args.isa, supported)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    settings = Settings(threads=args.threads, quick=args.quick,
                        numpy_baseline=not args.quick if args.numpy is None else args.numpy,
                        case_names=tuple(args.case), busy=args.busy)
    start = time.perf_counter()
    results = {
        "cpu_model": cpu_model(),
        "isa_supported": list(supported),
        "settings": {**asdict(settings), "budget": asdict(settings.budget)},
        "paths": run_paths(settings, paths, widest=supported[-1]),
    }
    if settings.busy:
        results["busy"] = busy.run(settings)
    results["wall_seconds"] = time.perf_counter() - start
    print(report.markdown(results))
    json_path, pngs = report.write(results, args.out)
    log(f"wrote {json_path} and {', '.join(str(p) for p in pngs)} "
        f"({results['wall_seconds']:.0f} s)")
    failed = [f"{p['isa']} path" for p in results["paths"] if "error" in p]
    failed += ["busy machine"] if "error" in results.get("busy", {}) else []
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
