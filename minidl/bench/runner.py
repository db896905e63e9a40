"""Run the whole benchmark: every case, every pass, the frameworks interleaved."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from . import lenet, machine, main_job, memory
from .cases import CASES, MEMORY_CASE, PASSES, ConvCase, case_by_name, quick_cases
from .timing import (
    FULL_BUDGET,
    NUMPY_BUDGET,
    QUICK_BUDGET,
    Budget,
    interleaved,
    noise,
    summary,
)
from .workloads import WORKLOADS, ConvInputs, Timed, conv_inputs, forward_output, nothing

CHECK_RTOL = 1e-3  # forward outputs must agree with PyTorch before anything is timed


@dataclass(frozen=True)
class Settings:
    threads: int = 2
    quick: bool = False
    numpy_baseline: bool = True  # the CLI leaves it out of --quick runs
    case_names: tuple[str, ...] = ()  # empty: all
    busy: bool = True  # the busy-machine section (minidl.bench.busy), run once by the CLI

    @property
    def budget(self) -> Budget:
        return QUICK_BUDGET if self.quick else FULL_BUDGET

    @property
    def frameworks(self) -> tuple[str, ...]:
        return ("minidl", "torch", "numpy") if self.numpy_baseline else ("minidl", "torch")

    def cases(self) -> tuple[ConvCase, ...]:
        cases = quick_cases() if self.quick else CASES
        if not self.case_names:
            return cases
        return tuple(case_by_name(name, cases) for name in self.case_names)


def settings_to_json(settings: Settings) -> str:
    return json.dumps(asdict(settings))


def settings_from_json(text: str) -> Settings:
    fields = json.loads(text)
    return Settings(**{**fields, "case_names": tuple(fields.get("case_names", ()))})


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_threads(n: int) -> None:
    """The same thread count for both frameworks (minidl: kernels and BLAS)."""
    import torch

    from minidl import runtime as threads

    threads.set_num_threads(n)
    torch.set_num_threads(n)


def run(settings: Settings) -> dict[str, object]:
    """All measurements of one run, as the JSON-ready dict the report is made from."""
    set_threads(settings.threads)
    info = machine.machine_info(settings.threads)
    start = machine.cpu_snapshot()
    peak_before = measure_peak(settings)
    cases = run_cases(settings)
    train = quietest(run_lenet, settings.budget, "LeNet-5 training step")
    job = quietest(run_main_job, settings.budget, "main job epoch")
    mem = run_memory(settings)
    peak_after = measure_peak(settings)
    end = machine.machine_info(settings.threads)
    info["load_average_1min_end"] = end["load_average_1min"]
    info["core_round_trip_ns_end"] = end["core_round_trip_ns"]
    info["foreign_cpu_share"] = machine.foreign_cpu_share(start, machine.cpu_snapshot())
    return {
        "torch_version": _torch_version(),
        "settings": {**asdict(settings), "budget": asdict(settings.budget)},
        "machine": info,
        "sgemm_peak_gflops": max(peak_before[0], peak_after[0]),
        "sgemm_peak_runs_gflops": [peak_before[0], peak_after[0]],
        "sgemm_peak_runs_foreign_cpu_share": [peak_before[1], peak_after[1]],
        "cases": cases,
        "lenet_train_step": train,
        "main_job": job,
        "memory": mem,
    }


def measure_peak(settings: Settings) -> tuple[float, float]:
    log(f"measuring the sgemm peak ({settings.threads} threads) ...")
    attempts = 3 if settings.quick else 8  # repeated while other processes are busy
    return machine.sgemm_peak_gflops(settings.threads, attempts=attempts)


def run_cases(settings: Settings) -> list[dict[str, Any]]:
    results = []
    for case in settings.cases():
        results.append(retry_if_disturbed(run_case(case, settings), case, settings))
    return results


def _torch_version() -> str:
    import torch

    return torch.__version__


def run_case(case: ConvCase, settings: Settings) -> dict[str, object]:
    log(f"{case.name}: {case.label}")
    inputs = conv_inputs(case)
    errors = check_outputs(case, inputs, settings.frameworks)
    workloads = {fw: WORKLOADS[fw](case, inputs) for fw in settings.frameworks}
    algorithms = conv_algorithms(workloads["minidl"])
    start, passes = machine.cpu_snapshot(), {}
    for pass_name in PASSES:
        ops = {fw: workloads[fw][pass_name] for fw in ("minidl", "torch")}
        measured = interleaved(ops, settings.budget)
        passes[pass_name] = {fw: summary(s) for fw, s in measured.samples.items()}
        passes[pass_name]["noise"] = noise(measured)
        if settings.numpy_baseline:
            passes[pass_name]["numpy"] = time_numpy(workloads["numpy"][pass_name],
                                                    settings.threads)
    return {
        "case": asdict(case),
        "forward_max_rel_error_vs_torch": errors,
        "minidl_algorithms": algorithms,
        "foreign_cpu_share": machine.foreign_cpu_share(start, machine.cpu_snapshot()),
        "passes": passes,
    }


RETRY_BUSY_FRACTION = 0.25  # measure a case again if more of its rounds than this were busy


def conv_algorithms(minidl_ops: dict[str, Timed]) -> dict[str, str]:
    """Which algorithm computed each of minidl's conv primitives in one forward+backward
    (pass -> algorithm, as minidl._ext.dispatch chose them)."""
    from minidl._ext import dispatch

    op = minidl_ops["forward_backward"]
    with dispatch.record() as log:
        op.run(op.setup())
    return {pass_: algorithm for pass_, algorithm in log}


def _busy_fraction(result: dict[str, Any]) -> float:
    passes = result["passes"].values()
    kept = sum(p["noise"]["busy_rounds_kept"] for p in passes)
    return kept / max(1, sum(p["minidl"]["reps"] for p in passes))


def retry_if_disturbed(result: dict[str, Any], case: ConvCase,
                       settings: Settings) -> dict[str, Any]:
    """Measure a case again if many busy rounds had to be kept; keep the quieter result."""
    if _busy_fraction(result) <= RETRY_BUSY_FRACTION:
        return result
    log(f"{case.name}: the machine was busy, measuring again")
    again = run_case(case, settings)
    best = again if _busy_fraction(again) <= _busy_fraction(result) else result
    return {**best, "measured_twice": True}


def time_numpy(op: Timed, threads: int) -> dict[str, float]:
    """The numpy baseline with ``threads`` BLAS threads, on its own (not interleaved): OpenBLAS
    workers keep spinning after each call and would slow down whatever is timed next."""
    with threadpool_limits(threads, user_api="blas"):
        samples = interleaved({"numpy": op}, NUMPY_BUDGET).samples["numpy"]
    machine.blas_settle()
    return summary(samples)


def check_outputs(case: ConvCase, inputs: ConvInputs, frameworks: tuple[str, ...]) -> dict:
    """Max relative error of each framework's forward against PyTorch's; raises if too big."""
    reference = forward_output("torch", case, inputs)
    scale = float(np.abs(reference).max()) or 1.0
    errors = {}
    for fw in frameworks:
        if fw != "torch":
            out = forward_output(fw, case, inputs)
            errors[fw] = float(np.abs(out - reference).max()) / scale
            if out.shape != reference.shape or errors[fw] > CHECK_RTOL:
                raise AssertionError(f"{case.name}: {fw} disagrees with PyTorch ({errors[fw]:.2e})")
    return errors


def run_lenet(budget: Budget) -> dict[str, object]:
    missing = lenet.missing_parts()
    if missing:
        log(f"LeNet-5 training step unavailable: missing {', '.join(missing)}")
        return {"available": False, "missing": missing}
    log("LeNet-5 training step")
    ops, first_loss = lenet.workloads()
    start = machine.cpu_snapshot()
    measured = interleaved(ops, budget)
    return {
        "available": True,
        "foreign_cpu_share": machine.foreign_cpu_share(start, machine.cpu_snapshot()),
        "batch": lenet.BATCH,
        "first_loss": first_loss,
        "step": {fw: summary(s) for fw, s in measured.samples.items()},
        "noise": noise(measured),
    }


def quietest(measure: Callable[[Budget], dict[str, Any]], budget: Budget,
             name: str) -> dict[str, Any]:
    """``measure(budget)``, measured again if busy rounds had to be kept; the quieter result
    (results without "noise" are those of an unavailable workload)."""
    first = measure(budget)
    if not first.get("available") or not first["noise"]["busy_rounds_kept"]:
        return first
    log(f"{name}: the machine was busy, measuring again")
    again = measure(budget)
    quieter = again["noise"]["busy_rounds_kept"] <= first["noise"]["busy_rounds_kept"]
    return again if quieter else first


def run_main_job(budget: Budget) -> dict[str, Any]:
    """Epochs of examples/train_digits.py, minidl and PyTorch interleaved.

    The first epoch of each framework runs untimed (it records the algorithms minidl's convs
    used and each framework's losses); then ``budget`` decides how many more are timed."""
    reason = main_job.unavailable_reason()
    if reason:
        log(f"main job unavailable: {reason}")
        return {"available": False, "missing": [reason]}
    log("main job: epochs of examples/train_digits.py")
    job = main_job.setup()
    from minidl._ext import dispatch

    with dispatch.record() as calls:
        first = {"minidl": job.epochs["minidl"]()}
    first["torch"] = job.epochs["torch"]()
    ops = {fw: Timed(nothing, lambda _, epoch=epoch: epoch()) for fw, epoch in job.epochs.items()}
    start = machine.cpu_snapshot()
    measured = interleaved(ops, budget)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    return {
        "available": True,
        "foreign_cpu_share": machine.foreign_cpu_share(start, machine.cpu_snapshot()),
        "batch_size": job.batch_size,
        "train_images": job.train_images,
        "test_images": job.test_images,
        "lr": job.lr,
        "profile": job.profile,
        "first_epoch": {fw: dict(zip(keys, values, strict=True)) for fw, values in first.items()},
        "minidl_algorithms": sorted(set(calls)),
        "epoch": {fw: summary(s) for fw, s in measured.samples.items()},
        "noise": noise(measured),
    }


def run_memory(settings: Settings) -> dict[str, object]:
    """Always at the full batch, even in --quick runs: the target is defined there, and one
    forward+backward per framework is cheap."""
    case = case_by_name(MEMORY_CASE, CASES)
    log(f"peak memory of forward+backward, {case.label} (one subprocess per framework)")
    return {"case": case.name, "label": case.label, "method": memory.METHOD,
            **memory.measure(case, settings.threads)}
