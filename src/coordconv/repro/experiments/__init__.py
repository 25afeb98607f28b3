"""The experiment registry: one module per experiment, one line per ``coordconv train`` / ``reproduce`` task.

Every experiment module exports the same small surface:

* ``Config``: a frozen dataclass, one documented field per setting (the CLI is generated from it); the
  selectors (``task``, ``model``, ``split``, ``env``, ``variant``) are ordinary fields;
* ``PRESETS`` and ``preset(name, **fields) -> Config``: named settings, with any fields given on top;
* ``main(cfg, out, *, resume=False, overwrite=False, log=None) -> summary``: one run into the folder ``out``;
* ``describe(summary) -> str``: the one line ``train`` and ``reproduce`` print for a finished run;
* ``plan(preset, seeds, **options) -> [(folder, cfg), ...]``: the runs ``reproduce`` trains, folders relative
  to its ``--out``, each under the task's own folder;
* ``report(out, task) -> Path``: the task's tables and figures from the finished runs, ``out/<task>/report.md``;
* optionally ``REPRODUCE_OPTIONS``: extra ``reproduce`` options (argparse keyword arguments by flag) passed to
  ``plan``, and ``TRAIN_OPTIONS``: extra ``train`` options passed to ``main``;
* optionally ``requires(cfg) -> (module, ...)`` and ``REPORT_REQUIRES``: the optional packages (import names) a
  run of ``cfg`` and the report import; ``train`` and ``reproduce`` check them before starting and name the
  pip extra that installs what is missing (:mod:`coordconv.repro.runtime.extras`).

Adding an experiment is one module with that surface plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["REGISTRY", "Entry"]


@dataclass(frozen=True)
class Entry:
    """One task of the ``coordconv`` command.

    Args:
        name: the task's name on the command line and its folder under ``reproduce --out``.
        module: the experiment module: a module of this package by its name (``"toy"``), any other by its full
            dotted name.
        help: one line for ``--help``.
        fixed: config fields the task's name fixes (``{"task": "gan"}`` for a module that runs several tasks).
    """

    name: str
    module: str
    help: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> ModuleType:
        """The experiment module (imported on first use: heavy dependencies load only when a task runs)."""
        here = f"{__name__}.{self.module}"
        if "." not in self.module and importlib.util.find_spec(here) is not None:
            return importlib.import_module(here)
        return importlib.import_module(self.module)


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry("classification", "toy", "Not-so-Clevr: coordinates to a one-hot pixel", {"task": "classification"}),
        Entry("rendering", "toy", "Not-so-Clevr: coordinates to a square", {"task": "rendering"}),
        Entry("regression", "toy", "Not-so-Clevr: a one-hot pixel to coordinates", {"task": "regression"}),
        Entry("gan", "generative", "conv and CoordConv GANs on Sort-of-Clevr", {"task": "gan"}),
        Entry("vae", "generative", "conv and CoordConv VAEs on Sort-of-Clevr", {"task": "vae"}),
        Entry("detection", "detection", "Faster R-CNN on MNIST canvases (needs the detection extra)"),
        Entry("imagenet", "imagenet", "ResNet classification, plain or CoordConv, on DDP (torchrun)"),
        Entry("rl", "rl", "A2C on MinAtar or Atari games (needs the rl extra)"),
    )
}
