"""From raw measurements to the markdown tables, ``results.json`` and ``ratios.png``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .cases import MEMORY_TARGET, PASSES, SGEMM_FRACTION_TARGET, TARGETS, ConvCase
from .machine import blas_warning
from .timing import FULL_BUDGET

PASS_LABEL = {"forward": "fwd", "backward": "bwd", "forward_backward": "fwd+bwd"}
BUSY_SHARE = FULL_BUDGET.max_busy  # share of CPU time taken by others that makes a round "busy"


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
    algorithms = case.get("minidl_algorithms") or {}
    path = "minidl " + ", ".join(f"{p}: {a}" for p, a in algorithms.items()) if algorithms else ""
    note = "; ".join(n for n in (note, path, _busy_note(case["passes"].values())) if n)
    return TargetRow(conv.name, conv.label, fwd, fb, value, conv.target, note, passed)


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


def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    peak = results["sgemm_peak_gflops"]
    rows = [conv_target_row(case, peak) for case in results["cases"]]
    rows.append(lenet_target_row(results["lenet_train_step"]))
    rows.append(memory_target_row(results["memory"]))
    return rows


# ---- markdown ------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def pass_table(results: dict[str, Any]) -> str:
    numpy_col = "numpy" in results["cases"][0]["passes"]["forward"] if results["cases"] else False
    header = ["shape", "pass", "GFLOP", "minidl ms", "PyTorch ms"]
    header += ["numpy im2col ms"] if numpy_col else []
    header += ["minidl GFLOP/s", "PyTorch GFLOP/s", "minidl/PyTorch", "minidl % sgemm peak"]
    rows = []
    for case in results["cases"]:
        conv = ConvCase(**{**case["case"], "spatial": tuple(case["case"]["spatial"])})
        for p in PASSES:
            rate = _gflops(conv, case, p, "minidl")
            row = [conv.label, PASS_LABEL[p], f"{conv.gflop(p):.3f}"]
            row += [f"{_median(case, p, fw):.2f}" for fw in ("minidl", "torch")]
            row += [f"{_median(case, p, 'numpy'):.2f}"] if numpy_col else []
            row += [f"{rate:.1f}", f"{_gflops(conv, case, p, 'torch'):.1f}"]
            row += [f"{_ratio(case, p):.2f}", f"{rate / results['sgemm_peak_gflops']:.0%}"]
            rows.append(row)
    return _table(header, rows)


def _result_word(passed: bool | None) -> str:
    return {True: "**pass**", False: "**MISS**", None: "n/a"}[passed]


def target_table(rows: list[TargetRow]) -> str:
    header = ["shape", "fwd ratio", "fwd+bwd ratio", "geomean / ratio", "target", "result", "notes"]
    body = [
        [r.label, _fmt(r.ratio_forward), _fmt(r.ratio_forward_backward), _fmt(r.value),
         f"<= {r.target}", _result_word(r.passed), r.note]
        for r in rows
    ]
    return _table(header, body)


def _preamble(results: dict[str, Any]) -> list[str]:
    s, m = results["settings"], results["machine"]
    budget = s["budget"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas"])
    lines = [
        f"minidl vs PyTorch {results.get('torch_version', '')}, {s['threads']} threads each "
        f"(minidl: OpenMP kernels, single-threaded BLAS), float32; medians of "
        f"{budget['min_reps']}-{budget['max_reps']} interleaved repetitions (minidl, PyTorch, "
        f"minidl, ...) after {budget['warmup']} warm-up round(s)."
        + (f" The numpy im2col baseline is timed on its own after each pass, with "
           f"{s['threads']} BLAS threads." if s["numpy_baseline"] else ""),
        f"sgemm peak: {results['sgemm_peak_gflops']:.0f} GFLOP/s (scipy sgemm 2048x2048, best of "
        f"5, {s['threads']} threads; start / end of run: "
        + " / ".join(f"{v:.0f}" for v in results["sgemm_peak_runs_gflops"])
        + " GFLOP/s, other processes meanwhile: "
        + " / ".join(f"{v:.0%}" for v in results["sgemm_peak_runs_foreign_cpu_share"])
        + f"). BLAS: {blas}.",
        "Ratio = time(minidl) / time(PyTorch); geomean = geometric mean of the fwd and fwd+bwd "
        "ratios. bwd is timed alone on a fresh graph per repetition. GFLOP/s are effective "
        "rates (the FLOPs of a direct convolution over the time), so a Winograd path can exceed "
        "the sgemm peak.",
        f"Memory: {results['memory']['method']}.",
        f"Load average (1 min) at start / end: {m['load_average_1min']:.2f} / "
        f"{m['load_average_1min_end']:.2f}." + _foreign_sentence(results),
    ]
    if s["quick"]:
        lines.insert(0, "**QUICK RUN** (--quick): fewer repetitions, the batch-8 shapes at batch "
                        "2; figures are indicative only.")
    warning = blas_warning(m)
    if warning:
        lines.append(f"Note: {warning}")
    return lines


def _noise_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    records = [p["noise"] for case in results["cases"] for p in case["passes"].values()]
    train = results["lenet_train_step"]
    return records + ([train["noise"]] if train.get("available") else [])


def _foreign_sentence(results: dict[str, Any]) -> str:
    share = results["machine"].get("foreign_cpu_share")
    if share is None:
        return ""
    records = _noise_records(results)
    discarded = sum(r["discarded_rounds"] for r in records)
    kept = sum(r["busy_rounds_kept"] for r in records)
    sentence = (f" Other processes took {share:.0%} of the machine's CPU time during the run; "
                f"{discarded} rounds measured while they took > {BUSY_SHARE:.0%} were discarded "
                f"and re-run")
    if kept:
        return sentence + f", {kept} such rounds had to be kept (flagged below)."
    return sentence + "."


def markdown(results: dict[str, Any]) -> str:
    rows = target_rows(results)
    missed = [r.label for r in rows if r.passed is False]
    verdict = f"{sum(r.passed is True for r in rows)} of {len(rows)} targets met"
    verdict += f"; missed: {'; '.join(missed)}." if missed else "."
    parts = [
        "## Convolution benchmark",
        "\n".join(f"- {line}" for line in _preamble(results)),
        "### Targets",
        target_table(rows),
        verdict,
        "### Per pass",
        pass_table(results),
    ]
    return "\n\n".join(parts) + "\n"


# ---- files ---------------------------------------------------------------------------------
def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """results.json (measurements and the target verdicts) and ratios.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = target_rows(results)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps({**results, "targets": [asdict(r) for r in rows]}, indent=2))
    png_path = out_dir / "ratios.png"
    plot(rows, png_path, quick=results["settings"]["quick"])
    return json_path, png_path


def plot(rows: list[TargetRow], path: Path, quick: bool = False) -> None:
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
    ax.set_title("minidl vs PyTorch" + (" (quick run)" if quick else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
