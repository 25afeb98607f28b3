"""ImageNet-style classification with ResNets, plain or with CoordConv, on PyTorch DDP (Liu et al. 2018, Sec. 5.4).

The paper adds one 1x1 CoordConv layer (8 channels, with r) at the bottom of ResNet-50 and reports +0.04% top-5
accuracy over five runs each, not significant. Models: :mod:`coordconv.repro.models.classifiers`.

Data: an ImageFolder tree with ``train/`` and ``val/`` (``data``; real ImageNet when the user has it), or, when
``data`` is empty, the offline data set of :mod:`coordconv.repro.data.spatial_folder` (Sort-of-Clevr scenes
labelled by the cell of an 8x8 grid that holds the red object's centre: 64 classes; a 4x4 grid turned out too
easy, both models reach 98% top-1 in one epoch), generated once into ``<out>/../.data/``. ``augment="standard"``
is torchvision's ImageNet recipe (random resized crop and flip for training, resize and centre crop for
validation); ``"none"`` only normalises, as the offline data needs (a crop or a flip changes its labels).

Training: SGD with momentum, cosine learning-rate decay per step, optional label smoothing, channels_last, AMP
(bfloat16) on CUDA. The same command runs under ``torchrun --nproc_per_node=N``: gloo on CPU, NCCL on GPU; each
process takes ``batch_size / N`` images of every global batch (DistributedSampler), gradients are averaged by
DDP, validation counts are summed over processes, and only rank 0 writes the run directory and logs. Checkpoints
hold no process count, so a run resumes on any number of processes. BatchNorm statistics are per process (CPU
has no SyncBatchNorm), so N processes match one process with the same global batch only approximately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from coordconv.repro.experiments import check
from coordconv.repro.experiments.imagenet_data import data_root, datasets
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import RunError, check_finite
from coordconv.repro.runtime.ranks import Processes, all_sum, processes
from coordconv.repro.runtime.session import Session

__all__ = ["PRESETS", "REPORT_REQUIRES", "Config", "describe", "main", "plan", "preset", "report", "requires"]

PRESETS = ("smoke", "quick", "paper")
#: the optional packages ``report`` imports (checked before ``reproduce`` starts)
REPORT_REQUIRES: tuple[str, ...] = ("scipy",)
#: how an interrupted run resumes (the line ``train`` prints on Ctrl-C)
RESUME_NOTE = "under torchrun: the same launch with --resume"


@dataclass(frozen=True)
class Config:
    """One training run of a classifier."""

    arch: Literal["resnet18", "resnet50"] = "resnet18"
    """torchvision ResNet."""
    variant: Literal["plain", "input_layer", "coordconvify"] = "input_layer"
    """plain; input_layer: the paper's 1x1 CoordConv input layer (8 channels, with r); coordconvify: conv1 made a
    CoordConv layer with zero coordinate filters."""
    seed: int = 0
    """Seed of the weights and of the data order."""
    data: str = ""
    """ImageFolder root with train/ and val/ (empty: the offline position data set, generated)."""
    weights: str = ""
    """Local file with the plain network's weights to start from (plain and coordconvify only)."""
    augment: Literal["standard", "none"] = "none"
    """standard: torchvision's ImageNet augmentation; none: normalisation only."""
    image_size: int = 64
    """Training crop (standard) or image size (none)."""
    epochs: int = 4
    """Passes over the training set."""
    batch_size: int = 64
    """Global batch, split evenly over the processes."""
    lr: float = 0.1
    """Peak SGD learning rate (cosine decay per step to 0)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """SGD weight decay."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing."""
    offline_train: int = 8_000
    """Offline data set: training images."""
    offline_val: int = 2_000
    """Offline data set: validation images."""
    offline_grid: int = 8
    """Offline data set: grid x grid position classes (8: 64 classes of 8x8-px cells)."""
    workers: int = 0
    """DataLoader worker processes per training process."""
    threads: int = 1
    """torch CPU threads per process (0: torch's default, which follows the machine: results then depend on it)."""

    def __post_init__(self) -> None:
        ranges = {
            ">= 1": ("epochs", "batch_size", "offline_train", "offline_val"),
            ">= 0": ("weight_decay", "workers", "threads"),
            "> 0": ("lr",),
            "in [0, 1)": ("momentum", "label_smoothing"),
        }
        check(
            self,
            ranges,
            image_size=(self.image_size >= 16, ">= 16"),
            offline_grid=(1 <= self.offline_grid <= 10, "in [1, 10]"),
        )


