"""Tables and figures of the GAN and VAE runs, from finished run directories ``ROOT/<gan|vae>/<model>-seed<k>/``."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from coordconv.repro.report.runs import MODELS, by_model, load_finished, mean_sd, seeds_phrase, table, write_task_report
from coordconv.repro.report.stats import compare_groups
from coordconv.repro.runtime.plots import caption, pyplot, save_figure
from coordconv.repro.runtime.rundir import FinishedRun

__all__ = [
    "PAPER_ENTROPY",
    "WORKING",
    "finding",
    "gan_table",
    "gan_test",
    "plot_objects",
    "vae_table",
    "write_report",
]

#: the paper's "average entropy" of red centres, blue centres and centre differences (Fig. 7; binning unknown)
PAPER_ENTROPY: dict[str, tuple[float, float, float]] = {
    "data": (4.0, 4.0, 3.5),
    "conv": (3.13, 2.69, 2.81),
    "coordconv": (3.30, 2.93, 2.62),
}
#: a GAN "works" when at least this fraction of its samples shows one red and one blue object (issue 15's criterion)
WORKING = 0.8
CRITERION = f"working: one red and one blue object in at least {WORKING:.0%} of samples"
NAMES = {"gan": {"conv": "GAN (DCGAN-like)", "coordconv": "CoordConv GAN"}, "vae": {"conv": "conv VAE",
         "coordconv": "CoordConv VAE"}}  # fmt: skip


def _working(runs: list[FinishedRun]) -> dict[str, list[FinishedRun]]:
    """Each model's runs that work (one red and one blue object in at least :data:`WORKING` of the samples)."""
    return by_model(r for r in runs if r.summary["one_each"] >= WORKING)


def _stat(values: list[Any], digits: int = 2) -> str:
    return mean_sd(values, digits, missing="none found")


def _pct(values: list[Any]) -> str:
    """:func:`_stat` of fractions, in percent; "-" where no run has the value (runs from before it was measured)."""
    return mean_sd(values, 1, scale=100, unit="%", missing="none found")


def _entropies(summaries: list[dict[str, Any]]) -> str:
    """The entropy cells of a table row: red centres, blue centres, differences."""
    return " | ".join(_stat([s["entropy"][part] for s in summaries]) for part in ("red", "blue", "diff"))


def _objects(summaries: list[dict[str, Any]], *, apart: bool = False) -> str:
    """The object-count cells of a table row (``apart``: with one of each, apart), and the training time."""
    cells = [_pct([s["one_each"] for s in summaries]), _pct([s["two_objects"] for s in summaries])]
    if apart:
        cells.append(_pct([s.get("two_separate") for s in summaries]))
    frames = (_pct([s[key] for s in summaries]) for key in ("interpolation_one_each", "interpolation_two_objects"))
    return " | ".join([*cells, " / ".join(frames), _stat([s["train_seconds"] for s in summaries], 0)])


def gan_table(runs: list[FinishedRun]) -> str:
    """The mode-collapse table: entropies and object counts of each model, the data and the paper's numbers."""
    samples = runs[0].summary["config"]["eval_samples"] if runs else 0
    lines = []
    if runs:
        # every run measures the same training images (the preset's data seed), so one run's numbers stand for all
        data = runs[0].summary["data"]
        lines.append(
            f"data (Sort-of-Clevr) | - | - | {_entropies([data])} | {' / '.join(map(str, PAPER_ENTROPY['data']))} | "
            f"{_pct([data['one_each']])} | {_pct([data['two_objects']])} | {_pct([data.get('two_separate')])} | - | -"
        )
    working = _working(runs)
    for model, group in by_model(runs).items():
        if group:
            summaries = [r.summary for r in group]
            lines.append(
                f"{NAMES['gan'][model]} | {len(group)} | {len(working[model])} of {len(group)} | "
                f"{_entropies(summaries)} | {' / '.join(map(str, PAPER_ENTROPY[model]))} | "
                f"{_objects(summaries, apart=True)}"
            )
    return table(
        "model | seeds | working | entropy red | blue | diff | paper red / blue / diff | one red + one blue | "
        "two objects | one of each, apart | interpolation frames: one of each / two objects | training s",
        lines,
        "Entropy (nats) of the 2D histogram of the red centres, the blue centres (8-px bins on the 64-px canvas) and "
        f"the centre differences blue - red (8-px bins on [-64, 64)), over {samples:,} samples, with objects found by "
        "colour (4-connected red or blue regions of at least 20 px; the largest of each colour gives the centre; "
        "'two objects' counts regions of any non-white colour, so objects that touch count as one, as in the data); "
        "mean ± standard deviation over seeds. The paper does not give its binning, so its numbers are beside ours "
        "for their order, not their values; the data row uses the same binning as the models. 'Working': runs "
        f"whose samples show one red and one blue object in at least {WORKING:.0%} of cases. 'One of each, apart': "
        "one red and one blue object that do not touch (exactly two regions of any colour); the colour finder alone "
        "also accepts a red and a blue region fused into one blob.",
    )


