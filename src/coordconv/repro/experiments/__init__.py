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
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin

from coordconv.repro.runtime.config import check_seed

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
    """Check a config's fields, raising on the first invalid one.

    Every float field must be finite and every seed (``seed``, ``*_seed``) in ``range(SEED_LIMIT)``; then, in
    declaration order, the fields ``ranges`` names under each range of :data:`RANGES`
    (``{">= 1": ("epochs", "batch_size")}``) and those ``special`` checks (``field=(valid, allowed)``); then every
    ``Literal`` field. (The thread count is checked where the run starts:
    :func:`coordconv.repro.runtime.seeding.set_threads`.) The message reads ``invalid lr: -0.1; expected a finite
    number > 0``.

    Raises:
        ValueError: naming the first invalid field, its value and what was expected.
    """
    hints = typing.get_type_hints(type(config))
    fields = [(f.name, getattr(config, f.name), hints[f.name]) for f in dataclasses.fields(config)]
    checks = {
        name: (RANGES[allowed](getattr(config, name)), allowed) for allowed, names in ranges.items() for name in names
    } | special
    for name, value, hint in fields:
        if hint is float and not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"invalid {name}: {value!r}; expected a finite number")
        if (name == "seed" or name.endswith("_seed")) and hint is int:
            check_seed(value, name)
    for name, value, hint in fields:
        ok, allowed = checks.get(name, (True, ""))
        if not ok:
            kind = "a finite number " if hint is float else "an integer " if hint is int else ""
            raise ValueError(f"invalid {name}: {value!r}; expected {kind}{allowed}")
    for name, value, hint in fields:
        if get_origin(hint) is Literal and value not in get_args(hint):
            raise ValueError(f"invalid {name}: {value!r}; expected one of {get_args(hint)}")