def preset(name: str, **fields: Any) -> Config:
    """The named preset's config of ``variant``, with ``overrides``.

    * ``smoke``: a tiny offline data set, seconds.
    * ``quick``: ResNet-18 on the offline data set (8,000 / 2,000 images of 64x64, 64 classes), 4 epochs.
    * ``paper``: ResNet-50 on ImageNet (``data`` must point at it), torchvision's recipe: 90 epochs, batch 256,
      standard augmentation at 224 px (a multi-GPU job).

    Raises:
        ValueError: unknown preset, or ``paper`` without ``data``.
    """
    if name == "paper" and not fields.get("data"):
        raise ValueError("the paper preset trains on ImageNet: pass --data with the ImageFolder root (train/ and val/)")
    sizes: dict[str, dict[str, Any]] = {
        "smoke": {"epochs": 2, "batch_size": 8, "lr": 0.01, "offline_train": 32, "offline_val": 16, "image_size": 32},
        "quick": {},
        "paper": {"arch": "resnet50", "epochs": 90, "batch_size": 256, "augment": "standard", "image_size": 224},
    }
    if name not in sizes:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return Config(**{**sizes[name], **fields})


def requires(cfg: Config) -> tuple[str, ...]:
    """The optional packages a run of ``cfg`` imports (checked before it starts: :mod:`..runtime.extras`)."""
    return ("numpy", "torchvision", "PIL", "safetensors")


def describe(s: dict[str, Any]) -> str:
    """A finished run in one line: top-1, top-5 and the number of processes."""
    return (
        f"imagenet {s['arch']} {s['variant']} seed {s['seed']}: top-1 {s['top1']:.4f}, top-5 {s['top5']:.4f} "
        f"({s['world_size']} process(es))"
    )


def plan(preset_name: str, seeds: range, *, task: str = "imagenet") -> list[tuple[str, Config]]:
    """Plain ResNet against the paper's CoordConv input layer for each seed: ``imagenet/<variant>-seed<k>``.

    The runs train in this process; for several processes, train them with ``torchrun`` and ``coordconv train
    imagenet`` into the same folders first (finished runs are reused).
    """
    return [
        (f"{task}/{variant}-seed{seed}", preset(preset_name, variant=variant, seed=seed))
        for variant in ("plain", "input_layer")
        for seed in seeds
    ]


def report(out: Path, task: str = "imagenet") -> Path:
    """``out/imagenet/report.md``: top-1 / top-5 and Welch's t-test (see :mod:`..report.imagenet`)."""
    from coordconv.repro.report.imagenet import write_report

    return write_report(out)


# ---------------------------------------------------------------------------------------------------------
# training


