"""The experiment registry: one :class:`Experiment` per ``coordconv train`` / ``reproduce`` task, imported by name.

``coordconv train classification`` runs ``REGISTRY["classification"].module.main``, that is
:func:`coordconv.repro.experiments.toy.main`: the modules are imported below, so a reader (or go-to-definition)
follows the command to its code without a string lookup. Adding an experiment is its module (the surface
described in :mod:`coordconv.repro.experiments`), one line in ``REGISTRY``, its docs page and its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from coordconv.repro.experiments import detection, generative, imagenet, rl, toy

__all__ = ["REGISTRY", "Experiment"]


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
