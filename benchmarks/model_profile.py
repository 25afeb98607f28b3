"""Where a whole model's time over its floor goes: torch.profiler's self time per operator, ours beside floor.

``benchmarks/model_overhead.py`` times three variants of a model (``plain``, ``floor``: the plain model plus
one precomputed broadcast add per converted layer, ``ours``: every converted layer a CoordConv). This script
profiles ``floor`` and ``ours`` of the same build (eager mode; the same inputs, weights and thread count) and
lists the operators whose self CPU time differs most, with their call counts. Copies whose input has the shape
of a converted layer's input filters are listed on their own line: torch's and oneDNN's convolutions copy a
non-contiguous weight view (CoordConv's input filters are a slice of its one ``weight``) before using it.

    python benchmarks/model_profile.py --model resnet50 --mode inference
    python benchmarks/model_profile.py --out results/bench/model_profile.md   # every model and mode

The profiler adds its own cost to every operator call, so its totals run above the timed ones; the differences
between the two variants, operator by operator, are what it is for. Run it with one thread on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coordconv.bench import machine_description
from model_overhead import ModelCase, _converted_names, build_variants, keep_freed_memory, model_cases, step_fn

WEIGHT_COPY = "aten::copy_ (input filters)"


def self_times(fn: object, calls: int, filter_shapes: set[tuple[int, ...]]) -> dict[str, tuple[float, int]]:
    """Milliseconds of self CPU time and calls per operator, per call of ``fn``."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(calls):
            fn()  # type: ignore[operator]
    totals: dict[str, tuple[float, int]] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        key = event.key
        shapes = event.input_shapes or []
        if key == "aten::copy_" and any(tuple(s) in filter_shapes for s in shapes[:2]):
            key = WEIGHT_COPY
        ms, count = totals.get(key, (0.0, 0))
        totals[key] = (ms + event.self_cpu_time_total / 1e3 / calls, count + event.count // calls)
    return totals


def fixed_cost_ms(layers: Sequence[nn.Module], mode: str, repeats: int = 5, number: int = 300) -> float:
    """Milliseconds a call that ``layers`` cost beyond their plain twins whatever the data: Python and dispatch.

    Each layer is rebuilt with one input and one output channel (its kernel, stride, padding, dilation, bias and
    padding mode kept) and timed on a one-channel input of 8 pixels an axis against the plain torch layer of the
    same arguments (best of ``repeats`` x ``number`` calls; training: forward and backward). At that size the
    arithmetic is negligible, so the difference is what a converted layer adds per call at any size.
    """
    costs: dict[tuple[object, ...], float] = {}
    total = 0.0
    for m in layers:
        kwargs = {
            "kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding, "dilation": m.dilation,
            "bias": m.bias is not None, "padding_mode": m.padding_mode,
        }  # fmt: skip
        if m.transposed:
            kwargs["output_padding"] = m.output_padding
        key = (type(m), *kwargs.values())
        if key not in costs:
            x = torch.randn(1, 1, *[8] * len(m.kernel_size))
            pair = [type(m)._plain(1, 1, **kwargs), type(m)(1, 1, **kwargs)]  # type: ignore[operator]
            best = []
            for layer in pair:
                fn = step_fn(layer, x, mode, "cpu", None)
                best.append(min(timeit.repeat(fn, number=number, repeat=repeats)) / number)
            costs[key] = (best[1] - best[0]) * 1e3
        total += costs[key]
    return total


def profile_case(case: ModelCase, mode: str, converted: str, calls: int, warmup: int, top: int) -> list[str]:
    """Markdown lines for one model and mode: the operators with the largest ``ours - floor`` self time."""
    x = case.input("cpu", False)
    variants = build_variants(case, converted, x, "cpu", False)
    ours = variants["ours"]
    # the input filters' shapes: (out, in / groups, *kernel) of every converted layer
    filter_shapes = {
        (m.out_channels, m.in_channels // m.groups, *m.kernel_size)
        for name in _converted_names(variants["plain"], converted)
        for m in [ours.get_submodule(name)]
    }
    times = {}
    for name in ("floor", "ours"):
        fn = step_fn(variants[name], x, mode, "cpu", None)
        for _ in range(warmup):
            fn()
        times[name] = self_times(fn, calls, filter_shapes)
    floor, ours_t = times["floor"], times["ours"]
    ops = sorted(set(floor) | set(ours_t), key=lambda k: -abs(ours_t.get(k, (0, 0))[0] - floor.get(k, (0, 0))[0]))
    total = {k: sum(ms for ms, _ in t.values()) for k, t in times.items()}
    lines = [
        f"### {case.name}, {converted} converted, eager {mode} ({tuple(x.shape)}, {torch.get_num_threads()} thread(s))",
        "",
        f"Profiled self time per call: floor {total['floor']:.1f} ms, ours {total['ours']:.1f} ms "
        f"(ours - floor {total['ours'] - total['floor']:+.1f} ms, ours / floor {total['ours'] / total['floor']:.3f}).",
        "",
        "| operator | floor ms | floor calls | ours ms | ours calls | ours - floor ms |",
        "|---|---|---|---|---|---|",
    ]
    for op in ops[:top]:
        (a, na), (b, nb) = floor.get(op, (0.0, 0)), ours_t.get(op, (0.0, 0))
        lines.append(f"| `{op}` | {a:.2f} | {na} | {b:.2f} | {nb} | {b - a:+.2f} |")
    listed = sum(ours_t.get(op, (0.0, 0))[0] - floor.get(op, (0.0, 0))[0] for op in ops[:top])
    layers = [ours.get_submodule(name) for name in _converted_names(variants["plain"], converted)]
    fixed = fixed_cost_ms(layers, mode)
    lines += [
        "",
        f"The {min(top, len(ops))} operators listed account for {listed:+.1f} ms of the difference. Per call, the "
        f"{len(layers)} converted layers cost {fixed:.2f} ms beyond their plain twins whatever the data "
        f"({1e3 * fixed / len(layers):.0f} us a layer, timed alone at one channel: Python and dispatch, most of it "
        "outside the operators' self time).",
        "",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model_profile.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=["resnet18", "resnet50", "unet3d"], help="default: all")
    parser.add_argument("--mode", action="append", choices=["inference", "train"], help="default: both")
    parser.add_argument("--converted", choices=["first", "all"], default="all", help="default: all")
    parser.add_argument("--calls", type=int, default=3, help="profiled calls per variant (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="unprofiled calls per variant first (default 2)")
    parser.add_argument("--top", type=int, default=12, help="operators listed per case (default 12)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--out", default=None, help="also write the report (Markdown) to this file")
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    if args.calls < 1 or args.warmup < 0 or args.top < 1 or not 1 <= args.threads <= cpus:
        parser.error(
            f"need --calls >= 1, --warmup >= 0, --top >= 1 and --threads in 1..{cpus}; got {args.calls}, "
            f"{args.warmup}, {args.top}, {args.threads}"
        )
    torch.set_num_threads(args.threads)
    header = (
        f"machine: {machine_description()}; {args.calls} profiled calls per variant after {args.warmup} warm-up; "
        f"{keep_freed_memory()}"
    )
    lines = [f"- {header}", ""]
    print(f"# {header}", flush=True)
    for case in [c for c in model_cases(False) if c.name in (args.model or ["resnet18", "resnet50", "unet3d"])]:
        for mode in args.mode or ["inference", "train"]:
            case_lines = profile_case(case, mode, args.converted, args.calls, args.warmup, args.top)
            print("\n".join(case_lines), flush=True)
            lines += case_lines
    if args.out:
        command = "python benchmarks/model_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join([f"Command: `{command.strip()}`", "", *lines]))
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
