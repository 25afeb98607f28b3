"""The ``coordconv`` commands as dataclasses: tyro makes each one a subcommand and each field an option.

tyro (the library CleanRL's scripts use) generates the command line from the dataclasses: the docstring under a
field is its help, the default is shown beside it, a ``Literal`` is a choice, a ``bool`` is ``--flag/--no-flag``
and a tuple takes several values, with hyphenated flags: the syntax the command had before. (jsonargparse spells
options with underscores and booleans as ``--flag true``; simple-parsing is less actively kept.) A ``train``
task's options are its experiment's ``Config`` fields; the command calls ``preset(--preset, **typed options)``,
so that an option typed on the command line overrides the preset and the others keep the preset's values.
"""

import dataclasses
import shlex
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from coordconv.repro.experiments import toy
from coordconv.repro.experiments.registry import REGISTRY, Experiment
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import SEED_LIMIT, check_count, describe_work
from coordconv.repro.runtime.files import RunError

__all__ = [
    "Bench",
    "Demo",
    "Inspect",
    "NotSoClevr",
    "SortOfClevr",
    "Spatial",
    "Sweep",
    "UsageError",
    "command_type",
    "interrupted_message",
    "preset_values",
]


class UsageError(ValueError):
    """Options the parser took but the command refuses: a one-line usage error, exit status 2."""


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


def _seed(value: int, flag: str) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise UsageError(f"invalid {flag} {value}: expected an integer from 0 to {SEED_LIMIT - 1}")


def _on_cpu(device: str | None = None) -> bool:
    """Whether training would run on the CPU (``device`` as given, else what the experiments choose)."""
    import torch

    return (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cpu")


def _confirm_paper(preset: str, configs: list[Any], yes: bool, on_cpu: bool) -> str | None:
    """The refusal to start the ``paper`` preset's GPU-sized work on a CPU without ``--yes`` (else ``None``)."""
    if preset != "paper":
        return None
    work = f"preset paper: {describe_work(configs)} on {'the CPU' if on_cpu else 'CUDA'}"
    if on_cpu and not yes:
        return f"{work}; the paper preset is a GPU job: pass --yes to start it on the CPU anyway"
    print(work, file=sys.stderr)
    return None


def _typed(argv: list[str], names: Any) -> set[str]:
    """The field ``names`` whose option (``--name``, ``--no-name``, ``--name=...``) ``argv`` has."""
    words = {w.split("=", 1)[0].replace("_", "-") for w in argv if w.startswith("--")}
    return {n for n in names if {f"--{n}".replace("_", "-"), f"--no-{n}".replace("_", "-")} & words}


def _fields(cls: type | None) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)] if cls else []


def _read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; a file that is not one raises ``ValueError`` naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a cut or foreign file
        raise ValueError(f"{path} is not a readable safetensors file ({type(e).__name__})") from e


