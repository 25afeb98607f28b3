"""The ``coordconv`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from coordconv._help import Parser
from coordconv._version import __version__

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    """A tour of the layer library: the convention, exactness, grouped layers, retrofitting, speed."""
    import torch
    from torch import nn

    from coordconv import CoordConv2d, coord_grid, coordconvify
    from coordconv.bench import QUICK_CASES, format_table, run

    torch.manual_seed(args.seed)
    print("1. The coordinate convention: channels i (row) then j (column), exactly -1..+1 on every axis.")
    print("   coord_grid((2, 3), with_r=True) ->")
    for name, channel in zip(("i", "j", "r"), coord_grid((2, 3), with_r=True), strict=True):
        print(f"   {name}: {channel.tolist()}")

    print("\n2. Exactness: CoordConv2d equals conv(cat([x, coords]), [W | W_c]) (float64, non-square input).")
    layer = CoordConv2d(3, 8, 3, padding=1, padding_mode="reflect", with_r=True, dtype=torch.float64)
    x = torch.randn(4, 3, 7, 11, dtype=torch.float64)
    coords = coord_grid((7, 11), with_r=True, dtype=torch.float64).expand(4, -1, -1, -1)
    concat = nn.functional.conv2d(
        nn.functional.pad(torch.cat([x, coords], 1), (1, 1, 1, 1), mode="reflect"),
        layer.weight,  # [W | W_c]: the coordinate filters are part of weight
        layer.bias,
    )
    print(f"   max |difference| = {(layer(x) - concat).abs().max().item():.2e}")

    print("\n3. Grouped and depthwise layers work (the coordinate filters are dense over groups):")
    depthwise = CoordConv2d(16, 16, 3, padding=1, groups=16)
    print(f"   {depthwise} -> output {tuple(depthwise(torch.randn(2, 16, 9, 5)).shape)}")

    print("\n4. Retrofit: coordconvify() swaps convolutions in place, keeping the output identical.")
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    image = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        before = net(image)
        coordconvify(net)
        after = net(image)
    print(f"   converted: {[type(m).__name__ for m in net if isinstance(m, nn.Conv2d)]}")
    print(f"   max |output change| = {(after - before).abs().max().item():.2e}")

    print("\n5. Speed (small cases, one thread; `coordconv bench layer` runs the full benchmark):")
    print(format_table(run(QUICK_CASES, threads=[1], repeats=5, warmup=1)))
    return 0


INSPECT_DESCRIPTION = """\
Report, for each CoordConv layer of a trained model, how much it uses the coordinates: the norms of its
coordinate filters (W_c) and input filters (W), their ratio (also per weight: RMS ratio), and on sample
inputs the share of the layer's output variance that the coordinate term carries (0: translation invariant,
1: only the coordinates matter) and the correlation of the two terms. See coordconv.inspect_model.

MODEL is either a run directory of `coordconv train classification|rendering|regression` (the model is
rebuilt from its config.json, loaded from model.safetensors, and run on the first --samples examples of its
test set), or a .safetensors state dict of an earlier development version, with *coord_weight entries (filter
norms only: there is no module to run). For other models call coordconv.inspect_model(model, sample) in
Python.
"""


def _read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; a file that is not one raises ``ValueError`` naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a cut or foreign file
        raise ValueError(f"{path} is not a readable safetensors file ({type(e).__name__})") from e


def _inspect_run(path: Path, samples: int) -> list[Any]:
    """Rebuild a toy-task run's model, load its weights, and inspect it on its test inputs."""
    import json

    from coordconv import inspect_model
    from coordconv.repro.experiments import toy, toy_tasks
    from coordconv.repro.runtime.rundir import read_finished

    if not (path / "config.json").is_file():
        runs = sorted(p.parent for p in path.glob("**/config.json"))[:3]
        hint = f" (for example {', '.join(str(r) for r in runs)})" if runs else ""
        raise ValueError(f"{path} is not a run's folder (it has no config.json); pass one run's folder{hint}")
    if (path / "summary.json").exists():
        read_finished(path)  # a finished run's files must be what it wrote (weights swapped or cut: refused)
    stored = json.loads((path / "config.json").read_text())
    if not isinstance(stored, dict) or not isinstance(stored.get("config", stored), dict):
        raise ValueError(f"{path / 'config.json'} does not hold a run's config (a JSON object)")
    config = stored.get("config", stored)
    if config.get("task") not in toy.TASKS:
        raise ValueError(
            f"{path} is not a run of coordconv train {'|'.join(toy.TASKS)} (its config has task "
            f"{config.get('task')!r}); pass its model.safetensors for the filter norms, or call "
            "coordconv.inspect_model in Python"
        )
    weights = path / "model.safetensors"
    if not weights.is_file() and (path / "summary.json").exists():
        raise ValueError(
            f"{path} is a finished run whose weights were not kept (committed results keep only the small files); "
            "train it again with the command in its config.json to inspect it"
        )
    if not weights.is_file():
        raise ValueError(f"{path} has no model.safetensors: the run has not finished")
    cfg = toy.Config(**{k: v for k, v in config.items() if k in toy.Config.__dataclass_fields__})
    model = toy_tasks.build_model(cfg)
    try:
        model.load_state_dict(_read_safetensors(weights))
    except RuntimeError as e:  # missing or extra keys, other shapes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{weights} does not fit the model of its config.json ({reason[:200]})") from e
    sample = toy_tasks.load_data(cfg).test_x[:samples]
    return inspect_model(model, sample)


