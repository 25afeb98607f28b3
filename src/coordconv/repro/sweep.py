"""``coordconv sweep``: the paper's hyperparameter grids of the coordinate tasks, run as Ray Tune trials.

The paper's strongest claim is about the best of many conv models (324 deconv configurations per split for
classification). A sweep expands a named grid (:data:`~coordconv.repro.experiments.toy_presets.GRIDS`: data beside
the presets, each grid described there) into ordinary training runs, each with its own run directory under
``OUT/runs``, and hands the runs that are not finished yet to Ray Tune: an embedded local Ray by default, a Ray
cluster when an address is given. Ray trains each trial as ``coordconv reproduce`` trains a run
(:func:`~coordconv.repro.reproduce.train_one`), so a sweep that is interrupted and started again skips the
finished trials (they are not even given to Ray) and resumes the unfinished ones from their checkpoints. The report
is built from the run summaries on disk (:func:`~coordconv.repro.runtime.rundir.read_finished`), never from Ray's
own records, so it is the same however many times the sweep was restarted.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import shlex
import signal
import socket
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from coordconv.repro.experiments import toy, toy_tasks
from coordconv.repro.experiments.toy_presets import GRIDS, SPLITS, Group
from coordconv.repro.report.paper import PAPER
from coordconv.repro.report.runs import COLOURS, MODELS, NAMES
from coordconv.repro.report.toy import _fmt
from coordconv.repro.reproduce import train_one, usable_cpus
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import RunError, write_atomic, write_json
from coordconv.repro.runtime.plots import pyplot, save_figure
from coordconv.repro.runtime.rundir import SUMMARY, finished_summary, read_finished

__all__ = ["GRIDS", "Group", "Options", "Trial", "expand", "main", "write_report"]

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class Trial:
    """One configuration of a sweep: its name (also its run directory's name), the varied values and config."""

    name: str
    values: Mapping[str, Any]
    config: toy.Config


def expand(task: str, grid: str, *, seeds: int = 1, first_seed: int = 0, threads: int = 1) -> list[Trial]:
    """The trials of a named grid, in a fixed order.

    Raises:
        ValueError: unknown task or grid, or seeds or threads below 1.
    """
    if task not in GRIDS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(GRIDS)}")
    if grid not in GRIDS[task]:
        raise ValueError(f"unknown grid {grid!r}; expected one of {', '.join(GRIDS[task])}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if threads < 1:
        raise ValueError(f"threads per trial must be >= 1, got {threads}")
    trials = []
    for group in GRIDS[task][grid]:
        combos = itertools.product(*group.axes.values())
        for split, combo, seed in itertools.product(group.splits, combos, range(first_seed, first_seed + seeds)):
            values = dict(zip(group.axes, combo, strict=True))
            cfg = toy.preset(
                group.preset,
                task=task,
                model=group.model,
                split=split,
                seed=seed,
                threads=threads,
                **group.fixed,
                **values,
            )
            trials.append(Trial(f"{group.model}-{split}-seed{seed}-{_words(values, '=', ',')}", values, cfg))
    return trials


def _words(values: Mapping[str, Any], between: str, separator: str) -> str:
    """The varied values as ``lr=0.01,l2=0`` (a trial's name) or ``lr 0.01, l2 0`` (the report)."""
    return separator.join(
        f"{k}{between}{v:g}" if isinstance(v, float) else f"{k}{between}{v}" for k, v in values.items()
    )


# ---------------------------------------------------------------------------------------------------------
# running


def _trainable(params: dict[str, Any]) -> None:
    """Ray Tune's function trainable: one run, trained or resumed as ``coordconv reproduce`` trains it."""
    from ray import tune

    spec = params["trial"]
    summary = train_one(
        toy.__name__, Path(spec["out"]), toy.Config(**spec["config"]), log=lambda line: None, device=spec["device"]
    )
    metric = summary["metric"]
    tune.report(
        {
            "test": summary["test"][metric],
            "train": summary["train"][metric],
            "seconds_to_target": summary["seconds_to_target"],
        }
    )


ANSWER_SECONDS = 5.0  # how long a cluster address may take to answer


def _check_address(address: str) -> None:
    """Fail fast, with a clear message, when a ``host:port`` cluster address does not answer."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RunError(f"invalid Ray address {address!r}; expected HOST:PORT, 'auto' or ray://HOST:PORT")
    try:
        connection = socket.create_connection((host, int(port)), timeout=ANSWER_SECONDS)
    except OSError as e:
        raise RunError(
            f"cannot reach the Ray cluster at {address} ({e.strerror or e}); is `ray start` running there?"
        ) from None
    # Ray's GCS speaks gRPC, so HTTP/2: it answers a client preface with a SETTINGS frame. Another service on the
    # port would make ray.init wait for minutes; this asks once, for a few seconds.
    with connection:
        try:
            connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            reply = connection.recv(9)
        except OSError:
            reply = b""
    if len(reply) < 4 or reply[3] != 4:
        raise RunError(
            f"{address} answers, but not as a Ray cluster (no HTTP/2 reply within {ANSWER_SECONDS:g} s); expected "
            "the address of a Ray head node, as `ray start --head` prints it"
        )


def _import_ray() -> Any:
    """``ray`` and ``ray.tune`` (untyped here: the sweep extra may be absent where the types are checked)."""
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise RunError(
            f"coordconv sweep needs Ray Tune ({e}); install it with: pip install 'torch-coordconv[sweep]'"
        ) from e
    return ray, tune


def _run_with_ray(
    pending: list[tuple[Trial, Path]], options: Options, out: Path, concurrency: int, done_before: int, total: int
) -> list[str]:
    """Run ``pending`` as Ray Tune trials, ``concurrency`` at a time; return the names of the trials that failed."""
    ray, tune = _import_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # ray.init installs a native SIGTERM handler that dumps a stack and kills the process; the command's own
    # handler (the "interrupted" line, the resume command) is put back after it
    on_terminate = signal.getsignal(signal.SIGTERM)
    address, gpus_per_trial = options.address, options.gpus_per_trial
    if address:
        _check_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError) as e:
            raise RunError(f"cannot connect to the Ray cluster at {address}: {e}") from e
    else:
        # Ray starts workers at niceness 15; the trials are this sweep's only work, and at that niceness a sweep
        # beside any other job nearly stops (a smoke trial took 273 s beside two training jobs, 19 s at 0)
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            address="local",  # always a new embedded instance, never another sweep's
            num_cpus=os.cpu_count() or 1,
            num_gpus=None if gpus_per_trial else 0,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    if callable(on_terminate) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_terminate)
    finished = itertools.count(done_before + 1)
    started = time.perf_counter()

    class Report(tune.Callback):  # type: ignore[misc,name-defined]
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            r = trial.last_result or {}
            reached = r.get("seconds_to_target")
            when = f"target after {reached:.1f} s" if isinstance(reached, int | float) else "target not reached"
            print(
                f"[{next(finished)}/{total}] {trial.config['trial']['name']}: final model on the full training set "
                f"{r.get('train', math.nan):.4f}, on the test set {r.get('test', math.nan):.4f}, {when} "
                f"({time.perf_counter() - started:.0f} s into the sweep)",
                flush=True,
            )

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            print(f"sweep: trial {trial.config['trial']['name']} failed; its log is under {trial.path}", flush=True)

    device = "cuda" if gpus_per_trial else "cpu"
    specs = [
        {"name": t.name, "config": to_dict(t.config), "out": str(path.resolve()), "device": device}
        for t, path in pending
    ]
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": options.cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=concurrency,
            trial_name_creator=lambda trial: trial.config["trial"]["name"],
            trial_dirname_creator=lambda trial: trial.config["trial"]["name"],
        ),
        run_config=tune.RunConfig(
            storage_path=str((out / "ray").resolve()),
            name=f"session-{time.strftime('%Y%m%d-%H%M%S')}",
            verbose=0,
            callbacks=[Report()],
        ),
    )
    try:
        results = tuner.fit()
    finally:
        ray.shutdown()
    return [r.config["trial"]["name"] for r in results if r.error is not None]


@dataclass(frozen=True, kw_only=True)
class Options:
    """What ``coordconv sweep TASK`` takes (see :func:`main`)."""

    task: str
    """which coordinate task"""
    grid: Literal["smoke", "quick", "paper"] = "quick"
    """which grid"""
    address: str | None = None
    """Ray cluster address (None: start a local Ray)"""
    max_concurrent: int = 0
    """trials at a time (0: CPUs / CPUs per trial)"""
    cpus_per_trial: int = 1
    """CPUs (torch threads) per trial"""
    gpus_per_trial: float = 0.0
    """GPU fraction per trial"""
    seeds: int = 1
    """seeds per configuration"""
    out: str | None = None
    """output folder (None: runs/sweep-TASK-GRID)"""

    def run(self, argv: list[str]) -> int:
        """:func:`main` with these options, once the packages it needs are there."""
        extras.require(f"coordconv sweep {self.task}", ["ray", "numpy", "safetensors", "matplotlib"])
        main(self, command=shlex.join(["coordconv", *argv]))
        return 0


def main(options: Options, *, command: str = "") -> Path:
    """Run every trial of the grid that the sweep's folder lacks, then write the sweep report; return its path.

    The folder (``options.out``) holds the runs in ``runs/``, Ray's records in ``ray/`` and the report. A cluster
    ``address`` is ``HOST:PORT``, ``auto`` or ``ray://...``; each trial reserves ``cpus_per_trial`` CPUs (also its
    torch thread count) and ``gpus_per_trial`` of a GPU (above 0, it trains on the GPU Ray assigns it). ``command``:
    the command line, for the report.

    Raises:
        ValueError: a bad grid, task or resource option.
        RunError: the folder holds another sweep, Ray is missing or unreachable, or trials failed.
    """
    task, grid = options.task, options.grid
    trial_cpus, trial_gpus = options.cpus_per_trial, options.gpus_per_trial
    if trial_cpus < 1:
        raise ValueError(f"cpus_per_trial must be >= 1, got {trial_cpus}")
    if not math.isfinite(trial_gpus) or trial_gpus < 0 or (trial_gpus > 1 and not float(trial_gpus).is_integer()):
        raise ValueError(f"gpus_per_trial must be a fraction in [0, 1] or a whole number, got {trial_gpus}")
    # Ray waits for resources that never come (with a warning after a minute): refuse what this machine lacks
    cpus = usable_cpus()
    if trial_cpus > cpus:
        raise ValueError(f"cpus_per_trial {trial_cpus} is more than this machine's {cpus} usable CPUs")
    gpus = torch.cuda.device_count()
    if trial_gpus > gpus:
        raise ValueError(
            f"gpus_per_trial {trial_gpus} is more than this machine's {gpus} GPU{'s' * (gpus != 1)}"
            + ("; leave it at 0 to train on the CPUs" if gpus == 0 else "")
        )
    if options.max_concurrent < 0:
        raise ValueError(f"max_concurrent must be >= 0, got {options.max_concurrent}")
    trials = expand(task, grid, seeds=options.seeds, threads=trial_cpus)
    out = Path(options.out or f"runs/sweep-{task}-{grid}")
    identity = {"task": task, "grid": grid, "seeds": options.seeds, "trials": len(trials)}
    stored_path = out / SWEEP_FILE
    if stored_path.exists():
        stored = json.loads(stored_path.read_text())
        if {k: stored.get(k) for k in identity} != identity:
            raise RunError(
                f"{out} holds another sweep ({stored.get('task')} grid {stored.get('grid')}, "
                f"{stored.get('seeds')} seed(s)); choose another --out"
            )
    write_json(stored_path, {**identity, "command": command, "names": [t.name for t in trials]})

    pending: list[tuple[Trial, Path]] = []
    for trial in trials:
        path = out / "runs" / trial.name
        if finished_summary(path, trial.config) is None:
            if (path / SUMMARY).exists():  # finished, with another config: resuming it would fail inside Ray
                raise RunError(f"{path} holds a run with another config; remove it or choose another --out")
            pending.append((trial, path))
    done = len(trials) - len(pending)
    concurrency = options.max_concurrent or max(1, (os.cpu_count() or 1) // trial_cpus)
    print(
        f"sweep: {task} grid {grid}: {len(trials)} trials, {done} already finished, {len(pending)} to run "
        f"({concurrency} at a time, {trial_cpus} CPU(s) each) into {out}",
        flush=True,
    )
    failed = _run_with_ray(pending, options, out, concurrency, done, len(trials)) if pending else []
    report = write_report(out, task, grid, trials, command=command)
    print(f"sweep: report: {report}", flush=True)
    if failed:
        raise RunError(f"{len(failed)} trial(s) failed ({', '.join(failed[:3])}); run the same command to retry them")
    unfinished = [trial.name for trial, path in pending if not (path / SUMMARY).exists()]
    if unfinished:
        raise RunError(
            f"the sweep stopped with {len(unfinished)} trial(s) unfinished; run the same command to resume them"
        )
    return report


# ---------------------------------------------------------------------------------------------------------
# report


class _Row(NamedTuple):
    """A finished trial: its final model's metric on the whole training set and the test set; solved or not."""

    trial: Trial
    train: float
    test: float
    solved: bool


