"""From raw measurements to the markdown tables, ``results.json`` and the bar charts.

``results`` is what ``python -m minidl.bench`` collects: the CPU, the settings and one entry
per instruction-set path (``results["paths"]``), each holding that path's subprocess results
(``"run"``, see :func:`minidl.bench.runner.run`) or the ``"error"`` that stopped it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .cases import (
    GROUP_LABEL,
    GROUP_TARGETS,
    MEMORY_TARGET,
    PASSES,
    SGEMM_FRACTION_TARGET,
    TARGETS,
    ConvCase,
    case_by_name,
)
from .machine import blas_warning, describe_caps
from .timing import FULL_BUDGET

PASS_LABEL = {"forward": "fwd", "backward": "bwd", "forward_backward": "fwd+bwd"}
# minidl's conv primitives (minidl._ext.dispatch), in the order a training step runs them
PRIMITIVE_LABEL = {"forward": "fwd", "data": "data", "weight": "weight"}
MAIN_JOB_LABEL = "main job epoch (examples/train_digits.py)"
FRAMEWORK_LABEL = {"minidl": "minidl", "torch": "PyTorch"}
BUSY_TITLE = "### LeNet-5 step beside one busy process"
BUSY_SHARE = FULL_BUDGET.max_busy  # share of CPU time taken by others that makes a round "busy"
GROUPS_NOTE = ("The speed targets per group of cases: the geometric mean of the group's figures "
               "(each conv's: the geomean of its fwd and fwd+bwd ratios); the per-case targets "
               "follow in the tables below.")


@dataclass(frozen=True)
class TargetRow:
    """One line of the targets table; ``passed`` is None when the row could not be measured."""

    name: str
    label: str
    ratio_forward: float | None
    ratio_forward_backward: float | None
    value: float | None  # the figure held to the target (a geometric mean for the convs)
    target: float
    note: str
    passed: bool | None
    algorithms: str = ""  # which algorithm served each of minidl's conv primitives


def _median(case: dict[str, Any], pass_name: str, fw: str) -> float:
    return case["passes"][pass_name][fw]["median_ms"]


def _ratio(case: dict[str, Any], pass_name: str) -> float:
    return _median(case, pass_name, "minidl") / _median(case, pass_name, "torch")


def _gflops(conv: ConvCase, case: dict[str, Any], pass_name: str, fw: str) -> float:
    return conv.gflop(pass_name) / (_median(case, pass_name, fw) / 1e3)


def _geomean(a: float, b: float) -> float:
    return math.sqrt(a * b)


def conv_target_row(case: dict[str, Any], peak: float) -> TargetRow:
    conv = ConvCase(**{**case["case"], "spatial": tuple(case["case"]["spatial"])})
    fwd, fb = _ratio(case, "forward"), _ratio(case, "forward_backward")
    value = _geomean(fwd, fb)
    passed, note = value <= conv.target, ""
    if conv.sgemm_target:
        rate = _geomean(_gflops(conv, case, "forward", "minidl"),
                        _gflops(conv, case, "forward_backward", "minidl"))
        fraction = rate / peak
        passed = passed and fraction >= SGEMM_FRACTION_TARGET
        note = (f"minidl {rate:.0f} GFLOP/s = {fraction:.0%} of sgemm peak "
                f"(target >= {SGEMM_FRACTION_TARGET:.0%})")
    algorithms = algorithm_summary((case.get("minidl_algorithms") or {}).items())
    note = "; ".join(n for n in (note, _busy_note(case["passes"].values())) if n)
    return TargetRow(conv.name, conv.label, fwd, fb, value, conv.target, note, passed, algorithms)


def algorithm_summary(calls: Iterable[Sequence[str]]) -> str:
    """``fwd: direct, data: direct, weight: gemm`` from ``(primitive, algorithm)`` pairs; a
    primitive served by several algorithms (other layers, other batch sizes) lists each once,
    joined by '/'."""
    by_primitive: dict[str, list[str]] = {}
    for primitive, algorithm in calls:
        names = by_primitive.setdefault(primitive, [])
        if algorithm not in names:
            names.append(algorithm)
    order = list(PRIMITIVE_LABEL)
    ranked = sorted(by_primitive, key=lambda p: order.index(p) if p in order else len(order))
    return ", ".join(f"{PRIMITIVE_LABEL.get(p, p)}: {'/'.join(by_primitive[p])}" for p in ranked)


def _busy_note(records: Any) -> str:
    """Flag figures measured while other processes were busy (patience ran out)."""
    noises = [r["noise"] for r in records]
    kept = sum(n["busy_rounds_kept"] for n in noises)
    if not kept:
        return ""
    worst = max(n["max_busy_share_kept"] for n in noises)
    return f"disturbed: {kept} rounds kept while other processes took up to {worst:.0%} CPU"


def lenet_target_row(train: dict[str, Any]) -> TargetRow:
    label, target = "LeNet-5 training step, N=64, SGD", TARGETS["train"]
    if not train["available"]:
        note = "unavailable: missing " + ", ".join(train["missing"])
        return TargetRow("lenet_train_step", label, None, None, None, target, note, None)
    ratio = train["step"]["minidl"]["median_ms"] / train["step"]["torch"]["median_ms"]
    losses = train["first_loss"]
    note = f"first loss {losses['minidl']:.4f} (minidl) vs {losses['torch']:.4f} (PyTorch)"
    note = "; ".join(n for n in (note, _busy_note([train])) if n)
    return TargetRow("lenet_train_step", label, None, None, ratio, target, note, ratio <= target)


def main_job_target_row(job: dict[str, Any]) -> TargetRow:
    target = TARGETS["main_job"]
    if not job["available"]:
        note = "unavailable: " + ", ".join(job["missing"])
        return TargetRow("main_job_epoch", MAIN_JOB_LABEL, None, None, None, target, note, None)
    m, t = (job["epoch"][fw]["median_ms"] for fw in ("minidl", "torch"))
    first = job["first_epoch"]
    note = (f"{m:.0f} ms vs {t:.0f} ms per epoch (batch {job['batch_size']}, "
            f"{job['train_images']} train + {job['test_images']} test images); epoch 1 test "
            f"accuracy {first['minidl']['test_acc']:.4f} (minidl) vs "
            f"{first['torch']['test_acc']:.4f} (PyTorch)")
    note = "; ".join(n for n in (note, _busy_note([job])) if n)
    algorithms = algorithm_summary(job["minidl_algorithms"])
    return TargetRow("main_job_epoch", MAIN_JOB_LABEL, None, None, m / t, target, note,
                     m / t <= target, algorithms)


def memory_target_row(mem: dict[str, Any]) -> TargetRow:
    label = f"peak memory fwd+bwd, {mem['label']}"
    m, t = mem["minidl"], mem["torch"]
    if "error" in m or "error" in t:
        note = f"measurement failed: {m.get('error') or t.get('error')}"
        return TargetRow("memory", label, None, None, None, MEMORY_TARGET, note, None)
    ratio = m["peak_rss_mib"] / t["peak_rss_mib"]
    note = (
        f"{m['peak_rss_mib']:.1f} MiB vs {t['peak_rss_mib']:.1f} MiB RSS "
        f"(minidl tracemalloc {m['tracemalloc_peak_mib']:.1f} MiB)"
    )
    passed = ratio <= MEMORY_TARGET
    return TargetRow("memory", label, None, None, ratio, MEMORY_TARGET, note, passed)


def target_rows(run: dict[str, Any]) -> list[TargetRow]:
    """The target verdicts of one path's run."""
    peak = run["sgemm_peak_gflops"]
    rows = [conv_target_row(case, peak) for case in run["cases"]]
    rows.append(lenet_target_row(run["lenet_train_step"]))
    rows.append(main_job_target_row(run["main_job"]))
    rows.append(memory_target_row(run["memory"]))
    return rows


