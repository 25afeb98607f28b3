"""Tables and figures of the detection runs, from finished run directories ``ROOT/detection/<model>-seed<k>/``."""

from __future__ import annotations

import statistics
from pathlib import Path

from torch import Tensor

from coordconv.repro.report.runs import (
    COLOURS,
    MODELS,
    FinishedRun,
    compare,
    load_finished,
    mean_sd,
    write_task_report,
)
from coordconv.repro.runtime.plots import caption, pyplot, save_figure

__all__ = ["draw_predictions", "finding", "load_runs", "plot_curves", "results_table", "write_report"]

PAPER_GAIN = 0.24  # "24% better IOU" (abstract)
NAMES = {"conv": "Faster R-CNN", "coordconv": "CoordConv Faster R-CNN"}


def load_runs(root: Path) -> list[FinishedRun]:
    """Every finished detection run under ``root/detection``, sorted by model and seed."""
    return sorted(
        load_finished(root / "detection", "*/summary.json"), key=lambda r: (r.summary["model"], r.summary["seed"])
    )


def _stat(values: list[float], digits: int = 3) -> str:
    return mean_sd(values, digits)


def results_table(runs: list[FinishedRun]) -> str:
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


def finding(runs: list[FinishedRun]) -> str:
    """One sentence: does CoordConv improve the proposals (Welch's t of the per-seed proposal IoU beyond +-2)?"""
    iou = {m: [r.summary["proposal_iou"] for r in runs if r.summary["model"] == m] for m in MODELS}
    if not all(iou.values()):
        return "Only one of the two models has finished runs, so nothing is compared yet."
    coord, plain = statistics.fmean(iou["coordconv"]), statistics.fmean(iou["conv"])
    change = coord / plain - 1
    numbers = (
        f"mean proposal IoU {coord:.3f} against {plain:.3f}, {change:+.1%}, over {len(iou['coordconv'])} and "
        f"{len(iou['conv'])} seeds; the paper reports {PAPER_GAIN:+.0%}"
    )
    result = compare(iou["coordconv"], iou["conv"])
    if result == "higher":
        return f"CoordConv gives Faster R-CNN better proposals here ({numbers})."
    if result == "lower":
        return f"CoordConv gives Faster R-CNN worse proposals here ({numbers}), so the paper's gain does not reproduce."
    return (
        f"CoordConv makes no clear difference to Faster R-CNN's proposals here ({numbers}; Welch's t within ±2), so "
        "the paper's gain does not reproduce."
    )


def plot_curves(runs: list[FinishedRun], path: Path) -> None:
    """Proposal IoU and mAP@0.5 after each epoch, every run, both models, with a legend and caption in the figure."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, label in ((axes[0], "proposal_iou", "proposal IoU"), (axes[1], "map_50", "mAP@0.5")):
        for r in runs:
            ax.plot([m["epoch"] for m in r.metrics], [m[key] for m in r.metrics], "o-",
                    color=COLOURS[r.summary["model"]], alpha=0.7)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{label} (higher is better)")
        ax.grid(alpha=0.3)
    seeds = {m: sum(r.summary["model"] == m for r in runs) for m in MODELS}
    handles = [
        Line2D([], [], color=COLOURS[m], marker="o", alpha=0.7, label=f"{NAMES[m]} ({seeds[m]} seeds)") for m in MODELS
    ]
    caption(
        fig,
        "One line per seed; each dot is the test evaluation after an epoch. Proposal IoU: the paper's measure (the "
        "RPN's top 10 proposals' best IoU with a digit box); mAP@0.5: the detector's digit detections.",
        handles=handles,
    )
    save_figure(fig, path)


def draw_predictions(
    images: list[Tensor],
    boxes: list[Tensor],
    detections: list[dict[str, Tensor]],
    proposals: list[Tensor],
    top: int,
    path: Path,
) -> None:
    """Canvases with ground-truth boxes (green), detections above 0.5 (red) and the top proposals (yellow).

    A legend in the figure names the three colours.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 3.0), squeeze=False)
    axes = axes[0]
    for i, ax in enumerate(axes):
        ax.imshow(images[i][0].numpy(), cmap="gray", vmin=0, vmax=1)
        for box, colour, width in (
            *((b, "yellow", 0.6) for b in proposals[i][:top]),
            *((b, "lime", 1.5) for b in boxes[i]),
            *((b, "red", 1.2) for b, s in zip(detections[i]["boxes"], detections[i]["scores"], strict=True) if s > 0.5),
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=colour, lw=width))
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        Patch(fill=False, edgecolor="lime", linewidth=1.5, label="ground-truth digit box"),
        Patch(fill=False, edgecolor="red", linewidth=1.2, label="detection (score above 0.5)"),
        Patch(fill=False, edgecolor="yellow", linewidth=0.6, label=f"top {top} RPN proposals"),
    ]
    caption(fig, "Test canvases of the final model.", handles=handles)
    save_figure(fig, path)


def write_report(out: Path) -> Path:
    """``out/detection/`` table.md, curves.png and report.md from the finished detection runs."""
    runs = load_runs(out)
    folder = out / "detection"
    plot_curves(runs, folder / "curves.png")
    lines = ["![curves](curves.png)", ""]
    for model in MODELS:
        first = next((r for r in runs if r.summary["model"] == model), None)
        if first is not None:
            rel = first.path.relative_to(folder).as_posix()
            lines += [
                f"{NAMES[model]}, seed {first.summary['seed']}: ground truth (green), detections (red), "
                "top proposals (yellow)",
                "",
                f"![{model} predictions]({rel}/predictions.png)",
                "",
            ]
    title = "CoordConv reproduction: Faster R-CNN on MNIST canvases"
    return write_task_report(folder, title, results_table(runs), lines, finding=finding(runs))