#: the paper's side of each GAN measure (CoordConv - conv; Fig. 7): more spread centres, slightly less varied offsets
PAPER_SIDE = {"entropy red": 1, "entropy blue": 1, "entropy diff": -1}


def gan_test(runs: list[FinishedRun]) -> str:
    """The difference between the two GANs' per-seed numbers, with 95% Welch intervals, one row per measure.

    The entropies carry the verdict of the paper's direction (its binning is unknown, so not its size); the object
    counts, about which the paper says nothing, are higher, lower or not detectably different.
    """
    groups = by_model(runs)
    # a seed that does not draw the scene has no positions to spread: the entropies compare the working seeds
    ok = _working(runs)
    failing = {m: len(g) - len(ok[m]) for m, g in groups.items()}
    which = "; ".join(f"{NAMES['gan'][m]}: {n} of {len(groups[m])}" for m, n in failing.items() if n)
    if any(len(g) < 2 for g in ok.values()):
        if any(failing.values()):
            return (
                f"No comparison: runs that do not work ({which}; {CRITERION}) leave fewer than two working seeds of "
                "a model, so the two models' entropies compare nothing yet."
            )
        return "No comparison: it needs at least two finished seeds of each model."
    measures: dict[str, Any] = {f"entropy {p}": lambda s, p=p: s["entropy"][p] for p in ("red", "blue", "diff")}
    measures |= {"one red + one blue": lambda s: s["one_each"], "one of each, apart": lambda s: s.get("two_separate")}
    lines = []
    for name, get in measures.items():
        values = {m: [get(r.summary) for r in (ok if name.startswith("entropy") else groups)[m]] for m in MODELS}
        if any(v is None or math.isnan(v) for vs in values.values() for v in vs):
            lines.append(f"{name} | - | - | - | - | (a run has no value)")
            continue
        conv, coord = values["conv"], values["coordconv"]
        side = PAPER_SIDE.get(name)
        result = compare_groups(coord, conv, None, side=side or 1)
        assert result is not None  # two or more seeds each, checked above
        said = result.words(2) if side else result.said(2)
        paper = {1: "higher", -1: "lower"}.get(side or 0, "no claim")
        lines.append(f"{name} | {_stat(conv)} | {_stat(coord)} | {result.interval(2)} | {paper} | {said}")
    note = (
        f"Per-seed values ({len(groups['conv'])} and {len(groups['coordconv'])} seeds), fractions as 0-1. The interval "
        "is Welch's at 95%. The paper (Fig. 7) has CoordConv's centre entropies higher and its difference entropy "
        "slightly lower, in a binning it does not give, so only its direction is tested: reproduced (the interval "
        "lies on the paper's side of zero), contradicted (on the other side), or no detectable difference, with "
        "the smallest difference the test finds at 80% power."
    )
    if which:
        note += (
            f" The entropies are over the working seeds only ({len(ok['conv'])} and {len(ok['coordconv'])}; not "
            f"working: {which}; {CRITERION})."
        )
    header = f"measure | {NAMES['gan']['conv']} | {NAMES['gan']['coordconv']} | CoordConv - conv, 95% interval | "
    return table(header + "paper's side | verdict", lines, note)


