"""The layer and whole-model benchmarks on a CUDA GPU, in one command (a few minutes), tables written to a folder.

    python benchmarks/gpu.py OUT_DIR            # everything below, about 3-5 minutes on one GPU
    python benchmarks/gpu.py OUT_DIR --no-compile   # skip the torch.compile rows (the slowest part)

Writes, each a Markdown file headed by the command, the device and the software versions:

- ``OUT_DIR/layer_cuda.md``: every case of ``coordconv bench layer``: plain convolution, our layer, the naive
  concatenating CoordConv and the floor (plain + one precomputed broadcast add), train and inference, in float32,
  AMP float16, AMP bfloat16 and float32 channels_last;
- ``OUT_DIR/separable_term_cuda.md``: the coordinate term alone, batch-1 convolution vs separable computation
  (``benchmarks/separable_term.py``), which says whether the rule that keeps the convolution on GPUs is right;
- ``OUT_DIR/model_cuda.md``: ResNet-18/50 (first conv / all convs converted) and the 3D U-Net beside their
  floors (``benchmarks/model_overhead.py``), eager in float32 and AMP bfloat16/float16 channels_last, and
  ResNet-18 (all convs) under ``torch.compile`` in float32, inference (``--compile-train``: training too).

Refuses to run (exit status 2, a message on stderr) without CUDA. Every table is written as soon as it is
measured, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The device measured; the CPU smoke test of this script's logic sets "cpu" (no GPU needed to check the plumbing).
DEVICE = "cuda"
# (label, autocast dtype or None, channels_last)
CONFIGS: list[tuple[str, str | None, bool]] = [
    ("fp32", None, False),
    ("amp-fp16", "fp16", False),
    ("amp-bf16", "bf16", False),
    ("fp32 channels_last", None, True),
]


def _header(command: str) -> list[str]:
    props = torch.cuda.get_device_properties(0)
    return [
        f"Command: `{command}`",
        "",
        f"- device: {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}, torch {torch.__version__}, Python {platform.python_version()}",
        "- medians of interleaved repeats, CUDA synchronised around each sample; cudnn.benchmark off (the default)",
        "",
    ]


def _write(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}", flush=True)


def _floor(plain: nn.Module, x: Tensor, amp: str | None) -> nn.Module:
    """The plain layer plus one precomputed broadcast add, its term made in the output's dtype and layout."""
    import copy

    from model_overhead import _autocast, _layout_of

    floor = copy.deepcopy(plain)
    with torch.no_grad(), _autocast(DEVICE, amp):
        out = plain(x)
    term = torch.randn(1, *out.shape[1:], device=out.device, dtype=out.dtype)
    term = term.contiguous(memory_format=_layout_of(out))
    floor.register_forward_hook(lambda module, inputs, output: output.add_(term))
    return floor


def _forced(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with the layers' coordinate term computed separably (the rule keeps the convolution on GPUs)."""
    from coordconv import _term

    def forced() -> None:
        _term.SEPARABLE = "separable"
        try:
            step()
        finally:
            _term.SEPARABLE = "auto"

    return forced


def layer_tables(repeats: int, cases: Sequence[Any] | None = None) -> list[str]:
    from coordconv.bench import CASES
    from model_overhead import step_fn, timed

    lines = [
        "| case | config | mode | plain ms | ours ms | naive ms | floor ms | ours / plain | naive / plain | "
        "ours / floor | ours, separable term forced / plain |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES if cases is None else cases:
        for label, amp, channels_last in CONFIGS:
            torch.manual_seed(0)
            plain, ours, naive = (m.to(DEVICE) for m in case.build())
            x = case.input().to(DEVICE)
            if channels_last or case.channels_last:
                fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
                x = x.contiguous(memory_format=fmt)
                plain, ours, naive = (m.to(memory_format=fmt) for m in (plain, ours, naive))  # type: ignore[call-overload]
            variants = {"plain": plain, "ours": ours, "naive": naive, "floor": _floor(plain, x, amp)}
            for mode in ("train", "inference"):
                fns = {k: step_fn(m, x, mode, DEVICE, amp) for k, m in variants.items()}
                fns["separable"] = _forced(step_fn(ours, x, mode, DEVICE, amp))
                samples = timed(fns, repeats, 3, DEVICE)
                ms = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in samples.items()}
                lines.append(
                    f"| {case.name} | {label} | {mode} | {ms['plain']:.3f} | {ms['ours']:.3f} | {ms['naive']:.3f} | "
                    f"{ms['floor']:.3f} | {ms['ours'] / ms['plain']:.3f} | {ms['naive'] / ms['plain']:.3f} | "
                    f"{ms['ours'] / ms['floor']:.3f} | {ms['separable'] / ms['plain']:.3f} |"
                )
                print(lines[-1], flush=True)
    return lines


def model_tables(repeats: int, compile_modes: Sequence[str], quick: bool = False) -> list[str]:
    from model_overhead import HEADER, format_row, model_cases, run

    cases = model_cases(quick)
    rows = []
    for amp, channels_last in ((None, False), ("bf16", True), ("fp16", True)):
        label = f"{amp or 'fp32'}{' channels_last' if channels_last else ''}"
        for row in run(
            cases, ["first", "all"], ["eager"], ["inference", "train"], [None], repeats, 3, DEVICE, amp,
            channels_last, log=lambda s: print(s, flush=True),
        ):  # fmt: skip
            rows.append((label, row))
    if compile_modes:
        resnet18 = [c for c in cases if c.name == "resnet18"]
        for row in run(resnet18, ["all"], ["inductor"], compile_modes, [None], repeats, 3, DEVICE):
            rows.append(("fp32", row))
    head, sep = HEADER.split("\n")
    lines = [head.replace("| model |", "| model | config |"), sep + "---|"]
    for label, row in rows:
        lines.append(format_row(row).replace(f"| {row.model} |", f"| {row.model} | {label} |", 1))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder for the tables (created if missing)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per variant (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument(
        "--compile-train",
        action="store_true",
        help="also time compiled training (three more compilations: a minute or two more)",
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            f"gpu.py: CUDA is not available (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "this script measures the GPU benchmarks only: run it on a machine with a CUDA GPU",
            file=sys.stderr,
        )
        return 2
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    out = Path(args.out_dir)
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()

    from separable_term import run as separable_run

    header = _header(command.strip())
    _write(out / "separable_term_cuda.md", [*header, *separable_run(DEVICE, torch.float32, args.repeats)])
    _write(out / "layer_cuda.md", [*header, *layer_tables(args.repeats)])
    compile_modes = [] if args.no_compile else ["inference", "train"] if args.compile_train else ["inference"]
    _write(out / "model_cuda.md", [*header, *model_tables(args.repeats, compile_modes)])
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
