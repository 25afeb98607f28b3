"""``coordconv reproduce``: every run of each task's plan, conv against CoordConv, then the task's report.

One loop for every experiment of the registry (:mod:`coordconv.repro.experiments`): a task's ``plan`` names its
runs, finished runs in ``--out`` are reused and unfinished ones resumed, then its ``report`` writes
``OUT/<task>/report.md``; ``OUT/report.md`` links the reports of every task found in ``OUT``.

Threads and processes: every run uses ``threads`` torch threads (default 1, so its numbers do not depend on the
machine's core count), and independent runs train side by side in ``jobs`` worker processes (default: the CPUs
this process may use, divided by ``threads``). One thread per process keeps a busy machine fast: torch's default
(a thread per core, spinning at each barrier) slows down many times over when other jobs hold some of the cores
(``benchmarks/thread_policy.py`` measures both ways).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import multiprocessing
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from coordconv.repro.experiments.registry import REGISTRY, Experiment, check_paper
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import SEED_LIMIT, check_count
from coordconv.repro.runtime.files import RunError, write_atomic
from coordconv.repro.runtime.rundir import CONFIG, finished_summary

__all__ = ["Options", "check_request", "default_jobs", "main", "train_one", "usable_cpus", "write_index"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """What ``coordconv reproduce`` takes besides each task's ``reproduce_options`` (see :func:`main`)."""

    tasks: tuple[str, ...] = ()
    """tasks to run (none given: classification)"""
    preset: str = "quick"
    """settings"""
    seeds: int = 1
    """seeds per configuration"""
    first_seed: int = 0
    """first seed"""
    out: str = "runs/reproduce"
    """output folder"""
    threads: int | None = None
    """torch threads per run (None: 1, so results do not depend on the machine; 0: torch's default)"""
    jobs: int | None = None
    """runs trained at once, each in its own process (None: the usable CPUs divided by --threads; 1 on CUDA)"""
    overwrite: bool = False
    """retrain runs that are already in --out"""
    yes: bool = False
    """start the paper preset (GPU jobs) on a CPU without asking"""

    def run(self, argv: list[str]) -> int:
        """:func:`main` with these options and the command's arguments after ``reproduce``."""
        main(self, argv[1:])
        return 0


def main(options: Options, argv: Sequence[str] = ()) -> Path:
    """Train every run of the tasks that ``options.out`` lacks, write each task's report and the index ``report.md``.

    ``options`` may be an instance of the command's class, which adds each task's ``reproduce_options`` (fields of
    its module's ``ReproduceOptions``): each is given to the tasks that take it. No task given: classification.
    Seeds: ``first_seed``, ``first_seed + 1``, ...; ``threads``: torch threads of every run (``None``: each
    preset's, 1 unless a preset says otherwise; 0: torch's default, which follows the machine); ``jobs``: runs that
    train at once, each in its own process (``None``: :func:`default_jobs`; 1: one after the other in this
    process); ``yes``: start the paper preset's GPU-sized work on a CPU without asking
    (:func:`~coordconv.repro.experiments.registry.check_paper`). ``argv``: the command's arguments after
    ``reproduce``, added to each task's ``command.txt`` (:func:`record_command`).

    Returns:
        The index's path.

    Raises:
        ValueError: an option is invalid (a usage error: :func:`check_request`).
        MissingExtraError: an optional package the runs or the reports need is missing (before anything trains).
        RunError: a task cannot plan its runs, the paper preset on a CPU without ``yes``, a run in ``out`` has
            another config (without ``overwrite``), or its files are damaged.
    """
    tasks = list(options.tasks) or ["classification"]
    given = {k: getattr(options, k) for e in REGISTRY.values() for k in _options(e)}
    preset, seeds, first_seed, threads = options.preset, options.seeds, options.first_seed, options.threads
    check_request(
        tasks, preset=preset, seeds=seeds, first_seed=first_seed, options=given, threads=threads, jobs=options.jobs
    )
    out, started = Path(options.out), time.perf_counter()
    command = shlex.join(["coordconv", "reproduce", *argv]) if argv else f"coordconv reproduce {shlex.join(tasks)}"
    try:
        plans = []  # each task's runs: its module's plan with the options it takes
        for entry in (REGISTRY[t] for t in tasks):
            takes = {k: v for k, v in given.items() if k in _options(entry)}
            plans.append(
                (entry, entry.module.plan(preset, range(first_seed, first_seed + seeds), task=entry.name, **takes))
            )
        needs = [name for entry, plan in plans for name in entry.needs([cfg for _, cfg in plan], report=True)]
        extras.require(f"coordconv reproduce {' '.join(tasks)}", needs)
        for entry, plan in plans:
            if threads is not None:
                plan = [(folder, dataclasses.replace(cfg, threads=threads)) for folder, cfg in plan]
            busiest = max((cfg.threads for _, cfg in plan), default=1)
            workers = max(1, min(len(plan), options.jobs or default_jobs(busiest)))
            print(
                f"reproduce: {len(plan)} {entry.name} runs (preset {preset}; {seeds} seed(s)) into {out}; "
                f"{workers} at a time, {_threads(plan)} each"
            )
            # a task whose runs take a device option trains on its default device under reproduce
            device = getattr(entry.train_options(), "device", None) if entry.train_options else None
            if refusal := check_paper(preset, [cfg for _, cfg in plan], options.yes, device):
                raise RunError(refusal)
            _run_jobs([(out / folder, cfg) for folder, cfg in plan], entry.module, options.overwrite, workers)
            record_command(out / entry.name / "command.txt", command)
            entry.module.report(out, entry.name)
        path = write_index(out)
    except ValueError as e:  # a task that cannot plan its runs: not a usage error
        raise RunError(str(e)) from e
    print(f"reproduce: done in {time.perf_counter() - started:.0f} s; report: {path}")
    return path


