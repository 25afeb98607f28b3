"""How ``coordconv reproduce`` should use the CPU, measured on an idle machine and on a busy one.

Two policies train the same runs:

* ``torch default``: one run after the other, each with torch's default thread count (a thread per core); what
  ``reproduce`` did before it got ``--threads`` and ``--jobs``.
* ``one thread per run``: each run on one thread, independent runs side by side in worker processes up to the
  usable CPUs (``reproduce``'s default now).

The machine is ``idle`` (nothing else runs; stop other jobs first) or ``busy``: ``--load`` other processes (default:
one per usable CPU), each a one-thread torch matrix-multiply loop, like other people's training jobs.

The runs are the main job's four (``coordconv reproduce``: classification, quick preset, seed 0, conv and
CoordConv on both splits) with the conv runs cut to ``--epochs`` epochs, so that a condition takes a minute or two.
``--full`` also times the whole main job under the default policy, idle and busy: the README's time claim.

    python benchmarks/thread_policy.py --out results/bench/thread_policy.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coordconv.bench import machine_description
from coordconv.repro.runtime.files import write_atomic

POLICIES = {"torch default": (0, 1), "one thread per run": (1, 0)}  # (threads, jobs); 0 jobs: reproduce's default
LOAD = "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nwhile True:\n    a = (a @ a).tanh()\n"


def _worker(threads: int, jobs: int, epochs: int, out: Path) -> None:
    """Train the four runs with ``threads`` per run and ``jobs`` at once (what a condition times)."""
    from coordconv.repro import reproduce
    from coordconv.repro.experiments import toy

    runs = []
    for split in ("uniform", "quadrant"):
        for model in ("conv", "coordconv"):
            cut = {"epochs": epochs} if model == "conv" else {}
            cfg = toy.preset("quick", task="classification", model=model, split=split, threads=threads, **cut)
            runs.append((out / f"{model}-{split}", cfg))
    workers = jobs or reproduce.default_jobs(threads)
    reproduce._run_jobs(runs, toy, overwrite=True, workers=workers)


def _clean_env() -> dict[str, str]:
    """This environment without thread settings, so that ``torch default`` really is torch's default."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _timed(command: list[str], load: int) -> float:
    """Wall seconds of ``command`` while ``load`` busy processes run."""
    burners = [subprocess.Popen([sys.executable, "-c", LOAD], env=_clean_env()) for _ in range(load)]
    try:
        time.sleep(2.0 if load else 0.0)  # let the load start
        started = time.perf_counter()
        subprocess.run(command, check=True, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of each conv run (default 8)")
    parser.add_argument("--load", type=int, default=None, help="busy processes (default: one per usable CPU)")
    parser.add_argument("--full", action="store_true", help="also time the whole main job, idle and busy")
    parser.add_argument("--out", default=None, help="also write the table (Markdown) to this file")
    parser.add_argument("--worker", nargs=3, type=int, metavar=("THREADS", "JOBS", "EPOCHS"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker, Path(args.dir))
        return 0
    from coordconv.repro.reproduce import usable_cpus

    load = usable_cpus() if args.load is None else args.load
    root = Path(tempfile.mkdtemp(prefix="thread_policy_"))
    lines = [
        f"machine: {machine_description()}; usable CPUs {usable_cpus()}; busy: {load} one-thread torch processes",
        f"runs: the main job's four, conv cut to {args.epochs} epochs; wall seconds, one measurement each",
        "",
        "| machine | policy | wall s | vs one thread per run |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines[:2]), flush=True)
    try:
        for machine, n in (("idle", 0), ("busy", load)):
            times = {}
            for policy, (threads, jobs) in POLICIES.items():
                worker = [sys.executable, __file__, "--worker", str(threads), str(jobs), str(args.epochs)]
                times[policy] = _timed([*worker, "--dir", str(root / "runs")], n)
                print(f"{machine}, {policy}: {times[policy]:.1f} s", flush=True)
            for policy, seconds in times.items():
                lines.append(f"| {machine} | {policy} | {seconds:.1f} | {seconds / times['one thread per run']:.2f}x |")
        if args.full:
            lines += ["", "The whole main job (`coordconv reproduce`, default policy):", ""]
            lines += ["| machine | wall s |", "|---|---|"]
            for machine, n in (("idle", 0), ("busy", load)):
                command = [sys.executable, "-m", "coordconv.cli", "reproduce", "--out", str(root / f"main-{machine}")]
                seconds = _timed(command, n)
                print(f"main job, {machine}: {seconds:.0f} s", flush=True)
                lines.append(f"| {machine} | {seconds:.0f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        command = " ".join(["python", "benchmarks/thread_policy.py", *(argv or sys.argv[1:])])
        write_atomic(Path(args.out), f"Command: `{command}`\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