_ROW_GROUPS = {"lenet_train_step": "train", "main_job_epoch": "main_job"}  # not conv cases


def _group_of(row: TargetRow) -> str | None:
    if row.name in _ROW_GROUPS:
        return _ROW_GROUPS[row.name]
    try:
        return case_by_name(row.name).category
    except KeyError:  # the memory row: no group
        return None


def group_figures(rows: list[TargetRow]) -> dict[str, float | None]:
    """The geometric mean of each group's figures (None if one of them was not measured)."""
    members: dict[str, list[float | None]] = {g: [] for g in GROUP_TARGETS}
    for row in rows:
        group = _group_of(row)
        if group is not None:
            members[group].append(row.value)
    return {g: None if not v or None in v else math.exp(sum(map(math.log, v)) / len(v))
            for g, v in members.items()}


def group_table(results: dict[str, Any]) -> str:
    """The speed issue's groups: one row per group, one column per measured path."""
    paths = [p for p in results["paths"] if "run" in p]
    figures = [group_figures(target_rows(p["run"])) for p in paths]
    header = ["group (geomean)"] + [f"{p['isa']} path" for p in paths] + ["target"]
    body = []
    for group, target in GROUP_TARGETS.items():
        values = [f[group] for f in figures]
        cells = [f"{_fmt(v)} {_result_word(None if v is None else v <= target)}" for v in values]
        body.append([GROUP_LABEL[group], *cells, f"<= {target}"])
    return _table(header, body)