def _inspect_run(path: Path, samples: int) -> list[Any]:
    """Rebuild a toy-task run's model, load its weights, and inspect it on its test inputs."""
    import json

    from coordconv import inspect_model
    from coordconv.repro.experiments import toy, toy_tasks
    from coordconv.repro.runtime.rundir import read_finished

    if not (path / "config.json").is_file():
        runs = sorted(p.parent for p in path.glob("**/config.json"))[:3]
        hint = f" (for example {', '.join(str(r) for r in runs)})" if runs else ""
        raise ValueError(f"{path} is not a run's folder (it has no config.json); pass one run's folder{hint}")
    if (path / "summary.json").exists():
        read_finished(path)  # a finished run's files must be what it wrote (weights swapped or cut: refused)
    stored = json.loads((path / "config.json").read_text())
    if not isinstance(stored, dict) or not isinstance(stored.get("config", stored), dict):
        raise ValueError(f"{path / 'config.json'} does not hold a run's config (a JSON object)")
    config = stored.get("config", stored)
    if config.get("task") not in toy.TASKS:
        raise ValueError(
            f"{path} is not a run of coordconv train {'|'.join(toy.TASKS)} (its config has task "
            f"{config.get('task')!r}); pass its model.safetensors for the filter norms, or call "
            "coordconv.inspect_model in Python"
        )
    weights = path / "model.safetensors"
    if not weights.is_file() and (path / "summary.json").exists():
        raise ValueError(
            f"{path} is a finished run whose weights were not kept (committed results keep only the small files); "
            "train it again with the command in its config.json to inspect it"
        )
    if not weights.is_file():
        raise ValueError(f"{path} has no model.safetensors: the run has not finished")
    cfg = toy.Config(**{k: v for k, v in config.items() if k in toy.Config.__dataclass_fields__})
    model = toy_tasks.build_model(cfg)
    try:
        model.load_state_dict(_read_safetensors(weights))
    except RuntimeError as e:  # missing or extra keys, other shapes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{weights} does not fit the model of its config.json ({reason[:200]})") from e
    sample = toy_tasks.load_data(cfg).test_x[:samples]
    return inspect_model(model, sample)


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
class Inspect:
    """How much each CoordConv layer of a trained model uses the coordinates.

    Report, for each CoordConv layer of a trained model, how much it uses the coordinates: the norms of its
    coordinate filters (W_c) and input filters (W), their ratio (also per weight: RMS ratio), and on sample
    inputs the share of the layer's output variance that the coordinate term carries (0: translation invariant,
    1: only the coordinates matter) and the correlation of the two terms. See coordconv.inspect_model.

    MODEL is either a run directory of `coordconv train classification|rendering|regression` (the model is
    rebuilt from its config.json, loaded from model.safetensors, and run on the first --samples examples of its
    test set), or a .safetensors state dict of an earlier development version, with *coord_weight entries (filter
    norms only: there is no module to run). For other models call coordconv.inspect_model(model, sample) in
    Python.
    """

    model: tyro.conf.Positional[str]
    """a run directory of coordconv train, or a .safetensors file"""
    samples: int = 256
    """test examples to run a run directory's model on"""
    json: bool = False
    """print JSON instead of a Markdown table"""

    def run(self, argv: list[str]) -> int:
        from coordconv.usage import format_usage, inspect_model

        path = Path(self.model)
        if self.samples < 1:
            raise UsageError(f"--samples must be >= 1, got {self.samples}")
        # a run directory also rebuilds its test set (numpy)
        if refusal := _require("coordconv inspect", ["safetensors", *(["numpy"] if path.is_dir() else [])]):
            return _fail(refusal)
        try:
            if path.is_dir():
                rows = _inspect_run(path, self.samples)
            elif path.suffix == ".safetensors" and path.is_file():
                rows = inspect_model(_read_safetensors(path))
            elif not path.exists():
                raise ValueError(f"{path} does not exist; expected a run directory or a .safetensors file")
            else:
                raise ValueError(f"{path} is neither a run directory nor a .safetensors file")
        except (ValueError, OSError, ImportError, RunError) as e:
            print(f"coordconv inspect: error: {e}", file=sys.stderr)
            return 1
        if self.json:
            import json

            print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        else:
            print(format_usage(rows))
        return 0


