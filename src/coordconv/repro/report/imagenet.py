"""The classification runs' table, from finished run directories ``ROOT/imagenet/<variant>-seed<k>/``."""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path

from coordconv.repro.report.runs import load_finished, mean_sd, write_task_report

__all__ = ["finding", "results_table", "write_report"]

NAMES = {"plain": "ResNet", "input_layer": "ResNet + 1x1 CoordConv input layer (with r)"}


def results_table(out: Path) -> str:
    """Top-1 / top-5 of each variant (mean ± std over seeds) and Welch's t-test of CoordConv against plain."""
    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    runs = [r.summary for r in load_finished(out / "imagenet", "*/summary.json")]
    lines = ["| model | seeds | top-1 | top-5 | training s |", "|---|---|---|---|---|"]
    values: dict[str, dict[str, list[float]]] = {}
    for variant, name in NAMES.items():
        group = [r for r in runs if r["variant"] == variant]
        if not group:
            continue
        values[variant] = {k: [100 * r[k] for r in group] for k in ("top1", "top5")}
        lines.append(
            f"| {name} ({group[0]['arch']}) | {len(group)} | {mean_sd(values[variant]['top1'])}% "
            f"| {mean_sd(values[variant]['top5'])}% | {mean_sd([r['train_seconds'] for r in group])} |"
        )
    lines.append("")
    if len(values) == 2 and all(len(v["top1"]) > 1 for v in values.values()):
        for k, label in (("top1", "top-1"), ("top5", "top-5")):
            a, b = values["input_layer"][k], values["plain"][k]
            with warnings.catch_warnings():  # identical values (top-5 of 100% everywhere) give p = nan, said below
                warnings.simplefilter("ignore", RuntimeWarning)
                test = stats.ttest_ind(a, b, equal_var=False)
            lines.append(
                f"CoordConv {label} {statistics.fmean(a) - statistics.fmean(b):+.2f} points, Welch's t-test p = "
                f"{float(test.pvalue):.3f}."
            )
        lines.append("")
    lines.append(
        "Paper (ResNet-50 on ImageNet, five runs each): +0.04% top-5 with the CoordConv input layer, not significant. "
        "Mean ± standard deviation over seeds, final epoch."
    )
    return "\n".join(lines)


def finding(out: Path) -> str:
    """One sentence: does the CoordConv input layer change top-1 accuracy (Welch's t-test, p < 0.05)?"""
    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    runs = [r.summary for r in load_finished(out / "imagenet", "*/summary.json")]
    top1 = {v: [100 * r["top1"] for r in runs if r["variant"] == v] for v in NAMES}
    if not all(len(v) > 1 for v in top1.values()):
        return "Not both models have two or more finished runs yet, so nothing is compared."
    a, b = top1["input_layer"], top1["plain"]
    diff = statistics.fmean(a) - statistics.fmean(b)
    with warnings.catch_warnings():  # identical values give p = nan: no difference to find
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    numbers = f"{diff:+.2f} points of top-1 over {len(a)} and {len(b)} seeds, Welch's p = {p:.3f}"
    if p < 0.05:
        direction = "raises" if diff > 0 else "lowers"
        return (
            f"The CoordConv input layer {direction} top-1 accuracy by a small but significant amount here ({numbers}); "
            "the paper found no significant change on ImageNet."
        )
    return (
        f"The CoordConv input layer makes no significant difference to top-1 accuracy here ({numbers}), as in the "
        "paper."
    )


def write_report(out: Path) -> Path:
    """``out/imagenet/`` table.md and report.md from the finished runs."""
    title = "CoordConv reproduction: ResNet classification"
    return write_task_report(out / "imagenet", title, results_table(out), [], finding=finding(out))
