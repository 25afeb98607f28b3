"""The experiment registry: one :class:`Experiment` per ``coordconv train`` / ``reproduce`` task, imported by name.

``coordconv train classification`` calls ``REGISTRY["classification"].train``, which runs
:func:`coordconv.repro.experiments.toy.main` on the preset's config: the modules are imported below, so a reader
(or go-to-definition) follows the command to its code without a string lookup. Adding an experiment is its
module (the surface described in :mod:`coordconv.repro.experiments`), one line in ``REGISTRY``, its docs page
and its tests.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from coordconv.repro.experiments import detection, generative, imagenet, rl, toy
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.config import describe_work
from coordconv.repro.runtime.files import RunError

__all__ = ["REGISTRY", "Experiment", "check_paper"]


@dataclass(frozen=True)
class Experiment:
    """One task of the ``coordconv`` command: its experiment module and what the optional parts default to.

    Args:
        name: the task's name on the command line and its folder under ``reproduce --out``.
        module: the experiment module (``Config``, ``PRESETS``, ``preset``, ``main``, ``describe``, ``plan``,
            ``report``; optionally ``TASK_PRESETS``, ``TrainOptions``, ``ReproduceOptions``, ``requires``,
            ``REPORT_REQUIRES`` and ``RESUME_NOTE``, which default to none).
        help: one line for ``--help``.
        fixed: config fields the task's name fixes (``{"task": "gan"}`` for a module that runs several tasks).
    """

    name: str
    module: ModuleType
    help: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def presets(self) -> tuple[str, ...]:
        """The presets this task takes: the module's ``TASK_PRESETS[task]`` if it has one, else its ``PRESETS``."""
        by_task: Mapping[str, tuple[str, ...]] = getattr(self.module, "TASK_PRESETS", {})
        return tuple(by_task.get(self.fixed.get("task", self.name), self.module.PRESETS))

    @property
    def train_options(self) -> type | None:
        """Extra ``train`` options (a dataclass, ``TrainOptions``: its fields are passed to ``main``), or ``None``."""
        return getattr(self.module, "TrainOptions", None)

    @property
    def reproduce_options(self) -> type | None:
        """Extra ``reproduce`` options (a dataclass, ``ReproduceOptions``: its fields go to ``plan``), or ``None``."""
        return getattr(self.module, "ReproduceOptions", None)

    @property
    def resume_note(self) -> str:
        """How a run of this task resumes when not by the same command plus ``--resume`` (``RESUME_NOTE``)."""
        return str(getattr(self.module, "RESUME_NOTE", ""))

    def needs(self, configs: list[Any], *, report: bool = False) -> list[str]:
        """The optional packages (import names) the runs of ``configs`` import, and the report's if ``report``."""
        requires = getattr(self.module, "requires", None)
        modules = [name for cfg in configs for name in (requires(cfg) if requires else ())]
        return modules + list(getattr(self.module, "REPORT_REQUIRES", ()) if report else ())

    def train(
        self,
        preset: str,
        options: Mapping[str, Any],
        out: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        yes: bool = False,
        **train_options: Any,
    ) -> dict[str, Any] | None:
        """``coordconv train NAME``: one run of ``preset`` with the config fields ``options`` on top, into ``out``.

        ``train_options`` are the fields of the module's ``TrainOptions``; ``yes`` starts the paper preset on a CPU
        (:func:`check_paper`). Returns the run's summary (``None`` in the other processes of a torchrun launch).

        Raises:
            ValueError: the preset or an option is invalid (the message names the value and what is allowed).
            MissingExtraError: an optional package the run needs is missing.
            RunError: the run was refused or failed (the paper preset on a CPU without ``yes``, a run already in
                ``out``, missing data, out of memory): the message says why and what to do.
        """
        cfg = self.module.preset(preset, **options, **self.fixed)
        extras.require(f"coordconv train {self.name}", self.needs([cfg]))
        if refusal := check_paper(preset, [cfg], yes, train_options.get("device")):
            raise RunError(refusal)
        try:
            summary: dict[str, Any] | None = self.module.main(
                cfg, out, resume=resume, overwrite=overwrite, **train_options
            )
        except (ImportError, FileNotFoundError, ValueError) as e:  # the run's refusals, past the config's checks
            raise RunError(str(e)) from e
        except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
            text = str(e)
            if not (isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
                raise
            first = (text.strip().splitlines() or [type(e).__name__])[0][:200]
            raise RunError(
                f"the run does not fit in memory ({first}); lower the model's size (--multiplier) or "
                f"--batch-size; its last checkpoint, if any, is kept in {out}"
            ) from e
        return summary


def check_paper(preset: str, configs: list[Any], yes: bool, device: str | None = None) -> str | None:
    """The refusal to start the ``paper`` preset's GPU-sized work on a CPU without ``yes`` (else ``None``).

    ``device`` is the runs' device (``None``: what the experiments choose, CUDA where there is one). Accepted
    paper-preset work is announced on standard error.
    """
    if preset != "paper":
        return None
    on_cpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cpu")
    work = f"preset paper: {describe_work(configs)} on {'the CPU' if on_cpu else 'CUDA'}"
    if on_cpu and not yes:
        return f"{work}; the paper preset is a GPU job: pass --yes to start it on the CPU anyway"
    print(work, file=sys.stderr)
    return None


REGISTRY: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("classification", toy, "Not-so-Clevr: coordinates to a one-hot pixel", {"task": "classification"}),
        Experiment("rendering", toy, "Not-so-Clevr: coordinates to a square", {"task": "rendering"}),
        Experiment("regression", toy, "Not-so-Clevr: a one-hot pixel to coordinates", {"task": "regression"}),
        Experiment("gan", generative, "conv and CoordConv GANs on Sort-of-Clevr", {"task": "gan"}),
        Experiment("vae", generative, "conv and CoordConv VAEs on Sort-of-Clevr", {"task": "vae"}),
        Experiment("detection", detection, "Faster R-CNN on MNIST canvases (needs the detection extra)"),
        Experiment("imagenet", imagenet, "ResNet classification, plain or CoordConv, on DDP (torchrun)"),
        Experiment("rl", rl, "A2C on MinAtar or Atari games (needs the rl extra)"),
    )
}
