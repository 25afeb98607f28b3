"""The coordinate tasks' machinery: data, networks, losses, metrics, evaluation and one training epoch.

:mod:`.toy` holds the experiment (config, presets, the run's ``main``); this module holds what ``main`` calls, so
that ``main`` reads top to bottom.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coordconv.repro.data import notsoclevr
from coordconv.repro.models import toy as models
from coordconv.repro.runtime.files import RunError, check_finite
from coordconv.repro.runtime.session import Session

if TYPE_CHECKING:
    from coordconv.repro.experiments.toy import Config

__all__ = [
    "TARGETS",
    "Data",
    "Progress",
    "batch_metrics",
    "build_model",
    "evaluate",
    "evaluate_and_log",
    "learning_rate",
    "load_data",
    "loss_fn",
    "predicted_centres",
    "resolve_device",
    "train_epoch",
]

#: test metric and the value at which a task counts as solved
TARGETS: dict[str, tuple[str, float]] = {
    "classification": ("accuracy", 1.0),
    "rendering": ("iou", 0.99),
    "regression": ("error_px", 0.5),
}


@dataclass(frozen=True)
class Data:
    """Inputs and targets of one split of one task."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    train_xy: Tensor  # square centres (x, y) of the examples, for reports
    test_xy: Tensor


def load_data(cfg: Config, device: str | torch.device = "cpu") -> Data:
    """Generate Not-so-Clevr and turn it into the task's inputs and targets, on ``device``."""
    if cfg.official_split and cfg.split != "uniform":
        raise ValueError("official_split applies to the uniform split only")
    xy = notsoclevr.centers()
    split = (
        notsoclevr.official_uniform_split()
        if cfg.official_split
        else notsoclevr.make_split(cfg.split, test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    )
    train_index, test_index = split.train, split.test
    subsets = torch.Generator().manual_seed(cfg.split_seed + 1)
    if cfg.train_subset:
        train_index = train_index[torch.randperm(len(train_index), generator=subsets)[: cfg.train_subset]]
    if cfg.test_subset:
        test_index = test_index[torch.randperm(len(test_index), generator=subsets)[: cfg.test_subset]]
    if cfg.task == "regression":
        inputs = notsoclevr.onehot_maps(xy).mul_(cfg.onehot_scale).contiguous(memory_format=torch.channels_last)
        targets = xy.float() / notsoclevr.CANVAS
    else:
        inputs = xy.float() if cfg.input_scale == "raw" else xy.float() * (2 / (notsoclevr.CANVAS - 1)) - 1
        if cfg.task == "classification":
            targets = xy[:, 1] * notsoclevr.CANVAS + xy[:, 0]
        else:
            targets = notsoclevr.square_images(xy, cfg.square_value).contiguous(memory_format=torch.channels_last)
    parts = (inputs[train_index], targets[train_index], inputs[test_index], targets[test_index])
    return Data(*(t.to(device) for t in (*parts, xy[train_index], xy[test_index])))


# ---------------------------------------------------------------------------------------------------------
# model, loss, metrics


def build_model(cfg: Config) -> nn.Module:
    """The paper's network for the task and model kind."""
    model: nn.Module
    if cfg.model == "conv" and cfg.task != "regression":
        model = models.DeconvPainter(cfg.multiplier, cfg.filter_size)
    elif cfg.task == "classification":
        model = models.CoordConvPainter(notsoclevr.CANVAS)
    elif cfg.task == "rendering":
        model = models.CoordConvImagePainter(cfg.multiplier, cfg.filter_size, notsoclevr.CANVAS)
    elif cfg.model == "coordconv":
        model = models.CoordConvRegressor()
    elif (cfg.split if cfg.conv_regressor == "auto" else cfg.conv_regressor) == "uniform":
        model = models.ConvRegressorUniform()
    else:
        model = models.ConvRegressorQuadrant(cfg.multiplier)
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return,unused-ignore]


def loss_fn(task: str, output: Tensor, target: Tensor) -> Tensor:
    """The task's training loss (without the L2 penalty)."""
    if task == "classification":
        return F.cross_entropy(output.flatten(1), target)
    if task == "rendering":
        # the target's own values, as the official code (its grey squares make the targets 128/255)
        return F.binary_cross_entropy_with_logits(output, target)
    return F.mse_loss(output, target)


