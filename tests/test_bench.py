"""The benchmark's pure parts: instruction-set paths and their environments, the report made
from a fake results dict, and the main job's model, weights and data order. Nothing is timed
but a few LeNet-5 steps of the busy-machine section (its structure and its busy process)."""

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

import minidl
from minidl.bench import busy, isa_paths, lenet, machine, main_job, report, runner
from minidl.bench.__main__ import parse_args
from minidl.bench.cases import PASSES, case_by_name
from minidl.bench.runner import Settings
from minidl.bench.timing import QUICK_BUDGET

ALL = ("baseline", "avx2", "avx512")


# ---- paths and their environments ------------------------------------------------------------
def test_paths_run_widest_first():
    assert isa_paths.select_paths([], ALL) == ["avx512", "avx2", "baseline"]
    assert isa_paths.select_paths([], ALL[:2]) == ["avx2", "baseline"]
    assert isa_paths.select_paths(["baseline", "avx512", "baseline"], ALL) == [
        "avx512", "baseline"]


def test_a_path_the_cpu_lacks_is_refused():
    with pytest.raises(ValueError, match="no avx512 path"):
        isa_paths.select_paths(["avx512"], ALL[:2])


def test_widest_path_leaves_pytorch_uncapped():
    base = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "OPENBLAS_CORETYPE": "Haswell", "MINIDL_MAX_ISA": "baseline"}
    env = isa_paths.path_env("avx512", "avx512", base)
    assert env["MINIDL_MAX_ISA"] == "avx512"
    assert "ONEDNN_MAX_CPU_ISA" not in env and "ATEN_CPU_CAPABILITY" not in env
    assert env["OPENBLAS_CORETYPE"] == "Haswell"


@pytest.mark.parametrize("isa, onednn, aten", [("avx2", "AVX2", "avx2"),
                                               ("baseline", "SSE41", "default")])
def test_narrower_paths_cap_pytorch_too(isa, onednn, aten):
    env = isa_paths.path_env(isa, "avx512", {"OPENBLAS_CORETYPE": "Haswell"})
    assert env["MINIDL_MAX_ISA"] == isa
    assert (env["ONEDNN_MAX_CPU_ISA"], env["ATEN_CPU_CAPABILITY"]) == (onednn, aten)
    assert env["OPENBLAS_CORETYPE"] == "Haswell"


def test_avx2_is_uncapped_where_it_is_the_widest():
    caps = isa_paths.caps("avx2", "avx2")
    assert caps == {"MINIDL_MAX_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": None,
                    "ATEN_CPU_CAPABILITY": None}
    assert machine.describe_caps(caps) == (
        "MINIDL_MAX_ISA=avx2, ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY unset")


def test_child_env_runs_this_minidl():
    env = machine.child_env({"A": "1", "B": None}, {"B": "2", "PYTHONPATH": "elsewhere"})
    root = os.path.dirname(os.path.dirname(minidl.__file__))
    assert env["A"] == "1" and "B" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "elsewhere"]


def test_settings_survive_the_trip_to_the_subprocess():
    settings = Settings(threads=3, quick=True, numpy_baseline=False, case_names=("digits_conv",))
    assert runner.settings_from_json(runner.settings_to_json(settings)) == settings


# ---- the report --------------------------------------------------------------------------------
def _timing(ms):
    return {"median_ms": ms, "min_ms": ms, "iqr_ms": 0.0, "reps": 5}


QUIET = {"discarded_rounds": 0, "busy_rounds_kept": 0, "max_busy_share_kept": 0.0}


