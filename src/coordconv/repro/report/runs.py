"""Finished run directories, read back for the reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FinishedRun", "load_finished"]


@dataclass(frozen=True)
class FinishedRun:
    """A finished run's directory, its ``summary.json`` and its ``metrics.jsonl`` (empty if absent)."""

    path: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]


def load_finished(root: Path, pattern: str) -> list[FinishedRun]:
    """Every finished run whose ``summary.json`` matches ``root.glob(pattern)``, in path order."""
    runs = []
    for summary_path in sorted(root.glob(pattern)):
        metrics_path = summary_path.parent / "metrics.jsonl"
        metrics = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
        runs.append(FinishedRun(summary_path.parent, json.loads(summary_path.read_text()), metrics))
    return runs
