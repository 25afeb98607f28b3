"""``coordconv reproduce``: conv against CoordConv on both splits of each coordinate task, with a report."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordconv.repro import summaries
from coordconv.repro.experiments import toy
from coordconv.repro.report import toy as report
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.rundir import CONFIG, Run, write_atomic

__all__ = [
    "main",
    "main_detection",
    "main_generative",
    "main_imagenet",
    "main_rl",
    "write_detection_report",
    "write_generative_report",
    "write_rl_report",
]


def main(
    tasks: list[str],
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    command: str = "",
) -> Path:
    """Train every (task, split, model, seed) run that ``out`` lacks, then write ``out/report.md``.

    Finished runs already in ``out`` are reused, unfinished ones resumed from their checkpoint; a run whose
    config differs from the preset's stops the command with an error, unless ``overwrite``.

    Returns:
        The report's path.
    """
    started = time.perf_counter()
    plan = [
        (task, split, model, seed)
        for task in tasks
        for split in report.SPLITS
        for model in report.MODELS
        for seed in range(first_seed, first_seed + seeds)
    ]
    print(f"reproduce: {len(plan)} runs ({', '.join(tasks)}; preset {preset}; {seeds} seed(s)) into {out}")
    jobs = [
        (report.run_dir(out, task, model, split, seed), toy.preset(preset, task, model, split, seed=seed))
        for task, split, model, seed in plan
    ]
    _run_jobs(jobs, toy.main, summaries.describe_toy, overwrite)
    command = command or f"coordconv reproduce {shlex.join(tasks)}"
    for task in tasks:
        write_atomic(out / task / "command.txt", command + "\n")
    # the report covers every task with runs in ``out``, also those an earlier command trained
    present = [t for t in toy.TASKS if (out / t / "command.txt").exists()]
    runs = [r for task in present for r in report.load_runs(out, task)]
    path = write_report(out, present, runs)
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def _reuse_or_train(
    folder: Path, cfg: Any, train: Callable[..., dict[str, Any]], overwrite: bool
) -> tuple[dict[str, Any], str]:
    """The finished run in ``folder`` if its config is ``cfg``; else train it (resuming an unfinished one).

    A finished run whose config lacks fields that were added later counts as ``cfg`` when those fields have their
    default values in ``cfg`` (the run trained as the default does).
    """
    resume = (folder / CONFIG).exists() and not overwrite
    if resume and Run(folder, {}).finished:
        summary = Run(folder, {}).summary()
        stored = summary.get("config")
        if isinstance(stored, dict) and {**to_dict(type(cfg)()), **stored} == to_dict(cfg):
            return summary, "reused"
    return train(cfg, folder, resume=resume, overwrite=overwrite, log=_quiet), "trained"


def _run_jobs(
    jobs: list[tuple[Path, Any]],
    train: Callable[..., dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    overwrite: bool,
) -> None:
    """Reuse or train each ``(folder, config)`` in turn, one line per run."""
    for i, (folder, cfg) in enumerate(jobs, 1):
        summary, how = _reuse_or_train(folder, cfg, train, overwrite)
        print(f"[{i}/{len(jobs)}] {describe(summary)} ({how})", flush=True)


def main_rl(
    games: list[str],
    *,
    preset: str = "quick",
    seeds: int = 3,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    command: str = "",
) -> Path:
    """A2C with conv and CoordConv bodies on each game and seed, then ``out/rl/report.md``.

    ``games`` defaults to the five MinAtar games (the ``paper`` preset: the nine Atari games). Finished runs are
    reused and unfinished ones resumed, as in :func:`main`.
    """
    from coordconv.repro.experiments import rl
    from coordconv.repro.report import rl as rl_report

    started = time.perf_counter()
    if not games:
        games = list(rl.ATARI_GAMES) if preset == "paper" else [f"MinAtar/{g}" for g in rl.MINATAR_GAMES]
    plan = [
        (game, model, seed)
        for game in games
        for model in report.MODELS
        for seed in range(first_seed, first_seed + seeds)
    ]
    print(f"reproduce: {len(plan)} A2C runs ({len(games)} games; preset {preset}; {seeds} seed(s)) into {out}")
    configs = [rl.preset(preset, game, model, seed=seed) for game, model, seed in plan]
    jobs = [(rl_report.run_dir(out, cfg.env, cfg.model, cfg.seed), cfg) for cfg in configs]
    _run_jobs(jobs, rl.main, summaries.describe_rl, overwrite)
    write_atomic(out / "rl" / "command.txt", (command or f"coordconv reproduce rl --games {shlex.join(games)}") + "\n")
    path = write_rl_report(out)
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def write_rl_report(out: Path) -> Path:
    """``out/rl/table.md``, ``curves.png`` and ``report.md`` from the finished A2C runs under ``out/rl``."""
    from coordconv.repro.report import rl as rl_report

    runs = rl_report.load_runs(out)
    command = (out / "rl" / "command.txt").read_text().strip()
    table = f"Command: `{command}`\n\n" + rl_report.results_table(runs)
    write_atomic(out / "rl" / "table.md", table + "\n")
    rl_report.plot_curves(runs, out / "rl" / "curves.png")
    text = [
        "# CoordConv reproduction: A2C agents",
        "",
        "SB3's A2C with the RL Zoo's Atari hyperparameters; conv and CoordConv bodies (CoordConv first layer, "
        "shared by actor and critic unless the config says otherwise).",
        "",
        table,
        "",
        "![learning curves](curves.png)",
        "",
    ]
    path = out / "rl" / "report.md"
    write_atomic(path, "\n".join(text))
    print(f"\nrl\n{table}")
    return path


def main_generative(
    tasks: list[str],
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    command: str = "",
) -> Path:
    """Train conv and CoordConv GANs and/or VAEs on Sort-of-Clevr for each seed, then ``out/generative.md``.

    Finished runs are reused and unfinished ones resumed, as in :func:`main`.
    """
    from coordconv.repro.experiments import generative
    from coordconv.repro.report import generative as gen_report

    started = time.perf_counter()
    plan = [
        (task, model, seed)
        for task in tasks
        for model in report.MODELS
        for seed in range(first_seed, first_seed + seeds)
    ]
    print(f"reproduce: {len(plan)} runs ({', '.join(tasks)}; preset {preset}; {seeds} seed(s)) into {out}")
    jobs = [
        (gen_report.run_dir(out, task, model, seed), generative.preset(preset, task, model, seed=seed))
        for task, model, seed in plan
    ]
    _run_jobs(jobs, generative.main, summaries.describe_generative, overwrite)
    for task in tasks:
        write_atomic(out / task / "command.txt", (command or f"coordconv reproduce {shlex.join(tasks)}") + "\n")
    path = write_generative_report(out)
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def _side_by_side(out: Path, task: str, runs: list[Any]) -> list[str]:
    """Markdown: each seed's samples of both models side by side, then seed 0's interpolations and progress."""
    from coordconv.repro.report import generative as gen_report

    by_key = {(r.summary["model"], r.summary["seed"]): r.path.relative_to(out).as_posix() for r in runs}
    names = [gen_report.NAMES[task][m] for m in report.MODELS]
    seeds = sorted({seed for _, seed in by_key})

    def cells(file: str, seed: int) -> str:
        return " | ".join(
            f"![{name}]({by_key[model, seed]}/{file})" if (model, seed) in by_key else "-"
            for model, name in zip(report.MODELS, names, strict=True)
        )

    lines = ["Samples (64 per run, final model), both models side by side:", "", f"| seed | {' | '.join(names)} |"]
    lines += ["|---|" + "---|" * len(names)] + [f"| {seed} | {cells('samples.png', seed)} |" for seed in seeds]
    first = seeds[0] if seeds else 0
    lines += ["", f"Seed {first}: latent interpolations (one strip per row), and 8 samples of fixed latents at each "
              "evaluation (progress.png, one row per evaluation, top to bottom; runs from before it existed: -):", "",
              f"| | {' | '.join(names)} |", "|---|" + "---|" * len(names),
              f"| interpolations | {cells('interpolation.png', first)} |"]  # fmt: skip
    progress = " | ".join(
        f"![{name}]({by_key[m, first]}/progress.png)" if (out / by_key.get((m, first), "-") / "progress.png").exists()
        else "-"
        for m, name in zip(report.MODELS, names, strict=True)
    )  # fmt: skip
    return [*lines, f"| over training | {progress} |", ""]


def write_generative_report(out: Path) -> Path:
    """``out/<task>/table.md``, ``objects.png`` and ``out/generative.md`` from the finished GAN and VAE runs."""
    from coordconv.repro.experiments import generative
    from coordconv.repro.report import generative as gen_report

    text = ["# CoordConv reproduction: GANs and VAEs on Sort-of-Clevr", ""]
    for task in generative.TASKS:
        runs = gen_report.load_runs(out, task)
        if not runs or not (out / task / "command.txt").exists():
            continue
        command = (out / task / "command.txt").read_text().strip()
        table = gen_report.gan_table(runs) if task == "gan" else gen_report.vae_table(runs)
        table = f"Command: `{command}`\n\n{table}"
        write_atomic(out / task / "table.md", table + "\n")
        gen_report.plot_objects(runs, out / task / "objects.png", title=f"{task.upper()}: where the objects are")
        text += [f"## {task.upper()}", "", table, ""]
        if task == "gan":
            text += [gen_report.gan_test(runs), ""]
        text += [f"![object positions and average images]({task}/objects.png)", ""]
        text += _side_by_side(out, task, runs)
        print(f"\n{task}\n{table}")
    path = out / "generative.md"
    write_atomic(path, "\n".join(text))
    return path


def main_detection(
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    command: str = "",
) -> Path:
    """Faster R-CNN with and without CoordConv for each seed, then ``out/detection/report.md``.

    Finished runs are reused and unfinished ones resumed, as in :func:`main`.
    """
    from coordconv.repro.experiments import detection
    from coordconv.repro.report import detection as det_report

    started = time.perf_counter()
    plan = [(model, seed) for model in report.MODELS for seed in range(first_seed, first_seed + seeds)]
    print(f"reproduce: {len(plan)} detection runs (preset {preset}; {seeds} seed(s)) into {out}")
    jobs = [(det_report.run_dir(out, model, seed), detection.preset(preset, model, seed=seed)) for model, seed in plan]
    _run_jobs(jobs, detection.main, summaries.describe_detection, overwrite)
    write_atomic(out / "detection" / "command.txt", (command or "coordconv reproduce detection") + "\n")
    path = write_detection_report(out)
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def write_detection_report(out: Path) -> Path:
    """``out/detection/table.md``, ``curves.png`` and ``report.md`` from the finished detection runs."""
    from coordconv.repro.report import detection as det_report

    runs = det_report.load_runs(out)
    command = (out / "detection" / "command.txt").read_text().strip()
    table = f"Command: `{command}`\n\n" + det_report.results_table(runs)
    write_atomic(out / "detection" / "table.md", table + "\n")
    det_report.plot_curves(runs, out / "detection" / "curves.png")
    text = ["# CoordConv reproduction: Faster R-CNN on MNIST canvases", "", table, "", "![curves](curves.png)", ""]
    for model in report.MODELS:
        first = next((r for r in runs if r.summary["model"] == model), None)
        if first is not None:
            rel = first.path.relative_to(out / "detection").as_posix()
            text += [
                f"{det_report.NAMES[model]}, seed {first.summary['seed']}: ground truth (green), detections (red), "
                "top proposals (yellow)",
                "",
                f"![{model} predictions]({rel}/predictions.png)",
                "",
            ]
    path = out / "detection" / "report.md"
    write_atomic(path, "\n".join(text))
    print(f"\ndetection\n{table}")
    return path


def main_imagenet(
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    command: str = "",
) -> Path:
    """Plain ResNet against the paper's CoordConv input layer for each seed, then ``out/imagenet/report.md``.

    Runs in this process (for several processes, train the runs with ``torchrun`` and ``coordconv train imagenet``
    into the same folders first: finished runs are reused).
    """
    from coordconv.repro.experiments import imagenet

    started = time.perf_counter()
    plan = [(variant, seed) for variant in ("plain", "input_layer") for seed in range(first_seed, first_seed + seeds)]
    print(f"reproduce: {len(plan)} classification runs (preset {preset}; {seeds} seed(s)) into {out}")
    jobs = [(out / "imagenet" / f"{v}-seed{seed}", imagenet.preset(preset, v, seed=seed)) for v, seed in plan]
    _run_jobs(jobs, imagenet.main, summaries.describe_imagenet, overwrite)
    write_atomic(out / "imagenet" / "command.txt", (command or "coordconv reproduce imagenet") + "\n")
    table = f"Command: `{(out / 'imagenet' / 'command.txt').read_text().strip()}`\n\n" + imagenet_table(out)
    write_atomic(out / "imagenet" / "table.md", table + "\n")
    path = out / "imagenet" / "report.md"
    write_atomic(path, "# CoordConv reproduction: ResNet classification\n\n" + table + "\n")
    print(f"\nimagenet\n{table}\nreproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def imagenet_table(out: Path) -> str:
    """Top-1 / top-5 of each variant (mean ± std over seeds) and Welch's t-test of CoordConv against plain."""
    import statistics

    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    from coordconv.repro.report.runs import load_finished

    runs = [r.summary for r in load_finished(out / "imagenet", "*/summary.json")]
    lines = ["| model | seeds | top-1 | top-5 | training s |", "|---|---|---|---|---|"]
    values: dict[str, dict[str, list[float]]] = {}
    for variant, name in (("plain", "ResNet"), ("input_layer", "ResNet + 1x1 CoordConv input layer (with r)")):
        group = [r for r in runs if r["variant"] == variant]
        if not group:
            continue
        values[variant] = {k: [100 * r[k] for r in group] for k in ("top1", "top5")}

        def cell(xs: list[float]) -> str:
            return f"{statistics.fmean(xs):.2f}" + (f" ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else "")

        arch = group[0]["arch"]
        lines.append(
            f"| {name} ({arch}) | {len(group)} | {cell(values[variant]['top1'])}% | {cell(values[variant]['top5'])}% "
            f"| {cell([r['train_seconds'] for r in group])} |"
        )
    lines.append("")
    if len(values) == 2 and all(len(v["top1"]) > 1 for v in values.values()):
        for k, label in (("top1", "top-1"), ("top5", "top-5")):
            a, b = values["input_layer"][k], values["plain"][k]
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


def _quiet(line: str) -> None:
    print(f"    {line}", file=sys.stderr, flush=True)


def write_report(out: Path, tasks: list[str], runs: list[report.RunRecord]) -> Path:
    """Tables, plots and ``report.md`` for ``tasks`` from the finished runs."""
    sections = [
        "# CoordConv reproduction: the coordinate tasks",
        "",
        "Each table gives our mean ± standard deviation over seeds beside what the paper reports. The paper's "
        "numbers are the best of large hyperparameter sweeps trained for up to hours on a GPU; ours come from "
        "the preset's single configuration on this machine's CPU.",
    ]
    for task in tasks:
        task_runs = [r for r in runs if r.summary["task"] == task]
        if not task_runs:
            continue
        command = (out / task / "command.txt").read_text().strip()
        table = f"Command: `{command}`\n\n" + report.results_table(task_runs, task)
        write_atomic(out / task / "table.md", table + "\n")
        report.plot_heatmaps(task_runs, task, out / task / "heatmaps.png")
        report.plot_curves(task_runs, task, out / task / "curves.png")
        sections += [
            "",
            f"## {task}",
            "",
            table,
            "",
            f"![held-out predictions]({task}/heatmaps.png)",
            "",
            f"![learning curves]({task}/curves.png)",
        ]
        print(f"\n{task}\n{table}")
    report.plot_summary(runs, [t for t in tasks if any(r.summary["task"] == t for r in runs)], out / "summary.png")
    sections += ["", "## Summary", "", "![conv vs CoordConv](summary.png)", ""]
    path = out / "report.md"
    write_atomic(path, "\n".join(sections))
    return path