def check_request(
    tasks: Sequence[str],
    *,
    preset: str = "quick",
    seeds: int = 1,
    first_seed: int = 0,
    options: Mapping[str, Any] | None = None,
    threads: int | None = None,
    jobs: int | None = None,
) -> None:
    """Check a request before anything runs (:func:`main` calls it first: its ``ValueError`` is a usage error).

    Raises:
        ValueError: naming the first invalid argument and what is allowed: the seed range, an unknown task, a
            preset the task does not take, a task's option given without that task, threads or jobs out of range.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if not 0 <= first_seed < SEED_LIMIT:
        raise ValueError(f"invalid --first-seed {first_seed}: expected an integer from 0 to {SEED_LIMIT - 1}")
    if first_seed + seeds > SEED_LIMIT:
        raise ValueError(f"--first-seed {first_seed} with --seeds {seeds} goes past the largest seed, {SEED_LIMIT - 1}")
    for value, what, low in ((threads, "threads", 0), (jobs, "jobs", 1)):
        if value is not None:
            check_count(value, what, low)
    unknown = [t for t in tasks if t not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; expected one of {', '.join(REGISTRY)}")
    for name, value in (options or {}).items():
        defaults = {t: _options(e)[name].default for t, e in REGISTRY.items() if name in _options(e)}
        if any(value != d for d in defaults.values()) and not set(defaults) & set(tasks):
            raise ValueError(f"--{name.replace('_', '-')} applies to the {', '.join(defaults)} task only")
    for task in tasks:  # a preset is offered if any task has it; each task takes its own
        offered = REGISTRY[task].presets
        if preset not in offered:
            takers = [t for t in REGISTRY if preset in REGISTRY[t].presets]
            owner = f"the {', '.join(takers)} task's" if takers else "no task's"
            raise ValueError(f"the {preset} preset is {owner}; {task} takes {', '.join(offered)}")


def _options(entry: Experiment) -> dict[str, dataclasses.Field[Any]]:
    """The ``reproduce`` options ``entry`` takes (its module's ``ReproduceOptions`` fields), by name."""
    return {f.name: f for f in dataclasses.fields(entry.reproduce_options)} if entry.reproduce_options else {}


def record_command(path: Path, command: str) -> None:
    """Add ``command`` to the commands in ``path`` (one a line, in the order they first ran; none repeated).

    A folder filled by several commands (more seeds, an ablation) keeps each of them: the last alone would not
    make the runs it reuses.
    """
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []  # a foreign file is kept
    if command not in (line.split("  #")[0].strip() for line in lines):
        write_atomic(path, "\n".join([*lines, command]) + "\n")


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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_jobs(threads: int) -> int:
    """Runs at once when ``--jobs`` is not given.

    The usable CPUs shared out at ``threads`` per run; one run with ``threads=0`` (torch's default, a thread per
    core) and on a CUDA machine (runs would share the GPU).
    """
    import torch

    if threads == 0 or torch.cuda.is_available():
        return 1
    return max(1, usable_cpus() // threads)


def _threads(plan: Sequence[tuple[str, Any]]) -> str:
    counts = sorted({cfg.threads for _, cfg in plan})
    return " or ".join("torch's default threads" if n == 0 else f"{n} thread{'s' * (n > 1)}" for n in counts)


def train_one(module_name: str, folder: Path, cfg: Any, overwrite: bool = False, **kw: Any) -> dict[str, Any]:
    """Train (or resume) one run in a worker process (a pool's, or Ray's for ``coordconv sweep``).

    ``kw``: more of the module ``main``'s arguments (``log``: by default standard error, indented).
    """
    module = importlib.import_module(module_name)
    resume = (folder / CONFIG).exists() and not overwrite
    summary: dict[str, Any] = module.main(cfg, folder, resume=resume, overwrite=overwrite, **{"log": _quiet, **kw})
    return summary


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: end when the process that started it ends (even by SIGKILL).

    Otherwise a killed ``reproduce`` leaves its workers training, re-parented to init, holding the run locks.
    Linux delivers SIGTERM on the parent's death (``PR_SET_PDEATHSIG``); elsewhere, and for a parent that died
    before that was set, a thread watches the parent's process id.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="coordconv-parent-watch").start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop every worker now: SIGTERM, then SIGKILL for one that does not end (a stopped one, say)."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = multiprocessing.active_children()
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + 5.0
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()  # SIGKILL also ends a stopped (SIGSTOP) process, which SIGTERM leaves pending
            worker.join(5.0)


def _run_jobs(jobs: list[tuple[Path, Any]], module: Any, overwrite: bool, workers: int) -> None:
    """Reuse or train each ``(folder, config)``, ``workers`` at a time, one line per run as it ends.

    Runs that are already finished are reported first. With more than one worker, each run trains in a fresh
    (spawned) process: nothing of one run's torch state leaks into another's; a failed run or an interruption
    stops the others at once (their checkpoints stay, so the same command resumes them).
    """
    done = itertools.count(1)

    def announce(summary: dict[str, Any], how: str, folder: Path) -> None:
        what = f"{folder}: stopped, resumes when reproduce runs again" if summary.get("interrupted") else None
        print(f"[{next(done)}/{len(jobs)}] {what or module.describe(summary)} ({how})", flush=True)

    todo = []
    for folder, cfg in jobs:
        summary = None if overwrite else finished_summary(folder, cfg)
        if summary is None:
            todo.append((folder, cfg))
        else:
            announce(summary, "reused", folder)
    if workers <= 1 or len(todo) <= 1:
        for folder, cfg in todo:
            announce(train_one(module.__name__, folder, cfg, overwrite), "trained", folder)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    )
    folders = {pool.submit(train_one, module.__name__, folder, cfg, overwrite): folder for folder, cfg in todo}
    running: set[Future[dict[str, Any]]] = set(folders)
    try:
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    summary = future.result()
                except BrokenProcessPool:
                    raise RunError(
                        f"a worker process died while training {folders[future]} (killed by a signal, or out of "
                        "memory); finished runs are kept and the same command resumes the others from their "
                        "checkpoints"
                    ) from None
                announce(summary, "trained", folders[future])
    except BaseException:
        # an interruption (Ctrl-C, SIGTERM to this process), a failed run or a dead worker: stop the other runs
        # now rather than after they finish; each keeps its last checkpoint and resumes when reproduce runs again
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _quiet(line: str) -> None:
    print(f"    {line}", file=sys.stderr, flush=True)
