"""Layer overhead benchmark: our CoordConv against the plain convolution and a naive concatenating CoordConv.

Everything is timed in one process, side by side, so that the printed ratios compare like with like on a
shared machine. ``coordconv bench layer`` and ``benchmarks/layer_overhead.py`` run :func:`main`.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from coordconv.coords import coord_grid
from coordconv.layers import COORD_TWINS

__all__ = ["CASES", "Case", "NaiveCoordConv", "main", "run"]


class NaiveCoordConv(nn.Module):
    """The way every other implementation does it: build the grid, repeat it per sample, concatenate, convolve."""

    def __init__(self, conv: nn.Module, coord_channels: int) -> None:
        super().__init__()
        self.conv = conv
        self.coord_channels = coord_channels

    def forward(self, x: Tensor) -> Tensor:
        grid = coord_grid(x.shape[2:], dtype=x.dtype, device=x.device)
        out: Tensor = self.conv(torch.cat([x, grid.unsqueeze(0).repeat(x.shape[0], *([1] * grid.dim()))], dim=1))
        return out


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    name: str
    conv: type[nn.Module]
    batch: int
    in_channels: int
    out_channels: int
    kernel_size: int
    spatial: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    channels_last: bool = False
    gated: bool = False  # the 3x3 64-channel cases that carry the <= 1.03x target

    def build(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The plain conv, our CoordConv and the naive CoordConv, all with the same arguments."""
        kwargs: dict[str, Any] = {"stride": self.stride, "padding": self.padding}
        plain = self.conv(self.in_channels, self.out_channels, self.kernel_size, **kwargs)
        ours = COORD_TWINS[self.conv](self.in_channels, self.out_channels, self.kernel_size, **kwargs)
        rank = len(self.spatial)
        inner = self.conv(self.in_channels + rank, self.out_channels, self.kernel_size, **kwargs)
        naive = NaiveCoordConv(inner, rank)
        return plain, ours, naive

    def floor(self, plain: nn.Module, x: Tensor) -> nn.Module:
        """The plain conv plus one precomputed broadcast add of a batch-1 term in its output's layout.

        What any exact CoordConv must pay at least in inference (the coordinate term differs at every output
        pixel, so it has to be added); in training its term needs no gradient, so it bounds the forward only.
        """
        floor = copy.deepcopy(plain)
        with torch.no_grad():
            out = plain(x)
        term = torch.randn(1, *out.shape[1:], dtype=out.dtype, device=out.device)
        term = term.contiguous(memory_format=_layout(out))
        floor.register_forward_hook(lambda module, inputs, output: output.add_(term))
        return floor

    def input(self) -> Tensor:
        x = torch.randn(self.batch, self.in_channels, *self.spatial)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
        return x


CASES: tuple[Case, ...] = (
    Case("conv3x3 64->64 64x64", nn.Conv2d, 32, 64, 64, 3, (64, 64), padding=1, gated=True),
    Case(
        "conv3x3 64->64 64x64 channels_last",
        nn.Conv2d,
        32,
        64,
        64,
        3,
        (64, 64),
        padding=1,
        channels_last=True,
        gated=True,
    ),
    Case("conv3x3 64->64 128x128", nn.Conv2d, 32, 64, 64, 3, (128, 128), padding=1, gated=True),
    Case(
        "conv3x3 64->64 128x128 channels_last",
        nn.Conv2d,
        32,
        64,
        64,
        3,
        (128, 128),
        padding=1,
        channels_last=True,
        gated=True,
    ),
    Case("conv1x1 2->32 64x64 channels_last (toy)", nn.Conv2d, 16, 2, 32, 1, (64, 64), channels_last=True),
    Case("conv3d 3x3x3 16->16 32^3", nn.Conv3d, 4, 16, 16, 3, (32, 32, 32), padding=1),
    Case("convT 4x4/2 64->32 32x32->64x64", nn.ConvTranspose2d, 32, 64, 32, 4, (32, 32), stride=2, padding=1),
)
QUICK_CASES: tuple[Case, ...] = (
    Case("conv3x3 16->16 32x32", nn.Conv2d, 8, 16, 16, 3, (32, 32), padding=1),
    Case("convT 4x4/2 16->8 16x16->32x32", nn.ConvTranspose2d, 8, 16, 8, 4, (16, 16), stride=2, padding=1),
)


def _seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _calls_per_sample(fns: Sequence[Callable[[], object]], min_seconds: float) -> int:
    """Enough back-to-back calls that one timed sample of the slowest variant lasts ``min_seconds``."""
    slowest = max(_seconds_per_call(fn, 1) for fn in fns)
    return max(1, min(1000, round(min_seconds / max(slowest, 1e-6))))


def _train_step(module: nn.Module, x: Tensor) -> Callable[[], None]:
    x = x.detach().requires_grad_(True)
    with torch.no_grad():
        out = module(x)
    # a dense upstream gradient in the output's layout, as a layer inside a network receives
    grad = torch.randn(out.shape).contiguous(memory_format=_layout(out))

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad)

    return step


