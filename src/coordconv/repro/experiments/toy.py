"""The three Not-so-Clevr coordinate tasks (Liu et al. 2018, Sec. 3-4), conv against CoordConv.

* ``classification``: (x, y) -> the one-hot centre pixel, softmax over 4,096 pixels; metric: accuracy.
* ``rendering``: (x, y) -> the 9x9 square, per-pixel sigmoid; metric: IOU of the mask ``sigmoid > 0.5``.
* ``regression``: one-hot centre map -> (x, y) / 64, mean squared error; metrics: error in pixels and the
  fraction of examples within half a pixel.

``model="conv"`` is the paper's convolutional baseline (the deconv painter; for regression the uniform or the
quadrant regressor, as the paper used one per split); ``model="coordconv"`` is the paper's CoordConv model.
Optimisation follows the official code: Adam with beta2 = 0.99, an L2 penalty ``l2 * sum(w ** 2)`` on the
convolution kernels, an optional step schedule. Train metrics are averaged over each epoch's batches (the
progress lines show them so named); the test set is evaluated after every epoch (or every ``eval_every``
steps). The line of a finished run shows the final model evaluated on the full training set and on the test
set. A run counts as *solved* at the first evaluation where both the test set and the whole training set meet
the task's target (accuracy 100%, IOU 0.99, error below 0.5 px); the training time until then is recorded
(evaluation excluded), and ``stop_at_target`` ends the run there, as time-to-target benchmarks such as MLPerf
do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from coordconv.repro.data import notsoclevr
from coordconv.repro.experiments import check
from coordconv.repro.experiments.toy_presets import PAPER, QUICK, SMOKE, SPLITS
from coordconv.repro.experiments.toy_tasks import (
    TARGETS,
    Progress,
    build_model,
    evaluate,
    evaluate_and_log,
    load_data,
    resolve_device,
    train_epoch,
)
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import write_json
from coordconv.repro.runtime.session import Session

__all__ = [
    "MODELS",
    "PRESETS",
    "REPORT_REQUIRES",
    "SPLITS",
    "TASKS",
    "Config",
    "TrainOptions",
    "describe",
    "main",
    "plan",
    "preset",
    "report",
    "requires",
]

Task = Literal["classification", "rendering", "regression"]
TASKS: tuple[str, ...] = ("classification", "rendering", "regression")
ModelKind = Literal["conv", "coordconv"]
MODELS: tuple[str, ...] = ("conv", "coordconv")
PRESETS = ("smoke", "quick", "paper")
#: the optional packages ``report`` imports (checked before ``reproduce`` starts)
REPORT_REQUIRES: tuple[str, ...] = ("numpy", "matplotlib")


@dataclass(frozen=True)
class TrainOptions:
    """The ``coordconv train`` options of these tasks beyond the config (passed to :func:`main`)."""

    device: str = "cpu"
    """where to train: cpu, cuda, cuda:N"""


@dataclass(frozen=True)
class Config:
    """One training run of a coordinate task."""

    task: Task = "classification"
    """Which coordinate task: classification, rendering or regression."""
    model: ModelKind = "coordconv"
    """The paper's convolutional baseline (conv) or its CoordConv model (coordconv)."""
    split: notsoclevr.SplitKind = "uniform"
    """uniform: random positions held out; quadrant: the bottom-right quadrant held out."""
    seed: int = 0
    """Seed of the weights and of the batch order."""
    epochs: int = 10
    """Passes over the training set."""
    batch_size: int = 16
    """Examples per training step."""
    lr: float = 0.01
    """Adam learning rate."""
    l2: float = 0.0
    """L2 penalty l2 * sum(w^2) on the convolution kernels (the official code's regulariser)."""
    adam_beta2: float = 0.99
    """Adam's beta2 (the official code uses 0.99)."""
    lr_step_every: int = 0
    """Multiply the learning rate by lr_step_ratio every this many epochs (0: constant)."""
    lr_step_ratio: float = 0.1
    """Factor of each learning-rate step."""
    lr_max_steps: int = 4
    """At most this many learning-rate steps."""
    multiplier: int = 1
    """Width multiplier of the deconv painter, the rendering painter and the quadrant conv regressor."""
    filter_size: int = 3
    """Kernel size of the deconv painter and of the rendering painter's convolutions."""
    conv_regressor: Literal["auto", "uniform", "quadrant"] = "auto"
    """Conv regressor architecture; auto uses the one the paper used for the split."""
    input_scale: Literal["raw", "unit"] = "raw"
    """(x, y) inputs as raw pixel indices 4..59 (official) or scaled like the coordinate channels to [-1, 1]."""
    onehot_scale: float = 1.0
    """Regression: value of the hot pixel of the one-hot input (official: 1; 64 is roughly its inverse standard
    deviation over the canvas, i.e. a standardised input)."""
    interm_loss: bool = False
    """Rendering with CoordConv: add the softmax loss of the centre logits against the true centre pixel (the
    official code's --interm_loss option)."""
    square_value: float = 1.0
    """Value inside the rendering target's square (the official code's grey is 128/255)."""
    test_fraction: float = 0.2
    """Fraction held out by the uniform split (the paper's text: 0.2)."""
    split_seed: int = 0
    """Seed of the uniform split."""
    official_split: bool = False
    """Use the official code's uniform split (each position held out with probability 0.25, seed 20202)."""
    train_subset: int = 0
    """Train on a fixed random subset of this many training examples (0: all of them); for quick tests."""
    test_subset: int = 0
    """Evaluate on a fixed random subset of this many test examples (0: all of them); for quick tests."""
    eval_every: int = 0
    """Evaluate the test set every this many steps as well as after each epoch (0: after each epoch only)."""
    eval_batch_size: int = 128
    """Examples per evaluation batch."""
    stop_at_target: bool = False
    """Stop as soon as the run is solved: the test set and the whole training set meet the task's target."""
    threads: int = 1
    """torch CPU threads (0: torch's default, which follows the machine: results then depend on it)."""

    def __post_init__(self) -> None:
        ranges = {
            ">= 1": ("epochs", "batch_size", "multiplier", "eval_batch_size"),
            ">= 0": ("l2", "lr_step_every", "lr_max_steps", "train_subset", "test_subset", "eval_every", "threads"),
            "> 0": ("lr", "onehot_scale"),
            "in [0, 1)": ("adam_beta2",),
            "in (0, 1)": ("test_fraction",),
        }
        check(
            self,
            ranges,
            # the paper's grids use 2-4; a filter wider than half the 64-px canvas sees nothing more, and large ones
            # fall to a reference kernel that runs for hours without a checkpoint
            filter_size=(1 <= self.filter_size <= notsoclevr.CANVAS // 2, f"from 1 to {notsoclevr.CANVAS // 2}"),
            square_value=(notsoclevr.valid_square_value(self.square_value), "> 0"),
        )
        if self.interm_loss and (self.task, self.model) != ("rendering", "coordconv"):
            raise ValueError("interm_loss applies to the CoordConv rendering model only")
        if self.task == "rendering" and self.model == "conv" and self.filter_size < 2:
            raise ValueError(f"invalid filter_size: {self.filter_size}; expected an integer >= 2 (the deconv painter)")
        if self.task == "rendering" and self.model == "coordconv" and self.filter_size % 2 == 0:
            raise ValueError(
                f"invalid filter_size: {self.filter_size}; expected an odd integer (the rendering painter)"
            )


def preset(name: str, **fields: Any) -> Config:
    """The named preset for ``task`` and ``model`` (config fields, as any other ``fields`` given on top).

    ``smoke`` runs in seconds (tests), ``quick`` in CPU minutes, ``paper`` with the official settings and budget.
    ``quick`` settings were chosen by measurement on a 2-core CPU (see README): they reach the paper's
    CoordConv results within its budget and give the conv baselines at least as much training.

    Raises:
        ValueError: unknown preset, task or model, or an invalid field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    key = (fields.get("task", Config.task), fields.get("model", Config.model))
    if key not in QUICK:
        raise ValueError(f"unknown task or model {key}; expected a task of {TASKS} and a model of conv, coordconv")
    settings = {"paper": PAPER, "quick": QUICK, "smoke": SMOKE}[name][key]
    return Config(**{**settings, **fields})


def requires(cfg: Config) -> tuple[str, ...]:
    """The optional packages a run of ``cfg`` imports (checked before it starts: :mod:`..runtime.extras`)."""
    return ("numpy", "safetensors")


def describe(s: dict[str, Any]) -> str:
    """A finished run in one line: its train and test metric and when it reached the target."""
    name, reached = s["metric"], s["seconds_to_target"]
    when = f"target reached after {reached:.1f} s of training" if reached is not None else "target not reached"
    return (
        f"{s['task']} {s['model']} {s['split']} seed {s['seed']}: final model's {name} on the full training set "
        f"{s['train'][name]:.4f}, on the test set {s['test'][name]:.4f}, {when}"
    )


def plan(preset_name: str, seeds: range, *, task: str) -> list[tuple[str, Config]]:
    """Both models on both splits of ``task`` for each seed: ``task/<model>-<split>-seed<k>``."""
    return [
        (f"{task}/{model}-{split}-seed{seed}", preset(preset_name, task=task, model=model, split=split, seed=seed))
        for split in SPLITS
        for model in MODELS
        for seed in seeds
    ]


def report(out: Path, task: str) -> Path:
    """``out/<task>/report.md`` with the table and figures of the finished runs (see :mod:`..report.toy`)."""
    from coordconv.repro.report.toy import write_report

    return write_report(out, task)


def main(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train one run into ``out`` and return its summary (also written to ``out/summary.json``).

    Args:
        cfg: the run's config.
        out: the run directory.
        resume: continue the run in ``out`` from its last checkpoint (a finished run is returned as it is).
        overwrite: replace a run already in ``out``.
        log: where progress lines go (default: standard error, or a bar on a terminal).
        device: where to train. Not part of the config: a run may resume on another device.

    Raises:
        RunError: ``out`` holds another run, the run to resume is missing, different or corrupt, or ``device``
            is not available.
    """
    device = resolve_device(device)
    desc = f"{cfg.task} {cfg.model} {cfg.split} seed {cfg.seed}"
    session = Session.open(cfg, out, desc=desc, total=cfg.epochs, resume=resume, overwrite=overwrite, log=log)
    if session.result is not None:
        return session.result
    data = load_data(cfg, device)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, cfg.adam_beta2), eps=1e-8)
    metric_name, target = TARGETS[cfg.task]
    with session:
        state = session.restore(model=model, optimizer=optimizer)
        progress = Progress.from_checkpoint(state, cfg)
        session.start_at(progress.epoch)
        model.train()
        while progress.epoch < cfg.epochs and not progress.stopped_early:
            train_metrics = train_epoch(cfg, model, optimizer, data, progress, session)
            progress.epoch += 1
            progress.wall_seconds = progress.wall()
            test_metrics = evaluate_and_log(cfg, model, data, progress, session, train_metrics)
            session.advance(1, loss=train_metrics["loss"])
            session.emit(
                f"{desc}: epoch {progress.epoch}/{cfg.epochs} train {metric_name} (mean over the epoch's batches) "
                f"{train_metrics[metric_name]:.4f}, test {metric_name} {test_metrics[metric_name]:.4f} "
                f"({progress.train_seconds:.1f} s training)"
            )
            session.checkpoint(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **progress.state()},
                last=progress.stopped_early or progress.epoch >= cfg.epochs,
            )

        train_final, _, _ = evaluate(model, cfg.task, data.train_x, data.train_y, cfg.eval_batch_size)
        test_final, test_centres, per_example = evaluate(model, cfg.task, data.test_x, data.test_y, cfg.eval_batch_size)
        write_json(
            Path(out) / "predictions.json",
            {
                "test_xy": data.test_xy.tolist(),
                "predicted_xy": [[round(v, 3) for v in row] for row in test_centres.tolist()],
                metric_name: [round(v, 5) for v in per_example.tolist()],
            },
        )
        reached_at = progress.reached_at
        summary = {
            "task": cfg.task,
            "model": cfg.model,
            "split": cfg.split,
            "seed": cfg.seed,
            "params": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
            "train": train_final,
            "test": test_final,
            "metric": metric_name,
            "target": target,
            "best_test": progress.best,
            "seconds_to_target": None if reached_at is None else round(reached_at["train_seconds"], 3),
            "wall_seconds_to_target": None if reached_at is None else round(reached_at["wall_seconds"], 3),
            "steps_to_target": None if reached_at is None else reached_at["step"],
            "train_seconds": round(progress.train_seconds, 3),
            "wall_seconds": round(progress.wall(), 3),
            "epochs": progress.epoch,
            "steps": progress.step,
            "stopped_at_target": progress.stopped_early,
            "config": to_dict(cfg),
        }
        session.finish(summary, model)
    return session.outcome()
