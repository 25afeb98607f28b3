"""Does each speed special case of the layers still pay? Each one against the plain alternative, side by side.

``coordconv._term`` keeps two layout choices and one fused call; this benchmark times each against what it
replaces, interleaved, in one process, one thread by default:

1. the batch-1 coordinate grid's layout: contiguous vs channels_last, for the batch-1 convolution that every
   call of a 2D layer now runs (``_grid_layout``: channels_last unless a 3x3 kernel on a small grid);
2. the training add of the coordinate term into a channels_last output: autograd's in-place add, an add of
   permuted views (the layers used it for small outputs until it stopped paying) and the custom
   ``_AddBatchTerm`` the layers use, forward and backward;
3. inference of a large contiguous float32 output: oneDNN's convolution with the coordinate term added as a
   binary post-op (``_term.fused_forward``, taken from ``_term._FUSED_MIN_NUMEL`` output elements on) against
   the convolution followed by the in-place add; and the same for channels_last outputs, where the layers
   never take the fused call.

    python benchmarks/layer_special_cases.py --threads 1 --report results/bench/layer_special_cases.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from coordconv import _term
from coordconv.bench import machine_description
from coordconv.coords import coord_grid
from coordconv.repro.runtime.files import write_atomic


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds of about 20 ms each."""
    calls = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, int(0.02 / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def grid_layouts(repeats: int) -> list[str]:
    rows = [
        "| kernel | grid | out channels | contiguous ms | channels_last ms | chosen | chosen / best |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in (1, 3, 5):
        for n in (16, 32, 64, 96, 128):
            cout = 64
            grid = coord_grid((n, n)).unsqueeze(0)
            weight, bias = torch.randn(cout, 2, k, k), torch.randn(cout)
            layouts = {"contiguous": grid, "channels_last": grid.contiguous(memory_format=torch.channels_last)}
            fns = {
                name: (lambda g=g, w=weight, b=bias, p=k // 2: F.conv2d(g, w, b, padding=p))
                for name, g in layouts.items()
            }
            t = timed(fns, repeats)
            chosen = "channels_last" if _term._grid_layout(torch.empty(1, 1, n, n), (k, k), False) else "contiguous"
            rows.append(
                f"| {k}x{k} | {n}x{n} | {cout} | {t['contiguous'] * 1e3:.3f} | {t['channels_last'] * 1e3:.3f} | "
                f"{chosen} | {t[chosen] / min(t.values()):.2f} |"
            )
    return rows


def training_adds(repeats: int) -> list[str]:
    rows = [
        "| output (B, C, H, W) | elements | autograd add_ ms | permuted add ms | _AddBatchTerm ms | chosen "
        "| chosen / best |",
        "|---|---|---|---|---|---|---|",
    ]
    cl = torch.channels_last
    last, first = (0, 2, 3, 1), (0, 3, 1, 2)

    def step(kind: str, out0: torch.Tensor, term0: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            leaf = out0.detach().requires_grad_(True)
            term = term0.detach().requires_grad_(True)
            out = leaf * 1.0  # a non-leaf output, as a convolution's is
            if kind == "add_":
                result = out.add_(term)
            elif kind == "permuted":
                result = (out.permute(last) + term.permute(last)).permute(first)
            else:
                result = _term._AddBatchTerm.apply(out, term)
            result.backward(grad)
            return result

        grad = torch.ones_like(out0)
        return run

    for shape in [(16, 16, 10, 10), (16, 32, 10, 10), (32, 64, 16, 16), (32, 64, 32, 32), (32, 64, 64, 64)]:
        out0 = torch.randn(shape).contiguous(memory_format=cl)
        term0 = torch.randn(1, *shape[1:]).contiguous(memory_format=cl)
        t = timed({kind: step(kind, out0, term0) for kind in ("add_", "permuted", "function")}, repeats)
        numel = out0.numel()
        chosen = "function"
        rows.append(
            f"| {shape} | {numel} | {t['add_'] * 1e3:.3f} | {t['permuted'] * 1e3:.3f} | {t['function'] * 1e3:.3f} | "
            f"{chosen} | {t[chosen] / min(t.values()):.2f} |"
        )
    return rows


def fused_inference(repeats: int) -> list[str]:
    rows = [
        "| layer | input (B, C, *S) | layout | output elements | conv + add_ ms | fused ms | chosen | chosen / best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    contiguous = [
        ("3x3 64->64", (8, 64, 32, 32)),
        ("3x3 64->64", (32, 64, 32, 32)),
        ("3x3 64->64", (8, 64, 64, 64)),
        ("3x3 64->64", (32, 64, 64, 64)),
        ("3x3 64->64", (8, 64, 128, 128)),
        ("3x3 64->64", (32, 64, 128, 128)),
        ("3x3x3 16->16", (4, 16, 32, 32, 32)),
        ("3x3x3 16->16", (4, 16, 64, 64, 64)),
    ]
    # channels_last: the layers never take the fused call (measured slower: oneDNN reorders the broadcast term)
    channels_last = [("3x3 64->64", (32, 64, 64, 64)), ("3x3 64->64", (32, 64, 128, 128))]
    cases = [(*case, False) for case in contiguous] + [(*case, True) for case in channels_last]
    for name, shape, last in cases:
        rank = len(shape) - 2
        conv = {2: F.conv2d, 3: F.conv3d}[rank]
        x = torch.randn(shape)
        weight = torch.randn(shape[1], shape[1], *([3] * rank)) * 0.05
        term = torch.randn(1, shape[1], *shape[2:])
        if last:
            x, weight, term = (t.contiguous(memory_format=torch.channels_last) for t in (x, weight, term))
        ones = [1] * rank

        def unfused(x=x, weight=weight, term=term, conv=conv) -> object:
            return conv(x, weight, None, 1, 1).add_(term)

        def fused(x=x, weight=weight, term=term, ones=ones) -> object:
            wide = term.expand(x.shape[0], *term.shape[1:])
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, wide, weight, None, ones, ones, ones, 1, "add", None, None, [], None
            )

        with torch.inference_mode():
            t = timed({"unfused": unfused, "fused": fused}, repeats)
        numel = x.numel()  # 'same' padding, stride 1: the output has the input's size
        chosen = "fused" if numel >= _term._FUSED_MIN_NUMEL and not last else "unfused"
        layout = "channels_last" if last else "contiguous"
        rows.append(
            f"| {name} | {shape} | {layout} | {numel} | {t['unfused'] * 1e3:.1f} | {t['fused'] * 1e3:.1f} | {chosen} | "
            f"{t[chosen] / min(t.values()):.3f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per variant (default: 9)")
    parser.add_argument("--report", default=None, help="also write the tables (Markdown) to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    text = "\n".join(
        [
            f"Command: `python benchmarks/layer_special_cases.py --threads {args.threads} --repeats {args.repeats}`",
            "",
            f"- machine: {machine_description()}; {args.threads} thread(s); "
            f"medians of {args.repeats} interleaved rounds",
            "",
            "Batch-1 coordinate convolution (2 coordinate channels, stride 1, 'same' padding), by grid layout:",
            "",
            *grid_layouts(args.repeats),
            "",
            "Adding the batch-1 term to a channels_last output, forward and backward:",
            "",
            *training_adds(args.repeats),
            "",
            "Inference of a float32 output: convolution then in-place add of the term, or one oneDNN call "
            "(binary add post-op):",
            "",
            *fused_inference(args.repeats),
            "",
        ]
    )
    print(text)
    if args.report:
        write_atomic(Path(args.report), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
