"""Where the layer's GPU time goes: eager against CUDA-graph replay (no host overhead), plain / ours / floor."""

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from coordconv import CoordConv2d
from model_overhead import build_variants, model_cases

DEV = "cuda" if torch.cuda.is_available() else "cpu"
if DEV == "cpu":  # the plumbing check only
    torch.set_num_threads(1)


def timed(fn, repeats=30 if DEV == "cuda" else 3, inner=10 if DEV == "cuda" else 1):
    for _ in range(5):
        fn()
    if DEV == "cuda":
        torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        s = time.perf_counter()
        for _ in range(inner):
            fn()
        if DEV == "cuda":
            torch.cuda.synchronize()
        out.append((time.perf_counter() - s) / inner * 1e3)
    return statistics.median(out)


def graphed(model, x):
    """A zero-argument callable replaying ``model(x)`` as a CUDA graph (inference)."""
    if DEV != "cuda":
        return lambda: model(x)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g), torch.no_grad():
        static_out = model(x)
    g.replay()
    torch.cuda.synchronize()
    ref = static_out.clone()
    with torch.no_grad():
        eager = model(x)
    print(f"    graph replay equals eager: {torch.allclose(ref, eager, rtol=1e-2, atol=1e-2)}", flush=True)
    return g.replay


def report(name, variants, x):
    rows = {}
    for key, m in variants.items():
        m.eval()

        def eager(m=m):
            with torch.no_grad():
                m(x)

        rows[key] = (timed(eager), timed(graphed(m, x)))
    p = rows["plain"]
    for key, (e, g) in rows.items():
        print(f"| {name} | {key} | {e:.3f} | {g:.3f} | {e / p[0]:.3f} | {g / p[1]:.3f} |", flush=True)


print("| case | variant | eager ms | graph ms | eager / plain | graph / plain |")
print("|---|---|---|---|---|---|")
torch.manual_seed(0)
for c, hw in ((64, 64), (64, 128)) if DEV == "cuda" else ((8, 8),):
    x = torch.randn(8, c, hw, hw, device=DEV)
    plain = nn.Conv2d(c, c, 3, padding=1).to(DEV)
    ours = CoordConv2d.from_conv(plain).to(DEV)
    report(f"conv3x3 {c}->{c} {hw}x{hw} b8", {"plain": plain, "ours": ours}, x)
for case in model_cases(quick=DEV != "cuda")[:2]:
    x = case.input(DEV, channels_last=False)
    variants = build_variants(case, "all", x, DEV, channels_last=False)
    report(f"{case.name} all b{case.batch}", variants, x)

if DEV == "cuda":
    # host time of one forward call of each variant: the CPU side, launches included, with the GPU not waited for
    case = model_cases(quick=False)[0]
    x = case.input(DEV, channels_last=False)
    variants = build_variants(case, "all", x, DEV, channels_last=False)
    from torch.profiler import ProfilerActivity, profile

    for key in ("plain", "ours"):
        m = variants[key].eval()
        with torch.no_grad():
            for _ in range(5):
                m(x)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    m(x)
                torch.cuda.synchronize()
        print(f"## profile {case.name} all, {key}, 5 calls", flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14), flush=True)
