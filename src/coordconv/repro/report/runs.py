"""Finished run directories read back for the reports, and the one way the reports write mean ± sd."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from coordconv.repro.runtime.files import write_atomic
from coordconv.repro.runtime.rundir import FinishedRun, read_finished

__all__ = [
    "COLOURS",
    "MODELS",
    "comparable",
    "compare",
    "load_finished",
    "mean_sd",
    "seeds_phrase",
    "welch",
    "write_task_report",
]

MODELS = ("conv", "coordconv")
COLOURS = {"conv": "tab:red", "coordconv": "tab:blue"}


def load_finished(root: Path, pattern: str) -> list[FinishedRun]:
    """Every finished run whose ``summary.json`` matches ``root.glob(pattern)``, in path order.

    Raises:
        RunError: a run's files are damaged or not what the run wrote (the message names the file).
    """
    return [read_finished(p.parent) for p in sorted(root.glob(pattern))]


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


def comparable(a: list[float], b: list[float]) -> bool:
    """Whether two groups of per-seed values can be tested against each other: two or more values in each.

    One value has no spread to measure (its spread is unknown, not zero), so it is told apart from nothing.
    """
    return min(len(a), len(b)) >= 2


def compare(a: list[float], b: list[float], threshold: float = 2.0) -> str:
    """``higher``, ``lower`` or ``tie`` of ``a`` against ``b``: Welch's t statistic of the means beyond +-threshold.

    Groups that are not :func:`comparable` (one value on a side) give ``tie``; with two or more values in each
    but no spread in either, the means decide alone. An empty group gives ``?``.
    """
    if not a or not b:
        return "?"
    if not comparable(a, b):
        return "tie"
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    if se == 0:
        return "tie" if ma == mb else ("higher" if ma > mb else "lower")
    t = (ma - mb) / se
    return "higher" if t > threshold else "lower" if t < -threshold else "tie"


def welch(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """Welch's two-sided t-test of ``a`` against ``b`` (scipy): ``(t, p)``.

    ``None`` when neither group varies or one has fewer than two values: the test is then undefined.
    """
    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    if not comparable(a, b) or max(statistics.pstdev(a), statistics.pstdev(b)) < 1e-9:
        return None
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p)


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