@dataclass(frozen=True, kw_only=True)
class _Train:
    """What every ``coordconv train TASK`` shares; each task adds its ``Config`` fields (see :func:`command_type`)."""

    preset: str = "quick"
    """settings to start from (each task's --help lists what each preset sets)"""
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
        module = entry.module
        given = {k: getattr(self, k) for k in _typed(argv, _fields(module.Config)) if k not in entry.fixed}
        try:
            cfg = module.preset(self.preset, **given, **entry.fixed)
        except ValueError as e:
            raise UsageError(str(e)) from e
        extra = {k: getattr(self, k) for k in _fields(entry.train_options)}
        refusal = _require(f"coordconv train {entry.name}", entry.needs([cfg]))
        refusal = refusal or _confirm_paper(self.preset, [cfg], self.yes, _on_cpu(extra.get("device")))
        if refusal:
            return _fail(refusal)
        try:
            summary = module.main(cfg, self.out, resume=self.resume, overwrite=self.overwrite, **extra)
        except (RunError, ImportError, FileNotFoundError, ValueError) as e:
            return _fail(str(e))
        except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
            text = str(e)
            if not (isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
                raise
            first = (text.strip().splitlines() or [type(e).__name__])[0][:200]
            return _fail(
                f"the run does not fit in memory ({first}); lower the model's size (--multiplier) or "
                f"--batch-size; its last checkpoint, if any, is kept in {self.out}"
            )
        # an interrupted run reports nothing, and so do the other processes of a torchrun launch
        if summary and not summary.get("interrupted"):
            print(f"{module.describe(summary)} -> {self.out}")
        return 0


@dataclass(frozen=True, kw_only=True)
class _Reproduce:
    """``coordconv reproduce``: the paper's experiments, conv against CoordConv (the main job).

    Train conv and CoordConv for each TASK (none given: classification), then print each task's table beside the
    paper's numbers and write OUT/<task>/report.md with plots, and OUT/report.md linking them. Finished runs in
    --out are reused and unfinished ones resumed, so an interrupted reproduce continues where it stopped.
    """

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
        from coordconv.repro import reproduce

        preset, tasks = self.preset, list(self.tasks) or ["classification"]
        if self.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {self.seeds}")
        _seed(self.first_seed, "--first-seed")
        if self.first_seed + self.seeds > SEED_LIMIT:
            raise UsageError(
                f"--first-seed {self.first_seed} with --seeds {self.seeds} goes past the largest seed, {SEED_LIMIT - 1}"
            )
        try:
            for value, what, low in ((self.threads, "threads", 0), (self.jobs, "jobs", 1)):
                if value is not None:
                    check_count(value, what, low)
        except ValueError as e:
            raise UsageError(str(e)) from e
        unknown = [t for t in tasks if t not in REGISTRY]
        if unknown:
            raise UsageError(f"unknown task {unknown[0]!r}; expected one of {', '.join(REGISTRY)}")
        options: dict[str, Any] = {}
        for entry in REGISTRY.values():
            for name in _fields(entry.reproduce_options):
                options[name] = getattr(self, name)
                takers = [t for t in REGISTRY if name in _fields(REGISTRY[t].reproduce_options)]
                default = getattr(entry.reproduce_options, "__dataclass_fields__")[name].default  # noqa: B009
                if options[name] != default and not set(takers) & set(tasks):
                    raise UsageError(f"--{name.replace('_', '-')} applies to the {', '.join(takers)} task only")
        for task in tasks:  # the choices are every task's presets; each task takes its own
            offered = REGISTRY[task].presets
            if preset not in offered:
                takers = [t for t in REGISTRY if preset in REGISTRY[t].presets]
                raise UsageError(
                    f"the {preset} preset is the {', '.join(takers)} task's; {task} takes {', '.join(offered)}"
                )

        def confirm(entry: Experiment, configs: list[Any]) -> str | None:
            # a task whose runs take a device option trains on its default device under reproduce
            device = getattr(entry.train_options(), "device", None) if entry.train_options else None
            return _confirm_paper(preset, configs, self.yes, _on_cpu(device))

        needs: list[str] = []
        for task in tasks:
            entry = REGISTRY[task]
            extra = {k: v for k, v in options.items() if k in _fields(entry.reproduce_options)}
            try:
                plan = entry.module.plan(
                    preset, range(self.first_seed, self.first_seed + self.seeds), task=task, **extra
                )
            except ValueError:  # reproduce reports it
                plan = []
            needs += entry.needs([cfg for _, cfg in plan], report=True)
        if refusal := _require(f"coordconv reproduce {' '.join(tasks)}", needs):
            return _fail(refusal)
        try:
            reproduce.main(
                tasks, preset=preset, seeds=self.seeds, first_seed=self.first_seed, out=Path(self.out),
                overwrite=self.overwrite, options=options, argv=argv[1:], confirm=confirm, threads=self.threads,
                jobs=self.jobs,
            )  # fmt: skip
        except (RunError, ImportError, FileNotFoundError, ValueError) as e:
            return _fail(str(e))
        return 0


@dataclass(frozen=True, kw_only=True)
class Sweep:
    """``coordconv sweep``: the paper's hyperparameter grids on Ray Tune.

    Run a grid of training runs of TASK as Ray Tune trials: an embedded local Ray by default, a Ray cluster with
    --address. Each trial is an ordinary run under OUT/runs; a sweep started again skips finished trials and
    resumes unfinished ones. Writes OUT/report.md, table.md, trials.csv and distribution.png. Needs the sweep
    extra: pip install 'torch-coordconv[sweep]'.
    """

    task: tyro.conf.Positional[toy.Task]
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
        if refusal := _require(f"coordconv sweep {self.task}", ["ray", "numpy", "safetensors", "matplotlib"]):
            return _fail(refusal)
        from coordconv.repro import sweep

        try:
            sweep.main(
                self.task, grid=self.grid, out=Path(self.out or f"runs/sweep-{self.task}-{self.grid}"),
                address=self.address, max_concurrent=self.max_concurrent, cpus_per_trial=self.cpus_per_trial,
                gpus_per_trial=self.gpus_per_trial, seeds=self.seeds, command=shlex.join(["coordconv", *argv]),
            )  # fmt: skip
        except ValueError as e:
            raise UsageError(str(e)) from e
        except RunError as e:
            return _fail(str(e))
        return 0


def _write(kind: str, write: Any) -> int:
    if refusal := _require(f"coordconv dataset {kind}", extras.DATASET_NEEDS[kind]):
        return _fail(refusal)
    try:
        written = write()
    except (ValueError, OSError, RunError) as e:
        return _fail(str(e))
    for path in written if isinstance(written, list) else [written]:
        print(path)
    return 0


@dataclass(frozen=True, kw_only=True)
class NotSoClevr:
    """Not-so-Clevr (squares on a 64x64 canvas): an .npz and a picture of examples."""

    out: str
    """output .npz file (a .png of examples is written beside it)"""
    split: Literal["uniform", "quadrant"] = "uniform"
    """split"""
    test_fraction: float = 0.2
    """uniform split's test fraction"""
    split_seed: int = 0
    """uniform split's seed"""
    official_split: bool = False
    """the official code's uniform split"""
    square_value: float = 1.0
    """value inside squares (official: 128/255)"""
    overwrite: bool = False
    """replace an existing file"""

    def run(self, argv: list[str]) -> int:
        import math

        for name in ("test_fraction", "square_value"):
            if not math.isfinite(getattr(self, name)):
                raise UsageError(f"invalid {name}: {getattr(self, name)!r}; expected a finite number")
        _seed(self.split_seed, "--split-seed")
        from coordconv.repro.data import notsoclevr

        options = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("out", "split_seed")}
        return _write("notsoclevr", lambda: notsoclevr.write(Path(self.out), seed=self.split_seed, **options))


