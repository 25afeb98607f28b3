"""Tables and figures of the detection runs, from finished run directories ``ROOT/detection/<model>-seed<k>/``."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coordconv.repro.report.plots import pyplot, save_figure
from coordconv.repro.report.runs import FinishedRun, load_finished
from coordconv.repro.report.toy import COLOURS, MODELS

__all__ = ["DetRun", "draw_predictions", "load_runs", "plot_curves", "results_table", "run_dir"]

PAPER_GAIN = 0.24  # "24% better IOU" (abstract)
NAMES = {"conv": "Faster R-CNN", "coordconv": "CoordConv Faster R-CNN"}


def run_dir(root: Path, model: str, seed: int) -> Path:
    """Where ``coordconv reproduce detection`` puts one run."""
    return root / "detection" / f"{model}-seed{seed}"


DetRun = FinishedRun
"""A finished detection run's files, parsed."""


def load_runs(root: Path) -> list[DetRun]:
    """Every finished detection run under ``root/detection``, sorted by model and seed."""
    return sorted(
        load_finished(root / "detection", "*/summary.json"), key=lambda r: (r.summary["model"], r.summary["seed"])
    )


def _stat(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def results_table(runs: list[DetRun]) -> str:
    """Proposal IoU, mAP@0.5 and mAP of both models, and CoordConv's relative IoU change beside the paper's."""
    lines = [
        "| model | seeds | proposal IoU (paper's metric) | mAP@0.5 | mAP@[.5:.95] | training s |",
        "|---|---|---|---|---|---|",
    ]
    means: dict[str, float] = {}
    for model in MODELS:
        group = [r for r in runs if r.summary["model"] == model]
        if not group:
            continue
        iou = [r.summary["proposal_iou"] for r in group]
        means[model] = statistics.fmean(iou)
        lines.append(
            f"| {NAMES[model]} | {len(group)} | {_stat(iou)} | {_stat([r.summary['map_50'] for r in group])} | "
            f"{_stat([r.summary['map'] for r in group])} | {_stat([r.summary['train_seconds'] for r in group], 0)} |"
        )
    lines.append("")
    if len(means) == 2:
        change = means["coordconv"] / means["conv"] - 1
        lines.append(
            f"CoordConv changes the mean proposal IoU by {change:+.1%} (paper: {PAPER_GAIN:+.0%}). "
            "Mean ± standard deviation over seeds, final epoch."
        )
    lines.append(
        "Proposal IoU: for each of the RPN's top 10 proposals after NMS, its best IoU with a ground-truth digit "
        "box, averaged per test canvas, then over the canvases (the official code's `mean_argmax_nms_iou`). "
        "mAP: torchmetrics' COCO evaluation of the detector's digit detections (10 classes)."
    )
    return "\n".join(lines)


def plot_curves(runs: list[DetRun], path: Path) -> None:
    """Proposal IoU and mAP@0.5 after each epoch, every run, both models."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "proposal_iou", "proposal IoU"), (axes[1], "map_50", "mAP@0.5")):
        for r in runs:
            model = r.summary["model"]
            ax.plot(
                [m["epoch"] for m in r.metrics], [m[key] for m in r.metrics], "o-", color=COLOURS[model], alpha=0.7,
                label=f"{NAMES[model]}" if r.summary["seed"] == min(x.summary["seed"] for x in runs) else None,
            )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path)


def draw_predictions(model: nn.Module, scenes: Any, top: int, path: Path, *, count: int = 8) -> None:
    """Test canvases with ground-truth boxes (green), detections above 0.5 (red) and top proposals (yellow)."""
    from coordconv.repro.experiments.detection import proposals

    plt = pyplot()
    images = list(scenes.images[:count])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        detections = model(images)
        props = proposals(model, images)
    model.train(was_training)
    fig, axes = plt.subplots(1, count, figsize=(2.2 * count, 2.4))
    for i, ax in enumerate(axes):
        ax.imshow(images[i][0].numpy(), cmap="gray", vmin=0, vmax=1)
        for box, colour, width in (
            *((b, "yellow", 0.6) for b in props[i][:top]),
            *((b, "lime", 1.5) for b in scenes.boxes[i]),
            *((b, "red", 1.2) for b, s in zip(detections[i]["boxes"], detections[i]["scores"], strict=True) if s > 0.5),
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=colour, lw=width))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)
