"""Tables and figures of the GAN and VAE runs, from finished run directories ``ROOT/<gan|vae>/<model>-seed<k>/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordconv.repro.report.runs import MODELS, FinishedRun, load_finished, mean_sd, write_task_report
from coordconv.repro.runtime.plots import pyplot, save_figure

__all__ = ["PAPER_ENTROPY", "gan_table", "load_runs", "plot_objects", "vae_table", "write_report"]

#: the paper's "average entropy" of red centres, blue centres and centre differences (Fig. 7; binning unknown)
PAPER_ENTROPY: dict[str, tuple[float, float, float]] = {
    "data": (4.0, 4.0, 3.5),
    "conv": (3.13, 2.69, 2.81),
    "coordconv": (3.30, 2.93, 2.62),
}
NAMES = {"gan": {"conv": "GAN (DCGAN-like)", "coordconv": "CoordConv GAN"}, "vae": {"conv": "conv VAE",
         "coordconv": "CoordConv VAE"}}  # fmt: skip


def load_runs(root: Path, task: str) -> list[FinishedRun]:
    """Every finished run under ``root/task``, sorted by model and seed."""
    runs = [r for r in load_finished(root / task, "*/summary.json") if r.summary.get("task") == task]
    return sorted(runs, key=lambda r: (r.summary["model"], r.summary["seed"]))


def _stat(values: list[Any], digits: int = 2, scale: float = 1.0) -> str:
    return mean_sd(values, digits, scale=scale, missing="none found")


def _objects(group: list[FinishedRun]) -> str:
    """The object-count cells of a table row, and the training time."""

    def pct(key: str) -> str:
        return _stat([r.summary[key] for r in group], 1, 100) + "%"

    return (
        f"{pct('one_each')} | {pct('two_objects')} | {pct('interpolation_one_each')} / "
        f"{pct('interpolation_two_objects')} | {_stat([r.summary['train_seconds'] for r in group], 0)}"
    )


def gan_table(runs: list[FinishedRun]) -> str:
    """The mode-collapse table: entropies and object counts of each model, the data and the paper's numbers."""
    samples = runs[0].summary["config"]["eval_samples"] if runs else 0
    lines = [
        "| model | seeds | entropy red | blue | diff | paper red / blue / diff | one red + one blue | "
        "two objects | interpolation frames: one of each / two objects | training s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if runs:
        # every run measures the same training images (the preset's data seed), so one run's numbers stand for all
        data = runs[0].summary["data"]
        cells = [_stat([data["entropy"][part]]) for part in ("red", "blue", "diff")]
        lines.append(
            f"| data (Sort-of-Clevr) | - | {' | '.join(cells)} | {' / '.join(map(str, PAPER_ENTROPY['data']))} | "
            f"{_stat([data['one_each']], 1, 100)}% | {_stat([data['two_objects']], 1, 100)}% | - | - |"
        )
    for model in MODELS:
        group = [r for r in runs if r.summary["model"] == model]
        if not group:
            continue
        cells = [_stat([r.summary["entropy"][part] for r in group]) for part in ("red", "blue", "diff")]
        lines.append(
            f"| {NAMES['gan'][model]} | {len(group)} | {' | '.join(cells)} | "
            f"{' / '.join(map(str, PAPER_ENTROPY[model]))} | {_objects(group)} |"
        )
    lines += [
        "",
        "Entropy (nats) of the 2D histogram of the red centres, the blue centres (8-px bins on the 64-px canvas) and "
        f"the centre differences blue - red (8-px bins on [-64, 64)), over {samples:,} samples, with objects found by "
        "colour (4-connected red or blue regions of at least 20 px; the largest of each colour gives the centre; "
        "'two objects' counts regions of any non-white colour, so objects that touch count as one, as in the data); "
        "mean ± standard deviation over seeds. The paper does not give its binning, so its numbers are beside ours "
        "for their order, not their values; the data row uses the same binning as the models.",
    ]
    return "\n".join(lines)


def vae_table(runs: list[FinishedRun]) -> str:
    """The VAE table: size, test ELBO, and the GAN table's measurements on prior samples and interpolations."""
    lines = [
        "| model | seeds | parameters | test ELBO (nats) | entropy red | blue | diff | one red + one blue | "
        "two objects | interpolation frames: one of each / two objects | training s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        group = [r for r in runs if r.summary["model"] == model]
        if not group:
            continue
        cells = [_stat([r.summary["entropy"][part] for r in group]) for part in ("red", "blue", "diff")]
        lines.append(
            f"| {NAMES['vae'][model]} | {len(group)} | {group[0].summary['parameters']['vae']:,} | "
            f"{_stat([r.summary['test_elbo'] for r in group], 1)} | {' | '.join(cells)} | {_objects(group)} |"
        )
    lines += [
        "",
        "Samples decode z ~ N(0, I); interpolations run between the encodings (means) of two test images, 16 strips "
        "of 10 frames. The paper shows VAEs qualitatively only (no numbers).",
    ]
    return "\n".join(lines)


def plot_objects(runs: list[FinishedRun], path: Path, *, title: str) -> None:
    """Heatmaps of red centres, blue centres and differences, and the average image: data and each model.

    Pooled over the seeds' final 1,000 samples (``objects.npz``).
    """
    import numpy as np

    plt = pyplot()
    rows: list[tuple[str, dict[str, Any]]] = []
    if runs:
        with np.load(runs[0].path / "objects.npz") as z:
            rows.append(("data", {"red": z["data_red"], "blue": z["data_blue"], "mean": z["data_mean_image"]}))
    for model in MODELS:
        group = [r for r in runs if r.summary["model"] == model]
        if not group:
            continue
        parts: dict[str, list[Any]] = {"red": [], "blue": [], "mean": []}
        for r in group:
            with np.load(r.path / "objects.npz") as z:
                parts["red"].append(z["red"])
                parts["blue"].append(z["blue"])
                parts["mean"].append(z["mean_image"])
        rows.append(
            (
                NAMES[group[0].summary["task"]][model],
                {
                    "red": np.concatenate(parts["red"]),
                    "blue": np.concatenate(parts["blue"]),
                    "mean": np.mean(parts["mean"], axis=0),
                },
            )
        )
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows)), squeeze=False)
    for ax_row, (name, d) in zip(axes, rows, strict=True):
        diff = d["blue"] - d["red"]
        for ax, points, label, extent in (
            (ax_row[0], d["red"], "red centres", (0, 64)),
            (ax_row[1], d["blue"], "blue centres", (0, 64)),
            (ax_row[2], diff, "blue - red", (-64, 64)),
        ):
            ok = ~np.isnan(points).any(axis=1)
            ax.hist2d(points[ok, 0], points[ok, 1], bins=16, range=[extent, extent], cmap="viridis")
            ax.set_ylim(extent[1], extent[0])  # image orientation: y (row) grows downwards
            ax.set_title(f"{name}: {label} ({ok.sum()} found)", fontsize=9)
        ax_row[3].imshow(np.transpose(d["mean"], (1, 2, 0)).clip(0, 1))
        ax_row[3].set_title(f"{name}: average image", fontsize=9)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def write_report(out: Path, task: str) -> Path:
    """``out/<task>/`` table.md, objects.png and report.md (with each model's samples) from the finished runs."""
    runs = load_runs(out, task)
    folder = out / task
    plot_objects(runs, folder / "objects.png", title=f"{task.upper()}: where the objects are")
    lines = ["![object positions and average images](objects.png)", ""]
    for model in MODELS:
        first = next((r for r in runs if r.summary["model"] == model), None)
        if first is None:
            continue
        rel = first.path.relative_to(folder).as_posix()
        name = NAMES[task][model]
        lines += [
            f"{name}, seed {first.summary['seed']}: samples, and latent interpolations (one strip per row)",
            "",
            f"![{name} samples]({rel}/samples.png) ![{name} interpolations]({rel}/interpolation.png)",
            "",
        ]
    table = gan_table(runs) if task == "gan" else vae_table(runs)
    return write_task_report(folder, f"CoordConv reproduction: {task.upper()}s on Sort-of-Clevr", table, lines)