def _evaluate(model: nn.Module, val_set: Any, cfg: Config, procs: Processes) -> dict[str, float]:
    """Top-1 / top-5 accuracy and loss on the validation set, each process taking every ``world``-th image."""
    from torch.utils.data import DataLoader, Subset

    part = Subset(val_set, range(procs.rank, len(val_set), procs.world))
    loader = DataLoader(part, batch_size=max(1, cfg.batch_size // procs.world), num_workers=cfg.workers)
    was_training = model.training
    model.eval()
    sums = [0.0, 0.0, 0.0, 0.0]  # top-1, top-5, loss, count
    with torch.no_grad(), _autocast(procs):
        for x, y in loader:
            x, y = x.to(procs.device).contiguous(memory_format=torch.channels_last), y.to(procs.device)
            logits = model(x).float()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            sums[0] += (top[:, 0] == y).sum().item()
            sums[1] += (top == y[:, None]).any(dim=1).sum().item()
            sums[2] += F.cross_entropy(logits, y, reduction="sum").item()
            sums[3] += len(y)
    model.train(was_training)
    top1, top5, loss, count = all_sum(sums, procs)
    return {"top1": top1 / count, "top5": top5 / count, "val_loss": loss / count}


def _autocast(procs: Processes) -> Any:
    """bfloat16 autocast on CUDA, none elsewhere."""
    return torch.autocast(procs.device.type, dtype=torch.bfloat16, enabled=procs.device.type == "cuda")


def main(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one run into ``out`` (on every process of a ``torchrun`` launch) and return its summary.

    Raises:
        RunError: ``out`` holds another run, the run to resume is missing, different or corrupt, or the global
            batch does not split evenly over the processes.
        FileNotFoundError: ``data`` is not an ImageFolder tree with train/ and val/, or ``weights`` is missing.
        ValueError: ``weights`` do not fit the network.
    """
    procs = processes()
    try:
        if cfg.batch_size % procs.world:
            raise RunError(f"batch_size {cfg.batch_size} does not split evenly over {procs.world} processes")
        desc = f"imagenet {cfg.arch} {cfg.variant} seed {cfg.seed}"
        session = Session.open(
            cfg, out, desc=desc, total=cfg.epochs, resume=resume, overwrite=overwrite, log=log, procs=procs
        )
        if session.result is not None:
            return session.result
        with session:
            _train(session, cfg, procs)
        return session.outcome()
    finally:
        if procs.started_group:
            dist.destroy_process_group()


def _train(session: Session, cfg: Config, procs: Processes) -> None:
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from coordconv.repro.models.classifiers import build_classifier

    train_set, val_set = datasets(cfg, data_root(cfg, session.path, procs))
    model = build_classifier(cfg.arch, cfg.variant, len(train_set.classes), weights=cfg.weights or None)
    model = model.to(procs.device, memory_format=torch.channels_last)  # type: ignore[call-overload,unused-ignore]
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    state = session.restore(model=model, optimizer=optimizer)
    epoch, train_seconds = (state["epoch"], state["train_seconds"]) if state else (0, 0.0)
    session.start_at(epoch)
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if procs.world > 1 else model
    sampler: DistributedSampler[Any] = DistributedSampler(
        train_set, procs.world, procs.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    per_process = cfg.batch_size // procs.world
    loader = DataLoader(train_set, batch_size=per_process, sampler=sampler, num_workers=cfg.workers, drop_last=True)
    steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    while epoch < cfg.epochs:
        sampler.set_epoch(epoch)
        sums = [0.0, 0.0]
        start = time.perf_counter()
        for i, (x, y) in enumerate(loader):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            x, y = x.to(procs.device).contiguous(memory_format=torch.channels_last), y.to(procs.device)
            with _autocast(procs):
                loss = F.cross_entropy(net(x).float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums[0] += loss.item() * len(y)
            sums[1] += len(y)
        train_seconds += time.perf_counter() - start
        epoch += 1
        loss_sum, count = all_sum(sums, procs)  # the same on every process, so all of them stop together
        check_finite(
            loss_sum / count,
            f"the mean loss of epoch {epoch} (steps {(epoch - 1) * steps_per_epoch + 1}-{epoch * steps_per_epoch})",
        )
        metrics = _evaluate(model, val_set, cfg, procs)
        session.log({"epoch": epoch, "train_loss": loss_sum / count, "train_seconds": train_seconds, **metrics})
        session.emit(
            f"{session.desc}: epoch {epoch}/{cfg.epochs} train loss (mean over the epoch's batches) "
            f"{loss_sum / count:.4f}, validation top-1 {metrics['top1']:.4f} top-5 {metrics['top5']:.4f} "
            f"({train_seconds:.0f} s training, {procs.world} process(es))"
        )
        session.advance(1)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        session.checkpoint({**state, "epoch": epoch, "train_seconds": train_seconds}, last=epoch == cfg.epochs)
    checksums = [float(sum(p.detach().double().sum().item() for p in model.parameters()))]
    if procs.world > 1:
        gathered: list[Any] = [None] * procs.world
        dist.all_gather_object(gathered, checksums[0])
        checksums = [float(c) for c in gathered]
    summary: dict[str, Any] = {}
    if session.main:
        final = session.history[-1]
        summary = {
            "task": "imagenet",
            "arch": cfg.arch,
            "variant": cfg.variant,
            "seed": cfg.seed,
            "epochs": epoch,
            "train_seconds": round(train_seconds, 2),
            "world_size": procs.world,
            "ranks_agree": max(checksums) - min(checksums) <= 1e-9 * max(1.0, abs(checksums[0])),
            "parameters": sum(p.numel() for p in model.parameters()),
            **{k: final[k] for k in ("top1", "top5", "val_loss", "train_loss")},
            "config": to_dict(cfg),
        }
    session.finish(summary, model)
