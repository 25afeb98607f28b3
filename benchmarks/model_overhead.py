"""Whole-model cost of CoordConv, beside its floor, measured side by side in one run.

For each model the benchmark times, interleaved in one process:

- ``plain``: the model as built (torchvision ResNet-18/50 with random weights, or a small 3D U-Net);
- ``ours``: the same model with CoordConv layers (``coordconvify``: the first convolution only, or every one);
- ``floor``: the plain model plus one broadcast add per converted layer (a batch-1 tensor of the layer's output
  shape and layout, a parameter, added to its output). Any exact implementation pays at least this: the
  coordinate term differs at every pixel, so it must be added to the output, and in training the coordinate
  filters' gradient is a convolution of the grid with the output gradient summed over the batch, so the output
  gradient must be read once and summed over the batch: the floor's backward does exactly that (the gradient of
  its added parameter) and nothing else.
  (``FloorConv`` wraps each such layer; a module rather than a hook, so that compiled models cannot share
  the plain model's graph.)

Modes: ``inference`` (forward under ``torch.inference_mode()``) and ``train`` (forward + backward of the output's
sum, gradients cleared each step). Backends: ``eager`` and ``inductor`` (``torch.compile``; each variant
compiled separately, compile time not timed). Medians of interleaved repeats; the ratios ``ours / plain``,
``floor / plain`` and ``ours / floor`` are per-run medians of the same samples.

    python benchmarks/model_overhead.py                 # the full table (slow on a small machine)
    python benchmarks/model_overhead.py --quick         # small inputs, eager only: a minute or two
    python benchmarks/model_overhead.py --device cuda --amp bf16 --channels-last   # see benchmarks/gpu.py

Run it on a quiet machine: the ratios are what matters, and a loaded machine makes them noisy. On Linux with
glibc the script first asks malloc to keep freed memory (``keep_freed_memory``; ``--system-malloc`` leaves the
defaults): with glibc's defaults, freed activations above its mmap threshold go back to the system and come back
as fresh pages, and those page faults (about 5,000 a forward of the 3D U-Net, 5-13% of its time) landed on one
variant or another from repeat to repeat. jemalloc or tcmalloc, which PyTorch's CPU tuning guide recommends for
the same reason, keep freed memory too.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from coordconv import coordconvify
from coordconv._term import _compiled_channels_last
from coordconv.bench import machine_description
from coordconv.layers import COORD_TWINS

VARIANTS = ("plain", "floor", "ours")


class UNet3d(nn.Module):
    """A small 3D U-Net (two down, two up levels, 3x3x3 convolutions, transposed 2x2x2 upsampling)."""

    def __init__(self, in_channels: int = 1, width: int = 16, out_channels: int = 2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.Conv3d(cout, cout, 3, padding=1),
                nn.ReLU(inplace=True),
            )  # fmt: skip

        w = width
        self.enc1, self.enc2, self.mid = block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w)
        self.pool = nn.MaxPool3d(2)
        self.up2, self.dec2 = nn.ConvTranspose3d(4 * w, 2 * w, 2, stride=2), block(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose3d(2 * w, w, 2, stride=2), block(2 * w, w)
        self.head = nn.Conv3d(w, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        out: Tensor = self.head(d1)
        return out


@dataclass(frozen=True)
class ModelCase:
    """One model at one input size, with the convolutions that ``first`` / ``all`` convert."""

    name: str
    build: Callable[[], nn.Module]
    batch: int
    channels: int
    spatial: tuple[int, ...]

    def input(self, device: str, channels_last: bool) -> Tensor:
        x = torch.randn(self.batch, self.channels, *self.spatial, device=device)
        return x.contiguous(memory_format=_format(x)) if channels_last else x


def _resnet(depth: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        model: nn.Module = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        return model

    return build


def model_cases(quick: bool) -> list[ModelCase]:
    if quick:
        return [
            ModelCase("resnet18", _resnet(18), 2, 3, (96, 96)),
            ModelCase("resnet50", _resnet(50), 1, 3, (96, 96)),
            ModelCase("unet3d", UNet3d, 1, 1, (16, 16, 16)),
        ]
    return [
        ModelCase("resnet18", _resnet(18), 8, 3, (224, 224)),
        ModelCase("resnet50", _resnet(50), 8, 3, (224, 224)),
        ModelCase("unet3d", UNet3d, 2, 1, (32, 32, 32)),
    ]


def _format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d


def _layout_of(t: Tensor) -> torch.memory_format:
    if t.is_contiguous():
        return torch.contiguous_format
    return _format(t) if t.dim() in (4, 5) and t.is_contiguous(memory_format=_format(t)) else torch.contiguous_format


def _converted_names(model: nn.Module, converted: str) -> list[str]:
    """The qualified names of the convolutions that ``converted`` ("first" or "all") selects."""
    names = [name for name, m in model.named_modules() if type(m) in COORD_TWINS]
    return names[:1] if converted == "first" else names


def build_variants(
    case: ModelCase, converted: str, x: Tensor, device: str, channels_last: bool, amp: str | None = None
) -> dict[str, nn.Module]:
    """``plain``, ``floor`` and ``ours`` for one case, on ``device``, all with the same weights."""
    torch.manual_seed(0)
    plain = case.build().to(device)
    if channels_last:
        plain = plain.to(memory_format=_format(x))  # type: ignore[call-overload]
    names = _converted_names(plain, converted)
    ours = coordconvify(copy.deepcopy(plain), where=names)
    with torch.no_grad():  # non-zero coordinate filters, as after training (the cost does not depend on them)
        for name in names:
            # a view of weight (these models have no grouped transposed convolution, where it is a copy)
            ours.get_submodule(name).coord_weight.normal_(0.0, 0.01)
    floor = copy.deepcopy(plain)
    outputs: dict[str, Tensor] = {}
    hooks = [
        plain.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: outputs.__setitem__(n, o.detach())  # type: ignore[misc]
        )
        for n in names
    ]
    with torch.no_grad(), _autocast(device, amp):  # the outputs' dtype and layout, as the timed calls make them
        plain(x)
    for h in hooks:
        h.remove()
    for name in names:
        out = outputs[name]
        term = torch.randn(1, *out.shape[1:], device=device, dtype=out.dtype)
        term = term.contiguous(memory_format=_layout_of(out))
        parent, _, child = name.rpartition(".")
        owner = floor.get_submodule(parent) if parent else floor
        setattr(owner, child, FloorConv(getattr(owner, child), term))
    return {"plain": plain, "floor": floor, "ours": ours}


class FloorConv(nn.Module):
    """A plain convolution plus one broadcast add of a batch-1 parameter (whose gradient sums over the batch).

    A module of its own (not a forward hook), so that ``torch.compile`` cannot reuse the plain model's compiled
    graph for the floor model: both are instances of the same model class, and the converted layers differ
    only by this type.
    """

    def __init__(self, conv: nn.Module, term: Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.term = nn.Parameter(term)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        if _compiled_channels_last(out):
            # inductor lays convolution outputs out channels_last on the CPU: add, and sum the gradient over the
            # batch, in that order, under the layers' own test (a contiguous add made the floor slower than them)
            return (out.permute(0, 2, 3, 1) + self.term.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out.add_(self.term)


def _compiled_floor(floor: nn.Module, device: str) -> nn.Module:
    """A copy of ``floor`` for ``torch.compile``: on the CPU its 2D terms channels_last, as inductor lays the outputs.

    Inductor converts every convolution to channels_last on the CPU, so the floor's add runs over permuted views
    (``FloorConv.forward``); a term kept contiguous would be read across its strides there, which the layers'
    own terms are not (made channels_last under compilation).
    """
    floor = copy.deepcopy(floor)
    if device == "cpu":
        for module in floor.modules():
            if isinstance(module, FloorConv) and module.term.dim() == 4:
                module.term.data = module.term.data.contiguous(memory_format=torch.channels_last)
    return floor


def keep_freed_memory() -> str:
    """Ask glibc's malloc to serve large blocks from its heap and never trim it; a phrase saying what was done.

    ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` and ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)``: freed memory stays mapped
    and is reused, so a timed call does not pay page faults for memory an earlier call freed. Other C libraries
    (macOS, musl) are left as they are.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "system malloc (not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    if mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 2**31 - 1):
        return "glibc malloc keeping freed memory (M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD 2^31-1)"
    return "glibc malloc defaults (mallopt refused)"


def _autocast(device: str, amp: str | None) -> contextlib.AbstractContextManager[object]:
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device, dtype={"fp16": torch.float16, "bf16": torch.bfloat16}[amp])


def step_fn(model: nn.Module, x: Tensor, mode: str, device: str, amp: str | None) -> Callable[[], None]:
    """One timed call: a forward in inference mode, or a forward and backward in training mode."""
    if mode == "inference":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), _autocast(device, amp):
                model(x)

        return infer
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def train() -> None:
        for p in params:
            p.grad = None
        with _autocast(device, amp):
            out = model(x)
        out.float().sum().backward()

    return train


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fns: dict[str, Callable[[], None]], repeats: int, warmup: int, device: str) -> dict[str, list[float]]:
    """Seconds per call of each function: ``repeats`` interleaved samples of about 50 ms each (at least one call)."""
    calls = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        calls[name] = max(1, min(200, round(0.05 / max(time.perf_counter() - start, 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            _sync(device)
            samples[name].append((time.perf_counter() - start) / calls[name])
    return samples


@dataclass(frozen=True)
class Row:
    model: str
    converted: str
    backend: str
    mode: str
    threads: int
    ms: dict[str, float]
    ratios: dict[str, float]


def _median_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-repeat ratios (the variants of one repeat ran back to back)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run(
    cases: Sequence[ModelCase],
    converted: Sequence[str],
    backends: Sequence[str],
    modes: Sequence[str],
    threads: Sequence[int | None],
    repeats: int,
    warmup: int,
    device: str = "cpu",
    amp: str | None = None,
    channels_last: bool = False,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Time every combination; the three variants alternate within each repeat."""
    rows = []
    for n in threads:
        with _threads(n):
            for case in cases:
                x = case.input(device, channels_last)
                for conv in converted:
                    variants = build_variants(case, conv, x, device, channels_last, amp)
                    for backend in backends:
                        models = variants
                        if backend == "inductor":
                            torch._dynamo.reset()
                            models = {**variants, "floor": _compiled_floor(variants["floor"], device)}
                            models = {k: torch.compile(m) for k, m in models.items()}  # type: ignore[misc]
                        for mode in modes:
                            fns = {k: step_fn(m, x, mode, device, amp) for k, m in models.items()}
                            # compiled models: the first calls compile (and a mode switch recompiles)
                            samples = timed(fns, repeats, max(warmup, 3) if backend == "inductor" else warmup, device)
                            ms = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
                            ratios = {
                                "ours/plain": _median_ratio(samples["ours"], samples["plain"]),
                                "floor/plain": _median_ratio(samples["floor"], samples["plain"]),
                                "ours/floor": _median_ratio(samples["ours"], samples["floor"]),
                            }
                            row = Row(case.name, conv, backend, mode, n or torch.get_num_threads(), ms, ratios)
                            rows.append(row)
                            log(f"# {format_row(row)}")
    return rows


HEADER = (
    "| model | converted | backend | mode | threads | plain ms | floor ms | ours ms | ours / plain | "
    "floor / plain | ours / floor |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def format_row(r: Row) -> str:
    return (
        f"| {r.model} | {r.converted} | {r.backend} | {r.mode} | {r.threads} | {r.ms['plain']:.2f} | "
        f"{r.ms['floor']:.2f} | {r.ms['ours']:.2f} | {r.ratios['ours/plain']:.3f} | "
        f"{r.ratios['floor/plain']:.3f} | {r.ratios['ours/floor']:.3f} |"
    )


def format_table(rows: Sequence[Row]) -> str:
    return "\n".join([HEADER, *(format_row(r) for r in rows)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small inputs, eager only, 3 repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 7, quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per variant before timing")
    parser.add_argument(
        "--model", action="append", choices=["resnet18", "resnet50", "unet3d"], help="repeatable; default: all"
    )
    parser.add_argument(
        "--backend", action="append", choices=["eager", "inductor"], help="repeatable; default: eager and inductor"
    )
    parser.add_argument("--mode", action="append", choices=["inference", "train"], help="repeatable; default: both")
    parser.add_argument(
        "--converted", action="append", choices=["first", "all"], help="repeatable; default: first and all"
    )
    parser.add_argument("--threads", type=int, action="append", help="CPU thread count (repeatable; default 1 and all)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--amp", choices=["fp16", "bf16"], default=None, help="autocast dtype (default: float32)")
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--out", default=None, help="also write the report (Markdown) to this file")
    parser.add_argument(
        "--system-malloc", action="store_true", help="leave glibc's malloc at its defaults (see keep_freed_memory)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model_overhead.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 1 or args.warmup < 0:
        parser.error(f"--repeats must be >= 1 and --warmup >= 0, got {repeats} and {args.warmup}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    cpus = os.cpu_count() or 1
    if args.threads and not all(1 <= n <= cpus for n in args.threads):
        parser.error(f"--threads must be between 1 and {cpus} (this machine's CPUs), got {args.threads}")
    cases = [c for c in model_cases(args.quick) if not args.model or c.name in args.model]
    backends = args.backend or (["eager"] if args.quick else ["eager", "inductor"])
    threads: list[int | None] = (
        [None] if args.device != "cpu" else list(args.threads or sorted({1, cpus}))  # type: ignore[arg-type]
    )
    memory = "system malloc defaults" if args.system_malloc else keep_freed_memory()
    header = [
        f"machine: {machine_description()}"
        + (f", {torch.cuda.get_device_name(args.device)}" if args.device.startswith("cuda") else ""),
        f"device {args.device}, {args.amp or 'float32'}{', channels_last' if args.channels_last else ''}; "
        f"median of {repeats} interleaved repeats after {args.warmup} warm-up calls; {memory}",
    ]
    for line in header:
        print(f"# {line}", flush=True)
    rows = run(
        cases, args.converted or ["first", "all"], backends, args.mode or ["inference", "train"], threads, repeats,
        args.warmup, args.device, args.amp, args.channels_last, log=lambda s: print(s, flush=True),
    )  # fmt: skip
    table = format_table(rows)
    print(table)
    if args.out:
        command = "python benchmarks/model_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
        text = "\n".join([f"Command: `{command.strip()}`", "", *(f"- {h}" for h in header), "", table, ""])
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