def vae_table(runs: list[FinishedRun]) -> str:
    """The VAE table: size, test ELBO, and the GAN table's measurements on prior samples and interpolations."""
    lines = []
    for model, group in by_model(runs).items():
        if group:
            summaries = [r.summary for r in group]
            lines.append(
                f"{NAMES['vae'][model]} | {len(group)} | {summaries[0]['parameters']['vae']:,} | "
                f"{_stat([s['test_elbo'] for s in summaries], 1)} | {_entropies(summaries)} | {_objects(summaries)}"
            )
    return table(
        "model | seeds | parameters | test ELBO (nats) | entropy red | blue | diff | one red + one blue | "
        "two objects | interpolation frames: one of each / two objects | training s",
        lines,
        "Samples decode z ~ N(0, I); interpolations run between the encodings (means) of two test images, 16 strips "
        "of 10 frames. The paper shows VAEs qualitatively only (no numbers).",
    )


def finding(runs: list[FinishedRun], task: str) -> str:
    """One sentence: which models work (draw one red and one blue object in most samples), and what that allows.

    GANs: when both work in every seed, the paper's direction tested (:mod:`~coordconv.repro.report.stats`, 95%
    Welch intervals): CoordConv's objects more spread (mean entropy of the red and blue centres; the paper's
    mode-collapse measure) and their relative placement slightly less varied (the entropy of the centre
    differences). VAEs: the test ELBO besides (the paper makes no claim about it).
    """
    groups = by_model(runs)
    if not all(groups.values()):
        return "Only one of the two models has finished runs, so nothing is compared yet."
    names = NAMES[task]
    ok = _working(runs)
    working = {m: len(g) for m, g in ok.items()}
    every = all(working[m] == len(g) for m, g in groups.items())
    if every:
        text = f"Both {task.upper()}s work in every seed ({CRITERION})"
    elif not any(working.values()):
        shares = " and ".join(f"{_pct([r.summary['one_each'] for r in g])} ({names[m]})" for m, g in groups.items())
        text = (
            f"Neither {task.upper()} works: one red and one blue object appear in {shares} of samples, not the "
            f"{WORKING:.0%} needed"
        )
    else:
        text = (
            f"The {names['coordconv']} works {seeds_phrase(working['coordconv'], len(groups['coordconv']))} and the "
            f"{names['conv']} {seeds_phrase(working['conv'], len(groups['conv']))} ({CRITERION})"
        )
    if task == "gan":
        if all(working[m] >= 2 for m in MODELS):
            # mode collapse is measured where a GAN works: one that draws one red and one blue object in nearly
            # every sample but in the same place for every latent is the collapse the paper counts (entropies near 0)
            spread = {
                m: [statistics.fmean([r.summary["entropy"]["red"], r.summary["entropy"]["blue"]]) for r in g]
                for m, g in ok.items()
            }
            diff = {m: [r.summary["entropy"]["diff"] for r in g] for m, g in ok.items()}
            data = runs[0].summary["data"]["entropy"]
            less_collapse = compare_groups(spread["coordconv"], spread["conv"], None, side=1)
            placement = compare_groups(diff["coordconv"], diff["conv"], None, side=-1)
            assert less_collapse is not None and placement is not None  # two or more working seeds each
            where = "" if every else f" (over the working seeds: {working['coordconv']} and {working['conv']})"
            text += (
                f"; the paper's less mode collapse{where} (CoordConv's objects more spread over the canvas; its "
                f"binning is not given, so only the direction is tested): {less_collapse.words(2, unit=' nats')} "
                f"(mean entropy of the red and blue centres {statistics.fmean(spread['coordconv']):.2f} against "
                f"{statistics.fmean(spread['conv']):.2f} nats, the data's {(data['red'] + data['blue']) / 2:.2f}, "
                f"0 for the same place in every sample; difference {less_collapse.interval(2)}, 95% interval); the "
                f"paper's slightly less varied relative placement: {placement.words(2, unit=' nats')} (difference "
                f"entropy {statistics.fmean(diff['coordconv']):.2f} against {statistics.fmean(diff['conv']):.2f}, the "
                f"data's {data['diff']:.2f}; difference {placement.interval(2)})"
            )
        elif every:
            text += "; one seed of a model is too few to compare the two for mode collapse"
        else:
            text += ", so the two cannot be compared for mode collapse yet"
    else:
        elbo = {m: [r.summary["test_elbo"] for r in g] for m, g in groups.items()}
        result = compare_groups(elbo["coordconv"], elbo["conv"], None, side=1)
        how = "not compared (one seed of a model)" if result is None else result.said(1, unit=" nats")
        text += (
            f"; the {names['coordconv']}'s test ELBO against the {names['conv']}'s (higher is better; the paper gives "
            f"no number): {how} ({statistics.fmean(elbo['coordconv']):.1f} against "
            f"{statistics.fmean(elbo['conv']):.1f} nats"
            + (f", difference {result.interval(1)}, 95% interval)" if result else ")")
        )
    return text + "."