def fake_run(isa, caps, capability="AVX2"):
    """One path's results as runner.run returns them (after a JSON round trip)."""
    case = case_by_name("digits_conv")
    passes = {p: {"minidl": _timing(1.0), "torch": _timing(2.0), "noise": QUIET} for p in PASSES}
    run = {
        "torch_version": "2.13.0+cpu",
        "settings": {**asdict(Settings(quick=True)), "budget": asdict(QUICK_BUDGET)},
        "machine": {
            "avx512f": True, "blas": [{"internal_api": "openblas", "version": "0.3.30",
                                       "architecture": "Haswell"}],
            "OPENBLAS_CORETYPE": "Haswell", "minidl_isa": isa,
            "torch_cpu_capability": capability, "isa_caps": caps,
            "load_average_1min": 0.5, "load_average_1min_end": 0.7, "foreign_cpu_share": 0.02,
            "core_round_trip_ns": 95.0, "core_round_trip_ns_end": 402.0,
        },
        "sgemm_peak_gflops": 50.0,
        "sgemm_peak_runs_gflops": [49.0, 50.0],
        "sgemm_peak_runs_foreign_cpu_share": [0.0, 0.01],
        "cases": [{
            "case": asdict(case), "forward_max_rel_error_vs_torch": {"minidl": 1e-7},
            "minidl_algorithms": {"forward": "direct", "data": "direct", "weight": "gemm"},
            "foreign_cpu_share": 0.0, "passes": passes,
        }],
        "lenet_train_step": {"available": False, "missing": ["minidl.nn.Something"]},
        "main_job": {
            "available": True, "batch_size": 32, "train_images": 1437, "test_images": 360,
            "first_epoch": {fw: {"train_loss": 0.7, "train_acc": 0.8, "test_loss": 0.2,
                                 "test_acc": 0.95} for fw in ("minidl", "torch")},
            "minidl_algorithms": [["weight", "gemm"], ["forward", "direct"],
                                  ["forward", "winograd"], ["data", "direct"]],
            "epoch": {"minidl": _timing(150.0), "torch": _timing(200.0)}, "noise": QUIET,
        },
        "memory": {"case": "resnet_3x3_64@56", "label": "ResNet", "method": "RSS peaks",
                   "minidl": {"peak_rss_mib": 10.0, "tracemalloc_peak_mib": 9.0},
                   "torch": {"peak_rss_mib": 20.0}},
    }
    return json.loads(json.dumps(run))


def fake_results():
    paths = []
    for isa in ("avx512", "avx2"):
        caps = isa_paths.caps(isa, "avx512")
        paths.append({"isa": isa, "widest": isa == "avx512", "caps": caps,
                      "run": fake_run(isa, caps, capability=isa.upper())})
    paths.append({"isa": "baseline", "widest": False, "caps": isa_paths.caps("baseline", "avx512"),
                  "error": "the subprocess failed (exit status 1)"})
    return {"cpu_model": "Test CPU 9000", "isa_supported": list(ALL),
            "settings": paths[0]["run"]["settings"], "paths": paths, "wall_seconds": 1.0}


def test_algorithm_summary_names_each_primitive_once_in_step_order():
    calls = [("weight", "gemm"), ("forward", "direct"), ("forward", "winograd"),
             ("data", "direct"), ("forward", "direct")]
    assert report.algorithm_summary(calls) == "fwd: direct/winograd, data: direct, weight: gemm"
    assert report.algorithm_summary([]) == ""


def test_main_job_row():
    run = fake_run("avx2", isa_paths.caps("avx2", "avx512"))
    row = next(r for r in report.target_rows(run) if r.name == "main_job_epoch")
    assert row.value == pytest.approx(0.75) and row.target == 0.8 and row.passed
    assert row.algorithms == "fwd: direct/winograd, data: direct, weight: gemm"
    assert "150 ms vs 200 ms per epoch" in row.note


def test_main_job_row_when_unavailable():
    row = report.main_job_target_row({"available": False, "missing": ["no examples"]})
    assert row.passed is None and row.value is None and "no examples" in row.note