def write_report(out: Path, task: str, grid: str, trials: Sequence[Trial], *, command: str = "") -> Path:
    """``out/report.md``, ``out/table.md``, ``out/trials.csv`` and ``out/distribution.png`` from finished runs."""
    metric, target = toy_tasks.TARGETS[task]
    lower = metric == "error_px"
    rows = []  # the finished trials, in their order, each read as every report reads a run
    for trial in trials:
        if (out / "runs" / trial.name / SUMMARY).exists():
            summary = read_finished(out / "runs" / trial.name).summary
            train, test = summary["train"][summary["metric"]], summary["test"][summary["metric"]]
            rows.append(_Row(trial, float(train), float(test), summary["seconds_to_target"] is not None))
    blocks = [(m, s) for m in MODELS for s in SPLITS]
    groups = {b: [r for r in rows if (r.trial.config.model, r.trial.config.split) == b] for b in blocks}
    lines = [
        f"| model | split | configs | best test {metric} | median test | solved (train and test at target) "
        f"| best configuration | paper |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for (model, split), group in groups.items():
        planned = sum((t.config.model, t.config.split) == (model, split) for t in trials)
        paper = PAPER[(task, split, model)].text
        if not group:
            lines += [f"| {model} | {split} | 0 of {planned} | | | | | {paper} |"] if planned else []
            continue
        best = (min if lower else max)(group, key=lambda r: r.test)
        configs = f"{len(group)}" + (f" of {planned}" if len(group) < planned else "")
        lines.append(
            f"| {model} | {split} | {configs} | {_fmt([best.test], metric)} | "
            f"{_fmt([statistics.median(r.test for r in group)], metric)} | {sum(r.solved for r in group)} of "
            f"{len(group)} | {_words(best.trial.values, ' ', ', ')} | {paper} |"
        )
    table = "\n".join(lines)
    if command:
        table = f"Command: `{command}`\n\n{table}"
    write_atomic(out / "table.md", table + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = sorted({k for t in trials for k in t.values})
    writer.writerow(["name", "model", "split", "seed", *names, f"train_{metric}", f"test_{metric}", "solved"])
    for t, train, test, solved in rows:
        values = [t.values.get(n, "") for n in names]
        writer.writerow(
            [t.name, t.config.model, t.config.split, t.config.seed, *values, f"{train:.6g}", f"{test:.6g}", int(solved)]
        )
    write_atomic(out / "trials.csv", buffer.getvalue())
    if rows:
        _plot_distribution(groups, metric, target, out / "distribution.png")
    text = [
        f"# Sweep: {task}, grid {grid}",
        "",
        f"{len(rows)} of {len(trials)} trials finished. Each configuration is one ordinary training run under "
        f"`runs/`; per-trial values are in [trials.csv](trials.csv). A run is *solved* when the test set and the "
        f"whole training set reach the target ({metric} {'<' if lower else '>='} {target:g}).",
        "",
        table,
        "",
        "![distribution of test metrics over the grid](distribution.png)" if rows else "",
        "",
    ]
    path = out / "report.md"
    write_atomic(path, "\n".join(text))
    return path


def _plot_distribution(groups: Mapping[tuple[str, str], list[_Row]], metric: str, target: float, path: Path) -> None:
    """The test metric of every finished trial, one column per model and split, beside the target."""
    scale = 1.0 if metric == "error_px" else 100.0
    fig, ax = pyplot().subplots(figsize=(7, 3.6), layout="constrained")
    for i, ((model, _), group) in enumerate(groups.items()):
        if group:
            jitter = [i + 0.25 * (((k * 0.618034) % 1) - 0.5) for k in range(len(group))]
            ax.scatter(jitter, [r.test * scale for r in group], s=14, alpha=0.7, color=COLOURS[model])
    ax.axhline(target * scale, color="grey", lw=0.8, ls="--", label="target")
    ax.set_xticks(range(len(groups)), [f"{NAMES[model]}\n{split}" for model, split in groups])
    ax.set_ylabel(f"test {metric}" + ("" if metric == "error_px" else " (%)"))
    if metric == "error_px":
        ax.set_yscale("log")
    ax.set_title("one point per configuration of the grid")
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)
