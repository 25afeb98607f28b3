"""GANs and VAEs on two-object Sort-of-Clevr, conv against CoordConv (Liu et al. 2018, Sec. 5.1).

* ``gan``: the DCGAN-like baseline against the CoordConv GAN (``clevr_coordconv_in_gd``), trained as the
  official code does: z of ``z_dim`` dimensions uniform in [-1, 1], batch 16, Adam (lr 1e-4 for D, 5e-4 for G;
  betas: see the config), each iteration one discriminator step then two generator steps, the non-saturating
  loss (sigmoid cross-entropy). Samples come from the generator in eval mode (BatchNorm running statistics).
* ``vae``: a conv VAE against a CoordConv VAE of about the same size (Bernoulli decoder, the ELBO with
  ``kl_weight`` on the KL term, Adam). Samples decode z ~ N(0, I).

Measured at every evaluation, on ``eval_samples`` generated images (the paper: 1,000): the red and the blue object
are found by colour (:func:`~coordconv.repro.data.sortofclevr.find_objects`); reported are the entropies of
the red centres, the blue centres and the centre differences (8-px bins, nats; the paper's binning is not
known) beside the same numbers for the training data, the fraction of samples with exactly one red and one
blue object, the fraction with exactly two objects of any colour (a model that has not yet learnt the colours
still draws two objects), the fraction with one red and one blue object that do not touch (``two_separate``: the
colour finder alone accepts a red and a blue region fused into one blob), ``sample_spread`` (each pixel's standard
deviation over the samples, averaged: near 0 when the generator ignores its latent), and the first two fractions over
latent-interpolation frames (16 strips of 10 frames between random latents; for the VAE between the encodings of
two test images): an object that dissolves or doubles on the way shows up there. The VAE also reports its test
ELBO terms. Each evaluation also logs the means of the training steps' outputs since the previous one (GAN:
``d_loss``, ``g_loss`` and the discriminator's accuracy on the real and the fake images of its own steps,
``d_real_acc`` and ``d_fake_acc``, by the sign of its logit; VAE: ``recon`` and ``kl``), and draws 8 samples of
fixed latents: ``progress.png`` shows them, one row per evaluation.

Each step draws its batch and its latents from a generator seeded by the run's seed and the step number, so a
resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from coordconv.repro.data import sortofclevr
from coordconv.repro.experiments import check
from coordconv.repro.experiments.generative_eval import INTERP_FRAMES, evaluate, found_metrics, step_generator
from coordconv.repro.models import generative as models
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import check_finite
from coordconv.repro.runtime.plots import save_image_grid
from coordconv.repro.runtime.session import Session

__all__ = [
    "PRESETS",
    "REPORT_REQUIRES",
    "Config",
    "describe",
    "main",
    "plan",
    "preset",
    "report",
    "requires",
]

Task = Literal["gan", "vae"]
PRESETS = ("smoke", "quick", "cpu", "matched", "paper")
#: the presets of each task (``cpu`` and ``matched`` are the GAN's)
TASK_PRESETS = {"gan": PRESETS, "vae": ("smoke", "quick", "paper")}
#: the optional packages ``report`` imports (checked before ``reproduce`` starts)
REPORT_REQUIRES: tuple[str, ...] = ("numpy", "scipy", "matplotlib")
PROGRESS_SAMPLES = 8  # samples of fixed latents drawn at each evaluation (progress.png)
TEST_IMAGES = 1_000


@dataclass(frozen=True)
class Config:
    """One training run of a generative model on Sort-of-Clevr."""

    task: Task = "gan"
    """gan or vae."""
    model: Literal["conv", "coordconv"] = "coordconv"
    """The conv baseline or the CoordConv model."""
    seed: int = 0
    """Seed of the weights, the batches and the latents."""
    steps: int = 2_000
    """Training iterations (GAN: one discriminator step and g_steps generator steps each)."""
    batch_size: int = 16
    """Images per step."""
    width: float = 1.0
    """Multiplier of every hidden channel count (1: the official sizes)."""
    d_width: float | None = None
    """GAN: the discriminator's own width multiplier (None: the same as width)."""
    z_dim: int = 256
    """Latent dimensions (GAN: uniform in [-1, 1]; VAE: normal)."""
    lr: float = 1e-3
    """VAE: Adam learning rate."""
    lr_d: float = 1e-4
    """GAN: discriminator learning rate."""
    lr_g: float = 5e-4
    """GAN: generator learning rate."""
    beta1: float = 0.5
    """Adam's beta1 (DCGAN's 0.5; the official code's default: 0.9)."""
    beta2: float = 0.999
    """Adam's beta2 (PyTorch's default; the official code's default: 0.99)."""
    g_steps: int = 2
    """GAN: generator steps per discriminator step."""
    d_batchnorm: bool = True
    """GAN: BatchNorm in the discriminator (official: yes). Real and fake images go through it in separate
    batches, as in DCGAN."""
    init: Literal["torch", "official"] = "torch"
    """GAN: weight initialisation: PyTorch's defaults, or the official code's (He-normal weights in the CoordConv
    generator, Glorot-uniform elsewhere, zero biases; see models.generative.official_init)."""
    d_input: Literal["tanh", "pre_tanh"] = "tanh"
    """GAN: what the discriminator sees of a generated image: the generator's output after its final tanh, or
    before it (the official CoordConv GAN feeds its discriminator the CoordConv generator's pre-tanh output).
    Samples always pass the tanh. Applies to either model."""
    d_minibatch_std: bool = False
    """GAN: the discriminator also sees how varied each batch is (the mean over features of their standard
    deviation over the batch, Karras et al. 2018), against a generator that ignores its latent (not in the official
    code)."""
    d_spectral_norm: bool = False
    """GAN: spectral normalisation of every discriminator layer (Miyato et al. 2018; a stabiliser of the balance
    between the two networks, not in the official code)."""
    g_ema: float = 0.0
    """GAN: samples come from an exponential moving average of the generator's weights with this decay per
    iteration (0: the generator itself, as the official code; e.g. 0.999), a stabiliser of what is measured. Its
    BatchNorm statistics are recomputed from 16 batches of latents before each sampling."""
    lr_decay: float = 0.0
    """The last fraction of the run over which every learning rate falls linearly to zero (0: constant, as the
    official code; e.g. 0.5: from the run's midpoint on). A stabiliser of where a run ends, not in the paper."""
    r1: float = 0.0
    """GAN: weight gamma of the R1 penalty, gamma / 2 * E ||grad_x D(x)||^2 on real images, added to the
    discriminator's loss (Mescheder et al. 2018; 0: none, as the official code)."""
    feature_match: float = 0.0
    """GAN: weight of a feature-matching term in the generator's loss, the mean absolute difference between the
    discriminator's features (before its logit) of a batch of real images and of the generated batch, pair by pair
    (the official code's --feature_match option, weight 1 there; off in the paper's command, 0 here)."""
    kl_weight: float = 1.0
    """VAE: weight of the KL term."""
    train_images: int = 50_000
    """Training images generated (the paper: 50,000)."""
    data_seed: int = 0
    """Seed of the generated training images (test images use data_seed + 1)."""
    eval_every: int = 500
    """Evaluate and checkpoint every this many steps (and at the end)."""
    eval_samples: int = 1_000
    """Generated images per evaluation (the paper: 1,000)."""
    threads: int = 1
    """torch CPU threads (0: torch's default, which follows the machine: results then depend on it)."""

    def __post_init__(self) -> None:
        ranges = {
            ">= 1": ("steps", "batch_size", "z_dim", "g_steps", "train_images", "eval_every"),
            ">= 0": ("r1", "feature_match", "kl_weight", "threads"),
            "> 0": ("lr", "lr_d", "lr_g"),
            "in [0, 1)": ("beta1", "beta2", "g_ema"),
            "in [0, 1]": ("lr_decay",),
        }
        check(
            self,
            ranges,
            width=(0 < self.width <= 16, "in (0, 16]"),
            d_width=(self.d_width is None or 0 < self.d_width <= 16, "None or in (0, 16]"),
            eval_samples=(self.eval_samples >= 2, ">= 2"),
        )