# ---- markdown ------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def pass_table(run: dict[str, Any]) -> str:
    """Every case and pass of one path: times, GFLOP/s and their share of the sgemm peak."""
    numpy_col = "numpy" in run["cases"][0]["passes"]["forward"] if run["cases"] else False
    peak = run["sgemm_peak_gflops"]
    header = ["shape", "pass", "GFLOP", "minidl ms", "PyTorch ms"]
    header += ["numpy im2col ms"] if numpy_col else []
    header += ["minidl GFLOP/s", "PyTorch GFLOP/s", "minidl/PyTorch", "minidl % sgemm peak",
               "PyTorch % sgemm peak"]
    rows = []
    for case in run["cases"]:
        conv = ConvCase(**{**case["case"], "spatial": tuple(case["case"]["spatial"])})
        for p in PASSES:
            rates = [_gflops(conv, case, p, fw) for fw in ("minidl", "torch")]
            row = [conv.label, PASS_LABEL[p], f"{conv.gflop(p):.3f}"]
            row += [f"{_median(case, p, fw):.2f}" for fw in ("minidl", "torch")]
            row += [f"{_median(case, p, 'numpy'):.2f}"] if numpy_col else []
            row += [f"{rate:.1f}" for rate in rates] + [f"{_ratio(case, p):.2f}"]
            row += [f"{rate / peak:.0%}" for rate in rates]
            rows.append(row)
    return _table(header, rows)


def _result_word(passed: bool | None) -> str:
    return {True: "**pass**", False: "**MISS**", None: "n/a"}[passed]


def target_table(rows: list[TargetRow]) -> str:
    header = ["shape", "fwd ratio", "fwd+bwd ratio", "geomean / ratio", "target", "result",
              "minidl algorithm", "notes"]
    body = [
        [r.label, _fmt(r.ratio_forward), _fmt(r.ratio_forward_backward), _fmt(r.value),
         f"<= {r.target}", _result_word(r.passed), r.algorithms or "-", r.note]
        for r in rows
    ]
    return _table(header, body)


def verdict(rows: list[TargetRow]) -> str:
    missed = [r.label for r in rows if r.passed is False]
    text = f"{sum(r.passed is True for r in rows)} of {len(rows)} targets met"
    return text + (f"; missed: {'; '.join(missed)}." if missed else ".")


