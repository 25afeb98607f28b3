"""Tables and plots of the coordinate tasks, from finished run directories.

Runs live in ``ROOT/<task>/<model>-<split>-seed<k>/`` (what ``coordconv reproduce`` writes). Everything
here reads those files only, so a report can be regenerated from committed results at any time.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from coordconv.repro.report.paper import PAPER, PAPER_EFFECT
from coordconv.repro.report.runs import (
    COLOURS,
    MODELS,
    NAMES,
    by_model,
    load_finished,
    mean_sd,
    seeds_phrase,
    table,
    write_task_report,
)
from coordconv.repro.report.stats import compare_groups
from coordconv.repro.runtime.plots import caption, plot_series, pyplot, save_figure, time_scale
from coordconv.repro.runtime.rundir import FinishedRun

__all__ = [
    "TASKS",
    "finding",
    "plot_curves",
    "plot_heatmaps",
    "plot_summary",
    "results_table",
    "verdict_table",
    "write_report",
]

TASKS = ("classification", "rendering", "regression")
SPLITS = ("uniform", "quadrant")
#: the held-out value's colour scale of the heatmaps: (colour map, lowest, highest) per metric
SCALES = {"error_px": ("viridis_r", 0.0, 5.0), "accuracy": ("viridis", 0.0, 1.0), "iou": ("viridis", 0.0, 1.0)}


def _groups(runs: list[FinishedRun], task: str) -> dict[str, dict[str, list[FinishedRun]]]:
    """The runs of ``task`` by split, then by model."""
    return {split: by_model(runs, task=task, split=split) for split in SPLITS}


def _load(root: Path, task: str) -> list[FinishedRun]:
    # only root/<task>/<run>/ counts: runs kept elsewhere under root (ablations, say) are not the report's
    return load_finished(root / task, order=("split", "model", "seed"), task=task)


def _target_text(metric: str, target: float) -> str:
    if metric == "error_px":
        return f"a mean error below {target:g} px"
    if metric == "accuracy":
        return f"{target:.0%} accuracy"
    return f"an IoU of at least {target:g}" if metric == "iou" else f"a {metric} of at least {target:g}"


def finding(runs: list[FinishedRun], task: str) -> str:
    """One sentence saying what the task's runs show: which model solves which split, in how many seeds.

    Solved: the run's whole training set and held-out test set reached the task's target (the table's
    "seeds solved"). Computed from the runs, so a model that fails, or works in some seeds only, is said so.
    """
    clauses = []
    groups = _groups(runs, task)
    for model in reversed(MODELS):  # CoordConv first: the paper's claim is about it
        counts = [
            (split, sum(r.summary["seconds_to_target"] is not None for r in group[model]), len(group[model]))
            for split, group in groups.items()
            if group[model]
        ]
        if not counts:
            continue
        total = max(n for _, _, n in counts)
        if all(k == n for _, k, n in counts):
            splits = "both splits" if len(counts) == 2 else f"the {counts[0][0]} split"
            clauses.append(f"{NAMES[model]} solves {splits} {seeds_phrase(total, total)}")
        elif all(k == 0 for _, k, _ in counts):
            splits = "neither split in any seed" if len(counts) == 2 else f"the {counts[0][0]} split in no seed"
            clauses.append(f"{NAMES[model]} solves {splits}")
        else:
            parts = [f"the {split} split {seeds_phrase(k, n)}" for split, k, n in counts]
            clauses.append(f"{NAMES[model]} solves " + " and ".join(parts))
    if not clauses:
        return "No finished runs yet."
    metric, target = runs[0].summary["metric"], runs[0].summary["target"]
    return (
        f"{'; '.join(clauses)} (solved: {_target_text(metric, target)} on both the whole training set and the "
        "held-out test positions)."
    )


#: how each metric prints: (digits, scale, unit); a difference of percentages prints in points (pp)
UNITS = {"accuracy": (1, 100.0, "%"), "within_half_px": (1, 100.0, "%"), "error_px": (2, 1.0, " px")}


def _fmt(values: list[float], metric: str) -> str:
    digits, scale, unit = UNITS.get(metric, (3, 1.0, ""))
    return mean_sd(values, digits, scale=scale, unit=unit)


def results_table(runs: list[FinishedRun], task: str) -> str:
    """A Markdown table of one task: our mean ± std over seeds beside the paper's claim."""
    rows = []
    for split, groups in _groups(runs, task).items():
        for model, group in groups.items():
            if not group:
                continue
            metric = group[0].summary["metric"]
            train = [r.summary["train"][metric] for r in group]
            test = [r.summary["test"][metric] for r in group]
            worst = max(test) if metric == "error_px" else min(test)
            times = [r.summary["seconds_to_target"] for r in group if r.summary["seconds_to_target"] is not None]
            median_time = f"{statistics.median(times):.1f}" if times else "never"
            rows.append(
                f"{split} | {model} ({group[0].summary['architecture']}) | {group[0].summary['params']:,} | "
                f"{PAPER[(task, split, model)].text} | {_fmt(train, metric)} | {_fmt(test, metric)} | "
                f"{_fmt([statistics.median(test)], metric)} | {_fmt([worst], metric)} | {len(times)}/{len(group)} | "
                f"{median_time}"
            )
    metric_name, target = (runs[0].summary["metric"], runs[0].summary["target"]) if runs else ("", "")
    bound = f"below {target} px" if metric_name == "error_px" else f"at least {target}"
    counts = sorted({len(group) for groups in _groups(runs, task).values() for group in groups.values() if group})
    if counts == [1]:  # the main job's default: one seed, no spread to give
        over = (
            "one seed per model and split, so each value is that seed's (no spread; the committed tables in "
            "results/toy use 10 seeds: coordconv reproduce --seeds 10)"
        )
    else:
        over = (
            f"mean ± standard deviation over {'-'.join(map(str, counts))} seeds; the median seed is robust to one "
            "seed that fails, which the mean is not"
        )
    header = (
        "split | model | params | paper | train | test | test, median seed | test, worst seed | seeds solved "
        "| median s to target"
    )
    return table(
        header,
        rows,
        f"Metric: {metric_name}, final models, {over}. "
        f'"Seeds solved": runs whose '
        f"test set and whole training set both reached the target ({metric_name} {bound}); the time until then is "
        "training time, evaluation excluded.",
    )


