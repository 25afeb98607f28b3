"""The classification runs' table, from finished run directories ``ROOT/imagenet/<variant>-seed<k>/``."""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path

from coordconv.repro.report.runs import load_finished, mean_sd, write_task_report

__all__ = ["results_table", "write_report"]

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


def write_report(out: Path) -> Path:
    """``out/imagenet/`` table.md and report.md from the finished runs."""
    return write_task_report(out / "imagenet", "CoordConv reproduction: ResNet classification", results_table(out), [])