@dataclass(frozen=True, kw_only=True)
class SortOfClevr:
    """Two-object Sort-of-Clevr (a red and a blue object, 64x64 RGB): an .npz and a picture of examples."""

    out: str
    """output .npz file (a .png of examples is written beside it)"""
    count: int = 50_000
    """images (50000, as the paper)"""
    seed: int = 0
    """seed"""
    overwrite: bool = False
    """replace an existing file"""

    def run(self, argv: list[str]) -> int:
        _seed(self.seed, "--seed")
        from coordconv.repro.data import sortofclevr

        return _write("sortofclevr", lambda: sortofclevr.write(Path(self.out), count=self.count, seed=self.seed,
                                                                 overwrite=self.overwrite))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Spatial:
    """An ImageFolder of Sort-of-Clevr scenes labelled by where the red object is (classification)."""

    out: str
    """output folder (train/ and val/ class folders inside)"""
    train: int = 8_000
    """training images"""
    val: int = 2_000
    """validation images"""
    grid: int = 8
    """grid x grid position classes"""
    seed: int = 0
    """seed"""
    overwrite: bool = False
    """replace an existing folder"""

    def run(self, argv: list[str]) -> int:
        _seed(self.seed, "--seed")
        from coordconv.repro.data import spatial_folder

        options = {k: v for k, v in dataclasses.asdict(self).items() if k != "out"}
        return _write("spatial", lambda: spatial_folder.write(Path(self.out), **options))


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
    fields = _fields(module.Config)
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
    for preset in entry.presets:
        per_model = {model: changes(preset, model) for model in models}
        if len(set(per_model.values())) == 1:
            lines.append(f"* {preset}: {per_model[models[0]]}")
        else:
            lines += [f"* {preset}, --model {model}: {text}" for model, text in per_model.items()]
    return "settings to start from; options typed on the command line override them. Each preset sets:\n" + "\n".join(
        lines
    )


def _choice(values: Any) -> Any:
    return Literal.__getitem__(tuple(values))  # a Literal of values known at run time


def _sub(name: str, cls: Any, description: str) -> Any:
    return Annotated[cls, tyro.conf.subcommand(name, description=description)]


