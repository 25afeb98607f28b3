"""The reproduction's subcommands of ``coordconv``: ``train``, ``reproduce``, ``sweep`` and ``dataset``.

Heavy imports (matplotlib, the experiments' data) happen when a command runs, not when ``coordconv --help``
builds the parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from coordconv.repro.experiments import toy
from coordconv.repro.experiments.registry import REGISTRY, Experiment
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import (
    SEED_LIMIT,
    add_config_arguments,
    describe_work,
    finite_float,
    job_count,
    seed_value,
    thread_count,
)
from coordconv.repro.runtime.files import RunError

__all__ = ["add_commands", "interrupted_message", "preset_values"]

TOY_TASKS = tuple(name for name, entry in REGISTRY.items() if entry.module is toy)


def _fail(message: str) -> int:
    print(f"coordconv: error: {message}", file=sys.stderr)
    return 1


def _require(command: str, modules: list[str]) -> str | None:
    """The one-line refusal when ``command`` lacks an optional package (else ``None``): see :mod:`..runtime.extras`."""
    try:
        extras.require(command, modules)
    except extras.MissingExtraError as e:
        return str(e)
    return None


def _reproduce_needs(args: argparse.Namespace, tasks: list[str], options: dict[str, Any]) -> list[str]:
    """The optional packages that ``reproduce`` of ``tasks`` imports: each task's planned runs and its report."""
    modules: list[str] = []
    for task in tasks:
        entry = REGISTRY[task]
        extra = {k: v for k, v in options.items() if f"--{k.replace('_', '-')}" in entry.reproduce_options}
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        try:
            plan = entry.module.plan(args.preset, seeds, task=task, **extra)
        except ValueError:  # reproduce reports it
            plan = []
        modules += entry.needs([cfg for _, cfg in plan], report=True)
    return modules


