"""``coordconv reproduce``: every run of each task's plan, conv against CoordConv, then the task's report.

One loop for every experiment of the registry (:mod:`coordconv.repro.experiments`): a task's ``plan`` names its
runs, finished runs in ``--out`` are reused and unfinished ones resumed, then its ``report`` writes
``OUT/<task>/report.md``; ``OUT/report.md`` links the reports of every task found in ``OUT``.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coordconv.repro.experiments import REGISTRY
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.rundir import CONFIG, Run, RunError, config_changes, write_atomic

__all__ = ["main", "write_index"]


def main(
    tasks: Sequence[str],
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    out: Path = Path("runs/reproduce"),
    overwrite: bool = False,
    options: Mapping[str, Any] | None = None,
    argv: Sequence[str] = (),
    confirm: Callable[[Any, list[Any]], str | None] | None = None,
) -> Path:
    """Train every run of ``tasks`` that ``out`` lacks, write each task's report and the index ``out/report.md``.

    Args:
        tasks: task names of the registry.
        preset: the preset of every run.
        seeds: how many seeds per configuration.
        first_seed: the first seed (then ``first_seed + 1``, ...).
        out: the output folder; each task writes under ``out/<task>/``.
        overwrite: retrain runs that are already there.
        options: task-specific options (a module's ``REPRODUCE_OPTIONS``), given to the tasks that take them.
        argv: the command's arguments after ``reproduce``, recorded in each task's ``command.txt``.
        confirm: ``confirm(module, configs)`` sees each task's configs before anything trains and returns a
            refusal (a message) or ``None`` (the paper preset's check of the work on a CPU).

    Returns:
        The index's path.

    Raises:
        RunError: ``confirm`` refused, a run in ``out`` has another config (without ``overwrite``), or its files
            are damaged.
    """
    started = time.perf_counter()
    command = shlex.join(["coordconv", "reproduce", *argv]) if argv else f"coordconv reproduce {shlex.join(tasks)}"
    for task in tasks:
        entry = REGISTRY[task]
        module = entry.load()
        accepted = getattr(module, "REPRODUCE_OPTIONS", {})
        extra = {k: v for k, v in (options or {}).items() if f"--{k.replace('_', '-')}" in accepted}
        plan = module.plan(preset, range(first_seed, first_seed + seeds), task=task, **extra)
        print(f"reproduce: {len(plan)} {task} runs (preset {preset}; {seeds} seed(s)) into {out}")
        refusal = confirm(module, [cfg for _, cfg in plan]) if confirm else None
        if refusal:
            raise RunError(refusal)
        _run_jobs([(out / folder, cfg) for folder, cfg in plan], module.main, module.describe, overwrite)
        write_atomic(out / task / "command.txt", command + "\n")
        module.report(out, task)
    path = write_index(out)
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def write_index(out: Path) -> Path:
    """``out/report.md``: a link to the report of every registry task with one in ``out``."""
    present = [name for name in REGISTRY if (out / name / "report.md").exists()]
    lines = ["# CoordConv reproduction", "", "Reports of the tasks in this folder:", ""]
    lines += [f"- [{name}]({name}/report.md): {REGISTRY[name].help}" for name in present]
    if (out / "summary.png").exists():
        lines += ["", "![conv vs CoordConv on the coordinate tasks](summary.png)"]
    path = out / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _reuse_or_train(
    folder: Path, cfg: Any, train: Callable[..., dict[str, Any]], overwrite: bool
) -> tuple[dict[str, Any], str]:
    """The finished run in ``folder`` if its config is ``cfg``; else train it (resuming an unfinished one).

    A finished run's stored config is compared on the fields the config has now: a field added later counts as
    its default, a field removed since is ignored (:func:`~coordconv.repro.runtime.rundir.config_changes`).
    """
    resume = (folder / CONFIG).exists() and not overwrite
    if resume and Run(folder, {}).finished:
        summary = Run(folder, {}).summary()
        stored = summary.get("config")
        if isinstance(stored, dict) and not config_changes({**to_dict(type(cfg)()), **stored}, to_dict(cfg)):
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


def _quiet(line: str) -> None:
    print(f"    {line}", file=sys.stderr, flush=True)