def command_type() -> Any:
    """The type tyro turns into the ``coordconv`` commands: one subcommand per dataclass.

    Built from :data:`~coordconv.repro.experiments.registry.REGISTRY` when the command runs, so that a task added
    to the registry is a ``train`` subcommand and a ``reproduce`` task.
    """
    tasks = []
    for name, entry in REGISTRY.items():
        module = entry.module
        fields: list[Any] = [
            ("preset", Annotated[_choice(entry.presets), tyro.conf.arg(help=preset_values(entry))], "quick"),
            *((k, Annotated[type(v), tyro.conf.Suppress], v) for k, v in entry.fixed.items()),
            ("entry", Any, dataclasses.field(default=entry, init=False, repr=False)),
        ]
        bases = (module.Config, *([entry.train_options] if entry.train_options else []), _Train)
        cls = dataclasses.make_dataclass(
            name, fields, bases=bases, frozen=True, kw_only=True, namespace={"__post_init__": lambda self: None}
        )
        tasks.append(_sub(name, cls, entry.help))
    presets = list(dict.fromkeys(p for entry in REGISTRY.values() for p in entry.module.PRESETS))
    every = set(presets).intersection(*(e.presets for e in REGISTRY.values()))
    owners = "; ".join(f"{p}: {', '.join(t for t in REGISTRY if p in REGISTRY[t].presets)} only" for p in presets
                       if p not in every)  # fmt: skip
    options = [e.reproduce_options for e in REGISTRY.values() if e.reproduce_options]
    reproduce = dataclasses.make_dataclass(
        "reproduce",
        [
            ("tasks", Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(
                metavar="TASK", help="tasks to run: " + ", ".join(f"{n} ({e.help})" for n, e in REGISTRY.items()))],
             ()),
            ("preset", Annotated[_choice(presets), tyro.conf.arg(help=f"settings ({owners})")], "quick"),
        ],
        bases=(*dict.fromkeys(options), _Reproduce), frozen=True, kw_only=True,
    )  # fmt: skip
    datasets = (
        _sub("notsoclevr", NotSoClevr, "Not-so-Clevr (squares on a 64x64 canvas)")
        | _sub("sortofclevr", SortOfClevr, "two-object Sort-of-Clevr (a red and a blue object, 64x64 RGB)")
        | _sub("spatial", Spatial, "an ImageFolder of Sort-of-Clevr scenes labelled by where the red object is")
    )
    return (
        _sub("demo", Demo, "a short tour of the layer library")
        | _sub("bench", Bench, "benchmarks")
        | _sub("inspect", Inspect, "how much each CoordConv layer of a trained model uses the coordinates")
        | _sub("train", _union(tasks), "one training run of a task")
        | _sub("reproduce", reproduce, "the paper's experiments, conv against CoordConv (the main job)")
        | _sub("sweep", Sweep, "the paper's hyperparameter grids on Ray Tune")
        | _sub("dataset", datasets, "write a data set to disk (npz) and a picture of examples")
    )


def _union(types: list[Any]) -> Any:
    union = types[0]
    for t in types[1:]:
        union = union | t
    return union


def _without_overwrite(argv: list[str]) -> list[str]:
    """``argv`` less ``--overwrite``: continuing must not start again from scratch."""
    return [a for a in argv if a not in ("--overwrite", "--no-overwrite")]


def interrupted_message(command: Any, argv: list[str], signal_name: str = "SIGINT") -> str:
    """The line a command interrupted by Ctrl-C (SIGINT) or SIGTERM prints: what is kept and how to go on.

    ``train`` resumes with the same command plus ``--resume`` (less ``--overwrite``); ``reproduce`` and ``sweep``
    continue with the same command, which reuses finished runs and resumes unfinished ones; other commands have
    nothing to resume.
    """
    head = f"coordconv: interrupted ({signal_name})"
    if isinstance(command, _Train):
        if not (Path(command.out) / "config.json").exists():  # stopped before the run wrote anything to resume
            again = shlex.join(["coordconv", *argv])
            return f"{head} before the run in {command.out} started; start it again with: {again}"
        words = _without_overwrite(argv) + ([] if command.resume else ["--resume"])
        note = command.entry.resume_note  # type: ignore[attr-defined]
        return (
            f"{head}; the run in {command.out} keeps its last checkpoint. Resume it from there with: "
            f"{shlex.join(['coordconv', *words])}{f' ({note})' if note else ''}"
        )
    if isinstance(command, _Reproduce | Sweep):
        what = "runs" if isinstance(command, _Reproduce) else "trials"
        again = " (with --overwrite it retrains the finished runs as well; without, it keeps them)"
        return (
            f"{head}; finished {what} are kept and unfinished ones resume from their last checkpoint. Continue with "
            f"the same command: {shlex.join(['coordconv', *argv])}{again if _without_overwrite(argv) != argv else ''}"
        )
    return head
