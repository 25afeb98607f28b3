"""The reproduction's subcommands of ``coordconv``: ``train``, ``reproduce``, ``sweep`` and ``dataset``.

Heavy imports (matplotlib, the experiments' data) happen when a command runs, not when ``coordconv --help``
builds the parser.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from coordconv.repro import summaries
from coordconv.repro.experiments import toy
from coordconv.repro.runtime.config import add_config_arguments, config_from_args
from coordconv.repro.runtime.rundir import RunError

__all__ = ["add_commands"]

GENERATIVE = ("gan", "vae")


def _fail(message: str) -> int:
    print(f"coordconv: error: {message}", file=sys.stderr)
    return 1


def _run_training(
    args: argparse.Namespace,
    preset: Callable[[], Any],
    positional: set[str],
    main: Callable[..., dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> int:
    """What every ``coordconv train TASK`` does: the preset's config with the options given, one run, one line.

    ``positional`` names the arguments that chose the preset (they are not config overrides).
    """
    try:
        cfg = config_from_args(preset(), {k: v for k, v in vars(args).items() if k not in positional})
    except ValueError as e:
        args.parser.error(str(e))
    try:
        summary = main(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    except (RunError, ImportError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    # an interrupted run reports nothing, and so do the other processes of a torchrun launch
    if summary and not summary.get("interrupted"):
        print(f"{describe(summary)} -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    return _run_training(
        args,
        lambda: toy.preset(args.preset, args.task, args.model, args.split, seed=args.seed),
        {"task", "model", "split", "seed"},
        partial(toy.main, device=args.device),
        summaries.describe_toy,
    )


def _train_rl(args: argparse.Namespace) -> int:
    from coordconv.repro.experiments import rl

    return _run_training(
        args, lambda: rl.preset(args.preset, args.env, args.model, seed=args.seed), {"env", "model", "seed"},
        rl.main, summaries.describe_rl,
    )  # fmt: skip


def _train_generative(args: argparse.Namespace) -> int:
    from coordconv.repro.experiments import generative

    return _run_training(
        args, lambda: generative.preset(args.preset, args.task, args.model, seed=args.seed),
        {"task", "model", "seed"}, generative.main, summaries.describe_generative,
    )  # fmt: skip


def _train_detection(args: argparse.Namespace) -> int:
    from coordconv.repro.experiments import detection

    return _run_training(
        args, lambda: detection.preset(args.preset, args.model, seed=args.seed), {"model", "seed"},
        detection.main, summaries.describe_detection,
    )  # fmt: skip


def _train_imagenet(args: argparse.Namespace) -> int:
    from coordconv.repro.experiments import imagenet

    return _run_training(
        args, lambda: imagenet.preset(args.preset, args.variant, seed=args.seed), {"variant", "seed"},
        imagenet.main, summaries.describe_imagenet,
    )  # fmt: skip


def _reproduce(args: argparse.Namespace) -> int:
    from coordconv.repro import reproduce

    if args.seeds < 1:
        args.parser.error(f"--seeds must be >= 1, got {args.seeds}")
    known = (*toy.TASKS, *GENERATIVE, "detection", "imagenet", "rl")
    unknown = [t for t in args.tasks if t not in known]
    if unknown:
        args.parser.error(f"unknown task {unknown[0]!r}; expected one of {', '.join(known)}")
    if args.games and "rl" not in args.tasks:
        args.parser.error("--games applies to the rl task only")
    tasks = args.tasks or ["classification"]
    command = (
        shlex.join(["coordconv", "reproduce", *sys.argv[sys.argv.index("reproduce") + 1 :]])
        if "reproduce" in sys.argv
        else ""
    )
    common = {
        "preset": args.preset, "seeds": args.seeds, "first_seed": args.first_seed, "out": Path(args.out),
        "overwrite": args.overwrite, "command": command,
    }  # fmt: skip
    try:
        toy_tasks = [t for t in tasks if t in toy.TASKS]
        if toy_tasks:
            reproduce.main(toy_tasks, **common)
        generative_tasks = [t for t in tasks if t in GENERATIVE]
        if generative_tasks:
            reproduce.main_generative(generative_tasks, **common)
        if "detection" in tasks:
            reproduce.main_detection(**common)
        if "imagenet" in tasks:
            reproduce.main_imagenet(**common)
        if "rl" in tasks:
            reproduce.main_rl(args.games, **common)
    except (RunError, ImportError, FileNotFoundError, ValueError) as e:  # ValueError: a preset a task lacks
        return _fail(str(e))
    return 0


def _sweep(args: argparse.Namespace) -> int:
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
            command=shlex.join(["coordconv", "sweep", *sys.argv[sys.argv.index("sweep") + 1 :]])
            if "sweep" in sys.argv
            else "",
        )
    except ValueError as e:
        args.parser.error(str(e))
    except RunError as e:
        return _fail(str(e))
    return 0


def _dataset(args: argparse.Namespace) -> int:
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
    except (ValueError, FileExistsError) as e:
        return _fail(str(e))
    for path in written:
        print(path)
    return 0


def _add_run_arguments(p: argparse.ArgumentParser, presets: tuple[str, ...]) -> None:
    """The options every ``coordconv train`` experiment shares: seed, preset, run directory, resume, overwrite."""
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--preset", choices=presets, default="quick", help="settings to start from (default: quick)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def add_commands(commands: Any) -> None:
    """Register ``train``, ``reproduce``, ``sweep`` and ``dataset`` on the ``coordconv`` subparsers."""
    train = commands.add_parser(
        "train",
        help="one training run of a coordinate task",
        description=(
            "Train one run. TASK is classification, rendering or regression (the Not-so-Clevr tasks), gan or vae "
            "(Sort-of-Clevr), detection (Faster R-CNN on MNIST canvases) or rl (A2C on MinAtar or Atari)."
        ),
    )
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for task in toy.TASKS:
        p = tasks.add_parser(task, help=f"the {task} task", description=toy.__doc__)
        p.add_argument("--model", choices=("conv", "coordconv"), default="coordconv", help="model (default: coordconv)")
        p.add_argument("--split", choices=("uniform", "quadrant"), default="uniform", help="split (default: uniform)")
        _add_run_arguments(p, toy.PRESETS)
        p.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:N (default: cpu)")
        add_config_arguments(p, toy.Config, skip=("task", "model", "split", "seed"))
        p.set_defaults(func=_train, parser=p)
    from coordconv.repro.experiments import rl

    p = tasks.add_parser(
        "rl",
        help="A2C on a MinAtar or Atari game",
        description=rl.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--env",
        default="MinAtar/Breakout",
        help="game: MinAtar/Breakout, MsPacman, ALE/MsPacman-v5, ... (default: MinAtar/Breakout)",
    )
    p.add_argument("--model", choices=("conv", "coordconv"), default="coordconv", help="model (default: coordconv)")
    _add_run_arguments(p, rl.PRESETS)
    add_config_arguments(p, rl.Config, skip=("env", "model", "seed"))
    p.set_defaults(func=_train_rl, parser=p)
    from coordconv.repro.experiments import generative

    for task, what in (("gan", "GAN"), ("vae", "VAE")):
        p = tasks.add_parser(
            task,
            help=f"a conv or CoordConv {what} on Sort-of-Clevr",
            description=generative.__doc__,
            formatter_class=argparse.RawTextHelpFormatter,
        )
        p.add_argument("--model", choices=("conv", "coordconv"), default="coordconv", help="model (default: coordconv)")
        _add_run_arguments(p, generative.PRESETS)
        add_config_arguments(p, generative.Config, skip=("task", "model", "seed"))
        p.set_defaults(func=_train_generative, parser=p)
    from coordconv.repro.experiments import detection

    p = tasks.add_parser(
        "detection",
        help="Faster R-CNN on MNIST canvases (needs the detection extra)",
        description=detection.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--model", choices=("conv", "coordconv"), default="coordconv", help="model (default: coordconv)")
    _add_run_arguments(p, detection.PRESETS)
    add_config_arguments(p, detection.Config, skip=("model", "seed"))
    p.set_defaults(func=_train_detection, parser=p)
    from coordconv.repro.experiments import imagenet

    p = tasks.add_parser(
        "imagenet",
        help="ResNet classification, plain or CoordConv, on DDP (torchrun); offline data by default",
        description=imagenet.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--variant",
        choices=("plain", "input_layer", "coordconvify"),
        default="input_layer",
        help="model variant (default: input_layer, the paper's)",
    )
    _add_run_arguments(p, imagenet.PRESETS)
    add_config_arguments(p, imagenet.Config, skip=("variant", "seed"))
    p.set_defaults(func=_train_imagenet, parser=p)

    reproduce = commands.add_parser(
        "reproduce",
        help="the paper's coordinate tasks, conv against CoordConv (the main job)",
        description=(
            "Train conv and CoordConv on both splits for each TASK (default: classification), then print a "
            "table beside the paper's numbers and write report.md and plots into --out. Finished runs in --out "
            "are reused and unfinished ones resumed, so an interrupted reproduce continues where it stopped. "
            "gan and vae train both models on Sort-of-Clevr and write generative.md; detection trains Faster R-CNNs; "
            "rl trains A2C agents."
        ),
    )
    reproduce.add_argument(
        "tasks",
        nargs="*",
        metavar="TASK",
        help=f"tasks to run: {', '.join(toy.TASKS)}, gan, vae (Sort-of-Clevr), detection, imagenet, rl (A2C agents)",
    )
    reproduce.add_argument(
        "--games", nargs="+", default=[], help="rl: games (default: the five MinAtar games; paper preset: nine Atari)"
    )
    reproduce.add_argument(
        "--preset",
        choices=sorted({*toy.PRESETS, *generative.PRESETS}),
        default="quick",
        help="settings (default: quick; cpu: the GANs' one-thread preset)",
    )
    reproduce.add_argument("--seeds", type=int, default=1, help="seeds per configuration (default: 1)")
    reproduce.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0)")
    reproduce.add_argument("--out", default="runs/reproduce", help="output folder (default: runs/reproduce)")
    reproduce.add_argument("--overwrite", action="store_true", help="retrain runs that are already in --out")
    reproduce.set_defaults(func=_reproduce, parser=reproduce)

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
    sweep.add_argument("task", choices=toy.TASKS, metavar="TASK", help=f"one of {', '.join(toy.TASKS)}")
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
    sweep.set_defaults(func=_sweep, parser=sweep)

    dataset = commands.add_parser(
        "dataset", help="write a data set to disk", description="Write a data set (npz) and a picture of examples."
    )
    kinds = dataset.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    nsc = kinds.add_parser("notsoclevr", help="Not-so-Clevr (squares on a 64x64 canvas)")
    nsc.add_argument("--out", required=True, help="output .npz file (a .png of examples is written beside it)")
    nsc.add_argument("--split", choices=("uniform", "quadrant"), default="uniform", help="split (default: uniform)")
    nsc.add_argument("--test-fraction", type=float, default=0.2, help="uniform split's test fraction (default 0.2)")
    nsc.add_argument("--split-seed", type=int, default=0, help="uniform split's seed (default: 0)")
    nsc.add_argument("--official-split", action="store_true", help="the official code's uniform split")
    nsc.add_argument("--square-value", type=float, default=1.0, help="value inside squares (official: 128/255)")
    nsc.add_argument("--overwrite", action="store_true", help="replace an existing file")
    nsc.set_defaults(func=_dataset, parser=nsc)
    soc = kinds.add_parser("sortofclevr", help="two-object Sort-of-Clevr (a red and a blue object, 64x64 RGB)")
    soc.add_argument("--out", required=True, help="output .npz file (a .png of examples is written beside it)")
    soc.add_argument("--count", type=int, default=50_000, help="images (default: 50000, as the paper)")
    soc.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    soc.add_argument("--overwrite", action="store_true", help="replace an existing file")
    soc.set_defaults(func=_dataset, parser=soc)
    spatial = kinds.add_parser(
        "spatial",
        help="an ImageFolder of Sort-of-Clevr scenes labelled by where the red object is (classification)",
    )
    spatial.add_argument("--out", required=True, help="output folder (train/ and val/ class folders inside)")
    spatial.add_argument("--train", type=int, default=8_000, help="training images (default: 8000)")
    spatial.add_argument("--val", type=int, default=2_000, help="validation images (default: 2000)")
    spatial.add_argument("--grid", type=int, default=4, help="grid x grid position classes (default: 4)")
    spatial.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    spatial.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    spatial.set_defaults(func=_dataset, parser=spatial)
