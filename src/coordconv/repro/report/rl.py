"""Tables and plots of the A2C runs, from finished run directories ``ROOT/rl/<game>/<model>-seed<k>/``."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from coordconv.repro.report.runs import (
    COLOURS,
    MODELS,
    NAMES,
    by_model,
    load_finished,
    mean_sd,
    seeds,
    table,
    write_task_report,
)
from coordconv.repro.report.stats import Comparison, compare_groups
from coordconv.repro.runtime.plots import caption, plot_series, pyplot, save_figure
from coordconv.repro.runtime.rundir import FinishedRun

__all__ = ["finding", "game_name", "plot_curves", "results_table", "verdict", "write_report"]


def game_name(env: str) -> str:
    """``MinAtar/Breakout-v1`` -> ``MinAtar-Breakout``, ``ALE/MsPacman-v5`` -> ``MsPacman`` (folder names)."""
    base = env.rsplit("-v", 1)[0]
    return base.removeprefix("ALE/").replace("/", "-")


def comparison(coord: list[float], plain: list[float]) -> Comparison | None:
    """CoordConv's mean final return against conv's: the paper's side is up (better), with no effect size to test.

    The paper reports CoordConv better in 6 of 9 Atari games without a per-game size, so only the direction can be
    reproduced or contradicted (:func:`~coordconv.repro.report.stats.compare_groups` with ``paper=None``). ``None``
    until each model has two seeds: one run has no spread to test against.
    """
    return compare_groups(coord, plain, None, side=1)


def verdict(coord: list[float], plain: list[float]) -> str:
    """``reproduced`` (CoordConv better), ``contradicted`` (worse), ``no detectable difference``, or ``?``.

    ``?`` (not compared) until each model has two seeds: one run has no spread to test against.
    """
    result = comparison(coord, plain)
    return "?" if result is None else result.verdict


def _values(runs: list[FinishedRun], env: str, model: str, key: str) -> list[float]:
    group = by_model(runs, (model,), env=env)[model]
    return [float(r.summary[key]) for r in group if r.summary[key] is not None]


def _finals(runs: list[FinishedRun], env: str) -> tuple[list[float], list[float]]:
    return _values(runs, env, "coordconv", "final_return"), _values(runs, env, "conv", "final_return")


def _detectable(result: Comparison, plain: list[float]) -> str:
    """The minimum detectable effect in returns, and as a share of conv's mean final return where that is positive."""
    mean = statistics.fmean(plain)
    share = f" ({result.detectable / mean:.0%} of conv's)" if mean > 0 else ""
    return f"{result.detectable:.2f}{share}"


def results_table(runs: list[FinishedRun]) -> str:
    """Per game: final return and learning-curve area of both models, the difference, the verdict, the speed ratio."""
    envs = sorted({r.summary["env"] for r in runs})
    lines = []
    tally = {"reproduced": 0, "no detectable difference": 0, "contradicted": 0, "?": 0}
    ratios = []
    for env in envs:
        cells = [mean_sd(_values(runs, env, model, key), 2) for key in ("final_return", "auc") for model in MODELS]
        coord, plain = _finals(runs, env)
        result = comparison(coord, plain)
        tally[result.verdict if result else "?"] += 1
        compared = f"{result.interval(2)} | {result.verdict} | {_detectable(result, plain)}" if result else "- | ? | -"
        speed = [_values(runs, env, m, "steps_per_second") for m in MODELS]
        medians = [statistics.median(v) if v else math.nan for v in speed]
        ratio = medians[1] / medians[0] if medians[0] else math.nan
        if math.isfinite(ratio):
            ratios.append(ratio)
        counts = f"{len(plain)}/{len(coord)}"  # MODELS' order: conv, CoordConv
        lines.append(
            f"{game_name(env)} | {' | '.join(cells)} | {compared} | {counts} | {medians[0]:.0f} | {medians[1]:.0f} "
            f"| {ratio:.3f}"
        )
    return table(
        "game | conv final return | CoordConv final return | conv AUC | CoordConv AUC | CoordConv - conv, 95% "
        "interval | verdict | smallest detectable | seeds | steps/s conv | steps/s CoordConv | ratio",
        lines,
        f"Per game, the paper's claim (CoordConv agents better; 9 Atari games: 6 better, 2 similar, 1 worse, no "
        f"effect sizes): reproduced in {tally['reproduced']}, contradicted in {tally['contradicted']}, no detectable "
        f"difference in {tally['no detectable difference']}"
        + (f", {tally['?']} not compared yet (?: fewer than two seeds of a model)" if tally["?"] else "")
        + ". Reproduced: the 95% Welch interval of CoordConv's mean final return minus conv's lies above zero; "
        "contradicted: below zero; otherwise no detectable difference, and 'smallest detectable' gives the "
        "difference the test finds with 80% power (in returns, and as a share of conv's mean). Final return: mean "
        "of the last episodes of each run; AUC: mean over the run of the running mean return. Mean ± standard "
        "deviation over seeds. Steps per second "
        "are medians over the runs of wall-clock rates, so they carry whatever else the machine ran at the time"
        + (f"; median CoordConv/conv ratio {statistics.median(ratios):.3f}." if ratios else "."),
    )