def verdict_table(runs: list[FinishedRun], task: str) -> str:
    """CoordConv's test metric against conv's per split: the difference, its 95% interval and the verdict.

    The verdict (:func:`~coordconv.repro.report.stats.compare_groups`) tests the paper's effect
    (:data:`~coordconv.repro.report.paper.PAPER_EFFECT`); "" without two seeds of each model in any split.
    """
    rows = []
    for split, groups in _groups(runs, task).items():
        values = {m: [r.summary["test"][r.summary["metric"]] for r in group] for m, group in groups.items()}
        paper, side = PAPER_EFFECT[task, split]
        result = compare_groups(values["coordconv"], values["conv"], paper, side=side)
        if result is None:
            continue
        digits, scale, unit = UNITS.get(groups["conv"][0].summary["metric"], (3, 1.0, ""))
        unit = unit.replace("%", " pp")
        claim = f"{paper * scale:+.{digits}f}{unit}" if paper is not None else ("lower" if side < 0 else "higher")
        rows.append(
            f"{split} | {len(values['conv'])}/{len(values['coordconv'])} | "
            f"{result.interval(digits, scale, unit)} | {claim} | {result.words(digits, scale, unit)}"
        )
    if not rows:
        return ""
    return table(
        "split | seeds conv/CoordConv | CoordConv - conv (test), 95% interval | paper's effect | verdict",
        rows,
        "The interval is Welch's at 95% over the seeds' final test values. The paper's effect: CoordConv's "
        "result minus conv's as the paper reports them (where the paper gives conv's best, a bound: the paper's "
        "effect is at least that), or its direction where it gives no number. Verdict: reproduced (the "
        "interval lies on the paper's side of zero and reaches the paper's effect or beyond), contradicted (it "
        "excludes the paper's effect), or no detectable difference, with the smallest effect a two-sided test "
        "finds at 80% power.",
    )


