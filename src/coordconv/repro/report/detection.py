"""Tables and figures of the detection runs, from finished run directories ``ROOT/detection/<model>-seed<k>/``."""

from __future__ import annotations

import statistics
from pathlib import Path

from torch import Tensor

from coordconv.repro.report.runs import (
    COLOURS,
    MODELS,
    by_model,
    load_finished,
    mean_sd,
    seeds,
    table,
    write_task_report,
)
from coordconv.repro.report.stats import Comparison, compare_groups
from coordconv.repro.runtime.plots import caption, pyplot, save_figure
from coordconv.repro.runtime.rundir import FinishedRun

__all__ = [
    "NAMES",
    "clipped",
    "draw_predictions",
    "epoch_gaps",
    "finding",
    "late_change",
    "plot_curves",
    "results_table",
    "targets",
    "verdict",
    "write_report",
]

PAPER_GAIN = 0.24  # "24% better IOU" (abstract)
#: the detectors in table order, with where each has coordinates
NAMES = {
    "conv": "Faster R-CNN",
    "coordconv": "CoordConv Faster R-CNN",
    "coordconv-backbone": "CoordConv in the backbone only",
    "coordconv-rpn": "CoordConv in the RPN only",
}
PLACES = {
    "conv": "none",
    "coordconv": "backbone + RPN (official)",
    "coordconv-backbone": "backbone's first conv",
    "coordconv-rpn": "RPN 3x3 + box mover",
}
COLOURS = {**COLOURS, "coordconv-backbone": "tab:green", "coordconv-rpn": "tab:purple"}
#: epochs over which the table measures the final change of the proposal IoU (the plateau check)
LATE = 5


def clipped(run: FinishedRun) -> bool:
    """Whether ``run`` trained on clipped targets (``clip_boxes``).

    A run whose config predates the field clipped: the experiment's ``Config.LEGACY_DEFAULTS`` says the same (the
    report does not import the experiment).
    """
    return bool(run.summary.get("config", {}).get("clip_boxes", True))


def targets(runs: list[FinishedRun]) -> str:
    """A sentence for the report when its runs use the official targets ("" for the clipped variant's runs).

    Raises:
        ValueError: the runs mix the two target modes, which no comparison should do.
    """
    modes = {clipped(r) for r in runs}
    if len(modes) > 1:
        names = {m: ", ".join(r.path.name for r in runs if clipped(r) == m) for m in modes}
        raise ValueError(
            f"the detection runs mix clipped targets ({names[True]}) and official ones ({names[False]}); expected "
            "one mode per folder: train each mode into its own --out"
        )
    if modes != {False}:
        return ""
    return (
        "Targets: the official ones, the whole box of every digit with ink in the crop, reaching past the border for "
        "digits near it; the RPN's proposals and the detections are not clipped to the image either, and the anchors "
        "are centred as the official code centres them. (The clipped targets, `--clip-boxes`, are the project's "
        "earlier variant.)"
    )


def _iou(runs: list[FinishedRun], model: str) -> list[float]:
    return [r.summary["proposal_iou"] for r in runs if r.summary["model"] == model]


def late_change(run: FinishedRun, epochs: int = LATE) -> float | None:
    """The proposal IoU's change over a run's last ``epochs`` epochs: near 0 at a plateau (``None``: a shorter run)."""
    ious = [m["proposal_iou"] for m in run.metrics if "proposal_iou" in m]
    return ious[-1] - ious[-1 - epochs] if len(ious) > epochs else None


def epoch_gaps(runs: list[FinishedRun]) -> str:
    """Where the two models' mean proposal IoU curves part: CoordConv's against conv's at each epoch every run has.

    One sentence for the report ("" without runs of both, or no epoch they all evaluated): the smallest and the
    largest relative difference, with their epochs.
    """
    curves = {
        model: [{m["epoch"]: m["proposal_iou"] for m in r.metrics if "proposal_iou" in m} for r in group]
        for model, group in by_model(runs).items()
    }
    every = [set(c) for group in curves.values() for c in group]
    epochs = sorted(set.intersection(*every)) if all(curves.values()) else []
    gaps = {}
    for epoch in epochs:
        mean = {model: statistics.fmean(c[epoch] for c in group) for model, group in curves.items()}
        if mean["conv"] > 0:
            gaps[epoch] = mean["coordconv"] / mean["conv"] - 1
    if not gaps:
        return ""
    low, high = min(gaps, key=gaps.__getitem__), max(gaps, key=gaps.__getitem__)
    return (
        f"Epoch by epoch (means over seeds), {NAMES['coordconv']}'s proposal IoU differs from {NAMES['conv']}'s by "
        f"{gaps[low]:+.1%} (epoch {low}) to {gaps[high]:+.1%} (epoch {high}); the paper reports {PAPER_GAIN:+.0%}."
    )


