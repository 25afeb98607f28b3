"""The ``coordconv`` commands as dataclasses: tyro makes each one a subcommand and each field an option.

Each command's ``run`` calls the library function behind it (``train``:
:meth:`~coordconv.repro.experiments.registry.Experiment.train` with the options typed on the command line on top
of ``--preset``; ``reproduce``: :func:`coordconv.repro.reproduce.main`; ``dataset``: the data module's ``write``).
A ``ValueError`` it raises is the command line's fault, a usage error; a ``RunError``, ``ImportError`` or
``OSError`` is one ``coordconv: error:`` line (:func:`coordconv.cli.main`).
"""

import dataclasses
import functools
import operator
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from coordconv.repro import reproduce, sweep
from coordconv.repro.data import notsoclevr, sortofclevr, spatial_folder
from coordconv.repro.experiments import inspect_run, toy
from coordconv.repro.experiments.registry import REGISTRY, Experiment
from coordconv.repro.runtime import extras

__all__ = ["command_type", "interrupted_message", "preset_values"]


def _fields(cls: type | None) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)] if cls else []


@dataclass(frozen=True, kw_only=True)
class Demo:
    """A tour of the layer library: the convention, exactness, grouped layers, retrofitting, speed."""

    seed: int = 0
    """random seed"""

    def run(self, argv: list[str]) -> int:
        from coordconv.demo import tour

        return tour(self.seed)


@dataclass(frozen=True, kw_only=True)
class Bench:
    """``coordconv bench BENCHMARK``: ``layer``, run by :func:`coordconv.bench.main` with its own options."""

    benchmark: tyro.conf.Positional[Literal["layer"]]
    """which benchmark (coordconv.bench runs it, with its own options)"""


@dataclass(frozen=True, kw_only=True)
class Inspect(inspect_run.Options):
    """``coordconv inspect MODEL``: :func:`~coordconv.repro.experiments.inspect_run.inspect_path` as a table."""

    model: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")]
    """a run directory of coordconv train, or a .safetensors file"""


@dataclass(frozen=True, kw_only=True)
class _Train:
    """``coordconv train TASK``: its ``Config`` fields, ``--preset`` and these (see :func:`command_type`)."""

    preset: str = "quick"  # each task's class gives it the task's presets as choices, and their settings as help
    out: str
    """run directory"""
    resume: bool = False
    """continue the run in --out from its last checkpoint"""
    overwrite: bool = False
    """replace a run already in --out"""
    yes: bool = False
    """start the paper preset (a GPU job) on a CPU without asking"""

    entry = None  # the task's Experiment (a class attribute of each task's class)

    def run(self, argv: list[str]) -> int:
        entry: Experiment = self.entry  # type: ignore[assignment]
        # only the options typed on the command line override the preset (``--lr``, ``--no-flag``, ``--lr=...``)
        typed = {w.split("=", 1)[0].replace("_", "-") for w in argv if w.startswith("--")}
        flags = {k: {f"--{k}".replace("_", "-"), f"--no-{k}".replace("_", "-")} for k in _fields(entry.module.Config)}
        given = {k: getattr(self, k) for k, names in flags.items() if names & typed and k not in entry.fixed}
        extra = {k: getattr(self, k) for k in _fields(entry.train_options)}
        summary = entry.train(
            self.preset, given, self.out, resume=self.resume, overwrite=self.overwrite, yes=self.yes, **extra
        )
        # an interrupted run reports nothing, and so do the other processes of a torchrun launch
        if summary and not summary.get("interrupted"):
            print(f"{entry.module.describe(summary)} -> {self.out}")
        return 0


@dataclass(frozen=True, kw_only=True)
class Sweep(sweep.Options):
    """``coordconv sweep TASK``: the paper's hyperparameter grids on Ray Tune (:func:`coordconv.repro.sweep.main`)."""

    task: tyro.conf.Positional[toy.Task]
    """which coordinate task"""


@dataclass(frozen=True, kw_only=True)
class _Dataset:
    """``coordconv dataset KIND``: check KIND's packages, write the data set (its ``Options.write``), print paths."""

    def run(self, argv: list[str]) -> int:
        kind = type(self).__name__
        extras.require(f"coordconv dataset {kind}", extras.DATASET_NEEDS[kind])
        written = self.write()  # type: ignore[attr-defined]
        for path in written if isinstance(written, list) else [written]:
            print(path)
        return 0


