"""Where the layer's GPU time goes: eager calls against CUDA-graph replay (no host work), plain / floor / ours.

Each case's variants (``plain``, ``floor``, ``ours``: see ``model_overhead.py``), eager and replayed as a CUDA graph,
are timed interleaved in one loop (``model_overhead.timed``); the ratios are medians of the per-repeat ratios. The
last column says whether the graph's replay gives what the eager call gives (to 1e-2: TF32 convolutions), so a
fast graph that computes something else would show. Without CUDA the script runs its plumbing on the CPU (graphs
are then the eager calls) and prints a smaller table.

    python benchmarks/gpu_graphs.py [--profile]     # --profile: torch.profiler tables of ResNet-18, every conv
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coordconv import CoordConv2d
from model_overhead import build_variants, model_cases, timed

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def graphed(model: nn.Module, x: Tensor) -> tuple[Callable[[], None], bool]:
    """A callable replaying ``model(x)`` as a CUDA graph (inference), and whether the replay equals an eager call."""
    with torch.no_grad():
        eager = model(x)
    if DEV != "cuda":
        return lambda: model(x), True
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = model(x)
    graph.replay()
    torch.cuda.synchronize()
    return graph.replay, torch.allclose(static_out, eager, rtol=1e-2, atol=1e-2)


def report(name: str, variants: dict[str, nn.Module], x: Tensor, repeats: int) -> None:
    fns: dict[str, Callable[[], None]] = {}
    equal = {}
    for key, model in variants.items():
        model.eval()

        def eager(model: nn.Module = model) -> None:
            with torch.no_grad():
                model(x)

        fns[f"{key} eager"] = eager
        fns[f"{key} graph"], equal[key] = graphed(model, x)
    samples = timed(fns, repeats=repeats, warmup=5, device=DEV)

    def ratio(a: str, b: str) -> float:
        return statistics.median(p / q for p, q in zip(samples[a], samples[b], strict=True))

    for key in variants:
        e, g = (statistics.median(samples[f"{key} {mode}"]) * 1e3 for mode in ("eager", "graph"))
        print(
            f"| {name} | {key} | {e:.3f} | {g:.3f} | {ratio(f'{key} eager', 'plain eager'):.3f} "
            f"| {ratio(f'{key} graph', 'plain graph'):.3f} | {'yes' if equal[key] else 'NO'} |",
            flush=True,
        )


def profile_resnet18() -> None:
    """torch.profiler tables of five calls of ResNet-18 (every conv converted), plain and ours."""
    from torch.profiler import ProfilerActivity, profile

    case = model_cases(quick=False)[0]
    x = case.input(DEV, channels_last=False)
    variants = build_variants(case, "all", x, DEV, channels_last=False)
    for key in ("plain", "ours"):
        model = variants[key].eval()
        with torch.no_grad():
            for _ in range(5):
                model(x)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    model(x)
                torch.cuda.synchronize()
        print(f"\n## profile {case.name} all, {key}, 5 calls\n", flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler tables (CUDA only)")
    parser.add_argument("--repeats", type=int, default=30 if DEV == "cuda" else 3, help="interleaved samples")
    args = parser.parse_args(argv)
    if DEV == "cpu":
        torch.set_num_threads(1)
    print(f"device: {torch.cuda.get_device_name() if DEV == 'cuda' else 'cpu (plumbing check only)'}, torch "
          f"{torch.__version__}; medians of {args.repeats} interleaved samples\n")  # fmt: skip
    print("| case | variant | eager ms | graph ms | eager / plain | graph / plain | graph = eager |")
    print("|---|---|---|---|---|---|---|")
    torch.manual_seed(0)
    for c, hw in ((64, 64), (64, 128)) if DEV == "cuda" else ((8, 8),):
        x = torch.randn(8, c, hw, hw, device=DEV)
        plain = nn.Conv2d(c, c, 3, padding=1).to(DEV)
        report(
            f"conv3x3 {c}->{c} {hw}x{hw} b8", {"plain": plain, "ours": CoordConv2d.from_conv(plain)}, x, args.repeats
        )
    for case in model_cases(quick=DEV != "cuda")[:2]:
        x = case.input(DEV, channels_last=False)
        variants = build_variants(case, "all", x, DEV, channels_last=False)
        report(f"{case.name} all b{case.batch}", variants, x, args.repeats)
    if args.profile and DEV == "cuda":
        profile_resnet18()
    return 0


if __name__ == "__main__":
    sys.exit(main())