def _on_cpu(device: str | None = None) -> bool:
    """Whether training would run on the CPU (``device`` as given, else what the experiments choose)."""
    import torch

    return (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cpu")


def _confirm_paper(preset: str, configs: list[Any], yes: bool, on_cpu: bool) -> str | None:
    """The refusal to start the ``paper`` preset's GPU-sized work on a CPU without ``--yes`` (else ``None``).

    Every paper preset's notes call it a GPU job (hours to days there); on a CPU it would run for days.
    """
    if preset != "paper":
        return None
    work = f"preset paper: {describe_work(configs)} on {'the CPU' if on_cpu else 'CUDA'}"
    if on_cpu and not yes:
        return f"{work}; the paper preset is a GPU job: pass --yes to start it on the CPU anyway"
    print(work, file=sys.stderr)
    return None


def _argv(args: argparse.Namespace, command: str) -> list[str]:
    """The arguments after ``command`` in the command's own argv (what ``command.txt`` records)."""
    argv: list[str] = getattr(args, "argv", [])
    return argv[argv.index(command) + 1 :] if command in argv else []


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed (CPU or GPU), not another runtime error."""
    import torch

    text = str(error)
    return (
        isinstance(error, MemoryError | torch.OutOfMemoryError)
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def _train_command(args: argparse.Namespace) -> int:
    """What every ``coordconv train TASK`` does: the preset's config with the options given, one run, one line."""
    entry: Experiment = args.entry
    module = entry.module
    fields = {f.name for f in dataclasses.fields(module.Config)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in fields}
    try:
        cfg = module.preset(args.preset, **{**given, **entry.fixed})
    except ValueError as e:
        args.parser.error(str(e))
    options = {k.lstrip("-").replace("-", "_") for k in entry.train_options}
    extra = {k: getattr(args, k) for k in options}
    refusal = _require(f"coordconv train {entry.name}", entry.needs([cfg]))
    refusal = refusal or _confirm_paper(args.preset, [cfg], args.yes, _on_cpu(extra.get("device")))
    if refusal:
        return _fail(refusal)
    try:
        summary = module.main(cfg, args.out, resume=args.resume, overwrite=args.overwrite, **extra)
    except (RunError, ImportError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if not _out_of_memory(e):
            raise
        return _fail(
            f"the run does not fit in memory ({_first_line(e)}); lower the model's size (--multiplier) or "
            f"--batch-size; its last checkpoint, if any, is kept in {args.out}"
        )
    # an interrupted run reports nothing, and so do the other processes of a torchrun launch
    if summary and not summary.get("interrupted"):
        print(f"{module.describe(summary)} -> {args.out}")
    return 0


def _reproduce_command(args: argparse.Namespace) -> int:
    from coordconv.repro import reproduce

    if args.seeds < 1:
        args.parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed + args.seeds > SEED_LIMIT:
        args.parser.error(
            f"--first-seed {args.first_seed} with --seeds {args.seeds} goes past the largest seed, {SEED_LIMIT - 1}"
        )
    unknown = [t for t in args.tasks if t not in REGISTRY]
    if unknown:
        args.parser.error(f"unknown task {unknown[0]!r}; expected one of {', '.join(REGISTRY)}")
    tasks = args.tasks or ["classification"]
    options = {k: getattr(args, k) for k in args.task_options}
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        takers = [t for t in REGISTRY if flag in REGISTRY[t].reproduce_options]
        if value != args.parser.get_default(name) and not set(takers) & set(tasks):
            args.parser.error(f"{flag} applies to the {', '.join(takers)} task only")
    for task in tasks:  # the choices are every task's presets; each task takes its own
        offered = REGISTRY[task].presets
        if args.preset not in offered:
            takers = [t for t in REGISTRY if args.preset in REGISTRY[t].presets]
            args.parser.error(
                f"the {args.preset} preset is the {', '.join(takers)} task's; {task} takes {', '.join(offered)}"
            )

    def confirm(entry: Experiment, configs: list[Any]) -> str | None:
        # a task whose runs take a device option trains on its default device under reproduce
        device = entry.train_options.get("--device", {}).get("default")
        return _confirm_paper(args.preset, configs, args.yes, _on_cpu(device))

    if refusal := _require(f"coordconv reproduce {' '.join(tasks)}", _reproduce_needs(args, tasks, options)):
        return _fail(refusal)
    try:
        reproduce.main(
            tasks, preset=args.preset, seeds=args.seeds, first_seed=args.first_seed, out=Path(args.out),
            overwrite=args.overwrite, options=options, argv=_argv(args, "reproduce"), confirm=confirm,
            threads=args.threads, jobs=args.jobs,
        )  # fmt: skip
    except (RunError, ImportError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    return 0


def _sweep_command(args: argparse.Namespace) -> int:
    if refusal := _require(f"coordconv sweep {args.task}", ["ray", "numpy", "safetensors", "matplotlib"]):
        return _fail(refusal)
    from coordconv.repro import sweep

    try:
        sweep.main(
            args.task,
            grid=args.grid,
            out=Path(args.out or f"runs/sweep-{args.task}-{args.grid}"),
            address=args.address,
            max_concurrent=args.max_concurrent,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            seeds=args.seeds,
            command=shlex.join(["coordconv", "sweep", *_argv(args, "sweep")]) if _argv(args, "sweep") else "",
        )
    except ValueError as e:
        args.parser.error(str(e))
    except RunError as e:
        return _fail(str(e))
    return 0


#: the optional packages each ``dataset`` kind imports (PIL: matplotlib's PNG writer, and spatial's images)
DATASET_NEEDS = {
    "notsoclevr": ["numpy", "matplotlib", "PIL"],
    "sortofclevr": ["numpy", "matplotlib", "PIL"],
    "spatial": ["numpy", "PIL"],
}


def _dataset_command(args: argparse.Namespace) -> int:
    if refusal := _require(f"coordconv dataset {args.dataset}", DATASET_NEEDS[args.dataset]):
        return _fail(refusal)
    from coordconv.repro.data import notsoclevr, sortofclevr, spatial_folder

    try:
        if args.dataset == "spatial":
            print(
                spatial_folder.write(
                    Path(args.out), train=args.train, val=args.val, grid=args.grid, seed=args.seed,
                    overwrite=args.overwrite,
                )
            )  # fmt: skip
            return 0
        if args.dataset == "sortofclevr":
            written = sortofclevr.write(Path(args.out), count=args.count, seed=args.seed, overwrite=args.overwrite)
            for path in written:
                print(path)
            return 0
        written = notsoclevr.write(
            Path(args.out),
            split=args.split,
            test_fraction=args.test_fraction,
            seed=args.split_seed,
            square_value=args.square_value,
            official_split=args.official_split,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError, RunError) as e:
        return _fail(str(e))
    for path in written:
        print(path)
    return 0


def _without_overwrite(argv: list[str]) -> list[str]:
    """``argv`` less ``--overwrite`` (or an abbreviation of it): continuing must not start again from scratch."""
    return [a for a in argv if not (a.startswith("--ov") and "--overwrite".startswith(a))]


def interrupted_message(args: argparse.Namespace, signal_name: str = "SIGINT") -> str:
    """The line a command interrupted by Ctrl-C (SIGINT) or SIGTERM prints: what is kept and how to go on.

    ``train`` resumes with the same command plus ``--resume`` (less ``--overwrite``); ``reproduce`` and ``sweep``
    continue with the same command, which reuses finished runs and resumes unfinished ones; other commands have
    nothing to resume.
    """
    argv: list[str] = list(getattr(args, "argv", []))
    head = f"coordconv: interrupted ({signal_name})"
    command = getattr(args, "command", None)
    if command == "train":
        if not (Path(args.out) / "config.json").exists():  # stopped before the run wrote anything to resume
            again = shlex.join(["coordconv", *argv])
            return f"{head} before the run in {args.out} started; start it again with: {again}"
        words = _without_overwrite(argv) + ([] if getattr(args, "resume", False) else ["--resume"])
        note = args.entry.resume_note if hasattr(args, "entry") else ""
        launch = f" ({note})" if note else ""
        return (
            f"{head}; the run in {args.out} keeps its last checkpoint. Resume it from there with: "
            f"{shlex.join(['coordconv', *words])}{launch}"
        )
    if command in ("reproduce", "sweep"):
        what = "runs" if command == "reproduce" else "trials"
        again = " (with --overwrite it retrains the finished runs as well; without, it keeps them)"
        return (
            f"{head}; finished {what} are kept and unfinished ones resume from their last checkpoint. Continue with "
            f"the same command: {shlex.join(['coordconv', *argv])}{again if _without_overwrite(argv) != argv else ''}"
        )
    return head


def _add_run_arguments(p: argparse.ArgumentParser, presets: tuple[str, ...]) -> None:
    """The options every ``coordconv train`` experiment shares: seed, preset, run directory, resume, overwrite."""
    p.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    p.add_argument("--preset", choices=presets, default="quick", help="settings to start from (default: quick)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--yes", action="store_true", help="start the paper preset (a GPU job) on a CPU without asking")


def _option_words(name: str, value: Any) -> str:
    """``--name value`` as typed on the command line (``--flag`` / ``--no-flag`` for bools)."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, tuple | list):
        return " ".join([flag, *map(str, value)])
    return f"{flag} {value}"


def preset_values(entry: Experiment) -> str:
    """What each preset of ``entry``'s task sets, as options, one line per preset (and model, where they differ).

    A preset that needs a field (``imagenet``'s ``paper`` needs ``--data``) is shown with that field marked as
    required.
    """
    module = entry.module
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    models: tuple[Any, ...] = (None,)
    if "model" in fields and "model" not in entry.fixed:
        models = typing.get_args(typing.get_type_hints(module.Config)["model"]) or (None,)

    def changes(preset: str, model: Any) -> str:
        given = {**entry.fixed, **({} if model is None else {"model": model})}
        needed = []
        try:
            cfg = module.preset(preset, **given)
        except ValueError as e:
            if "data" not in fields or "data" in given:
                return f"({e})"
            needed, cfg = ["--data"], module.preset(preset, **given, data="DATA")
        default = module.Config(**given)
        words = [
            _option_words(name, getattr(cfg, name))
            for name in fields
            if name not in given and name not in ("data", "seed") and getattr(cfg, name) != getattr(default, name)
        ]
        words += [f"{flag} (required)" for flag in needed]
        return " ".join(words) or "the defaults"

    lines = []
    for preset in module.PRESETS:
        per_model = {model: changes(preset, model) for model in models}
        if len(set(per_model.values())) == 1:
            lines.append(f"* {preset}: {per_model[models[0]]}")
        else:
            lines += [f"* {preset}, --model {model}: {text}" for model, text in per_model.items()]
    return (
        "Presets (--preset): the options each one sets; options given on the command line override them.\n\n"
        + "\n".join(lines)
    )


def add_commands(commands: Any) -> None:
    """Register ``train``, ``reproduce``, ``sweep`` and ``dataset`` on the ``coordconv`` subparsers."""
    train = commands.add_parser(
        "train",
        help="one training run of a task",
        description="Train one run. TASK is one of: "
        + "; ".join(f"{name} ({entry.help})" for name, entry in REGISTRY.items())
        + ".",
    )
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, entry in REGISTRY.items():
        module = entry.module
        p = tasks.add_parser(name, help=entry.help, description=module.__doc__, epilog=preset_values(entry))
        _add_run_arguments(p, module.PRESETS)
        for flag, kwargs in entry.train_options.items():
            p.add_argument(flag, **kwargs)
        add_config_arguments(p, module.Config, skip=(*entry.fixed, "seed"))
        p.set_defaults(func=_train_command, parser=p, entry=entry)

    reproduce = commands.add_parser(
        "reproduce",
        help="the paper's experiments, conv against CoordConv (the main job)",
        description=(
            "Train conv and CoordConv for each TASK (default: classification), then print each task's table beside "
            "the paper's numbers and write OUT/<task>/report.md with plots, and OUT/report.md linking them. "
            "Finished runs in --out are reused and unfinished ones resumed, so an interrupted reproduce continues "
            "where it stopped."
        ),
    )
    reproduce.add_argument(
        "tasks",
        nargs="*",
        metavar="TASK",
        help="tasks to run: " + ", ".join(f"{name} ({entry.help})" for name, entry in REGISTRY.items()),
    )
    presets = list(dict.fromkeys(p for entry in REGISTRY.values() for p in entry.module.PRESETS))
    everywhere = set(presets).intersection(*(REGISTRY[t].presets for t in REGISTRY))
    own = sorted(set(presets) - everywhere)
    owners = "; ".join(f"{p}: {', '.join(t for t in REGISTRY if p in REGISTRY[t].presets)} only" for p in own)
    reproduce.add_argument("--preset", choices=presets, default="quick", help=f"settings (default: quick; {owners})")
    reproduce.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default: 1)")
    reproduce.add_argument("--first-seed", type=seed_value, default=0, help="first seed (default: 0)")
    reproduce.add_argument("--out", default="runs/reproduce", help="output folder (default: runs/reproduce)")
    reproduce.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="torch threads per run (default: 1, so results do not depend on the machine; 0: torch's default)",
    )
    reproduce.add_argument(
        "--jobs",
        type=job_count,
        default=None,
        help="runs trained at once, each in its own process (default: the usable CPUs divided by --threads; "
        "1 on a CUDA machine)",
    )
    reproduce.add_argument("--overwrite", action="store_true", help="retrain runs that are already in --out")
    reproduce.add_argument(
        "--yes", action="store_true", help="start the paper preset (GPU jobs) on a CPU without asking"
    )
    task_options: list[str] = []
    for entry in REGISTRY.values():
        for flag, kwargs in entry.reproduce_options.items():
            dest = flag.lstrip("-").replace("-", "_")
            if dest not in task_options:
                reproduce.add_argument(flag, **kwargs)
                task_options.append(dest)
    reproduce.set_defaults(func=_reproduce_command, parser=reproduce, task_options=task_options)

    sweep = commands.add_parser(
        "sweep",
        help="the paper's hyperparameter grids on Ray Tune",
        description=(
            "Run a grid of training runs of TASK as Ray Tune trials: an embedded local Ray by default, a Ray "
            "cluster with --address. Each trial is an ordinary run under OUT/runs; a sweep started again skips "
            "finished trials and resumes unfinished ones. Writes OUT/report.md, table.md, trials.csv and "
            "distribution.png. Needs the sweep extra: pip install 'torch-coordconv[sweep]'."
        ),
    )
    sweep.add_argument("task", choices=TOY_TASKS, metavar="TASK", help=f"one of {', '.join(TOY_TASKS)}")
    sweep.add_argument(
        "--grid", choices=("smoke", "quick", "paper"), default="quick", help="which grid (default: quick)"
    )
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument(
        "--max-concurrent", type=int, default=0, help="trials at a time (default: CPUs / CPUs per trial)"
    )
    sweep.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (torch threads) per trial (default: 1)")
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU fraction per trial (default: 0)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default: 1)")
    sweep.add_argument("--out", default=None, help="output folder (default: runs/sweep-TASK-GRID)")
    sweep.set_defaults(func=_sweep_command, parser=sweep)

    dataset = commands.add_parser(
        "dataset", help="write a data set to disk", description="Write a data set (npz) and a picture of examples."
    )
    kinds = dataset.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    nsc = kinds.add_parser("notsoclevr", help="Not-so-Clevr (squares on a 64x64 canvas)")
    nsc.add_argument("--out", required=True, help="output .npz file (a .png of examples is written beside it)")
    nsc.add_argument("--split", choices=("uniform", "quadrant"), default="uniform", help="split (default: uniform)")
    nsc.add_argument(
        "--test-fraction", type=finite_float, default=0.2, help="uniform split's test fraction (default 0.2)"
    )
    nsc.add_argument("--split-seed", type=seed_value, default=0, help="uniform split's seed (default: 0)")
    nsc.add_argument("--official-split", action="store_true", help="the official code's uniform split")
    nsc.add_argument("--square-value", type=finite_float, default=1.0, help="value inside squares (official: 128/255)")
    nsc.add_argument("--overwrite", action="store_true", help="replace an existing file")
    nsc.set_defaults(func=_dataset_command, parser=nsc)
    soc = kinds.add_parser("sortofclevr", help="two-object Sort-of-Clevr (a red and a blue object, 64x64 RGB)")
    soc.add_argument("--out", required=True, help="output .npz file (a .png of examples is written beside it)")
    soc.add_argument("--count", type=int, default=50_000, help="images (default: 50000, as the paper)")
    soc.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    soc.add_argument("--overwrite", action="store_true", help="replace an existing file")
    soc.set_defaults(func=_dataset_command, parser=soc)
    spatial = kinds.add_parser(
        "spatial",
        help="an ImageFolder of Sort-of-Clevr scenes labelled by where the red object is (classification)",
    )
    spatial.add_argument("--out", required=True, help="output folder (train/ and val/ class folders inside)")
    spatial.add_argument("--train", type=int, default=8_000, help="training images (default: 8000)")
    spatial.add_argument("--val", type=int, default=2_000, help="validation images (default: 2000)")
    spatial.add_argument("--grid", type=int, default=8, help="grid x grid position classes (default: 8)")
    spatial.add_argument("--seed", type=seed_value, default=0, help="seed (default: 0)")
    spatial.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    spatial.set_defaults(func=_dataset_command, parser=spatial)
