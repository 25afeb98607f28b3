"""The classification runs' table, from finished run directories ``ROOT/imagenet/<variant>-seed<k>/``."""

from __future__ import annotations

from pathlib import Path

from coordconv.repro.report.runs import load_finished, mean_sd, table, write_task_report
from coordconv.repro.report.stats import compare_groups

__all__ = ["finding", "results_table", "write_report"]

NAMES = {"plain": "ResNet", "input_layer": "ResNet + 1x1 CoordConv input layer (with r)"}


def results_table(out: Path) -> str:
    """Top-1 / top-5 of each variant (mean ± std over seeds) and CoordConv's difference with its 95% Welch interval."""
    runs = [r.summary for r in load_finished(out / "imagenet")]
    lines = []
    values: dict[str, dict[str, list[float]]] = {}
    for variant, name in NAMES.items():
        group = [r for r in runs if r["variant"] == variant]
        if not group:
            continue
        values[variant] = {k: [100 * r[k] for r in group] for k in ("top1", "top5")}
        lines.append(
            f"{name} ({group[0]['arch']}) | {len(group)} | {mean_sd(values[variant]['top1'])}% "
            f"| {mean_sd(values[variant]['top5'])}% | {mean_sd([r['train_seconds'] for r in group])}"
        )
    notes = []
    if len(values) == 2:
        for k, label in (("top1", "top-1"), ("top5", "top-5")):
            result = compare_groups(values["input_layer"][k], values["plain"][k], None)
            if result is not None:
                said = result.said(2, unit=" points")
                notes.append(f"CoordConv {label}: {result.interval(3)} points (95% Welch interval): {said}.")
        notes.append("")
    notes.append(
        "Paper (ResNet-50 on ImageNet, five runs each): +0.04% top-5 with the CoordConv input layer, not significant. "
        "Mean ± standard deviation over seeds, final epoch; the smallest detectable difference is the one a two-sided "
        "Welch test finds with 80% power."
    )
    return table("model | seeds | top-1 | top-5 | training s", lines, "\n".join(notes))


def finding(out: Path) -> str:
    """One sentence: does the CoordConv input layer change top-1 accuracy (95% Welch interval of the difference)?"""
    runs = [r.summary for r in load_finished(out / "imagenet")]
    top1 = {v: [100 * r["top1"] for r in runs if r["variant"] == v] for v in NAMES}
    result = compare_groups(top1["input_layer"], top1["plain"], None)
    if result is None:
        return "Not both models have two or more finished runs yet, so nothing is compared."
    numbers = (
        f"{result.interval(3)} points of top-1 (95% Welch interval) over {len(top1['input_layer'])} and "
        f"{len(top1['plain'])} seeds"
    )
    if result.verdict == "no detectable difference":
        return (
            f"The CoordConv input layer: {result.words(2, unit=' points')} of top-1 accuracy here ({numbers}); the "
            "paper found no significant change on ImageNet either."
        )
    direction = "raises" if result.difference > 0 else "lowers"
    return (
        f"The CoordConv input layer {direction} top-1 accuracy here ({numbers}); the paper found no significant "
        "change on ImageNet."
    )


def write_report(out: Path) -> Path:
    """``out/imagenet/`` table.md and report.md from the finished runs."""
    title = "CoordConv reproduction: ResNet classification"
    return write_task_report(out / "imagenet", title, results_table(out), [], finding=finding(out))