def _layout(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _inference(module: nn.Module, x: Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            module(x)

    return step


@dataclass(frozen=True)
class Row:
    """Median seconds of one case, mode and thread count, for the three variants."""

    case: str
    mode: str
    threads: int
    plain: float
    ours: float
    naive: float
    gated: bool
    floor: float = float("nan")

    @property
    def ours_ratio(self) -> float:
        return self.ours / self.plain

    @property
    def naive_ratio(self) -> float:
        return self.naive / self.plain

    @property
    def floor_ratio(self) -> float:
        """Ours over the floor (plain conv plus one precomputed broadcast add)."""
        return self.ours / self.floor


def run(cases: Sequence[Case], threads: Sequence[int], repeats: int, warmup: int) -> list[Row]:
    """Time every case in both modes at each thread count; the three variants alternate within each repeat."""
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        for case in cases:
            torch.manual_seed(0)
            modules = case.build()
            x = case.input()
            if case.channels_last:
                fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
                first, second, third = (m.to(memory_format=fmt) for m in modules)  # type: ignore[call-overload,unused-ignore]
                modules = (first, second, third)
            variants = (*modules, case.floor(modules[0], x))
            for mode, make in (("train", _train_step), ("inference", _inference)):
                fns = [make(m, x) for m in variants]
                for fn in fns:
                    for _ in range(warmup):
                        fn()
                # Small cases repeat several calls per sample, so that timer resolution and the state left by the
                # other variants matter less; variants alternate sample by sample, so that a slow spell on a
                # shared machine hits all three alike.
                calls = _calls_per_sample(fns, min_seconds=0.02)
                samples: list[list[float]] = [[] for _ in fns]
                for _ in range(repeats):
                    for i, fn in enumerate(fns):
                        samples[i].append(_seconds_per_call(fn, calls))
                plain, ours, naive, floor = (statistics.median(s) for s in samples)
                rows.append(Row(case.name, mode, n, plain, ours, naive, case.gated, floor))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table of the rows: milliseconds and the ratios to the plain convolution."""
    lines = [
        "| case | mode | threads | plain ms | ours ms | naive ms | ours / plain | naive / plain | floor ms | "
        "ours / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.case} | {r.mode} | {r.threads} | {r.plain * 1e3:.1f} | {r.ours * 1e3:.1f} | "
            f"{r.naive * 1e3:.1f} | {r.ours_ratio:.3f} | {r.naive_ratio:.3f} | {r.floor * 1e3:.1f} | "
            f"{r.floor_ratio:.3f} |"
        )
    return "\n".join(lines)


def machine_description() -> str:
    """One line describing the machine, torch build and thread settings."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    # the CPU kernels torch dispatches to (AVX2, AVX512, ...): machines with one model name differ in them
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"{cpu} ({capability} kernels), {os.cpu_count()} logical cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options (shared by ``coordconv bench layer`` and the script)."""
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per variant; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up calls per variant")
    parser.add_argument(
        "--threads",
        type=int,
        action="append",
        default=None,
        help="a thread count to run (repeatable; default: 1 and all cores)",
    )
    parser.add_argument("--quick", action="store_true", help="small cases only (a smoke run of the benchmark)")
    parser.add_argument(
        "--case", action="append", default=None, help="run only the cases whose name contains this (repeatable)"
    )
    parser.add_argument("--out", default=None, help="also write the report (Markdown) to this file, atomically")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the benchmark for parsed ``args`` and print the table."""
    if args.repeats < 1 or args.warmup < 0:
        parser.error(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if args.threads and any(n < 1 for n in args.threads):
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.threads and max(args.threads) > (os.cpu_count() or 1):
        parser.error(f"--threads must be at most {os.cpu_count() or 1}, this machine's CPUs; got {max(args.threads)}")
    cases = QUICK_CASES if args.quick else CASES
    if args.case:
        cases = tuple(c for c in cases if any(s in c.name for s in args.case))
        if not cases:
            parser.error(f"no benchmark case matches {args.case}")
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    header = [
        f"machine: {machine_description()}",
        f"median of {args.repeats} interleaved repeats after {args.warmup} warm-up calls, float32, CPU",
    ]
    for line in header:
        print(f"# {line}", flush=True)
    rows = run(cases, threads, args.repeats, args.warmup)
    lines = [format_table(rows), ""]
    gated = [r for r in rows if r.gated and r.threads == 1]
    if gated:
        worst = max(gated, key=lambda r: r.ours_ratio)
        lines.append(
            f"Worst one-thread ratio on the 3x3 64-channel cases: {worst.ours_ratio:.3f} "
            f"({worst.case}, {worst.mode}); target <= 1.03."
        )
        worst_floor = max(gated, key=lambda r: r.floor_ratio)
        lines.append(
            f"Worst one-thread ratio to the floor (plain conv + one precomputed broadcast add) on those cases: "
            f"{worst_floor.floor_ratio:.3f} ({worst_floor.case}, {worst_floor.mode}); target <= 1.02."
        )
    slower = [r for r in rows if r.ours >= r.naive]
    lines.append(f"Rows where ours is not faster than naive: {len(slower)} of {len(rows)}.")
    report = "\n".join(lines)
    print(report)
    if args.out:
        command = f"coordconv bench layer --repeats {args.repeats} --warmup {args.warmup}"
        command += "".join(f" --threads {n}" for n in args.threads or []) + (" --quick" if args.quick else "")
        command += "".join(f" --case '{c}'" for c in args.case or []) + f" --out {args.out}"
        text = "\n".join([f"Command: `{command}`", "", *(f"- {line}" for line in header), "", report, ""])
        _write_atomic(Path(args.out), text)
    return 0


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, prog: str = "layer_overhead.py") -> int:
    """Script entry point (``benchmarks/layer_overhead.py``; ``coordconv bench layer`` as ``prog``)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv), parser)
