"""``coordconv sweep``: the paper's hyperparameter grids of the coordinate tasks, run as Ray Tune trials.

The paper's strongest claim is about the best of many conv models (324 deconv configurations per split for
classification). A sweep expands a named grid into ordinary training runs (``toy.main``), each with its own
run directory under ``OUT/runs``, and hands the runs that are not finished yet to Ray Tune: an embedded local
Ray by default, a Ray cluster when an address is given. Because every trial is a run of the
run runtime, a sweep that is interrupted and started again skips the finished trials (they are not even given
to Ray) and resumes the unfinished ones from their checkpoints. The report is built from the run summaries on
disk, never from Ray's own records, so it is the same however many times the sweep was restarted.

Grids (``GRIDS``):

* ``paper``: the official grids (``experiment_logs.sh``; PAPER.md sections 3-5). Classification deconv:
  lr {0.001, 0.002, 0.005, 0.01, 0.02, 0.05} x L2 {0, 0.001, 0.01} x filter size {2, 3, 4} x multiplier
  {1, 2, 3} x batch {16, 32} = 324 configurations per split, 1,000 epochs, lr x0.1 every 200 epochs; CoordConv:
  lr {0.001, 0.005, 0.01} x L2 {0, 0.001}, batch 16, 50 epochs. Rendering: the same deconv grid (the official
  one also crosses it with an MSE loss, which we do not implement: 324 rather than 648 per split) and CoordConv
  lr {0.001, 0.005} x L2 {0, 0.001} x multiplier {1, 2}. Regression: lr {0.0005, 0.001, 0.01} x L2 {1e-5, 1e-4,
  5e-4} for the conv regressors; the paper gives one CoordConv setting, and we cross the same grid.
* ``quick``: a documented subset on the ``quick`` presets that finishes on 2 CPU cores in 60-90 minutes
  (classification: 36 deconv configurations per split at 20 epochs and the 6 CoordConv ones).
* ``smoke``: two tiny trials, for tests.
"""

from __future__ import annotations

import csv
import dataclasses
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
from typing import Any, Literal

import torch

from coordconv.repro.experiments import toy, toy_tasks
from coordconv.repro.experiments.toy_presets import GRIDS, SPLITS, Group
from coordconv.repro.report.paper import PAPER
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import RunError, write_atomic, write_json
from coordconv.repro.runtime.rundir import CONFIG, SUMMARY, finished_summary, read_finished

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
        names = list(group.axes)
        for split in group.splits:
            for combo in itertools.product(*(group.axes[n] for n in names)):
                values = dict(zip(names, combo, strict=True))
                for seed in range(first_seed, first_seed + seeds):
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
                    label = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
                    trials.append(Trial(f"{group.model}-{split}-seed{seed}-{label}", values, cfg))
    return trials


# ---------------------------------------------------------------------------------------------------------
# running


