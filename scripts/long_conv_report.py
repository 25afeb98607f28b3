"""The conv classifier trained on the paper's schedule, beside CoordConv: the abstract's "150 times faster", measured.

Reads the finished conv runs in ``LONG/classification/conv-<split>-seed<k>/`` (``coordconv train classification
--preset paper --model conv``: 1,000 epochs, the learning rate divided by 10 every 200) and the CoordConv runs in
``QUICK/classification/coordconv-<split>-seed<k>/`` (the main job's), and writes ``LONG/classification/table.md``:
per split, conv's best and final test accuracy, its final train accuracy, the training seconds until its test
accuracy first reached 80% (or "never") and until its best, and the ratio of conv's seconds to its best to
CoordConv's median seconds to 100%. Both are training seconds on one thread of this machine, evaluation excluded.

Usage: python scripts/long_conv_report.py results/toy-paper results/toy
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from coordconv.repro.report.paper import PAPER
from coordconv.repro.report.runs import load_finished, mean_sd
from coordconv.repro.runtime.files import write_atomic
from coordconv.repro.runtime.rundir import FinishedRun

SPLITS = ("uniform", "quadrant")
THRESHOLD = 0.8  # the paper's "80% after ~4,000 s"
LATE = 200  # the last learning-rate stage (1e-6) of the paper's 1,000 epochs


# conv runs whose best test accuracy stays under this have no "time to their best" worth a ratio
NO_GENERALISATION = 0.10


def conv_numbers(run: FinishedRun) -> dict[str, Any]:
    """Best and final test accuracy, final train accuracy, seconds to 80% test and to the best, of one run."""
    epochs = [m for m in run.metrics if m.get("kind") == "epoch" and "test_accuracy" in m]
    best = max(epochs, key=lambda m: m["test_accuracy"])
    reached = next((m for m in epochs if m["test_accuracy"] >= THRESHOLD), None)
    return {
        "seed": run.summary["seed"],
        "epochs": run.summary["epochs"],
        "best_test": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "seconds_to_best": best["train_seconds"],
        "final_test": run.summary["test"]["accuracy"],
        "final_train": run.summary["train"]["accuracy"],
        "seconds_to_80": None if reached is None else reached["train_seconds"],
        "train_seconds": run.summary["train_seconds"],
        # the learning rate is 1e-6 by then, yet test accuracy swings from epoch to epoch: how far "best" is luck
        "late_test": [m["test_accuracy"] for m in epochs[-LATE:]],
    }


def table(long_root: Path, quick_root: Path) -> str:
    """The markdown table (and its notes) of the long conv runs beside the main job's CoordConv runs."""
    rows = [
        "| split | conv seeds (epochs) | paper, conv | conv best test (epoch) | conv final test | conv final train "
        f"| conv test, last {LATE} epochs | conv s to 80% test | conv s to its best "
        "| CoordConv s to 100% (median, seeds) | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        found = load_finished(long_root / "classification", f"conv-{split}-seed*/summary.json")
        conv = [conv_numbers(r) for r in found]
        if not conv:
            continue
        coord = load_finished(quick_root / "classification", f"coordconv-{split}-seed*/summary.json")
        coord_times = [r.summary["seconds_to_target"] for r in coord if r.summary["seconds_to_target"] is not None]
        coord_median = statistics.median(coord_times) if coord_times else None
        to_best = statistics.median(c["seconds_to_best"] for c in conv)
        best = ", ".join(f"{c['best_test']:.1%} ({c['best_epoch']})" for c in conv)
        to_best_each = ", ".join(f"{c['seconds_to_best']:,.0f}" for c in conv)
        to_80 = ", ".join("never" if c["seconds_to_80"] is None else f"{c['seconds_to_80']:,.0f}" for c in conv)
        late = ", ".join(mean_sd(c["late_test"], 1, scale=100, unit="%") for c in conv)
        ratio = "-" if not coord_median else f"{to_best / coord_median:,.0f}x"
        if max(c["best_test"] for c in conv) < NO_GENERALISATION:
            ratio = "- (conv never generalises)"  # a time to a best near 0% compares nothing
        coord_text = "-" if coord_median is None else f"{coord_median:.1f} ({len(coord_times)} of {len(coord)})"
        rows.append(
            f"| {split} | {len(conv)} ({'/'.join(str(c['epochs']) for c in conv)}) "
            f"| {PAPER[('classification', split, 'conv')].text} | {best} "
            f"| {mean_sd([c['final_test'] for c in conv], 1, scale=100, unit='%')} "
            f"| {mean_sd([c['final_train'] for c in conv], 1, scale=100, unit='%')} | {late} | {to_80} "
            f"| {to_best_each} | {coord_text} | {ratio} |"
        )
    notes = (
        "\n\nConv: the paper preset (1,000 epochs, batch 16, lr 0.01 divided by 10 every 200 epochs, l2 0.001, "
        "width multiplier 2, filter 3, raw (x, y) inputs: the official deconv command), one thread per run. "
        "CoordConv: the main job's runs (quick preset), one thread. Seconds are training seconds (evaluation "
        "excluded). Conv's test accuracy, last epochs: mean ± standard deviation over the epochs of each run, at "
        "the last learning rate (1e-6): the epoch-to-epoch spread shows how much of 'best' is the luck of one "
        "evaluation. Ratio: conv's median seconds to its best test accuracy over CoordConv's median seconds to 100% "
        "train and test (the paper's abstract: CoordConv about 150 times faster); not given where conv's best test "
        f"accuracy stays under {NO_GENERALISATION:.0%}, since a time to such a best measures nothing. Both sides' "
        "seconds carry the load of other jobs that shared this 2-core machine (each run's command says how), so "
        "the ratio is one of loaded runs, not of quiet ones."
    )
    return "\n".join(rows) + notes + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("long", type=Path, help="results folder of the paper-schedule conv runs")
    parser.add_argument("quick", type=Path, help="results folder of the main job (its CoordConv runs)")
    args = parser.parse_args()
    out = args.long / "classification" / "table.md"
    write_atomic(out, table(args.long, args.quick))
    print(out.read_text(), end="")


if __name__ == "__main__":
    main()