def _inspect(args: argparse.Namespace) -> int:
    from coordconv.repro.runtime import extras
    from coordconv.repro.runtime.files import RunError
    from coordconv.usage import format_usage, inspect_model

    path = Path(args.model)
    if args.samples < 1:
        args.parser.error(f"--samples must be >= 1, got {args.samples}")
    try:
        # a run directory also rebuilds its test set (numpy)
        extras.require("coordconv inspect", ["safetensors", *(["numpy"] if path.is_dir() else [])])
    except extras.MissingExtraError as e:
        print(f"coordconv: error: {e}", file=sys.stderr)
        return 1
    try:
        if path.is_dir():
            rows = _inspect_run(path, args.samples)
        elif path.suffix == ".safetensors" and path.is_file():
            rows = inspect_model(_read_safetensors(path))
        elif not path.exists():
            raise ValueError(f"{path} does not exist; expected a run directory or a .safetensors file")
        else:
            raise ValueError(f"{path} is neither a run directory nor a .safetensors file")
    except (ValueError, OSError, ImportError, RunError) as e:
        print(f"coordconv inspect: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
    else:
        print(format_usage(rows))
    return 0


def _bench_layer(args: argparse.Namespace) -> int:
    from coordconv.bench import run_from_args

    return run_from_args(args, args.parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``coordconv`` argument parser, one subcommand per job."""
    parser = Parser(
        prog="coordconv",
        description="CoordConv layers for PyTorch, and a reproduction of the CoordConv paper (Liu et al. 2018).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="a short tour of the layer library", description=_demo.__doc__)
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(func=_demo)

    bench = commands.add_parser("bench", help="benchmarks", description="Benchmarks that print measured ratios.")
    bench_commands = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    from coordconv import bench as bench_module

    layer = bench_commands.add_parser(
        "layer", help="CoordConv vs plain conv vs naive concat", description=(bench_module.__doc__)
    )
    bench_module.add_arguments(layer)
    layer.set_defaults(func=_bench_layer, parser=layer)

    inspect = commands.add_parser(
        "inspect",
        help="how much each CoordConv layer of a trained model uses the coordinates",
        description=INSPECT_DESCRIPTION,
    )
    inspect.add_argument("model", metavar="MODEL", help="a run directory of coordconv train, or a .safetensors file")
    inspect.add_argument(
        "--samples", type=int, default=256, help="test examples to run a run directory's model on (default: 256)"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    inspect.set_defaults(func=_inspect, parser=inspect)

    from coordconv.repro.commands import add_commands

    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coordconv`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    received: dict[str, str] = {}
    try:
        # building the parser imports torch and every experiment (seconds): a SIGTERM or Ctrl-C meanwhile is one
        # line, not a traceback or a silent death; nothing has been written yet
        with _terminate_as_interrupt() as received:
            parser = build_parser()
    except KeyboardInterrupt:
        signal_name = received.get("signal", "SIGINT")
        print(f"coordconv: interrupted ({signal_name}) while starting; nothing was written", file=sys.stderr)
        return 128 + int(getattr(signal, signal_name))
    args = parser.parse_args(argv)
    args.argv = argv  # what the command records of its own invocation (command.txt)
    if args.command is None:
        parser.print_help()
        return 2
    from coordconv.repro.commands import interrupted_message

    stdout, stderr = sys.stdout, sys.stderr
    # a stream closed before the start (`2>&-`) is None in Python: the command still runs, its lines go nowhere
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the command
    sys.stdout = _ClosableOutput(stdout if stdout is not None else open(os.devnull, "w"))  # noqa: SIM115
    try:
        with _terminate_as_interrupt() as received:
            return int(args.func(args))
    except KeyboardInterrupt:
        signal_name = received.get("signal", "SIGINT")
        print(interrupted_message(args, signal_name), file=sys.stderr)
        return 128 + int(getattr(signal, signal_name))
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = stdout, stderr


class _ClosableOutput:
    """Standard output that a closed reader (``coordconv reproduce ... | head -1``) does not stop.

    The first write or flush that finds the pipe closed switches the output to the null device: the command
    goes on (its runs train; its messages on standard error still show), without a ``BrokenPipeError``.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> None:
        # the real descriptor too: the interpreter flushes the original stream once more at exit
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        self._stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the command

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except UnicodeEncodeError:  # a path that is not valid in the output's encoding (bytes from the file system)
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return self.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: seconds a SIGTERM may wait for a native operation (a long kernel) before the process ends without it
TERMINATE_GRACE_S = 10.0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[dict[str, str]]:
    """Treat SIGTERM as Ctrl-C while a command runs, so that both end with the message that says how to resume.

    Yields a dict that holds ``"signal": "SIGTERM"`` once SIGTERM arrived. Outside the main thread (where no
    handler can be set) SIGTERM keeps its default action.

    Python runs a signal handler only between bytecodes, so a SIGTERM that arrives during one long native
    operation (a convolution in a reference kernel) would wait for it to end. A watcher thread, woken by the
    signal itself (``signal.set_wakeup_fd``), ends the process after ``TERMINATE_GRACE_S`` seconds if the handler
    has not run by then; runs lose nothing (their files are written atomically; the last checkpoint stays).
    """
    received: dict[str, str] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        received["signal"] = signal.Signals(signum).name
        received["handled"] = "yes"
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield received
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return  # the pipe was closed: the command ended
            if not data:
                return
            if signal.SIGTERM in data:
                deadline = time.monotonic() + TERMINATE_GRACE_S
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    if received.get("handled"):
                        return
                print(
                    f"coordconv: interrupted (SIGTERM) inside a native operation that did not end within "
                    f"{TERMINATE_GRACE_S:g} s; stopped without it (finished files and the last checkpoint are kept)",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="coordconv-sigterm-watch").start()
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.set_wakeup_fd(previous_fd)
        received["handled"] = "yes"  # the watcher, if woken, need not act
        os.close(write_end)
        os.close(read_end)


if __name__ == "__main__":
    sys.exit(main())