def plot_heatmaps(runs: list[FinishedRun], task: str, path: Path) -> None:
    """What each model predicts for the held-out positions (first seed of each configuration).

    Top row: the test metric at each held-out centre (training centres in grey). Bottom row: where the model's
    predictions for the held-out examples land (one red dot per example). A legend and caption in the figure
    explain every colour.
    """
    plt = pyplot()
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    panels = [(s, m, group[0]) for s, groups in _groups(runs, task).items() for m, group in groups.items() if group]
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(3.4 * len(panels), 8.2), squeeze=False)
    metric = ""
    for col, (split, model, record) in enumerate(panels):
        metric = record.summary["metric"]
        predictions = record.json("predictions.json")
        truth = np.array(predictions["test_xy"])
        predicted = np.array(predictions["predicted_xy"])
        values = np.array(predictions[metric])
        canvas = np.full((64, 64), np.nan)
        canvas[truth[:, 1], truth[:, 0]] = values
        background = np.zeros((64, 64))
        background[4:60, 4:60] = 0.85
        background[truth[:, 1], truth[:, 0]] = 1.0
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(background, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        cmap, vmin, vmax = SCALES.get(metric, ("viridis", None, None))
        image = top.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        top.set_title(f"{NAMES[model]}, {split} split, seed {record.summary['seed']}\ntest {metric} at each held-out "
                      "centre", fontsize=9)  # fmt: skip
        bar = fig.colorbar(image, ax=top, fraction=0.046, pad=0.04, extend="max" if metric == "error_px" else "neither")
        labels = {"error_px": "error (px; 5 or more: darkest)", "accuracy": "1 = right pixel, 0 = wrong"}
        bar.set_label(labels.get(metric, metric), fontsize=8)
        bottom.imshow(background, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        bottom.scatter(
            np.clip(predicted[:, 0], 0, 63), np.clip(predicted[:, 1], 0, 63), s=5, c="tab:red", alpha=0.6, linewidths=0
        )
        bottom.set_xlim(-0.5, 63.5)
        bottom.set_ylim(63.5, -0.5)
        bottom.set_title("where it puts the held-out squares' centres", fontsize=9)
        for ax in (top, bottom):
            ax.set(xticks=[], yticks=[])
    fig.suptitle(f"{task}: predictions for the held-out (test) positions", fontsize=10)
    handles = [
        Patch(facecolor="0.85", edgecolor="0.5", label="training centre"),
        Patch(facecolor="white", edgecolor="0.5", label="held-out test centre"),
        Patch(facecolor="black", label="border: no centre there (a 9x9 square must fit)"),
        Line2D([], [], color="tab:red", marker="o", linestyle="none", markersize=4, label="predicted centre (bottom)"),
    ]
    better = "lower" if metric == "error_px" else "higher"
    caption(
        fig,
        f"Top: each held-out centre coloured by the test {metric} of its example ({better} is better; the colour bar "
        "gives the scale). Bottom: the centre the model predicts for each held-out example (one dot per example, "
        "clipped to the canvas); a model that generalises puts its dots on the white test centres. 64 x 64 canvas, "
        "x to the right, y down.",
        handles=handles,
    )
    save_figure(fig, path)


def _final_time(run: FinishedRun) -> float:
    return float(run.summary.get("train_seconds") or max((m["train_seconds"] for m in run.metrics), default=0.0))


def plot_curves(runs: list[FinishedRun], task: str, path: Path) -> None:
    """Test and train metric against training seconds, every seed, both models, one panel per split.

    The time axis is logarithmic in a panel where one model's typical run is over ten times longer than the other's
    (:func:`~coordconv.repro.runtime.plots.time_scale`). Three marks per run: the test set (solid, every evaluation),
    the running average of each epoch's training batches (dashed: what ``metrics.jsonl`` holds as ``train_*``), and
    the whole training set evaluated (diamonds: ``train_set_*`` rows when the test set reached the target, and the
    final model, which is the table's "train").
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(6 * len(SPLITS), 4.6), squeeze=False)
    metric = ""
    scales = []
    for ax, (split, groups) in zip(axes[0], _groups(runs, task).items(), strict=True):
        spans = []
        for model, group in groups.items():
            spans.append(statistics.median([_final_time(r) for r in group]) if group else 0.0)  # a typical run
            for record in group:
                metric = record.summary["metric"]
                colour = COLOURS[model]
                evals = [m for m in record.metrics if f"test_{metric}" in m]
                epochs = [m for m in record.metrics if m["kind"] == "epoch" and f"train_{metric}" in m]
                full = [(m["train_seconds"], m[f"train_set_{metric}"]) for m in evals if f"train_set_{metric}" in m]
                full.append((_final_time(record), record.summary["train"][metric]))
                plot_series(
                    ax, [m["train_seconds"] for m in evals], [m[f"test_{metric}"] for m in evals], color=colour,
                    alpha=0.8,
                )  # fmt: skip
                plot_series(
                    ax, [m["train_seconds"] for m in epochs], [m[f"train_{metric}"] for m in epochs], color=colour,
                    alpha=0.5, linestyle="--", marker="o", markersize=2.5,
                )  # fmt: skip
                ax.plot(*zip(*full, strict=True), linestyle="none", marker="D", markersize=4, color=colour,
                        markeredgecolor="black", markeredgewidth=0.5, zorder=3)  # fmt: skip
        scale = time_scale(spans)
        scales.append(scale)
        ax.set_xscale(scale)
        ax.set_xlabel("training seconds (this CPU" + (", log scale)" if scale == "log" else ")"))
        ax.set_ylabel(f"{metric} ({'lower' if metric == 'error_px' else 'higher'} is better)")
        if metric == "error_px":
            ax.set_yscale("log")
        ax.set_title(f"{task}, {split} split")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=COLOURS[m], linewidth=2, label=NAMES[m]) for m in MODELS]
    handles += [
        plt.Line2D([], [], color="0.3", label="test set"),
        plt.Line2D([], [], color="0.3", linestyle="--", marker="o", markersize=2.5,
                   label="train: running batch average"),
        plt.Line2D([], [], color="0.3", linestyle="none", marker="D", markersize=4, markeredgecolor="black",
                   label="train: whole training set"),
    ]  # fmt: skip
    caption(
        fig,
        "One line per seed. Test set: evaluated during training. Train, running batch average: the mean over one "
        "epoch's training batches while the weights still change, so it trails the evaluation of the whole training "
        "set (diamonds: when the test set first reached the target, and the final model, which is the table's train)."
        + (" Time axes are logarithmic where one model's runs are over ten times longer." if "log" in scales else ""),
        handles=handles,
    )
    save_figure(fig, path)


def _bar_label(value: float, metric: str) -> str:
    if UNITS.get(metric, (3, 1.0, ""))[2] == "%" and 0 < 100 * value < 0.05:
        return f"{100 * value:.2g}%"  # a bar under 0.05% keeps two digits, not 0.0%
    return _fmt([value], metric)


def plot_summary(runs: list[FinishedRun], tasks: list[str], path: Path) -> None:
    """Final test metric of conv and CoordConv per task and split.

    A bar of the median over seeds (its value printed; a seed that fails moves a mean, not the median) and a dot per
    seed, with a legend and caption in the figure.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4.6), squeeze=False)
    seeds = set()
    for ax, task in zip(axes[0], tasks, strict=True):
        metric = ""
        highest = 0.0
        for s_index, groups in enumerate(_groups(runs, task).values()):
            for m_index, (model, group) in enumerate(groups.items()):
                if not group:
                    continue
                seeds.add(len(group))
                metric = group[0].summary["metric"]
                values = [r.summary["test"][metric] for r in group]
                median = statistics.median(values)
                x = s_index * 3 + m_index
                # an outline, so that a bar of (almost) zero still shows as a line on the axis
                ax.bar(x, median, color=COLOURS[model], alpha=0.7, edgecolor=COLOURS[model], linewidth=1.5)
                ax.scatter([x] * len(values), values, color="black", s=8, zorder=3)
                top = max(median, *values)
                highest = max(highest, top)
                ax.annotate(
                    _bar_label(median, metric), (x, top), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8,
                )  # fmt: skip
        ax.set_xticks([0.5, 3.5], [f"{split} split" for split in SPLITS])
        ax.set_ylabel(f"test {metric} ({'lower' if metric == 'error_px' else 'higher'} is better)")
        if metric == "error_px":
            ax.set_yscale("log")
            ax.set_ylim(top=highest * 3)
        else:
            ax.set_ylim(0, max(highest, 1e-9) * 1.15)
        ax.set_title(task)
        ax.grid(alpha=0.3, axis="y")
    counts = "/".join(str(n) for n in sorted(seeds))
    handles: list[Any] = [Patch(color=COLOURS[m], alpha=0.7, label=f"{NAMES[m]}: median over seeds") for m in MODELS]
    handles.append(
        plt.Line2D([], [], color="black", marker="o", markersize=3, linestyle="none", label="one seed's final model")
    )
    fig.suptitle("conv vs CoordConv on held-out positions (test set)", fontsize=10)
    caption(
        fig,
        f"Bars: the median over the seeds ({counts} per bar; one failing seed moves a mean, not the median), its "
        "value printed above the highest mark; dots: each seed's final model. The tables give the means."
        + (" Errors are in pixels, on a log axis." if "regression" in tasks else ""),
        handles=handles,
    )
    save_figure(fig, path)


def write_report(out: Path, task: str) -> Path:
    """``out/<task>/`` table.md, heatmaps.png, curves.png and report.md, and ``out/summary.png`` over the tasks."""
    runs = _load(out, task)
    folder = out / task
    plot_heatmaps(runs, task, folder / "heatmaps.png")
    plot_curves(runs, task, folder / "curves.png")
    present = [t for t in TASKS if (out / t / "command.txt").exists()]
    plot_summary([r for t in present for r in _load(out, t)], present, out / "summary.png")
    intro = (
        "Our mean ± standard deviation over seeds beside what the paper reports. The paper's numbers are the best of "
        "large hyperparameter sweeps trained for up to hours on a GPU; ours come from the preset's single "
        "configuration on this machine's CPU."
    )
    figures = ["![held-out predictions](heatmaps.png)", "", "![learning curves](curves.png)", ""]
    figures += ["![conv vs CoordConv, every task](../summary.png)"]
    title = f"CoordConv reproduction: {task}"
    verdicts = verdict_table(runs, task)
    text = results_table(runs, task) + (f"\n\n{verdicts}" if verdicts else "")
    return write_task_report(folder, title, text, figures, intro, finding=finding(runs, task))