def _versus_conv(runs: list[FinishedRun], model: str) -> tuple[str, Comparison | None]:
    """CoordConv variant ``model`` against conv: the relative change of the mean proposal IoU, and the comparison.

    The paper's effect, in this table's units: +24% of conv's mean proposal IoU here.
    """
    coord, plain = _iou(runs, model), _iou(runs, "conv")
    if model == "conv" or not coord or not plain:
        return "", None
    change = f"{statistics.fmean(coord) / statistics.fmean(plain) - 1:+.1%}"
    return change, compare_groups(coord, plain, PAPER_GAIN * statistics.fmean(plain))


def verdict(a: list[float], b: list[float]) -> str:
    """The verdict of ``a`` (a CoordConv detector's per-seed proposal IoU) against ``b`` (conv's), by the paper's +24%.

    ``reproduced``, ``contradicted`` (with how), ``no detectable difference; this test could detect effects larger
    than X`` (:mod:`..stats`), or ``not compared`` while a model has fewer than two seeds.
    """
    if not a or not b:
        return "not compared"
    result = compare_groups(a, b, PAPER_GAIN * statistics.fmean(b))
    return "not compared (one seed of a model)" if result is None else result.words(3)


def results_table(runs: list[FinishedRun]) -> str:
    """Proposal IoU, its change over the last epochs, mAP@0.5 and mAP of every detector.

    Each CoordConv detector's difference from conv, with its 95% interval and the verdict of
    :func:`~coordconv.repro.report.stats.compare_groups`, sits beside the paper's +24%.
    """
    lines = []
    for model, group in by_model(runs, NAMES).items():
        if not group:
            continue
        change, result = _versus_conv(runs, model)
        interval = "" if not change else result.interval(3) if result else "-"
        said = verdict(_iou(runs, model), _iou(runs, "conv")) if change else ""
        cells = [NAMES[model], PLACES[model], len(group), mean_sd(_iou(runs, model), 3), change, interval, said]
        cells.append(mean_sd(map(late_change, group), 3))  # "-" where every run is shorter than LATE epochs
        cells += [
            mean_sd([r.summary[k] for r in group], d) for k, d in (("map_50", 3), ("map", 3), ("train_seconds", 0))
        ]
        lines.append(" | ".join(map(str, cells)))
    return table(
        f"detector | coordinates | seeds | proposal IoU (paper's metric) | vs conv (paper: {PAPER_GAIN:+.0%}) | "
        f"difference, 95% interval | verdict | IoU change over the last {LATE} epochs | mAP@0.5 | mAP@[.5:.95] | "
        "training s",
        lines,
        "Mean ± standard deviation over seeds, final epoch. Difference: the detector's mean proposal IoU minus "
        "conv's, with its 95% Welch interval; the paper's +24% is taken as 24% of conv's mean IoU here. Verdict: "
        "reproduced (the interval lies above zero and reaches the paper's effect), contradicted (the interval "
        "excludes the paper's effect), or no detectable difference, with the smallest effect the test finds at 80% "
        "power. Proposal IoU: for each of the RPN's top 10 proposals "
        "after NMS, its best IoU with a ground-truth digit box, averaged per test canvas, then over the canvases "
        "(the official code's `mean_argmax_nms_iou`). mAP: torchmetrics' COCO evaluation of the detector's digit "
        "detections (10 classes). Training seconds are wall-clock time and carry the load of other jobs.",
    )