def _option_words(name: str, value: Any) -> str:
    """``--name value`` as typed on the command line (``--flag`` / ``--no-flag`` for bools)."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return " ".join([flag, *map(str, value)]) if isinstance(value, tuple | list) else f"{flag} {value}"


def preset_values(entry: Experiment) -> str:
    """What each preset of ``entry``'s task sets, as options, one line per preset (and model, where they differ).

    A preset that needs a field (``imagenet``'s ``paper`` needs ``--data``) is shown with that field required.
    """
    module, fields = entry.module, _fields(entry.module.Config)
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
            needed, cfg = ["--data (required)"], module.preset(preset, **given, data="DATA")
        default = module.Config(**given)
        changed = [n for n in fields if n not in (*given, "data", "seed") and getattr(cfg, n) != getattr(default, n)]
        return " ".join([*(_option_words(n, getattr(cfg, n)) for n in changed), *needed]) or "the defaults"

    lines = []
    for preset in entry.presets:
        per_model = {model: changes(preset, model) for model in models}
        if len(set(per_model.values())) == 1:
            lines.append(f"* {preset}: {per_model[models[0]]}")
        else:
            lines += [f"* {preset}, --model {model}: {text}" for model, text in per_model.items()]
    return "settings to start from; options typed on the command line override them. Each preset sets:\n" + "\n".join(
        lines
    )


def _sub(name: str, cls: Any, description: str) -> Any:
    return Annotated[cls, tyro.conf.subcommand(name, description=description)]


def _choice(values: Any, help: str) -> Any:
    return Annotated[Literal.__getitem__(tuple(values)), tyro.conf.arg(help=help)]  # choices known at run time


def command_type() -> Any:
    """The type tyro turns into the ``coordconv`` commands: one subcommand per dataclass.

    Built from :data:`~coordconv.repro.experiments.registry.REGISTRY` when the command runs, so that a task added
    to the registry is a ``train`` subcommand and a ``reproduce`` task.
    """
    tasks = []
    for name, entry in REGISTRY.items():
        fields: list[Any] = [
            ("preset", _choice(entry.presets, preset_values(entry)), "quick"),
            *((k, Annotated[type(v), tyro.conf.Suppress], v) for k, v in entry.fixed.items()),
            ("entry", Any, dataclasses.field(default=entry, init=False, repr=False)),
        ]
        bases = (entry.module.Config, *([entry.train_options] if entry.train_options else []), _Train)
        cls = dataclasses.make_dataclass(
            name, fields, bases=bases, frozen=True, kw_only=True, namespace={"__post_init__": lambda self: None}
        )
        tasks.append(_sub(name, cls, entry.help))
    presets = list(dict.fromkeys(p for entry in REGISTRY.values() for p in entry.module.PRESETS))
    owners = [f"{p}: {', '.join(t for t, e in REGISTRY.items() if p in e.presets)} only" for p in presets
              if not all(p in e.presets for e in REGISTRY.values())]  # fmt: skip
    tasks_help = "tasks to run: " + ", ".join(f"{n} ({e.help})" for n, e in REGISTRY.items())
    reproduce_command = dataclasses.make_dataclass(
        "reproduce",
        [
            ("tasks", Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="TASK", help=tasks_help)],
             ()),
            ("preset", _choice(presets, f"settings ({'; '.join(owners)})"), "quick"),
        ],
        bases=(*dict.fromkeys(e.reproduce_options for e in REGISTRY.values() if e.reproduce_options),
               reproduce.Options),
        frozen=True, kw_only=True,
    )  # fmt: skip
    datasets = functools.reduce(operator.or_, [
        _sub(kind, dataclasses.make_dataclass(kind, [], bases=(m.Options, _Dataset), frozen=True), m.Options.__doc__)
        for kind, m in [("notsoclevr", notsoclevr), ("sortofclevr", sortofclevr), ("spatial", spatial_folder)]
    ])  # fmt: skip
    return (
        _sub("demo", Demo, "a short tour of the layer library")
        | _sub("bench", Bench, "benchmarks")
        | _sub("inspect", Inspect, "how much each CoordConv layer of a trained model uses the coordinates")
        | _sub("train", functools.reduce(operator.or_, tasks), "one training run of a task")
        | _sub("reproduce", reproduce_command, "the paper's experiments, conv against CoordConv (the main job)")
        | _sub("sweep", Sweep, "the paper's hyperparameter grids on Ray Tune")
        | _sub("dataset", datasets, "write a data set to disk (npz) and a picture of examples")
    )


def interrupted_message(command: Any, argv: list[str], signal_name: str = "SIGINT") -> str:
    """The line a command interrupted by Ctrl-C (SIGINT) or SIGTERM prints: what is kept and how to go on.

    ``train`` resumes with the same command plus ``--resume`` (less ``--overwrite``); ``reproduce`` and ``sweep``
    continue with the same command, which reuses finished runs and resumes unfinished ones; other commands have
    nothing to resume.
    """
    head, again = f"coordconv: interrupted ({signal_name})", shlex.join(["coordconv", *argv])
    kept = [a for a in argv if a not in ("--overwrite", "--no-overwrite")]  # continuing must not start afresh
    if isinstance(command, _Train):
        if not (Path(command.out) / "config.json").exists():  # stopped before the run wrote anything to resume
            return f"{head} before the run in {command.out} started; start it again with: {again}"
        note = command.entry.resume_note  # type: ignore[attr-defined]
        return (
            f"{head}; the run in {command.out} keeps its last checkpoint. Resume it from there with: "
            f"{shlex.join(['coordconv', *kept, *([] if command.resume else ['--resume'])])}"
            f"{f' ({note})' if note else ''}"
        )
    if isinstance(command, reproduce.Options | sweep.Options):
        what = "runs" if isinstance(command, reproduce.Options) else "trials"
        overwrite = " (with --overwrite it retrains the finished runs as well; without, it keeps them)"
        return (
            f"{head}; finished {what} are kept and unfinished ones resume from their last checkpoint. Continue with "
            f"the same command: {again}{overwrite if kept != argv else ''}"
        )
    return head
