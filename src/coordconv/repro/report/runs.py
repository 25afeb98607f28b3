"""Finished run directories read back for the reports, and the one way the reports write mean ± sd."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coordconv.repro.runtime.files import write_atomic
from coordconv.repro.runtime.rundir import FinishedRun, read_finished

__all__ = [
    "COLOURS",
    "MODELS",
    "NAMES",
    "by_model",
    "load_finished",
    "mean_sd",
    "seeds",
    "seeds_phrase",
    "table",
    "write_task_report",
]

MODELS = ("conv", "coordconv")
NAMES = {"conv": "conv", "coordconv": "CoordConv"}
COLOURS = {"conv": "tab:red", "coordconv": "tab:blue"}


def load_finished(
    root: Path, pattern: str = "*/summary.json", *, order: tuple[str, ...] = (), task: str | None = None
) -> list[FinishedRun]:
    """Every finished run whose ``summary.json`` matches ``root.glob(pattern)``, in path order.

    ``order``: summary keys to sort by instead (``("model", "seed")``, say); ``task``: only the runs of that task
    (runs of another kept in the folder are not the report's).

    Raises:
        RunError: a run's files are damaged or not what the run wrote (the message names the file).
    """
    runs = [read_finished(p.parent) for p in sorted(root.glob(pattern))]
    runs = [r for r in runs if task is None or r.summary.get("task") == task]
    return sorted(runs, key=lambda r: [r.summary[k] for k in order])


def by_model(runs: Iterable[FinishedRun], models: Iterable[str] = MODELS, **where: Any) -> dict[str, list[FinishedRun]]:
    """The runs of each of ``models`` (in that order) whose summary holds ``where``'s values (``split="uniform"``)."""
    runs = [r for r in runs if all(r.summary[k] == v for k, v in where.items())]
    return {m: [r for r in runs if r.summary["model"] == m] for m in models}


def table(header: str, rows: Iterable[str], *notes: str) -> str:
    """A Markdown table, then ``notes`` (a paragraph each): ``header`` and each row are cells joined by `` | ``."""
    lines = [f"| {header} |", "|" + "---|" * (header.count(" | ") + 1), *(f"| {row} |" for row in rows)]
    return "\n".join(lines + [line for note in notes for line in ("", note)])


def mean_sd(
    values: Iterable[float | None], digits: int = 2, *, scale: float = 1.0, unit: str = "", missing: str = ""
) -> str:
    """``mean ± sd`` (sample standard deviation) of the values that exist, scaled, with ``unit`` after both.

    One value prints alone; none prints ``-``. ``missing``: a note for the runs without a value, e.g.
    ``"none found"`` gives ``"3.10 ± 0.20 (1 run: none found)"``.
    """
    values = list(values)
    present = [v * scale for v in values if v is not None and not math.isnan(v)]
    if not present:
        return "-"
    text = f"{statistics.fmean(present):.{digits}f}"
    if len(present) > 1:
        text += f" ± {statistics.stdev(present):.{digits}f}"
    text += unit
    absent = len(values) - len(present)
    if missing and absent:
        text += f" ({absent} run{'s' if absent > 1 else ''}: {missing})"
    return text


def seeds(count: int) -> str:
    """``1 seed`` / ``3 seeds``."""
    return f"{count} seed{'' if count == 1 else 's'}"


def seeds_phrase(count: int, total: int) -> str:
    """``in every seed`` / ``in no seed`` / ``in 3 of 10 seeds``: how many of ``total`` runs did something."""
    if total and count == total:
        return "in every seed" if total > 1 else "in its one seed"
    if count == 0:
        return "in no seed"
    return f"in {count} of {total} seeds"


def write_task_report(
    folder: Path, title: str, table: str, lines: Iterable[str], intro: str = "", *, finding: str
) -> Path:
    """Write a task's ``table.md`` and ``report.md`` in ``folder``; print the table; return the report's path.

    ``table.md`` holds the commands (``folder/command.txt``, one a line) and ``table``; ``report.md`` the
    ``title``, the ``finding`` (one plain sentence, computed from the runs, saying what the result means), the
    ``intro``, the same table, then ``lines`` (figures, usually). ``finding.md`` holds the finding alone, for
    the README.
    """
    recorded = (folder / "command.txt").read_text(errors="replace").splitlines()
    commands = [f"`{line.strip()}`" for line in recorded if line.strip()] or ["not recorded"]
    said = f"Command: {commands[0]}" if len(commands) == 1 else "Commands, in order: " + "; ".join(commands)
    table = f"{said}\n\n{table}"
    write_atomic(folder / "table.md", table + "\n")
    write_atomic(folder / "finding.md", finding + "\n")
    path = folder / "report.md"
    write_atomic(
        path,
        "\n".join([f"# {title}", "", finding, "", *([intro, ""] if intro else []), table, "", *lines]).rstrip() + "\n",
    )
    print(f"\n{folder.name}\n{table}")
    return path
