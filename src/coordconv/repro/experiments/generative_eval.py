"""What a generative run measures: samples, latent interpolations, the objects found in them (:mod:`.generative`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from coordconv.repro.data import sortofclevr
from coordconv.repro.models import generative as models

if TYPE_CHECKING:
    from coordconv.repro.experiments.generative import Config

__all__ = ["INTERP_FRAMES", "INTERP_STRIPS", "evaluate", "found_metrics", "step_generator"]

INTERP_STRIPS, INTERP_FRAMES = 16, 10


def step_generator(cfg: Config, step: int, salt: int = 0) -> torch.Generator:
    """The random stream of one step (and, with negative steps and salts, of the fixed evaluation draws)."""
    return torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 7 + salt)


def found_metrics(found: Any, images: Tensor) -> dict[str, Any]:
    """The entropies and object counts of the objects ``found`` in ``images`` (in [0, 1]), and the images' spread."""
    return {
        "entropy": sortofclevr.entropies(found),
        "one_each": found.one_each.float().mean().item(),
        "two_objects": found.two_objects.float().mean().item(),
        "two_separate": found.two_separate.float().mean().item(),
        "sample_spread": images.std(dim=0).mean().item(),
    }


def evaluate(cfg: Config, trainer: models.Trainer, test: Tensor) -> tuple[dict[str, Any], Tensor, Tensor, Any]:
    """Metrics of the current model; also its samples, interpolation frames and found objects."""
    samples = trainer.sample(trainer.latents(cfg.eval_samples, step_generator(cfg, -1, salt=1)))
    found = sortofclevr.find_objects(samples)
    # INTERP_STRIPS strips of INTERP_FRAMES latents from a to b (ends included)
    gen = step_generator(cfg, -1, salt=2)
    if isinstance(trainer, models.VAETrainer):  # between the encodings of two test images
        pick = torch.randperm(len(test), generator=gen)[: 2 * INTERP_STRIPS]
        a, b = trainer.encode(test[pick].contiguous(memory_format=torch.channels_last)).chunk(2)
    else:
        a, b = trainer.latents(INTERP_STRIPS, gen), trainer.latents(INTERP_STRIPS, gen)
    t = torch.linspace(0, 1, INTERP_FRAMES).view(1, INTERP_FRAMES, 1)
    frames = trainer.sample((a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t).flatten(0, 1))
    in_frames = sortofclevr.find_objects(frames)
    metrics: dict[str, Any] = {
        **found_metrics(found, samples),
        "red_found": (~found.red.isnan().any(1)).float().mean().item(),
        "blue_found": (~found.blue.isnan().any(1)).float().mean().item(),
        "interpolation_one_each": in_frames.one_each.float().mean().item(),
        "interpolation_two_objects": in_frames.two_objects.float().mean().item(),
    }
    if isinstance(trainer, models.VAETrainer):
        metrics.update(trainer.test_elbo(test, step_generator(cfg, -1, salt=3)))
    return metrics, samples, frames, found
