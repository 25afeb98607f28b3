"""Finished run directories, read back for the reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordconv.repro.runtime.rundir import read_finished

__all__ = ["FinishedRun", "load_finished"]


@dataclass(frozen=True)
class FinishedRun:
    """A finished run's directory, its ``summary.json`` and its ``metrics.jsonl`` (empty if absent)."""

    path: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]


def load_finished(root: Path, pattern: str) -> list[FinishedRun]:
    """Every finished run whose ``summary.json`` matches ``root.glob(pattern)``, in path order.

    Raises:
        RunError: a run's files are damaged or not what the run wrote (the message names the file).
    """
    return [FinishedRun(p.parent, *read_finished(p.parent)) for p in sorted(root.glob(pattern))]
