"""Rewrite every report under ``results/`` from the committed runs, as ``coordconv reproduce`` writes them.

Nothing trains: each task's ``report`` reads its finished runs (the commands that made them are in each task's
``command.txt``). ``--check`` exits 1 when a committed table or report differs from what its runs give.

    python scripts/regenerate_reports.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coordconv.repro.experiments.registry import REGISTRY
from coordconv.repro.reproduce import write_index

ROOT = Path(__file__).resolve().parent.parent
#: the output folders of the committed ``coordconv reproduce`` commands
FOLDERS = (
    "results",
    "results/toy",
    "results/generative",
    "results/generative-cpu",
    "results/detection-20ep",
    "results/minatar-5m-shared",
    "results/minatar-5m-actor",
    "results/gan-matched",
    "results/detection-official",
    "results/atari-pilot",
)


def tables(root: Path) -> dict[Path, str]:
    """Every committed table and report of a task in a reproduce folder (a folder with its ``command.txt``)."""
    return {
        p: p.read_text()
        for folder in FOLDERS
        for command in sorted((root / folder).glob("*/command.txt"))
        for p in (command.parent / "table.md", command.parent / "report.md")
        if p.exists()
    }


def regenerate(root: Path = ROOT) -> list[Path]:
    """Write each task's report (and each folder's index) from its runs; return the reports written."""
    written = []
    for folder in FOLDERS:
        out = root / folder
        for name, entry in REGISTRY.items():
            if (out / name / "command.txt").exists():
                written.append(entry.module.report(out, name))
        write_index(out)
    return written


def main(argv: list[str] | None = None) -> int:
    """Regenerate the reports; with ``--check`` exit 1 when a table changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table or report differs from its runs")
    args = parser.parse_args(argv)
    before = tables(ROOT)
    regenerate(ROOT)
    changed = [p for p, text in tables(ROOT).items() if before.get(p) != text]
    for path in changed:
        print(f"{path.relative_to(ROOT)} changed", file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