def test_report_has_a_table_per_path_naming_cpu_and_caps():
    text = report.markdown(fake_results())
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    titles = [s.splitlines()[0] for s in sections]
    assert titles == ["Groups", "All paths", "avx512 path (the CPU's widest)", "avx2 path",
                      "baseline path"]
    widest, avx2, baseline = sections[2:]
    assert "CPU: Test CPU 9000; caps: MINIDL_MAX_ISA=avx512, ONEDNN_MAX_CPU_ISA and " \
           "ATEN_CPU_CAPABILITY unset" in widest
    assert "caps: MINIDL_MAX_ISA=avx2, ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2" in avx2
    assert "PyTorch (ATen) CPU capability: AVX2" in avx2
    assert "Not measured: the subprocess failed" in baseline
    assert "OpenBLAS uses its Haswell" in widest and "OpenBLAS uses its Haswell" not in avx2
    assert "Cache-line round trip between two cores at start / end: 95 / 402 ns" in widest


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_core_round_trip_is_measured():
    """A cache line's trip between two cores and back: tens to hundreds of nanoseconds on
    hardware of this decade (never zero, never a scheduler slice)."""
    trip = machine.core_round_trip_ns()
    assert trip is not None and 10 < trip < 10_000
    assert machine.machine_info(2)["core_round_trip_ns"] > 10


def test_report_rows_show_algorithms_and_peak_shares():
    avx2 = report.markdown(fake_results()).split("### avx2 path")[1]
    conv_row = next(line for line in avx2.splitlines() if line.startswith("| digits CNN")
                    and "**" in line)
    assert "| fwd: direct, data: direct, weight: gemm |" in conv_row
    header = next(line for line in avx2.splitlines() if "minidl % sgemm peak" in line)
    assert "PyTorch % sgemm peak" in header
    fwd = next(line for line in avx2.splitlines() if "| fwd | 0.019 |" in line)
    minidl_rate = 2 * case_by_name("digits_conv").macs / 1e9 / 1e-3
    assert f"| {minidl_rate / 50:.0%} | {minidl_rate / 2 / 50:.0%} |" in fwd
    assert "| main job epoch (examples/train_digits.py) | - | - | 0.75 | <= 0.8 | **pass** |" \
        in avx2


def test_overview_has_a_column_per_measured_path():
    lines = report.overview_table(fake_results()).splitlines()
    assert lines[0] == "| target | avx512 path | avx2 path | target |"
    assert any(line.startswith("| main job epoch") and "0.75 **pass**" in line for line in lines)


def test_groups_are_geomeans_of_their_cases():
    """The speed issue's groups: the geometric mean of the group's figures; a group with an
    unmeasured member (or none measured) has no figure."""
    def row(name, value):
        return report.TargetRow(name, name, None, None, value, 1.0, "", None)

    rows = [row("lenet_conv1", 0.5), row("cifar_conv1", 2.0), row("digits_conv", 0.25),
            row("lenet_conv2", 4.0), row("depthwise_3x3_128@56", 0.9),
            row("lenet_train_step", None), row("main_job_epoch", 0.7), row("memory", 3.0)]
    figures = report.group_figures(rows)
    assert figures["small"] == pytest.approx(1.0)
    assert figures["depthwise"] == pytest.approx(0.9)
    assert figures["main_job"] == pytest.approx(0.7)
    assert figures["train"] is None and figures["large"] is None


def test_group_table_has_a_column_per_measured_path():
    lines = report.group_table(fake_results()).splitlines()
    assert lines[0] == "| group (geomean) | avx512 path | avx2 path | target |"
    assert "| small convs | 0.50 **pass** | 0.50 **pass** | <= 0.8 |" in lines
    assert "| large convs | - n/a | - n/a | <= 1.0 |" in lines
    assert "### Groups" in report.markdown(fake_results())


def test_write_saves_every_path_and_a_chart_per_measured_one(tmp_path):
    json_path, pngs = report.write(fake_results(), tmp_path)
    saved = json.loads(json_path.read_text())
    assert [p["isa"] for p in saved["paths"]] == ["avx512", "avx2", "baseline"]
    assert {t["name"] for t in saved["paths"][1]["targets"]} >= {"digits_conv", "main_job_epoch"}
    assert [p.name for p in pngs] == ["ratios_avx512.png", "ratios_avx2.png"]