#: the ``cpu`` preset's per-model GAN settings: each model's width and latent size, and its discriminator's input as
#: in the official code (the CoordConv GAN's D sees the generator's pre-tanh output, the conv GAN's D the image)
CPU_GAN: dict[str, dict[str, Any]] = {
    "conv": {"width": 1 / 2, "d_input": "tanh", "z_dim": 256},
    "coordconv": {"width": 1 / 8, "d_input": "pre_tanh", "z_dim": 16},
}


def preset(name: str, **fields: Any) -> Config:
    """The named preset's config of ``task`` / ``model`` (config fields), with any other ``fields`` on top.

    * ``smoke``: seconds, for tests.
    * ``quick``: a width-1/8 model and 10,000 images, minutes per run on a CPU core (GAN 3,000 iterations, VAE
      1,000 steps): far below the paper's budget, see the README. The GAN's discriminator has no BatchNorm here:
      with it, both GANs collapsed to blank or noise images within 2,000 iterations at this width (measured).
    * ``cpu`` (GAN only): the GANs on one CPU thread each, 6,000 iterations with the learning rates falling
      linearly to zero over the second half, 10,000 images, DCGAN's Adam betas, an R1 penalty, no discriminator
      BatchNorm and a width and latent size per model (``CPU_GAN``); otherwise as the official code. Each
      deviation and its measured reason: docs/reproduction/generative.md ("The cpu preset") and
      ``results/generative-cpu/DIAGNOSIS.md``.
    * ``matched`` (GAN only): ``cpu`` with the conv GAN at the CoordConv GAN's width (1/8) and latent size (16), so
      both GANs have the same discriminator (68,945 parameters; the CoordConv GAN's sees two coordinate channels
      more: 69,345) and the paper's generator ratio (conv 85,451 against CoordConv 6,211 parameters, 14x). This
      is the paper's test at CPU scale: the conv GAN is not tuned until it works. The CoordConv GAN's config is
      the ``cpu`` preset's, so its ``cpu`` runs serve here unchanged.
    * ``paper``: the official sizes and budget (GAN: 50 epochs of 50,000 images at batch 16), a GPU job.

    Raises:
        ValueError: unknown preset, task or model; ``cpu`` for the VAE.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    task = fields.get("task", Config.task)
    if task not in TASK_PRESETS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_PRESETS)}")
    if name not in TASK_PRESETS[task]:
        raise ValueError(f"the {name} preset is the GAN's; use quick for the VAE")
    gan = task == "gan"
    sizes: dict[str, Any] = {} if gan else {"z_dim": 16, "batch_size": 32}
    if name == "smoke":
        sizes |= {"width": 1 / 16, "steps": 6, "train_images": 64, "eval_every": 3, "eval_samples": 16}
    elif name == "quick":
        sizes |= {"width": 1 / 8, "train_images": 10_000, "steps": 3_000 if gan else 1_000}
        sizes |= {"d_batchnorm": False} if gan else {}
    elif name == "paper":
        sizes |= {"steps": 50 * 50_000 // 16 if gan else 50_000, "eval_every": 5_000}
    else:  # cpu, matched
        # the official code's initialisation, DCGAN's Adam betas, the same stabilisers (R1, decay) for both models
        sizes |= {"train_images": 10_000, "steps": 6_000, "lr_decay": 0.5, "eval_every": 250, "d_batchnorm": False}
        sizes |= {"init": "official", "beta1": 0.5, "beta2": 0.999, "r1": 10.0}
        sizes |= CPU_GAN.get(fields.get("model", Config.model), {})
        if name == "matched":
            # the paper's pairing: one discriminator and the conv generator at the CoordConv GAN's width and latent size
            sizes |= {key: CPU_GAN["coordconv"][key] for key in ("width", "z_dim")}
    return Config(**{**sizes, **fields})


def requires(cfg: Config) -> tuple[str, ...]:
    """The optional packages a run of ``cfg`` imports (checked before it starts: :mod:`..runtime.extras`)."""
    return ("numpy", "scipy", "matplotlib", "PIL", "safetensors")


def describe(s: dict[str, Any]) -> str:
    """A finished run in one line: valid samples and position entropies."""
    entropy = " / ".join(_fmt(s["entropy"][k]) for k in ("red", "blue", "diff"))
    return (
        f"{s['task']} {s['model']} seed {s['seed']}: {s['steps']} steps, one red + one blue in "
        f"{s['one_each']:.1%} of samples, entropy red / blue / diff {entropy}"
    )


def plan(preset_name: str, seeds: range, *, task: str) -> list[tuple[str, Config]]:
    """Both models for each seed: ``<task>/<model>-seed<k>``."""
    return [
        (f"{task}/{model}-seed{seed}", preset(preset_name, task=task, model=model, seed=seed))
        for model in ("conv", "coordconv")
        for seed in seeds
    ]


def report(out: Path, task: str) -> Path:
    """``out/<task>/report.md``: the table, object positions, samples (see :mod:`..report.generative`)."""
    from coordconv.repro.report.generative import write_report

    return write_report(out, task)


def _decay_learning_rates(cfg: Config, trainer: Any, step: int) -> None:
    """Set every optimizer's learning rate for ``step`` under ``cfg.lr_decay`` (from the step, so resume-exact)."""
    start = cfg.steps * (1 - cfg.lr_decay)
    scale = min(1.0, (cfg.steps - step) / (cfg.steps - start)) if step >= start else 1.0
    base = {"generator": cfg.lr_g, "discriminator": cfg.lr_d, "vae": cfg.lr}
    for name, optimizer in trainer.optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = base[name] * scale