def overview_table(results: dict[str, Any]) -> str:
    """One row per target, one column per path: the figure held to the target, and whether
    it met it."""
    paths = [p for p in results["paths"] if "run" in p]
    by_path = [target_rows(p["run"]) for p in paths]
    labels = list(dict.fromkeys(row.label for rows in by_path for row in rows))
    header = ["target"] + [f"{p['isa']} path" for p in paths] + ["target"]
    body = []
    for label in labels:
        found = [next((r for r in rows if r.label == label), None) for rows in by_path]
        cells = ["-" if r is None else f"{_fmt(r.value)} {_result_word(r.passed)}" for r in found]
        target = next(r.target for r in found if r is not None)
        body.append([label, *cells, f"<= {target}"])
    return _table(header, body)


def _general_lines(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    budget = s["budget"]
    runs = [p["run"] for p in results["paths"] if "run" in p]
    torch_version = runs[0].get("torch_version", "") if runs else ""
    names = [p["isa"] + (" (the CPU's widest)" if p["widest"] else "") for p in results["paths"]]
    lines = [
        f"CPU: {results['cpu_model']}. Instruction-set paths: {', '.join(names)}; each runs in "
        "its own process, minidl's kernels capped by MINIDL_MAX_ISA and, on the paths narrower "
        "than the CPU's widest, PyTorch by ONEDNN_MAX_CPU_ISA (oneDNN) and ATEN_CPU_CAPABILITY "
        "(ATen); BLAS is not capped.",
        f"minidl vs PyTorch {torch_version}, {s['threads']} threads each "
        f"(minidl: OpenMP kernels, single-threaded BLAS), float32; medians of "
        f"{budget['min_reps']}-{budget['max_reps']} interleaved repetitions (minidl, PyTorch, "
        f"minidl, ...) after {budget['warmup']} warm-up round(s)."
        + (f" The numpy im2col baseline is timed on its own after each pass, with "
           f"{s['threads']} BLAS threads." if s["numpy_baseline"] else ""),
        "Ratio = time(minidl) / time(PyTorch); geomean = geometric mean of the fwd and fwd+bwd "
        "ratios. bwd is timed alone on a fresh graph per repetition. GFLOP/s are effective "
        "rates (the FLOPs of a direct convolution over the time), so a Winograd path can exceed "
        "the sgemm peak, measured in each path's process.",
        "minidl algorithm: what minidl's dispatcher chose for the conv's forward (fwd), "
        "backward-data (data) and backward-weight (weight) primitives.",
        "Main job epoch: one epoch of examples/train_digits.py as the example runs it (training "
        "pass, scheduler step, test evaluation; no progress bar), its model, data order, Adam "
        "and schedule; PyTorch runs the same layers from minidl's initial weights on the same "
        "batches in the same order. Epoch 1 of each runs untimed, then epochs alternate "
        "(minidl, PyTorch, ...).",
    ]
    if runs:
        lines.append(f"Memory: {runs[0]['memory']['method']}.")
    if s["quick"]:
        lines.insert(0, "**QUICK RUN** (--quick): fewer repetitions, the batch-8 shapes at batch "
                        "2; figures are indicative only.")
    return lines


def _path_lines(run: dict[str, Any], cpu_model: str) -> list[str]:
    s, m = run["settings"], run["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas"])
    lines = [
        f"CPU: {cpu_model}; caps: {describe_caps(m['isa_caps'])}; minidl kernels: "
        f"{m['minidl_isa']}; PyTorch (ATen) CPU capability: {m['torch_cpu_capability']}.",
        f"sgemm peak: {run['sgemm_peak_gflops']:.0f} GFLOP/s (scipy sgemm 2048x2048, best of "
        f"5, {s['threads']} threads; start / end of run: "
        + " / ".join(f"{v:.0f}" for v in run["sgemm_peak_runs_gflops"])
        + " GFLOP/s, other processes meanwhile: "
        + " / ".join(f"{v:.0%}" for v in run["sgemm_peak_runs_foreign_cpu_share"])
        + f"). BLAS: {blas}.",
        f"Load average (1 min) at start / end: {m['load_average_1min']:.2f} / "
        f"{m['load_average_1min_end']:.2f}." + _foreign_sentence(run),
    ]
    trips = [m.get("core_round_trip_ns"), m.get("core_round_trip_ns_end")]
    if None not in trips:
        lines.append("Cache-line round trip between two cores at start / end: "
                     + " / ".join(f"{t:.0f}" for t in trips)
                     + " ns (where the host placed the vCPUs: the same core complex or not; "
                     "multi-threaded figures move with it).")
    warning = blas_warning(m)
    if warning:
        lines.append(f"Note: {warning}")
    return lines


