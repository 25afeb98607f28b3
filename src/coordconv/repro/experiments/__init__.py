"""The experiments, one module each; :mod:`.registry` has one line per ``coordconv train`` / ``reproduce`` task.

Every experiment module exports the same small surface:

* ``Config``: a frozen dataclass, one documented field per setting (the CLI is generated from it); the
  selectors (``task``, ``model``, ``split``, ``env``, ``variant``) are ordinary fields;
* ``PRESETS`` and ``preset(name, **fields) -> Config``: named settings, with any fields given on top;
* ``main(cfg, out, *, resume=False, overwrite=False, log=None) -> summary``: one run into the folder ``out``;
* ``describe(summary) -> str``: the one line ``train`` and ``reproduce`` print for a finished run;
* ``plan(preset, seeds, **options) -> [(folder, cfg), ...]``: the runs ``reproduce`` trains, folders relative
  to its ``--out``, each under the task's own folder;
* ``report(out, task) -> Path``: the task's tables and figures from the finished runs, ``out/<task>/report.md``;
* optionally ``ReproduceOptions``: a frozen dataclass of extra ``reproduce`` options (its fields are passed to
  ``plan``), and ``TrainOptions``: one of extra ``train`` options (passed to ``main``);
* optionally ``requires(cfg) -> (module, ...)`` and ``REPORT_REQUIRES``: the optional packages (import names) a
  run of ``cfg`` and the report import; ``train`` and ``reproduce`` check them before starting and name the
  pip extra that installs what is missing (:mod:`coordconv.repro.runtime.extras`).

Adding an experiment is one module with that surface plus one line in ``REGISTRY``
(:mod:`coordconv.repro.experiments.registry`, which imports each module by name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from coordconv.repro.runtime.config import validate

#: the ranges :func:`check` tests fields against, by the words of the error message (``expected an integer >= 1``)
RANGES: dict[str, Callable[[Any], bool]] = {
    ">= 0": lambda v: v >= 0,
    ">= 1": lambda v: v >= 1,
    "> 0": lambda v: v > 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1)": lambda v: 0 < v < 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
    "in [0, 1]": lambda v: 0 <= v <= 1,
}


def check(config: Any, ranges: Mapping[str, tuple[str, ...]], **special: tuple[bool, str]) -> None:
    """Validate a config (:func:`~coordconv.repro.runtime.config.validate`), its fields in declaration order.

    ``ranges`` names the fields under each range of :data:`RANGES` (``{">= 1": ("epochs", "batch_size")}``);
    ``special`` checks the others (``field=(valid, allowed)``).

    Raises:
        ValueError: naming the first invalid field, its value and what was expected.
    """
    checks = {
        name: (RANGES[allowed](getattr(config, name)), allowed) for allowed, names in ranges.items() for name in names
    }
    checks |= special
    validate(config, {f.name: checks[f.name] for f in dataclasses.fields(config) if f.name in checks})
