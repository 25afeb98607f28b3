"""Why some CoordConv regressor seeds fail: where the global max-pool's argmax lands at initialisation.

The CoordConv regressor (one-hot map -> (x, y)) is linear up to a global max-pool over its two 64x64 output maps.
Each output map is a field that is linear in the coordinates (from the coordinate channels) plus a small bump
around the hot pixel (from the one-hot input, through a 5x5 receptive field). The max-pool passes gradient only
to its argmax: where the argmax lands away from the hot pixel (at a corner of the linear field) no gradient
reaches the weights that read the one-hot input. This script measures, for each committed run, the share of
training images whose argmax lies within ``--radius`` pixels of the hot pixel at initialisation, per output
channel, beside the run's outcome.

The initial model is the one the run trained: the script calls the training entry point with the run's config
and captures the model as it is built (after the run's seeding and data loading), then stops.

Usage: python scripts/regression_init.py results/toy --out results/toy/regression/init.md
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from torch import nn

from coordconv.repro.experiments import toy, toy_tasks
from coordconv.repro.report.runs import load_finished
from coordconv.repro.runtime.files import write_atomic


class _Built(Exception):
    """Raised by the capturing ``build_model`` to stop the run once its initial model exists."""


def initial_model(cfg: toy.Config) -> nn.Module:
    """The model exactly as ``toy.main`` builds it for ``cfg``: seeded by the run's session, before any step."""
    captured: list[nn.Module] = []
    build = toy.build_model

    def capture(c: toy.Config) -> nn.Module:
        captured.append(copy.deepcopy(build(c)))
        raise _Built

    toy.build_model = capture  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            toy.main(cfg, Path(tmp) / "run", log=lambda _: None)
    except _Built:
        pass
    finally:
        toy.build_model = build
    return captured[0]


@torch.no_grad()
def near_share(model: nn.Module, cfg: toy.Config, radius: int) -> list[float]:
    """Per output channel, the share of training images whose pre-pool argmax lies near the hot pixel.

    Near: within ``radius`` pixels on both axes (Chebyshev distance).
    """
    data = toy_tasks.load_data(cfg)
    body: nn.Module = model.net[:-2]  # type: ignore[index,assignment]  # everything before the global max-pool and the flatten
    maps = body(data.train_x)  # (N, 2, 64, 64)
    n, c, h, w = maps.shape
    flat = maps.reshape(n, c, h * w).argmax(-1)
    rows, cols = flat // w, flat % w
    x, y = data.train_xy[:, 0:1], data.train_xy[:, 1:2]
    near = ((cols - x).abs() <= radius) & ((rows - y).abs() <= radius)
    return [float(v) for v in near.float().mean(0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the results folder holding regression/coordconv-*/")
    parser.add_argument("--radius", type=int, default=2, help="pixels around the hot pixel that count as near")
    parser.add_argument("--out", type=Path, help="write the Markdown table here as well")
    args = parser.parse_args()
    lines = [
        f"| split | seed | argmax near the hot pixel at init (x channel, y channel; within {args.radius} px) "
        "| solved | final test error |",
        "|---|---|---|---|---|",
    ]
    runs = load_finished(args.results / "regression", "coordconv-*-seed*/summary.json")
    counts = {(dead, solved): 0 for dead in (True, False) for solved in (True, False)}
    for run in sorted(runs, key=lambda r: (r.summary["split"], r.summary["seed"])):
        config = json.loads((run.path / "config.json").read_text())["config"]
        cfg = toy.Config(**config)
        shares = near_share(initial_model(cfg), cfg, args.radius)
        solved = run.summary["seconds_to_target"] is not None
        counts[(max(shares) == 0, solved)] += 1
        lines.append(
            f"| {cfg.split} | {cfg.seed} | {shares[0]:.1%}, {shares[1]:.1%} | {'yes' if solved else 'no'} "
            f"| {run.summary['test']['error_px']:.2f} px |"
        )
    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    table = [[counts[(dead, False)], counts[(dead, True)]] for dead in (True, False)]
    p = stats.fisher_exact(table).pvalue
    lines += [
        "",
        f"Seeds with no argmax near the hot pixel in either channel at init: {sum(table[0])}, of which "
        f"{table[0][0]} failed; seeds with some: {sum(table[1])}, of which {table[1][0]} failed (Fisher's exact "
        f"test, two-sided: p = {p:.4f}).",
        "",
        f"Command: `python scripts/regression_init.py {args.results}"
        + (f" --out {args.out}`" if args.out else "`")
        + ". Each run's initial model is rebuilt through the training entry point with the run's config (its "
        "seeding and data loading), then its pre-pool output maps are computed on the training images.",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        write_atomic(args.out, text)
    print(text, end="")


if __name__ == "__main__":
    main()