def main(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one run into ``out`` and return its summary (also written to ``out/summary.json``).

    Writes, besides the run runtime's files: ``samples.png`` (64 samples), ``interpolation.png`` (16 strips) and
    ``objects.npz`` (the found red and blue centres of the final samples and their average image).

    Raises:
        RunError: ``out`` holds another run, or the run to resume is missing, different or corrupt.
    """
    import numpy as np

    desc = f"{cfg.task} {cfg.model} seed {cfg.seed}"
    session = Session.open(
        cfg, out, desc=desc, total=cfg.steps, resume=resume, overwrite=overwrite, log=log, every=30.0, unit="step"
    )
    if session.result is not None:
        return session.result
    images, _ = sortofclevr.generate(cfg.train_images, cfg.data_seed)
    test, _ = sortofclevr.generate(min(TEST_IMAGES, cfg.train_images), cfg.data_seed + 1)
    trainer = models.build_trainer(cfg)
    progress_z = trainer.latents(PROGRESS_SAMPLES, step_generator(cfg, -1, salt=4))
    with session:
        state = session.restore(modules=trainer.modules, optimizers=trainer.optimizers) or {}
        step, train_seconds = state.get("step", 0), state.get("train_seconds", 0.0)
        # PROGRESS_SAMPLES samples of fixed latents at each evaluation, uint8
        progress_rows: list[Tensor] = list(state.get("progress", []))
        session.start_at(step)
        # the step outputs (losses, D's accuracies) since the last evaluation; evaluations log their means, and
        # checkpoints are taken right after one, so a resumed run averages exactly as an uninterrupted one
        interval: list[dict[str, float]] = []
        while step < cfg.steps:
            gen = step_generator(cfg, step)
            batch = images[torch.randint(len(images), (cfg.batch_size,), generator=gen)]
            torch.manual_seed(gen.initial_seed())  # anything a module draws from the global stream
            _decay_learning_rates(cfg, trainer, step)
            start = time.perf_counter()
            losses = trainer.step(batch, gen)
            train_seconds += time.perf_counter() - start
            step += 1
            for key, value in losses.items():
                check_finite(value, f"{key} at step {step}")
            interval.append(losses)
            session.advance(1, **losses)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                metrics, *_ = evaluate(cfg, trainer, test)
                means = {key: sum(out[key] for out in interval) / len(interval) for key in interval[0]}
                interval = []
                progress_rows.append((trainer.sample(progress_z) * 255).round().to(torch.uint8))
                grid = torch.cat(progress_rows).float() / 255
                save_image_grid(grid, session.path / "progress.png", nrow=PROGRESS_SAMPLES)
                counters = {"step": step, "train_seconds": train_seconds}
                session.log({**counters, **means, **metrics})
                ent = metrics["entropy"]
                session.emit(
                    f"{desc}: step {step}/{cfg.steps} one red + one blue {metrics['one_each']:.2f}, entropy red "
                    f"{_fmt(ent['red'])} blue {_fmt(ent['blue'])} diff {_fmt(ent['diff'])} ({train_seconds:.0f} s)"
                )
                modules = {k: m.state_dict() for k, m in trainer.modules.items()}
                optimizers = {k: o.state_dict() for k, o in trainer.optimizers.items()}
                state = {"modules": modules, "optimizers": optimizers, **counters, "progress": progress_rows}
                session.checkpoint(state, last=step >= cfg.steps)

        metrics, samples, frames, found = evaluate(cfg, trainer, test)
        data_found = sortofclevr.find_objects(images[: cfg.eval_samples])
        data = images[: cfg.eval_samples].float() / 255
        save_image_grid(samples[:64], session.path / "samples.png")
        save_image_grid(frames, session.path / "interpolation.png", nrow=INTERP_FRAMES)
        arrays = {"red": found.red, "blue": found.blue, "mean_image": samples.mean(0)}
        arrays |= {"data_red": data_found.red, "data_blue": data_found.blue, "data_mean_image": data.mean(0)}
        session.save_with("objects.npz", partial(np.savez_compressed, **{k: v.numpy() for k, v in arrays.items()}))
        summary = {
            "task": cfg.task,
            "model": cfg.model,
            "seed": cfg.seed,
            "steps": step,
            "train_seconds": round(train_seconds, 2),
            "parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in trainer.modules.items()},
            **metrics,
            "data": found_metrics(data_found, data),
            "config": to_dict(cfg),
        }
        session.finish(summary, nn.ModuleDict(trainer.modules))
    return session.outcome()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