def _noise_records(run: dict[str, Any]) -> list[dict[str, Any]]:
    records = [p["noise"] for case in run["cases"] for p in case["passes"].values()]
    jobs = (run["lenet_train_step"], run["main_job"])
    return records + [job["noise"] for job in jobs if job.get("available")]


def _foreign_sentence(run: dict[str, Any]) -> str:
    share = run["machine"].get("foreign_cpu_share")
    if share is None:
        return ""
    records = _noise_records(run)
    discarded = sum(r["discarded_rounds"] for r in records)
    kept = sum(r["busy_rounds_kept"] for r in records)
    sentence = (f" Other processes took {share:.0%} of the machine's CPU time during the run; "
                f"{discarded} rounds measured while they took > {BUSY_SHARE:.0%} were discarded "
                f"and re-run")
    if kept:
        return sentence + f", {kept} such rounds had to be kept (flagged below)."
    return sentence + "."


def path_title(path: dict[str, Any]) -> str:
    return f"{path['isa']} path" + (" (the CPU's widest)" if path["widest"] else "")


def path_markdown(path: dict[str, Any], cpu_model: str) -> str:
    """One path's section: its setup, targets and per-pass table."""
    title = f"### {path_title(path)}"
    if "run" not in path:
        return f"{title}\n\nNot measured: {path['error']}."
    rows = target_rows(path["run"])
    parts = [title, _bullets(_path_lines(path["run"], cpu_model)),
             "#### Targets", target_table(rows), verdict(rows),
             "#### Per pass", pass_table(path["run"])]
    return "\n\n".join(parts)


def _busy_cell(figures: dict[str, Any], stat: str) -> str:
    """A busy-phase figure (``stat``: median or p90) in ms and over the idle median:
    ``7.00 ms (1.75x)``."""
    return f"{figures['busy'][stat + '_ms']:.2f} ms ({figures[f'busy_{stat}_ratio']:.2f}x)"


def busy_table(busy: dict[str, Any]) -> str:
    """One row per framework: idle median, busy median and p90 (over the idle median)."""
    target = busy["target"]
    header = ["framework", "idle median", "busy median", "busy p90", "target", "result"]
    body = []
    for fw, figures in busy["frameworks"].items():
        held = fw == target["framework"]
        body.append([
            FRAMEWORK_LABEL.get(fw, fw), f"{figures['idle']['median_ms']:.2f} ms",
            _busy_cell(figures, "median"), _busy_cell(figures, "p90"),
            (f"median <= {target['busy_median_ratio']}x, p90 <= {target['busy_p90_ratio']}x"
             if held else "- (comparison)"),
            _result_word(busy["passed"] if held else None),
        ])
    return _table(header, body)


def _busy_lines(busy: dict[str, Any]) -> list[str]:
    steps = busy["steps"]
    shares = [
        f"{FRAMEWORK_LABEL.get(fw, fw)} {_share(f['idle'])} / {_share(f['busy'])}"
        for fw, f in busy["frameworks"].items()
    ]
    return [
        f"Measured once, in this process: minidl kernels {busy['minidl_isa']} (caps: "
        f"{describe_caps(busy['isa_caps'])}), PyTorch (ATen) CPU capability "
        f"{busy['torch_cpu_capability']}; {busy['threads']} threads each; batch "
        f"{busy['batch']}.",
        f"Per framework: {steps['warmup']} warm-up steps, then {steps['timed']} steps timed one "
        f"by one on the machine as it is (idle), then the same beside `{busy['busy_command']}` "
        "(one core spinning); busy figures in ms and over the idle median.",
        "Other processes' share of the machine's CPU time, idle / busy (the busy process "
        f"counts): {', '.join(shares)}." + _disturbed_idle_note(busy),
    ]