def batch_metrics(task: str, output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-example metrics of a batch (summed by the caller)."""
    if task == "classification":
        return {"accuracy": (output.flatten(1).argmax(1) == target).float()}
    if task == "rendering":
        predicted = output > 0  # sigmoid > 0.5
        truth = target > 0
        inter = (predicted & truth).flatten(1).sum(1)
        union = (predicted | truth).flatten(1).sum(1)
        return {"iou": inter / union.clamp(min=1)}
    error = (output - target).mul(notsoclevr.CANVAS).norm(dim=1)
    return {"error_px": error, "within_half_px": (error < 0.5).float()}


def predicted_centres(task: str, output: Tensor) -> Tensor:
    """The (x, y) centre each example's output stands for (argmax, mask centroid, or the regression output)."""
    if task == "classification":
        index = output.flatten(1).argmax(1)
        return torch.stack([index % notsoclevr.CANVAS, index // notsoclevr.CANVAS], dim=1).float()
    if task == "rendering":
        mask = (output[:, 0] > 0).float()
        grid = torch.arange(notsoclevr.CANVAS, dtype=mask.dtype)
        total = mask.sum((1, 2)).clamp(min=1)
        return torch.stack([(mask.sum(1) * grid).sum(1) / total, (mask.sum(2) * grid).sum(1) / total], dim=1)
    return output * notsoclevr.CANVAS


@torch.inference_mode()
def evaluate(
    model: nn.Module, task: str, x: Tensor, y: Tensor, batch_size: int
) -> tuple[dict[str, float], Tensor, Tensor]:
    """Evaluate a whole set in inference mode.

    Returns:
        The mean loss and metrics, the predicted centres, and the task metric of every example.
    """
    was_training = model.training
    model.eval()
    name, _ = TARGETS[task]
    sums: dict[str, float] = {"loss": 0.0}
    centres, per_example = [], []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        sums["loss"] += loss_fn(task, out, target).item() * len(target)
        for metric, values in batch_metrics(task, out, target).items():
            sums[metric] = sums.get(metric, 0.0) + values.sum().item()
            if metric == name:
                per_example.append(values)
        centres.append(predicted_centres(task, out))
    model.train(was_training)
    return {k: v / len(x) for k, v in sums.items()}, torch.cat(centres), torch.cat(per_example)


def learning_rate(cfg: Config, epoch: int) -> float:
    """The official step policy: ``lr * ratio ** min(epoch // every, max_steps)``."""
    if cfg.lr_step_every == 0:
        return cfg.lr
    return cfg.lr * cfg.lr_step_ratio ** min(epoch // cfg.lr_step_every, cfg.lr_max_steps)


# ---------------------------------------------------------------------------------------------------------
# training


@dataclass
class Progress:
    """Where a run stands: its counters, when it was solved, its best test value; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0  # of the sessions before this one, until the end of an epoch updates it
    reached_at: dict[str, Any] | None = None
    best: float | None = None
    stopped_early: bool = False
    started: float = field(default_factory=time.perf_counter)  # this session's start (perf_counter)
    earlier: float = field(init=False)  # wall seconds of the sessions before this one

    def __post_init__(self) -> None:
        self.earlier = self.wall_seconds

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any] | None, cfg: Config) -> Progress:
        """The progress a checkpoint's state records (a new run's without one)."""
        if state is None:
            return cls()
        reached_at = state["reached_at"]
        # checkpoints from before the flag was stored: a run that stopped at its target had reached it
        stopped_early = bool(state.get("stopped_early", cfg.stop_at_target and reached_at is not None))
        return cls(**state["counters"], reached_at=reached_at, best=state["best"], stopped_early=stopped_early)

    def wall(self) -> float:
        """Wall seconds of the whole run: the earlier sessions' and this one's so far."""
        return self.earlier + time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the progress."""
        counters = {"epoch": self.epoch, "step": self.step, "train_seconds": self.train_seconds,
                    "wall_seconds": self.wall_seconds}  # fmt: skip
        return {"counters": counters, "reached_at": self.reached_at, "best": self.best,
                "stopped_early": self.stopped_early}  # fmt: skip


def evaluate_and_log(
    cfg: Config, model: nn.Module, data: Data, progress: Progress, session: Session,
    train_metrics: dict[str, float] | None = None,
) -> dict[str, float]:  # fmt: skip
    """Evaluate the test set (and the whole training set once the test set meets the target), log one record.

    An epoch's record with its ``train_metrics``, a step's without. Updates ``progress``: the best test value
    and, on the first evaluation where both sets meet the task's target, when the run was solved (and, if the
    config says ``stop_at_target``, that it stops). Returns the test metrics.
    """
    name, target = TARGETS[cfg.task]
    lower = name == "error_px"  # the one metric where lower is better
    test_metrics, _, _ = evaluate(model, cfg.task, data.test_x, data.test_y, cfg.eval_batch_size)
    value = test_metrics[name]
    if progress.best is None or (value < progress.best if lower else value > progress.best):
        progress.best = value
    full_train: dict[str, float] = {}
    if progress.reached_at is None and (value < target if lower else value >= target):
        # solved means the target on the whole training set too, as the paper's "100% train and test"
        full_train, _, _ = evaluate(model, cfg.task, data.train_x, data.train_y, cfg.eval_batch_size)
        if full_train[name] < target if lower else full_train[name] >= target:
            seconds = progress.train_seconds
            progress.reached_at = {"train_seconds": seconds, "wall_seconds": progress.wall(), "step": progress.step}
    if cfg.stop_at_target and progress.reached_at is not None:
        progress.stopped_early = True
    session.log({
        "kind": "step" if train_metrics is None else "epoch",
        "epoch": progress.epoch,
        "step": progress.step,
        "train_seconds": round(progress.train_seconds, 4),
        "wall_seconds": round(progress.wall(), 4),
        "lr": learning_rate(cfg, progress.epoch),
        **{f"train_{k}": v for k, v in (train_metrics or {}).items()},
        **{f"train_set_{k}": v for k, v in full_train.items()},
        **{f"test_{k}": v for k, v in test_metrics.items()},
        "solved": progress.reached_at is not None,
    })  # fmt: skip
    return test_metrics


def train_epoch(
    cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer, data: Data, progress: Progress,
    session: Session,
) -> dict[str, float]:  # fmt: skip
    """One pass over the training set (evaluating every ``eval_every`` steps); the mean train metrics.

    Stops early at a step evaluation that stops the run (``progress.stopped_early``).
    """
    # the official code's L2 penalty: on the conv kernels (a CoordConv layer's weight holds its coordinate filters)
    penalised = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    image_painter = model if isinstance(model, models.CoordConvImagePainter) and cfg.interm_loss else None
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, progress.epoch)
    # the batch order depends on the seed and the epoch only, so that a resumed run sees the same batches
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + progress.epoch)
    order = torch.randperm(len(data.train_x), generator=generator)
    sums: dict[str, float] = {}
    seen = 0
    for index in torch.split(order, cfg.batch_size):
        start = time.perf_counter()
        x, y = data.train_x[index], data.train_y[index]
        if image_painter is not None:
            output, centre = image_painter.forward_with_centre(x)
            xy = data.train_xy[index]
            loss = loss_fn(cfg.task, output, y) + F.cross_entropy(
                centre.flatten(1), xy[:, 1] * notsoclevr.CANVAS + xy[:, 0]
            )
        else:
            output = model(x)
            loss = loss_fn(cfg.task, output, y)
        total = loss + cfg.l2 * sum(w.square().sum() for w in penalised) if cfg.l2 else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        progress.train_seconds += time.perf_counter() - start
        progress.step += 1
        seen += len(index)
        check_finite(total.item(), f"the loss at step {progress.step}")
        with torch.no_grad():
            sums["loss"] = sums.get("loss", 0.0) + loss.item() * len(index)
            for name, values in batch_metrics(cfg.task, output.detach(), y).items():
                sums[name] = sums.get(name, 0.0) + values.sum().item()
        if cfg.eval_every and progress.step % cfg.eval_every == 0:
            evaluate_and_log(cfg, model, data, progress, session)
            if progress.stopped_early:
                break
    return {k: v / seen for k, v in sums.items()}


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, if torch has it.

    Raises:
        RunError: naming the device and what torch sees.
    """
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise RunError(f"invalid device {str(device)!r}; expected for example cpu, cuda or cuda:1") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device {str(device)!r} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RunError(f"device {str(device)!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return device