def plot_objects(runs: list[FinishedRun], path: Path, *, title: str) -> None:
    """Heatmaps of red centres, blue centres and differences, and the average image: data and each model.

    Pooled over the seeds' final 1,000 samples (``objects.npz``).
    """
    import numpy as np

    def arrays(run: FinishedRun) -> dict[str, Any]:
        with np.load(run.path / "objects.npz") as z:
            return dict(z)

    plt = pyplot()
    rows: list[tuple[str, dict[str, Any]]] = []
    if runs:
        z = arrays(runs[0])
        rows.append(("data", {"red": z["data_red"], "blue": z["data_blue"], "mean": z["data_mean_image"]}))
    for model, group in by_model(runs).items():
        if group:
            loaded = [arrays(r) for r in group]
            pooled = {key: np.concatenate([z[key] for z in loaded]) for key in ("red", "blue")}
            pooled["mean"] = np.mean([z["mean_image"] for z in loaded], axis=0)
            rows.append((NAMES[group[0].summary["task"]][model], pooled))
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows) + 0.6), squeeze=False)
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
            ax.set(xticks=[], yticks=[])
    fig.suptitle(title)
    caption(
        fig,
        "Histograms (16 x 16 bins, pooled over the seeds): brighter = more samples with the red object's centre, the "
        "blue object's centre, or the blue-minus-red offset in that bin (dark purple: none); objects are found by "
        "colour, and 'found' counts the samples that have one. Centre and offset panels: image orientation, x to the "
        "right, y down (offsets span -64 to 64 px). Last column: the mean of the images.",
    )
    save_figure(fig, path)


def _side_by_side(folder: Path, task: str, runs: list[FinishedRun]) -> list[str]:
    """Markdown: each seed's samples of both models side by side; the first seed's interpolations and progress."""
    by_key = {(r.summary["model"], r.summary["seed"]): r.path.relative_to(folder).as_posix() for r in runs}
    names = [NAMES[task][m] for m in MODELS]
    seeds = sorted({seed for _, seed in by_key})

    def cells(file: str, seed: int, *, made: bool = False) -> str:
        """Both models' ``file`` of ``seed`` ("-" for none; ``made``: a run may predate the file)."""
        return " | ".join(
            f"![{name}]({by_key[model, seed]}/{file})"
            if (model, seed) in by_key and (not made or (folder / by_key[model, seed] / file).exists())
            else "-"
            for model, name in zip(MODELS, names, strict=True)
        )

    samples = table(f"seed | {' | '.join(names)}", [f"{seed} | {cells('samples.png', seed)}" for seed in seeds])
    first = seeds[0] if seeds else 0
    return ["Samples (64 per run, final model), both models side by side:", "", samples, "",
            f"Seed {first}: latent interpolations (one strip per row), and 8 samples of fixed latents at each "
            "evaluation (progress.png, one row per evaluation, top to bottom; runs from before it existed: -):", "",
            f"| | {' | '.join(names)} |", "|---|" + "---|" * len(names),
            f"| interpolations | {cells('interpolation.png', first)} |",
            f"| over training | {cells('progress.png', first, made=True)} |", ""]  # fmt: skip


def write_report(out: Path, task: str) -> Path:
    """``out/<task>/`` table.md, objects.png and report.md (with both models' samples) from the finished runs."""
    runs = load_finished(out / task, order=("model", "seed"), task=task)
    folder = out / task
    plot_objects(runs, folder / "objects.png", title=f"{task.upper()}: where the objects are")
    lines = [gan_test(runs), ""] if task == "gan" else []
    lines += ["![object positions and average images](objects.png)", "", *_side_by_side(folder, task, runs)]
    table = gan_table(runs) if task == "gan" else vae_table(runs)
    title = f"CoordConv reproduction: {task.upper()}s on Sort-of-Clevr"
    return write_task_report(folder, title, table, lines, finding=finding(runs, task))
