"""Time to 100% test accuracy of the CoordConv classifier, over seeds, on both splits, on this CPU.

Every run is a real ``coordconv`` training run (the ``quick`` preset unless options override it) that
evaluates the test set every ``--eval-every`` steps and stops at 100%. The printed seconds are training time
(forward, backward, optimiser steps), evaluation excluded; wall time including evaluation is printed beside
it. The paper reports 10-20 s to perfect test accuracy on a GPU.

    python benchmarks/toy_convergence.py --seeds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from coordconv.bench import machine_description
from coordconv.repro.experiments import toy
from coordconv.repro.runtime.files import write_atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per split (default 10)")
    parser.add_argument("--splits", nargs="+", default=["uniform", "quadrant"], choices=["uniform", "quadrant"])
    parser.add_argument("--eval-every", type=int, default=10, help="steps between test evaluations (default 10)")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--report", default=None, help="also write the result table (Markdown) to this file")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        field = toy.Config.__dataclass_fields__.get(name)
        if field is None or not value:
            parser.error(f"--set needs FIELD=VALUE with a toy.Config field, got {item!r}")
        kind = type(getattr(toy.Config(), name))
        overrides[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="toy_convergence_"))
    lines = [
        f"machine: {machine_description()}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}",
        f"overrides of the quick preset: {overrides or 'none'}; test evaluated every {args.eval_every} steps",
        "",
        "| split | seeds at 100% test | median s to 100% (training) | min-max s | median wall s | median steps |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines[:2]), flush=True)
    for split in args.splits:
        times, walls, steps = [], [], []
        for seed in range(args.seeds):
            cfg = toy.preset(
                "quick", task="classification", model="coordconv", split=split, seed=seed, eval_every=args.eval_every,
                stop_at_target=True, **overrides,
            )  # fmt: skip
            summary = toy.main(cfg, root / f"{split}-seed{seed}", overwrite=True, log=lambda line: None)
            reached = summary["seconds_to_target"]
            print(f"{split} seed {seed}: " + (f"{reached:.1f} s" if reached is not None else "not reached"), flush=True)
            if reached is not None:
                times.append(reached)
                walls.append(summary["wall_seconds_to_target"])
                steps.append(summary["steps_to_target"])
        if times:
            lines.append(
                f"| {split} | {len(times)}/{args.seeds} | {statistics.median(times):.1f} | "
                f"{min(times):.1f}-{max(times):.1f} | {statistics.median(walls):.1f} | {statistics.median(steps):.0f} |"
            )
        else:
            lines.append(f"| {split} | 0/{args.seeds} | never | - | - | - |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.report:
        command = "python benchmarks/toy_convergence.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_atomic(Path(args.report), f"Command: `{command.strip()}`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
