"""A2C training throughput, conv against CoordConv bodies, measured side by side in one process.

Both agents are built as ``coordconv train rl`` builds them (the preset's hyperparameters, their own
environments); they then train in alternating chunks of ``--chunk`` steps, ``--repeats`` times each, so that
machine noise hits both alike. Printed: median environment steps per second of each and their ratio (the
target: CoordConv at least 0.95 of plain).

    python benchmarks/rl_throughput.py --games MinAtar/Breakout MinAtar/Seaquest --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from coordconv.bench import machine_description
from coordconv.repro.experiments import rl
from coordconv.repro.runtime.rundir import write_atomic


def measure(
    game: str, *, chunk: int, repeats: int, warmup: int, variants: list[tuple[str, dict[str, str]]]
) -> list[float]:
    """Median steps per second of each variant on ``game``."""
    agents, envs = [], []
    for model, overrides in variants:
        cfg = rl.preset("quick", game, model, **overrides)
        env = rl.make_env(cfg)
        envs.append(env)
        agents.append(rl.build_agent(cfg, env))
    times: list[list[float]] = [[] for _ in agents]
    try:
        for r in range(warmup + repeats):
            for i, agent in enumerate(agents):
                start = time.perf_counter()
                agent.learn(chunk, reset_num_timesteps=False)
                if r >= warmup:
                    times[i].append(chunk / (time.perf_counter() - start))
    finally:
        for env in envs:
            env.close()
    return [statistics.median(t) for t in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=[f"MinAtar/{g}" for g in rl.MINATAR_GAMES])
    parser.add_argument("--chunk", type=int, default=20_000, help="steps per timed chunk (default 20000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per agent (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed chunks first (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--report", default=None, help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)
    if args.chunk < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--chunk, --repeats and --threads must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    variants = [("conv", {}), ("coordconv", {}), ("coordconv", {"coord_layers": "all"})]
    lines = [
        f"machine: {machine_description()}, torch threads {args.threads}",
        f"median of {args.repeats} interleaved chunks of {args.chunk} steps after {args.warmup} warm-up chunk(s)",
        "",
        "| game | conv steps/s | CoordConv (first) steps/s | ratio | CoordConv (all) steps/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for game in args.games:
        plain, first, every = measure(
            game, chunk=args.chunk, repeats=args.repeats, warmup=args.warmup, variants=variants
        )
        row = f"| {game} | {plain:.0f} | {first:.0f} | {first / plain:.3f} | {every:.0f} | {every / plain:.3f} |"
        lines.append(row)
        print(row, flush=True)
    if args.report:
        command = "python " + " ".join(["benchmarks/rl_throughput.py", *sys.argv[1:]])
        write_atomic(Path(args.report), f"Command: `{command}`\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
