"""Tables and plots of the coordinate tasks, from finished run directories.

Runs live in ``ROOT/<task>/<model>-<split>-seed<k>/`` (what ``coordconv reproduce`` writes). Everything
here reads those files only, so a report can be regenerated from committed results at any time.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from coordconv.repro.report.paper import PAPER
from coordconv.repro.report.runs import COLOURS, MODELS, FinishedRun, load_finished, mean_sd, write_task_report
from coordconv.repro.runtime.plots import pyplot, save_figure

__all__ = ["TASKS", "load_runs", "plot_curves", "plot_heatmaps", "plot_summary", "results_table", "write_report"]

TASKS = ("classification", "rendering", "regression")
SPLITS = ("uniform", "quadrant")


def _key(run: FinishedRun) -> tuple[str, str, str]:
    return run.summary["task"], run.summary["split"], run.summary["model"]


def load_runs(root: Path, task: str) -> list[FinishedRun]:
    """Every finished run of ``task`` in ``root/<task>/``, sorted by split, model and seed.

    Only ``root/<task>/<run>/`` counts: runs kept elsewhere under ``root`` (ablations, say) are not the report's.

    Raises:
        RunError: a run's files are damaged or not what the run wrote (the message names the file).
    """
    runs = [r for r in load_finished(root / task, "*/summary.json") if r.summary["task"] == task]
    return sorted(runs, key=lambda r: (r.summary["split"], r.summary["model"], r.summary["seed"]))


def _fmt(values: list[float], metric: str) -> str:
    if metric in ("accuracy", "within_half_px"):
        return mean_sd(values, 1, scale=100.0, unit="%")
    return mean_sd(values, 2, unit=" px") if metric == "error_px" else mean_sd(values, 3)


def results_table(runs: list[FinishedRun], task: str) -> str:
    """A Markdown table of one task: our mean ± std over seeds beside the paper's claim."""
    lines = [
        "| split | model | params | paper | train | test | test, worst seed | seeds solved | median s to target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        for model in MODELS:
            group = [r for r in runs if _key(r) == (task, split, model)]
            if not group:
                continue
            metric = group[0].summary["metric"]
            train = [r.summary["train"][metric] for r in group]
            test = [r.summary["test"][metric] for r in group]
            worst = max(test) if metric == "error_px" else min(test)
            times = [r.summary["seconds_to_target"] for r in group if r.summary["seconds_to_target"] is not None]
            median_time = f"{statistics.median(times):.1f}" if times else "never"
            lines.append(
                f"| {split} | {model} ({group[0].summary['architecture']}) | {group[0].summary['params']:,} | "
                f"{PAPER[(task, split, model)].text} | {_fmt(train, metric)} | {_fmt(test, metric)} | "
                f"{_fmt([worst], metric)} | {len(times)}/{len(group)} | {median_time} |"
            )
    metric_name = runs[0].summary["metric"] if runs else ""
    target = runs[0].summary["target"] if runs else ""
    lines.append("")
    bound = f"below {target} px" if metric_name == "error_px" else f"at least {target}"
    lines.append(
        f'Metric: {metric_name}, mean ± standard deviation over seeds, final models. "Seeds solved": runs whose '
        f"test set and whole training set both reached the target ({metric_name} {bound}); the time until then is "
        "training time, evaluation excluded."
    )
    return "\n".join(lines)


def plot_heatmaps(runs: list[FinishedRun], task: str, path: Path) -> None:
    """What each model predicts for the held-out positions (first seed of each configuration).

    Top row: the test metric at each held-out centre (train centres in grey). Bottom row: where the model's
    predictions for the held-out examples land (one red dot per example).
    """
    plt = pyplot()
    import numpy as np

    panels = [(s, m) for s in SPLITS for m in MODELS if any(_key(r) == (task, s, m) for r in runs)]
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(3.4 * len(panels), 7), squeeze=False)
    for col, (split, model) in enumerate(panels):
        record = next(r for r in runs if _key(r) == (task, split, model))
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
        cmap, vmin, vmax = ("viridis_r", 0.0, 5.0) if metric == "error_px" else ("viridis", 0.0, 1.0)
        image = top.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        top.set_title(f"{model}, {split}\ntest {metric} per held-out centre", fontsize=9)
        fig.colorbar(image, ax=top, fraction=0.046, pad=0.04)
        bottom.imshow(background, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        bottom.scatter(
            np.clip(predicted[:, 0], 0, 63), np.clip(predicted[:, 1], 0, 63), s=5, c="tab:red", alpha=0.6, linewidths=0
        )
        bottom.set_xlim(-0.5, 63.5)
        bottom.set_ylim(63.5, -0.5)
        bottom.set_title("its predicted centres for them (red)", fontsize=9)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{task}: held-out positions (grey: training centres; white: test centres)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_curves(runs: list[FinishedRun], task: str, path: Path) -> None:
    """Train and test metric against training seconds, every seed, both models, one panel per split."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(6 * len(SPLITS), 4), squeeze=False)
    for ax, split in zip(axes[0], SPLITS, strict=True):
        metric = ""
        for model in MODELS:
            for i, record in enumerate(r for r in runs if _key(r) == (task, split, model)):
                metric = record.summary["metric"]
                epochs = [m for m in record.metrics if m["kind"] == "epoch"]
                evals = record.metrics
                label = model if i == 0 else None
                ax.plot(
                    [m["train_seconds"] for m in evals], [m[f"test_{metric}"] for m in evals],
                    color=COLOURS[model], alpha=0.8, label=f"{label} test" if label else None,
                )  # fmt: skip
                ax.plot(
                    [m["train_seconds"] for m in epochs], [m[f"train_{metric}"] for m in epochs],
                    color=COLOURS[model], alpha=0.5, linestyle="--", label=f"{label} train" if label else None,
                )  # fmt: skip
        ax.set_xlabel("training seconds (this CPU)")
        ax.set_ylabel(metric)
        if metric == "error_px":
            ax.set_yscale("log")
        ax.set_title(f"{task}, {split} split")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_summary(runs: list[FinishedRun], tasks: list[str], path: Path) -> None:
    """Final test metric of conv and CoordConv per task and split (mean, and every seed as a dot)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        metric = ""
        for s_index, split in enumerate(SPLITS):
            for m_index, model in enumerate(MODELS):
                group = [r for r in runs if _key(r) == (task, split, model)]
                if not group:
                    continue
                metric = group[0].summary["metric"]
                values = [r.summary["test"][metric] for r in group]
                x = s_index * 3 + m_index
                ax.bar(
                    x, statistics.fmean(values), color=COLOURS[model], alpha=0.7, label=model if s_index == 0 else None
                )
                ax.scatter([x] * len(values), values, color="black", s=8, zorder=3)
        ax.set_xticks([0.5, 3.5], list(SPLITS))
        ax.set_ylabel(f"test {metric}")
        if metric == "error_px":
            ax.set_yscale("log")
        ax.set_title(task)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("conv vs CoordConv on held-out positions", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def write_report(out: Path, task: str) -> Path:
    """``out/<task>/`` table.md, heatmaps.png, curves.png and report.md, and ``out/summary.png`` over the tasks."""
    runs = load_runs(out, task)
    folder = out / task
    plot_heatmaps(runs, task, folder / "heatmaps.png")
    plot_curves(runs, task, folder / "curves.png")
    present = [t for t in TASKS if (out / t / "command.txt").exists()]
    plot_summary([r for t in present for r in load_runs(out, t)], present, out / "summary.png")
    intro = (
        "Our mean ± standard deviation over seeds beside what the paper reports. The paper's numbers are the best of "
        "large hyperparameter sweeps trained for up to hours on a GPU; ours come from the preset's single "
        "configuration on this machine's CPU."
    )
    figures = ["![held-out predictions](heatmaps.png)", "", "![learning curves](curves.png)", ""]
    figures += ["![conv vs CoordConv, every task](../summary.png)"]
    title = f"CoordConv reproduction: {task}"
    return write_task_report(folder, title, results_table(runs, task), figures, intro)
