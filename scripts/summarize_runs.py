"""Print (and optionally write) a Markdown table of the finished runs under a folder.

Each row is one run directory (any depth) with its task, model, split, seed, the fields where its config
differs from the quick preset, and its final train and test metric.

    python scripts/summarize_runs.py results/toy/ablations --out results/toy/ablations/table.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from coordconv.repro.experiments import toy
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import write_atomic


def main(argv: list[str] | None = None) -> int:
    """Summarise the runs under a folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    lines = [
        "| run | task | model | split | seed | differs from the quick preset | train | test | solved after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(args.folder.rglob("summary.json")):
        s = json.loads(path.read_text())
        preset = to_dict(toy.preset("quick", task=s["task"], model=s["model"], split=s["split"], seed=s["seed"]))
        diff = ", ".join(f"{k}={v}" for k, v in s["config"].items() if preset.get(k) != v) or "-"
        metric = s["metric"]
        solved = f"{s['seconds_to_target']:.1f} s" if s["seconds_to_target"] is not None else "not solved"
        lines.append(
            f"| {path.parent.relative_to(args.folder)} | {s['task']} | {s['model']} | {s['split']} | {s['seed']} | "
            f"{diff} | {metric} {s['train'][metric]:.4g} | {metric} {s['test'][metric]:.4g} | {solved} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        write_atomic(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
