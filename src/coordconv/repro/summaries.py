"""One line per finished run, for ``coordconv train`` and ``coordconv reproduce`` alike."""

from __future__ import annotations

from typing import Any

__all__ = ["describe_detection", "describe_generative", "describe_imagenet", "describe_rl", "describe_toy"]


def describe_toy(s: dict[str, Any]) -> str:
    """A coordinate-task run: its train and test metric and when it reached the target."""
    name, reached = s["metric"], s["seconds_to_target"]
    when = f"target reached after {reached:.1f} s of training" if reached is not None else "target not reached"
    return (
        f"{s['task']} {s['model']} {s['split']} seed {s['seed']}: train {name} {s['train'][name]:.4f}, "
        f"test {name} {s['test'][name]:.4f}, {when}"
    )


def describe_rl(s: dict[str, Any]) -> str:
    """An A2C run: steps, episodes, final mean return and throughput."""
    final = s["final_return"]
    return (
        f"rl {s['model']} {s['env']} seed {s['seed']}: {s['steps']} steps, {s['episodes']} episodes, final mean "
        + ("return (no episode finished)" if final is None else f"return {final:.2f}")
        + f", {s['steps_per_second']} steps/s"
    )


def describe_generative(s: dict[str, Any]) -> str:
    """A GAN or VAE run: valid samples and position entropies."""
    entropy = " / ".join("-" if s["entropy"][k] is None else f"{s['entropy'][k]:.2f}" for k in ("red", "blue", "diff"))
    return (
        f"{s['task']} {s['model']} seed {s['seed']}: {s['steps']} steps, one red + one blue in "
        f"{s['one_each']:.1%} of samples, entropy red / blue / diff {entropy}"
    )


def describe_detection(s: dict[str, Any]) -> str:
    """A detection run: proposal IoU and mAP."""
    return (
        f"detection {s['model']} seed {s['seed']}: proposal IoU {s['proposal_iou']:.3f}, mAP@0.5 {s['map_50']:.3f}, "
        f"mAP {s['map']:.3f}"
    )


def describe_imagenet(s: dict[str, Any]) -> str:
    """A classification run: top-1, top-5 and the number of processes."""
    return (
        f"imagenet {s['arch']} {s['variant']} seed {s['seed']}: top-1 {s['top1']:.4f}, top-5 {s['top5']:.4f} "
        f"({s['world_size']} process(es))"
    )