def finding(runs: list[FinishedRun]) -> str:
    """Plain sentences: does CoordConv improve the proposals as the paper's +24% has it, and each single placement?

    Worded by what the test can detect (:func:`verdict`).
    """
    iou = {m: _iou(runs, m) for m in NAMES}
    if not iou["conv"] or not iou["coordconv"]:
        return "Only one of the two models has finished runs, so nothing is compared yet."
    coord, plain = statistics.fmean(iou["coordconv"]), statistics.fmean(iou["conv"])
    change, result = _versus_conv(runs, "coordconv")
    numbers = (
        f"mean proposal IoU {coord:.3f} against {plain:.3f}, {change} where the paper reports {PAPER_GAIN:+.0%} "
        f"({PAPER_GAIN * plain:+.3f} here), over {seeds(len(iou['coordconv']))} and {seeds(len(iou['conv']))}"
    )
    if result is None:
        text = f"One seed of a model is too few to compare the two ({numbers})."
    else:
        # a verdict on the clipped variant's runs covers that variant only
        scope = (
            "In the clipped variant only (targets and proposals clipped to the 64x64 crop, where the official code "
            "keeps the whole box of a digit cut by the border: a difference that can decide the outcome, so this "
            "says nothing about the paper's setting), "
            if any(clipped(r) for r in runs)
            else ""
        )
        text = (
            f"{scope}the paper's +24% proposal IoU with CoordConv: {result.words(3)} ({numbers}; difference "
            f"{result.interval(3)}, 95% interval)."
        )
        text = text[0].upper() + text[1:]
    ablation = [
        f"{NAMES[m]}: {verdict(iou[m], iou['conv'])} ({statistics.fmean(iou[m]):.3f}, "
        f"{_versus_conv(runs, m)[0]}, {seeds(len(iou[m]))})"
        for m in ("coordconv-backbone", "coordconv-rpn")
        if iou[m]
    ]
    if ablation:
        text += " In the placement ablation, " + "; ".join(ablation) + "."
    return text


def plot_curves(runs: list[FinishedRun], path: Path) -> None:
    """Proposal IoU and mAP@0.5 after each epoch, every run, each detector, with a legend and caption in the figure."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, label in ((axes[0], "proposal_iou", "proposal IoU"), (axes[1], "map_50", "mAP@0.5")):
        for r in runs:
            ax.plot([m["epoch"] for m in r.metrics], [m[key] for m in r.metrics], "o-", markersize=3,
                    color=COLOURS[r.summary["model"]], alpha=0.7)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel(f"{label} (higher is better)")
        ax.grid(alpha=0.3)
    count = {m: sum(r.summary["model"] == m for r in runs) for m in NAMES}
    handles = [
        plt.Line2D([], [], color=COLOURS[m], marker="o", alpha=0.7, label=f"{NAMES[m]} ({seeds(count[m])})")
        for m in NAMES
        if count[m] or m in MODELS
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
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i][0].numpy(), cmap="gray", vmin=0, vmax=1)
        for box, colour, width in (
            *((b, "yellow", 0.6) for b in proposals[i][:top]),
            *((b, "lime", 1.5) for b in boxes[i]),
            *((b, "red", 1.2) for b, s in zip(detections[i]["boxes"], detections[i]["scores"], strict=True) if s > 0.5),
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=colour, lw=width))
        ax.set(xticks=[], yticks=[])
    handles = [
        Patch(fill=False, edgecolor="lime", linewidth=1.5, label="ground-truth digit box"),
        Patch(fill=False, edgecolor="red", linewidth=1.2, label="detection (score above 0.5)"),
        Patch(fill=False, edgecolor="yellow", linewidth=0.6, label=f"top {top} RPN proposals"),
    ]
    caption(fig, "Test canvases of the final model.", handles=handles)
    save_figure(fig, path)


def write_report(out: Path) -> Path:
    """``out/detection/`` table.md, curves.png and report.md from the finished detection runs."""
    runs = load_finished(out / "detection", order=("model", "seed"))  # the table's order: conv first
    folder = out / "detection"
    plot_curves(runs, folder / "curves.png")
    gaps = epoch_gaps(runs)
    lines = ["![curves](curves.png)", "", *([gaps, ""] if gaps else [])]
    for model, group in by_model(runs, NAMES).items():
        if group:
            first = group[0]
            rel = first.path.relative_to(folder).as_posix()
            lines += [
                f"{NAMES[model]}, seed {first.summary['seed']}: ground truth (green), detections (red), "
                "top proposals (yellow)",
                "",
                f"![{model} predictions]({rel}/predictions.png)",
                "",
            ]
    title = "CoordConv reproduction: Faster R-CNN on MNIST canvases"
    return write_task_report(folder, title, results_table(runs), lines, targets(runs), finding=finding(runs))