def _trainable(params: dict[str, Any]) -> None:
    """Ray Tune's function trainable: one run of the run runtime, resumed if it was started before."""
    from ray import tune

    spec = params["trial"]
    out = Path(spec["out"])
    summary = toy.main(
        toy.Config(**spec["config"]), out, resume=(out / CONFIG).exists(), log=lambda line: None, device=spec["device"]
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
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise RunError(
            f"coordconv sweep needs Ray Tune ({e}); install it with: pip install 'torch-coordconv[sweep]'"
        ) from e
    return ray, tune


def _print(line: str) -> None:
    print(line, flush=True)


def _run_with_ray(
    pending: list[tuple[Trial, Path]],
    *,
    out: Path,
    address: str | None,
    max_concurrent: int,
    cpus_per_trial: int,
    gpus_per_trial: float,
    done_before: int,
    total: int,
) -> list[str]:
    """Run ``pending`` as Ray Tune trials; return the names of the trials that failed."""
    ray, tune = _import_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # ray.init installs a native SIGTERM handler that dumps a stack and kills the process; the command's own
    # handler (the "interrupted" line, the resume command) is put back after it
    on_terminate = signal.getsignal(signal.SIGTERM)
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
    finished = [done_before]
    started = time.perf_counter()

    class Report(tune.Callback):  # type: ignore[misc,name-defined]
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            finished[0] += 1
            r = trial.last_result or {}
            reached = r.get("seconds_to_target")
            when = f"target after {reached:.1f} s" if isinstance(reached, int | float) else "target not reached"
            _print(
                f"[{finished[0]}/{total}] {trial.config['trial']['name']}: final model on the full training set "
                f"{r.get('train', math.nan):.4f}, on the test set {r.get('test', math.nan):.4f}, {when} "
                f"({time.perf_counter() - started:.0f} s into the sweep)"
            )

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            _print(f"sweep: trial {trial.config['trial']['name']} failed; its log is under {trial.path}")

    device = "cuda" if gpus_per_trial else "cpu"
    specs = [
        {"name": t.name, "config": to_dict(t.config), "out": str(path.resolve()), "device": device}
        for t, path in pending
    ]
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent,
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
    """The options of :func:`main` (less ``command``) as ``coordconv sweep TASK`` takes them."""

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
        options = dataclasses.asdict(self)
        options["out"] = Path(self.out or f"runs/sweep-{self.task}-{self.grid}")
        main(options.pop("task"), command=shlex.join(["coordconv", *argv]), **options)
        return 0


def main(
    task: str,
    *,
    grid: str = "quick",
    out: Path,
    address: str | None = None,
    max_concurrent: int = 0,
    cpus_per_trial: int = 1,
    gpus_per_trial: float = 0.0,
    seeds: int = 1,
    command: str = "",
) -> Path:
    """Run every trial of ``grid`` that ``out`` lacks, then write the sweep report; return its path.

    Args:
        task: classification, rendering or regression.
        grid: smoke, quick or paper.
        out: the sweep's folder (runs in ``out/runs``, Ray's records in ``out/ray``, the report in ``out``).
        address: a Ray cluster's address (``HOST:PORT``, ``auto`` or ``ray://...``); None starts a local Ray.
        max_concurrent: trials at a time (0: as many as the CPUs allow, ``cpu_count // cpus_per_trial``).
        cpus_per_trial: CPUs reserved by each trial, also its torch thread count.
        gpus_per_trial: GPU fraction reserved by each trial; above 0, trials train on the GPU Ray assigns them.
        seeds: seeds per configuration.
        command: the command line, for the report.

    Raises:
        ValueError: a bad grid, task or resource option.
        RunError: ``out`` holds another sweep, Ray is missing or unreachable, or trials failed.
    """
    if cpus_per_trial < 1:
        raise ValueError(f"cpus_per_trial must be >= 1, got {cpus_per_trial}")
    if (
        not math.isfinite(gpus_per_trial)
        or gpus_per_trial < 0
        or (gpus_per_trial > 1 and not float(gpus_per_trial).is_integer())
    ):
        raise ValueError(f"gpus_per_trial must be a fraction in [0, 1] or a whole number, got {gpus_per_trial}")
    # Ray waits for resources that never come (with a warning after a minute): refuse what this machine lacks
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cpus_per_trial > cpus:
        raise ValueError(f"cpus_per_trial {cpus_per_trial} is more than this machine's {cpus} usable CPUs")
    gpus = torch.cuda.device_count()
    if gpus_per_trial > gpus:
        raise ValueError(
            f"gpus_per_trial {gpus_per_trial} is more than this machine's {gpus} GPU{'s' * (gpus != 1)}"
            + ("; leave it at 0 to train on the CPUs" if gpus == 0 else "")
        )
    if max_concurrent < 0:
        raise ValueError(f"max_concurrent must be >= 0, got {max_concurrent}")
    trials = expand(task, grid, seeds=seeds, threads=cpus_per_trial)
    out = Path(out)
    identity = {"task": task, "grid": grid, "seeds": seeds, "trials": len(trials)}
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
        if finished_summary(path, trial.config) is not None:
            continue
        if (path / SUMMARY).exists():  # finished, with another config: resuming it would fail inside Ray
            raise RunError(f"{path} holds a run with another config; remove it or choose another --out")
        pending.append((trial, path))
    done = len(trials) - len(pending)
    concurrency = max_concurrent or max(1, (os.cpu_count() or 1) // cpus_per_trial)
    _print(
        f"sweep: {task} grid {grid}: {len(trials)} trials, {done} already finished, {len(pending)} to run "
        f"({concurrency} at a time, {cpus_per_trial} CPU(s) each) into {out}"
    )
    failed: list[str] = []
    if pending:
        failed = _run_with_ray(
            pending,
            out=out,
            address=address,
            max_concurrent=concurrency,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            done_before=done,
            total=len(trials),
        )
    report = write_report(out, task, grid, trials, command=command)
    _print(f"sweep: report: {report}")
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


@dataclass(frozen=True)
class _Row:
    trial: Trial
    summary: dict[str, Any]

    @property
    def test(self) -> float:
        return float(self.summary["test"][self.summary["metric"]])

    @property
    def train(self) -> float:
        return float(self.summary["train"][self.summary["metric"]])

    @property
    def solved(self) -> bool:
        return self.summary["seconds_to_target"] is not None


def _load(out: Path, trials: Sequence[Trial]) -> list[_Row]:
    rows = []
    for trial in trials:
        path = out / "runs" / trial.name
        if (path / SUMMARY).exists():
            rows.append(_Row(trial, read_finished(path).summary))
    return rows


def _fmt(value: float, metric: str) -> str:
    if metric == "error_px":
        return f"{value:.2f} px"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.3f}"


def _values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def write_report(out: Path, task: str, grid: str, trials: Sequence[Trial], *, command: str = "") -> Path:
    """``out/report.md``, ``out/table.md``, ``out/trials.csv`` and ``out/distribution.png`` from finished runs."""
    metric, target = toy_tasks.TARGETS[task]
    lower = metric == "error_px"
    rows = _load(out, trials)
    blocks = [(m, s) for m in ("conv", "coordconv") for s in SPLITS]
    lines = [
        f"| model | split | configs | best test {metric} | median test | solved (train and test at target) "
        f"| best configuration | paper |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for model, split in blocks:
        group = [r for r in rows if r.trial.config.model == model and r.trial.config.split == split]
        planned = sum(1 for t in trials if t.config.model == model and t.config.split == split)
        paper = PAPER[(task, split, model)].text
        if not planned:
            continue
        if not group:
            lines.append(f"| {model} | {split} | 0 of {planned} | | | | | {paper} |")
            continue
        best = min(group, key=lambda r: r.test) if lower else max(group, key=lambda r: r.test)
        lines.append(
            f"| {model} | {split} | {len(group)}" + (f" of {planned}" if len(group) < planned else "")
            + f" | {_fmt(best.test, metric)} | {_fmt(statistics.median(r.test for r in group), metric)} "
            f"| {sum(r.solved for r in group)} of {len(group)} | {_values(best.trial.values)} | {paper} |"
        )  # fmt: skip
    table = "\n".join(lines)
    if command:
        table = f"Command: `{command}`\n\n{table}"
    write_atomic(out / "table.md", table + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = sorted({k for t in trials for k in t.values})
    writer.writerow(["name", "model", "split", "seed", *names, f"train_{metric}", f"test_{metric}", "solved"])
    for r in rows:
        c = r.trial.config
        writer.writerow(
            [
                r.trial.name,
                c.model,
                c.split,
                c.seed,
                *(r.trial.values.get(n, "") for n in names),
                f"{r.train:.6g}",
                f"{r.test:.6g}",
                int(r.solved),
            ]
        )
    write_atomic(out / "trials.csv", buffer.getvalue())
    if rows:
        _plot_distribution(rows, blocks, metric, target, out / "distribution.png")
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


def _plot_distribution(
    rows: Sequence[_Row], blocks: Sequence[tuple[str, str]], metric: str, target: float, path: Path
) -> None:
    from coordconv.repro.report.runs import COLOURS
    from coordconv.repro.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    labels = []
    for i, (model, split) in enumerate(blocks):
        values = [r.test for r in rows if r.trial.config.model == model and r.trial.config.split == split]
        labels.append(f"{'CoordConv' if model == 'coordconv' else 'conv'}\n{split}")
        if not values:
            continue
        jitter = [i + 0.25 * (((k * 0.618034) % 1) - 0.5) for k in range(len(values))]
        scale = 1.0 if metric == "error_px" else 100.0
        ax.scatter(jitter, [v * scale for v in values], s=14, alpha=0.7, color=COLOURS[model])
    ax.axhline(target * (1.0 if metric == "error_px" else 100.0), color="grey", lw=0.8, ls="--", label="target")
    ax.set_xticks(range(len(blocks)), labels)
    ax.set_ylabel(f"test {metric}" + ("" if metric == "error_px" else " (%)"))
    if metric == "error_px":
        ax.set_yscale("log")
    ax.set_title("one point per configuration of the grid")
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)