def finding(runs: list[FinishedRun]) -> str:
    """One sentence: per game, is the paper's "CoordConv agents do better" reproduced, contradicted or undetectable."""
    envs = sorted({r.summary["env"] for r in runs})
    results = {env: comparison(*_finals(runs, env)) for env in envs}
    compared = {env: r for env, r in results.items() if r is not None}
    missing = len(results) - len(compared)
    if not compared:
        return "No game has two finished runs of each model yet, so nothing is compared."
    verdicts = [r.verdict for r in compared.values()]
    games = f"{len(compared)} game{'s' if len(compared) > 1 else ''}"
    minatar = [env for env in compared if env.startswith("MinAtar/")]
    scope = "The paper's"
    if minatar:
        which = "" if len(minatar) == len(compared) else f" for {len(minatar)} of the {len(compared)} games"
        scope = (
            f"On MinAtar{which} (10x10 boards, not the paper's Atari frames: a difference that can decide the "
            "outcome, so a MinAtar verdict says nothing about Atari), the paper's"
        )
    text = (
        f"{scope} claim that CoordConv agents do better (6 of 9 Atari games, no effect sizes), tested on the final "
        f"returns of {games} (95% Welch intervals): reproduced in {verdicts.count('reproduced')}, contradicted in "
        f"{verdicts.count('contradicted')}"
    )
    undetected = {env: r for env, r in compared.items() if r.verdict == "no detectable difference"}
    if undetected:
        conv_means = [(r, statistics.fmean(_finals(runs, env)[1])) for env, r in undetected.items()]
        shares = [r.detectable / mean for r, mean in conv_means if mean > 0]
        text += f", no detectable difference in {len(undetected)}"
        if shares:
            low, high = min(shares), max(shares)
            size = f"{low:.0%}" if len(shares) == 1 else f"{low:.0%} to {high:.0%}"
            text += (
                f" (there, this test could detect differences larger than {size} of conv's mean final return, by game)"
            )
    if missing:
        text += f"; {missing} game{'s' if missing > 1 else ''} not compared yet (fewer than two seeds of a model)"
    return text + "."


def plot_curves(runs: list[FinishedRun], path: Path) -> None:
    """Running mean return against steps: mean over seeds with a min-max band, both models, one panel per game.

    A legend and caption in the figure explain the lines and bands.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    envs = sorted({r.summary["env"] for r in runs})
    cols = min(len(envs), 3) or 1
    rows = max(1, math.ceil(len(envs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows + 0.8), squeeze=False)
    for ax, env in zip(axes.flat, envs, strict=False):
        for model, group in by_model(runs, env=env).items():
            if not group:
                continue
            # at each log point that every seed reached, the returns of the seeds with an episode finished by then
            curves = zip(*([m["mean_return_100"] for m in r.metrics] for r in group), strict=False)
            points = [[c for c in column if c is not None] for column in curves]
            xs = [m["step"] for m, p in zip(group[0].metrics, points, strict=False) if p]
            ys = [p for p in points if p]
            label = f"{NAMES[model]} ({seeds(len(group))})"
            plot_series(ax, xs, [statistics.fmean(p) for p in ys], color=COLOURS[model], label=label)
            ax.fill_between(xs, [min(p) for p in ys], [max(p) for p in ys], color=COLOURS[model], alpha=0.2)
        ax.set_title(game_name(env), fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean return (last 100 episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(envs) :]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], color="0.3", label="mean over seeds"),
        Patch(color="0.3", alpha=0.2, label="lowest to highest seed"),
    ]
    caption(
        fig,
        "Each point: the mean return of the last 100 finished episodes at that step (seeds without a finished "
        "episode yet are left out). Red: conv body; blue: CoordConv body.",
        handles=handles,
    )
    save_figure(fig, path)


def write_report(out: Path) -> Path:
    """``out/rl/`` table.md, curves.png and report.md from the finished A2C runs."""
    folder = out / "rl"
    runs = load_finished(folder, "*/*/summary.json", order=("env", "model", "seed"))
    plot_curves(runs, folder / "curves.png")
    if {r.summary["config"].get("coord_in", "shared") for r in runs} == {"actor"}:
        where = "in the actor's own body (actor and critic have separate bodies)"
    else:
        where = "in the body that actor and critic share"
    intro = (
        "SB3's A2C with the RL Zoo's Atari hyperparameters; conv and CoordConv bodies (CoordConv first layer, "
        f"{where})."
    )
    lines = ["![learning curves](curves.png)", ""]
    return write_task_report(
        folder, "CoordConv reproduction: A2C agents", results_table(runs), lines, intro, finding=finding(runs)
    )