# ---- the main job --------------------------------------------------------------------------------
def test_loading_the_example_leaves_no_trace():
    path, modules = list(sys.path), set(sys.modules)
    example = main_job.load_example()
    assert sys.path == path and "digits_cnn" not in set(sys.modules) - modules
    assert example.parse_args([]).batch_size == 32


def test_torch_batches_follow_the_loaders_order():
    loader = minidl.data.DataLoader(np.arange(100), batch_size=32, shuffle=True, seed=7)
    orders = main_job.shuffled_batches(100, 32, seed=7)
    for _ in range(3):
        expected = [batch.numpy() for batch in loader]
        got = next(orders)
        assert [len(b) for b in got] == [32, 32, 32, 4]
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(e, g)


def test_torch_model_is_the_same_model(torch):
    example = main_job.load_example()
    minidl.manual_seed(0)
    model = example.build_cnn("torch")
    translated = main_job.torch_model(model)
    images, _ = minidl.data.digits("test")
    model.eval()
    translated.eval()
    with minidl.no_grad():
        expected = model(minidl.tensor(images)).numpy()
    with torch.no_grad():
        got = translated(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_layer_without_translation_is_refused(torch):
    with pytest.raises(NotImplementedError, match="Tanh"):
        main_job.torch_module(minidl.nn.Tanh())


def test_the_minidl_epoch_is_the_examples_first_epoch(tmp_path, capsys, torch):
    pytest.importorskip("tqdm")
    job = main_job.setup()
    ours = job.epochs["minidl"]()
    main_job.load_example().main(["--epochs", "1", "--out", str(tmp_path)])
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("epoch  1"))
    printed = [float(v) for v in re.findall(r"\d+\.\d{4}", line)]
    assert printed == [round(v, 4) for v in ours]
    theirs = job.epochs["torch"]()
    assert theirs[3] > 0.8  # PyTorch learns the same task from the same start


def test_main_job_reported_unavailable_without_its_parts(monkeypatch):
    monkeypatch.setattr(main_job, "unavailable_reason", lambda: "no examples here")
    assert runner.run_main_job(QUICK_BUDGET) == {"available": False,
                                                  "missing": ["no examples here"]}


# ---- the busy machine ----------------------------------------------------------------------------
FEW_STEPS = busy.Steps(warmup=2, timed=5)
SHORT_SETTLE = 0.1  # seconds


@pytest.fixture
def busy_processes(monkeypatch):
    """Every busy process the section starts (other subprocesses, such as platform's
    ``uname``, are left out)."""
    started, real_popen = [], subprocess.Popen

    def popen(args, *rest, **kwargs):
        proc = real_popen(args, *rest, **kwargs)
        if busy.BUSY_CODE in args:
            started.append(proc)
        return proc

    monkeypatch.setattr(busy.subprocess, "Popen", popen)
    yield started
    for proc in started:  # where a test failed because one was left running
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children() -> set[int]:
    """This process's child processes (zombies included), from /proc."""
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == os.getpid():
                children.add(int(entry))
    return children


def _assert_killed_and_reaped(procs):
    assert procs, "no busy process was started"
    for proc in procs:
        assert proc.returncode == -signal.SIGKILL  # it ran until it was killed, then was reaped
    if os.path.isdir("/proc/self"):
        assert not {p.pid for p in procs} & _children()


