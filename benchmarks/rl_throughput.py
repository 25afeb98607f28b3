"""A2C training throughput, conv against CoordConv bodies, measured side by side in one process.

Both agents are built as ``coordconv train rl`` builds them (the preset's hyperparameters, their own
environments); they then train in alternating chunks of ``--chunk`` steps, ``--repeats`` rounds each, so that
machine noise hits all alike. Printed: median environment steps per second of each, and the median of the
per-round ratios with their range (the target: CoordConv at least 0.95 of plain). A second plain agent with
another seed is the control: agents that play differently pay differently for their episodes and resets.

    python benchmarks/rl_throughput.py --games MinAtar/Breakout MinAtar/Seaquest --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from coordconv.bench import machine_description
from coordconv.repro.experiments import rl, rl_agent
from coordconv.repro.runtime.files import write_atomic


def measure(
    game: str, *, chunk: int, repeats: int, warmup: int, variants: list[tuple[str, dict[str, Any]]]
) -> list[list[float]]:
    """Steps per second of each variant on ``game``, one value per timed round."""
    agents, envs = [], []
    for model, overrides in variants:
        cfg = rl.preset("quick", env=game, model=model, **overrides)
        env = rl_agent.make_env(cfg)
        envs.append(env)
        agents.append(rl_agent.build_agent(cfg, env))
    rates: list[list[float]] = [[] for _ in agents]
    try:
        for r in range(warmup + repeats):
            for i, agent in enumerate(agents):
                start = time.perf_counter()
                agent.learn(chunk, reset_num_timesteps=False)
                if r >= warmup:
                    rates[i].append(chunk / (time.perf_counter() - start))
    finally:
        for env in envs:
            env.close()
    return rates


def paired_ratio(ours: list[float], base: list[float]) -> str:
    """Median of the per-round ratios (rounds are adjacent in time), with their range."""
    ratios = sorted(a / b for a, b in zip(ours, base, strict=True))
    return f"{statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=[f"MinAtar/{g}" for g in rl.MINATAR_GAMES])
    parser.add_argument("--chunk", type=int, default=10_000, help="steps per agent and round (default 10000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per agent (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed chunks first (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--report", default=None, help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)
    if args.chunk < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--chunk, --repeats and --threads must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    lines = [
        f"machine: {machine_description()}, torch threads {args.threads}",
        f"{args.repeats} rounds of {args.chunk} steps per agent after {args.warmup} warm-up round(s), agents "
        "interleaved; steps/s: median over rounds; ratios: median (range) of the per-round ratios",
        "",
        "Control: a second conv agent with another seed, the spread that comes from the agents playing differently "
        "(episodes and resets cost differently), not from the network. MinAtar bodies have one convolution, so "
        "'all' equals 'first' there and is not run.",
        "",
        "| game | conv steps/s | CoordConv (first) steps/s | CoordConv / conv | CoordConv (all) / conv "
        "| control: conv seed 1 / conv |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for game in args.games:
        variants: list[tuple[str, dict[str, Any]]] = [("conv", {}), ("conv", {"seed": 1}), ("coordconv", {})]
        minatar = game.startswith("MinAtar/")
        if not minatar:
            variants.append(("coordconv", {"coord_layers": "all"}))
        rates = measure(game, chunk=args.chunk, repeats=args.repeats, warmup=args.warmup, variants=variants)
        plain, control, first = rates[:3]
        every = "-" if minatar else paired_ratio(rates[3], plain)
        row = (
            f"| {game} | {statistics.median(plain):.0f} | {statistics.median(first):.0f} | "
            f"{paired_ratio(first, plain)} | {every} | {paired_ratio(control, plain)} |"
        )
        lines.append(row)
        print(row, flush=True)
    if args.report:
        command = "python " + " ".join(["benchmarks/rl_throughput.py", *sys.argv[1:]])
        write_atomic(Path(args.report), f"Command: `{command}`\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
