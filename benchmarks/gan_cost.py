"""Cost of one GAN training iteration (one D step, two G steps, batch 16) per model and width, on the CPU.

Each configuration is built as ``coordconv train gan --preset cpu`` builds it, with ``--widths`` overriding the
width; it trains ``--warmup`` iterations untimed and then ``--iterations`` timed ones, one at a time. Printed: the
median seconds per iteration, the parameters of G and D, and the floating-point operations of one iteration
(counted with ``torch.utils.flop_counter``: convolutions and matrix products, forward and backward), from which
the ``paper`` preset's budget on an accelerator can be estimated (``--gpu-tflops``: the sustained rate assumed).

    PYTHONPATH=src python benchmarks/gan_cost.py --threads 1 --widths 0.125 0.25 0.5 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from coordconv.repro.data import sortofclevr
from coordconv.repro.experiments import generative
from coordconv.repro.models.generative import GANTrainer


class FlopCount(TorchDispatchMode):
    """FLOPs of the operations run inside it, by ``torch.utils.flop_counter``'s formulas.

    ``FlopCounterMode`` itself cannot count an iteration with the R1 penalty: its module tracker's hooks fail
    inside the double backward of ``torch.autograd.grad(..., create_graph=True)``; this mode tracks no modules.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def measure(model: str, width: float, *, iterations: int, warmup: int) -> dict[str, float]:
    """Median seconds per iteration, FLOPs per iteration and parameter counts of one configuration."""
    cfg = generative.preset("cpu", task="gan", model=model, width=width)
    trainer = GANTrainer(cfg)
    images, _ = sortofclevr.generate(64, seed=0)
    gen = torch.Generator().manual_seed(0)

    def batch() -> torch.Tensor:
        return images[torch.randint(len(images), (cfg.batch_size,), generator=gen)]

    for _ in range(warmup):
        trainer.step(batch(), gen)
    with FlopCount() as counter:
        trainer.step(batch(), gen)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        trainer.step(batch(), gen)
        times.append(time.perf_counter() - start)
    return {
        "seconds": statistics.median(times),
        "flops": float(counter.total),
        "g_params": sum(p.numel() for p in trainer.g.parameters()),
        "d_params": sum(p.numel() for p in trainer.d.parameters()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--models", nargs="+", default=["conv", "coordconv"])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument(
        "--gpu-tflops", type=float, default=50.0, help="sustained accelerator TFLOP/s assumed (default: 50)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    paper_iterations = generative.preset("paper", task="gan", model="conv").steps
    print(f"torch {torch.__version__}, {args.threads} thread(s); paper preset: {paper_iterations:,} iterations")
    print("| model | width | G params | D params | GFLOP / iteration | s / iteration (CPU) | paper budget at this "
          f"cost (CPU h) | paper budget at {args.gpu_tflops:g} TFLOP/s (GPU h) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for width in args.widths:
        for model in args.models:
            m = measure(model, width, iterations=args.iterations, warmup=args.warmup)
            gpu_hours = m["flops"] * paper_iterations / (args.gpu_tflops * 1e12) / 3600
            print(
                f"| {model} | {width:g} | {m['g_params']:,.0f} | {m['d_params']:,.0f} | {m['flops'] / 1e9:.2f} | "
                f"{m['seconds']:.3f} | {m['seconds'] * paper_iterations / 3600:.0f} | {gpu_hours:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