def _disturbed_idle_note(busy: dict[str, Any]) -> str:
    """Flag idle phases during which other processes were busy: their ratios understate."""
    disturbed = [FRAMEWORK_LABEL.get(fw, fw) for fw, f in busy["frameworks"].items()
                 if (f["idle"].get("foreign_cpu_share") or 0.0) > BUSY_SHARE]
    if not disturbed:
        return ""
    return (f" **{' and '.join(disturbed)} idle phase not idle** (others > {BUSY_SHARE:.0%}): "
            "its idle median is inflated and its ratios understate the slowdown.")


def _share(phase: dict[str, Any]) -> str:
    share = phase.get("foreign_cpu_share")
    return "?" if share is None else f"{share:.0%}"


def busy_markdown(busy: dict[str, Any]) -> str:
    """The busy-machine section (:mod:`minidl.bench.busy`): setup, table, verdict."""
    if not busy["available"]:
        why = busy.get("error") or "unavailable: missing " + ", ".join(busy["missing"])
        return f"{BUSY_TITLE}\n\nNot measured: {why}."
    held = FRAMEWORK_LABEL.get(busy["target"]["framework"], busy["target"]["framework"])
    met = f"{held} {'met' if busy['passed'] else 'missed'} the target."
    return "\n\n".join([BUSY_TITLE, _bullets(_busy_lines(busy)), busy_table(busy), met])


def markdown(results: dict[str, Any]) -> str:
    parts = ["## Convolution benchmark", _bullets(_general_lines(results))]
    if any("run" in p for p in results["paths"]):
        parts += ["### Groups", GROUPS_NOTE, group_table(results)]
    if sum("run" in p for p in results["paths"]) > 1:
        parts += ["### All paths", overview_table(results)]
    parts += [path_markdown(p, results["cpu_model"]) for p in results["paths"]]
    if "busy" in results:
        parts.append(busy_markdown(results["busy"]))
    return "\n\n".join(parts) + "\n"


# ---- files ---------------------------------------------------------------------------------
def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, list[Path]]:
    """results.json (measurements and each path's target verdicts) and one bar chart per
    measured path, ``ratios_<path>.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [{**p, "targets": [asdict(r) for r in target_rows(p["run"])]} if "run" in p else p
             for p in results["paths"]]
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps({**results, "paths": paths}, indent=2))
    pngs = []
    for path in results["paths"]:
        if "run" in path:
            png = out_dir / f"ratios_{path['isa']}.png"
            title = f"minidl vs PyTorch, {path_title(path)}"
            plot(target_rows(path["run"]), png, title, quick=results["settings"]["quick"])
            pngs.append(png)
    return json_path, pngs


def plot(rows: list[TargetRow], path: Path, title: str = "minidl vs PyTorch",
         quick: bool = False) -> None:
    """Horizontal bars of each row's figure, its target as a black tick; green pass, red miss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    for i, row in enumerate(rows):
        value = row.value if row.value is not None else 0.0
        color = {True: "tab:green", False: "tab:red", None: "lightgray"}[row.passed]
        ax.barh(i, value, color=color)
        ax.plot([row.target, row.target], [i - 0.4, i + 0.4], color="black", linewidth=2)
        text = "unavailable" if row.value is None else f" {row.value:.2f}"
        ax.text(value, i, text, va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("minidl / PyTorch (time: geomean of fwd and fwd+bwd; memory: peak)  "
                  "- black tick: target")
    ax.set_title(title + (" (quick run)" if quick else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