def test_busy_section_times_both_frameworks_and_leaves_no_process(torch, busy_processes):
    result = busy.run(Settings(threads=2), FEW_STEPS, settle_seconds=SHORT_SETTLE)
    assert result["available"], result
    _assert_killed_and_reaped(busy_processes)
    assert len(busy_processes) == 2  # one per framework
    assert result["steps"] == {"warmup": 2, "timed": 5} and result["threads"] == 2
    assert set(result["frameworks"]) == {"minidl", "torch"}
    for figures in result["frameworks"].values():
        idle, loaded = figures["idle"], figures["busy"]
        assert idle["reps"] == loaded["reps"] == 5
        assert 0 < idle["median_ms"] <= idle["p90_ms"] <= idle["max_ms"]
        assert 0 < loaded["median_ms"] <= loaded["p90_ms"] <= loaded["max_ms"]
        assert figures["busy_median_ratio"] == pytest.approx(loaded["median_ms"]
                                                              / idle["median_ms"])
        assert figures["busy_p90_ratio"] == pytest.approx(loaded["p90_ms"] / idle["median_ms"])
    assert result["passed"] == busy.meets_target(result["frameworks"]["minidl"])
    text = report.busy_markdown(json.loads(json.dumps(result)))
    assert "| framework | idle median | busy median | busy p90 | target | result |" in text
    assert re.search(r"^\| minidl \| [\d.]+ ms \| [\d.]+ ms \([\d.]+x\) \|", text, re.MULTILINE)


def test_the_busy_process_is_killed_when_a_step_fails(monkeypatch, busy_processes):
    calls = []

    def failing_step():  # fails in its busy phase, after the idle phase's steps
        calls.append(1)
        if len(calls) > FEW_STEPS.warmup + FEW_STEPS.timed:
            raise FloatingPointError("step failed")

    monkeypatch.setattr(lenet, "training_steps",
                        lambda: {"minidl": lambda: None, "torch": failing_step})
    monkeypatch.setattr(busy, "set_threads", lambda n: None)
    result = busy.run(Settings(), FEW_STEPS, settle_seconds=SHORT_SETTLE)
    assert result == {"available": False, "error": "FloatingPointError: step failed"}
    assert len(busy_processes) == 2  # the second one was running when the step failed
    _assert_killed_and_reaped(busy_processes)


def busy_figures(idle, median, p90):
    return {"idle": {"median_ms": idle}, "busy": {"median_ms": median, "p90_ms": p90},
            "busy_median_ratio": median / idle, "busy_p90_ratio": p90 / idle}


def test_busy_report_holds_minidl_to_the_target():
    figures = {"minidl": busy_figures(4.0, 7.0, 11.0), "torch": busy_figures(5.0, 6.0, 20.0)}
    assert busy.meets_target(figures["minidl"]) is False  # p90 2.75x > 2.5x
    assert busy.meets_target(busy_figures(4.0, 8.0, 10.0))
    results = {**fake_results(), "busy": {
        "available": True, "minidl_isa": "avx512", "torch_cpu_capability": "AVX512",
        "isa_caps": {"MINIDL_MAX_ISA": None}, "threads": 2, "batch": 64,
        "steps": {"warmup": 20, "timed": 300}, "busy_command": "python -c 'while True: pass'",
        "target": {"framework": "minidl", "busy_median_ratio": 2.0, "busy_p90_ratio": 2.5},
        "frameworks": figures, "passed": False}}
    section = report.markdown(results).split(report.BUSY_TITLE)[1]
    assert "| minidl | 4.00 ms | 7.00 ms (1.75x) | 11.00 ms (2.75x) | median <= 2.0x, " \
           "p90 <= 2.5x | **MISS** |" in section
    assert "| PyTorch | 5.00 ms | 6.00 ms (1.20x) | 20.00 ms (4.00x) | - (comparison) | n/a |" \
        in section
    assert "minidl missed the target." in section and "not idle" not in section
    figures["torch"]["idle"]["foreign_cpu_share"] = 0.5
    assert "**PyTorch idle phase not idle** (others > 10%)" in report.busy_markdown(
        results["busy"])
    assert report.BUSY_TITLE not in report.markdown(fake_results())  # --no-busy


def test_busy_report_when_unavailable():
    text = report.busy_markdown({"available": False, "missing": ["minidl.nn.Linear"]})
    assert "Not measured: unavailable: missing minidl.nn.Linear." in text


def test_no_busy_flag():
    assert parse_args([]).busy and not parse_args(["--no-busy"]).busy
