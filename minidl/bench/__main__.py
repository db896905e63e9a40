"""``python -m minidl.bench [--quick] [--threads N] [--out DIR]``: see :mod:`minidl.bench`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import report
from .cases import CASES
from .runner import Settings, log, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m minidl.bench",
        description="Benchmark minidl's convolutions against PyTorch (CPU), same thread count.",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads per framework (2)")
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: fewer repetitions, batch-8 shapes at batch 2")
    parser.add_argument("--out", type=Path, default=Path("bench_results"),
                        help="directory for results.json and ratios.png (./bench_results)")
    parser.add_argument("--numpy", action=argparse.BooleanOptionalAction, default=None,
                        help="numpy im2col baseline column (default: on, off with --quick)")
    parser.add_argument("--case", action="append", default=[], metavar="NAME",
                        choices=[c.name for c in CASES],
                        help="only this conv shape (repeatable; LeNet and memory still run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    settings = Settings(threads=args.threads, quick=args.quick,
                        numpy_baseline=not args.quick if args.numpy is None else args.numpy,
                        case_names=tuple(args.case))
    start = time.perf_counter()
    results = run(settings)
    results["wall_seconds"] = time.perf_counter() - start
    print(report.markdown(results))
    json_path, png_path = report.write(results, args.out)
    log(f"wrote {json_path} and {png_path} ({results['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
