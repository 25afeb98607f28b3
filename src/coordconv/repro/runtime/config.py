"""Configs are frozen dataclasses with a docstring under each field; tyro makes the command line from them.

See :mod:`coordconv.repro.commands`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SEED_LIMIT",
    "check_count",
    "check_seed",
    "complete_config",
    "describe_work",
    "to_dict",
]

#: seeds are in ``range(SEED_LIMIT)``: what NumPy's legacy seeding takes, and far from torch's 64-bit limit
#: after the experiments' arithmetic on them (``seed * 1_000_003 + step``)
SEED_LIMIT = 2**32


def check_count(value: int, what: str, low: int) -> None:
    """Check ``--threads`` (``low`` 0: torch's default) or ``--jobs`` (``low`` 1): up to this machine's CPU count.

    Raises:
        ValueError: naming the value and the allowed range.
    """
    cpus = os.cpu_count() or 1
    if not low <= value <= cpus:
        raise ValueError(
            f"invalid {what} '{value}': expected an integer from {low} to {cpus} (this machine's CPUs)"
            + (", 0 for torch's default" if low == 0 else "")
        )


def check_seed(value: int, name: str) -> None:
    """Check that the seed ``name`` is in ``range(SEED_LIMIT)``.

    Raises:
        ValueError: ``invalid seed: -1; expected a seed from 0 to 4294967295``.
    """
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"invalid {name}: {value!r}; expected a seed from 0 to {SEED_LIMIT - 1}")


def to_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-ready dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def complete_config(cls: type, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored config (its ``config.json``) with every field of ``cls`` that it lacks filled in.

    A field the run predates takes the value runs had before it: ``cls.LEGACY_DEFAULTS[name]`` where the config
    class names it there (a class attribute: the fields added with, or changed to, a default that differs from
    what earlier runs did), else the field's default. Fields the stored config has are kept as they are, those
    that ``cls`` no longer has too (:func:`~coordconv.repro.runtime.rundir.config_changes` ignores them).
    """
    legacy = getattr(cls, "LEGACY_DEFAULTS", {})
    return {**to_dict(cls()), **{k: v for k, v in legacy.items() if k not in stored}, **stored}


def describe_work(configs: list[Any]) -> str:
    """How much training ``configs`` ask for, e.g. ``"4 run(s), 2,200 epochs in all"`` (epochs and steps summed)."""
    totals: dict[str, int] = {}
    for config in configs:
        for name, unit in (("epochs", "epochs"), ("steps", "steps"), ("total_steps", "environment steps")):
            value = getattr(config, name, None)
            if isinstance(value, int):
                totals[unit] = totals.get(unit, 0) + value
    amounts = " and ".join(f"{n:,} {unit}" for unit, n in totals.items())
    return f"{len(configs)} run(s)" + (f", {amounts} in all" if amounts else "")
