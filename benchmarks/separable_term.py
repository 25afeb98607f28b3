"""Which computation of the coordinate term pays: the batch-1 convolution of the grid or the separable one?

For the linear encoding the layers compute the coordinate term (batch size 1, bias included, in the layout of
the layer's output) either as a convolution of the coordinate grid or axis by axis (``coordconv._term``,
``_separable_term``); ``_separable`` chooses. This benchmark times both for layers of common shapes,
interleaved, in one process, and prints which one the rule chooses and how that compares with the faster one.

    python benchmarks/separable_term.py --threads 1
    python benchmarks/separable_term.py --device cuda      # see benchmarks/gpu.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from coordconv import _term
from coordconv.bench import machine_description
from coordconv.layers import CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose2d, CoordConvTranspose3d

# (name, layer factory, spatial size, channels_last)
CASES: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], bool]] = [
    ("conv1d k5 64->64 L=1000", lambda: CoordConv1d(64, 64, 5, padding=2), (1000,), False),
    ("conv3x3 512->512 7x7", lambda: CoordConv2d(512, 512, 3, padding=1), (7, 7), False),
    ("conv3x3 64->64 16x16", lambda: CoordConv2d(64, 64, 3, padding=1), (16, 16), False),
    ("conv3x3 64->64 64x64", lambda: CoordConv2d(64, 64, 3, padding=1), (64, 64), False),
    ("conv3x3 64->64 64x64 channels_last", lambda: CoordConv2d(64, 64, 3, padding=1), (64, 64), True),
    ("conv3x3 64->64 128x128", lambda: CoordConv2d(64, 64, 3, padding=1), (128, 128), False),
    ("conv3x3 64->64 128x128 channels_last", lambda: CoordConv2d(64, 64, 3, padding=1), (128, 128), True),
    ("conv1x1 2->32 64x64 channels_last (toy)", lambda: CoordConv2d(2, 32, 1), (64, 64), True),
    ("conv1x1 256->1024 14x14", lambda: CoordConv2d(256, 1024, 1), (14, 14), False),
    ("conv7x7/2 3->64 224x224 (ResNet stem)", lambda: CoordConv2d(3, 64, 7, 2, 3), (224, 224), False),
    ("convT 4x4/2 64->32 32x32", lambda: CoordConvTranspose2d(64, 32, 4, 2, 1), (32, 32), False),
    ("conv3d 3x3x3 16->16 32^3", lambda: CoordConv3d(16, 16, 3, padding=1), (32, 32, 32), False),
    ("convT3d 2x2x2/2 64->32 16^3", lambda: CoordConvTranspose3d(64, 32, 2, 2), (16, 16, 16), False),
]


def term_fn(layer: nn.Module, x: Tensor, path: str) -> Callable[[], Tensor]:
    """The layer's coordinate term for ``x``'s grid, computed the way ``path`` names."""
    weight = layer.coord_weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    transposed = layer.transposed
    fmt = _term._memory_format(x)

    def separable() -> Tensor:
        return _term._separable_term(
            x, weight, bias, layer.order, layer.stride, layer.padding, layer.dilation, layer.padding_mode,
            None if transposed else layer._reversed_padding_repeated_twice,
            layer.output_padding if transposed else None, fmt != torch.contiguous_format,
        ).contiguous(memory_format=fmt)  # fmt: skip

    def convolution() -> Tensor:
        rank = x.dim() - 2
        grid = _term.grid_for(
            x, layer._grid_encoding, layer.order, _term._grid_layout(x, layer.kernel_size, transposed)
        )
        if transposed:
            out = _term._CONV_TRANSPOSE[rank](
                grid, weight, bias, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation
            )
        else:
            out = _term._CONV[rank](grid, weight, bias, layer.stride, layer.padding, layer.dilation, 1)
        return out.contiguous(memory_format=fmt)

    return separable if path == "separable" else convolution


def timed(fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds per call, interleaved samples of about 10 ms each."""
    calls = {}
    for name, fn in fns.items():
        fn()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        calls[name] = max(1, min(1000, round(0.01 / max(time.perf_counter() - start, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def run(device: str, dtype: torch.dtype, repeats: int) -> list[str]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = [
        "| layer | grid | convolution ms | separable ms | chosen | chosen / best |",
        "|---|---|---|---|---|---|",
    ]
    for name, make, spatial, channels_last in CASES:
        torch.manual_seed(0)
        layer = make().to(device=device, dtype=dtype)
        x = torch.empty(1, layer.in_channels, *spatial, device=device, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ms = {
                k: v * 1e3
                for k, v in timed(
                    {p: term_fn(layer, x, p) for p in ("convolution", "separable")}, repeats, sync
                ).items()
            }
        chosen = (
            "separable"
            if _term._separable(x, layer._grid_encoding, layer.transposed, layer.kernel_size)
            else "convolution"
        )
        grid = "x".join(map(str, spatial))
        rows.append(
            f"| {name} | {grid} | {ms['convolution']:.3f} | {ms['separable']:.3f} | {chosen} | "
            f"{ms[chosen] / min(ms.values()):.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="separable_term.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved samples per path (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats and --threads must be >= 1, got {args.repeats} and {args.threads}")
    torch.set_num_threads(args.threads)
    print(f"# machine: {machine_description()}; device {args.device}, {args.dtype}, {args.threads} thread(s)")
    print(f"# median of {args.repeats} interleaved samples per path; the term alone (batch 1), inference mode")
    rows = run(args.device, getattr(torch, args.dtype), args.repeats)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
