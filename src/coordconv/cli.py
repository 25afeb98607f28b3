"""The ``coordconv`` command: tyro generates it from the command dataclasses of :mod:`coordconv.repro.commands`.

tyro is in the ``experiments`` extra: without it ``--version``, ``demo`` and ``bench layer`` (the benchmark's own
parser) still run, and any other command ends with one line naming the extra. An argument error, tyro's (its
framed message read back into one line) or a ``ValueError`` of the command, is one line that points to ``--help``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from coordconv._process import ClosableOutput, terminate_as_interrupt
from coordconv._version import __version__

__all__ = ["main", "parse"]

DESCRIPTION = "CoordConv layers for PyTorch, and a reproduction of the CoordConv paper (Liu et al. 2018)."
_COMMANDS = ("demo", "bench", "inspect", "train", "reproduce", "sweep", "dataset")


def _prog(argv: Sequence[str]) -> str:
    """``coordconv`` and the command ``argv`` names, with its task, data set or benchmark where it names one."""
    from coordconv.repro.experiments.registry import REGISTRY
    from coordconv.repro.runtime.extras import DATASET_NEEDS

    nested: dict[str, Any] = {"train": REGISTRY, "dataset": DATASET_NEEDS, "bench": ("layer",)}
    words = ["coordconv", *argv[:1]] if argv[:1] and argv[0] in _COMMANDS else ["coordconv"]
    return " ".join([*words, *(argv[1:2] if argv[1:2] and argv[1] in nested.get(argv[0], ()) else [])])


def _usage_error(argv: Sequence[str], message: str) -> None:
    """Print ``message`` as ``coordconv train classification: error: ... (see ... --help)`` and exit with 2."""
    print(f"{_prog(argv)}: error: {message} (see {_prog(argv)} --help)", file=sys.stderr)
    raise SystemExit(2)


def _one_line(framed: str) -> str:
    """The message of tyro's framed error (its first block of text after the title) as one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", framed).strip()
    blocks: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip().strip("│|").strip()
        if line.startswith(("╭", "╰")) or not line.strip("─-+ "):  # a frame's edge or a rule between blocks
            blocks.append([])
        else:
            blocks[-1].append(line)
    blocks = [b for b in blocks if b]
    # drawn with a frame, the title is in its top edge; drawn without, it is the first block
    message = blocks[0 if text.startswith("╭") or len(blocks) < 2 else 1] if blocks else [text]
    return " ".join(" ".join(message).split())


def parse(argv: Sequence[str]) -> Any:
    """The command ``argv`` asks for (an object with ``run(argv)``); ``SystemExit`` after ``--help`` or an error."""
    argv = list(argv)
    if _plain(argv):
        return _Plain()
    import tyro

    from coordconv.repro.commands import command_type

    framed = io.StringIO()
    try:
        with contextlib.redirect_stderr(framed):
            return tyro.cli(command_type(), args=argv, prog="coordconv", description=DESCRIPTION)
    except SystemExit as e:
        if e.code:
            _usage_error(argv, _one_line(framed.getvalue()))
        raise


def _plain(argv: Sequence[str]) -> bool:
    return list(argv[:2]) == ["bench", "layer"] or list(argv) == ["demo"]


class _Plain:
    """``coordconv bench layer`` (the benchmark parses its own options) and a bare ``coordconv demo``: no tyro."""

    def run(self, argv: list[str]) -> int:
        from coordconv import bench, demo

        return demo.tour() if argv == ["demo"] else bench.main(argv[2:], prog="coordconv bench layer")


def _without_tyro(argv: list[str]) -> int:
    """``coordconv`` where tyro (the experiments extra) is missing: one line naming the extra."""
    from coordconv.repro.runtime import extras

    needs = extras.DATASET_NEEDS.get(argv[1], []) if argv[:1] == ["dataset"] and argv[1:] else []
    try:
        extras.require(_prog(argv), [*needs, "tyro"])
    except extras.MissingExtraError as e:
        print(f"coordconv: error: {e}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coordconv`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        print(f"coordconv {__version__}")
        return 0
    if not _plain(argv) and importlib.util.find_spec("tyro") is None:  # ``bench layer`` and ``demo`` run
        return _without_tyro(argv)
    received: dict[str, str] = {}
    try:
        # the commands' types import torch and every experiment (seconds): a SIGTERM or Ctrl-C meanwhile is one
        # line, not a traceback or a silent death; nothing has been written yet
        with terminate_as_interrupt() as received:
            if not argv:
                with contextlib.suppress(SystemExit):
                    parse(["--help"])
                return 2
            command = parse(argv)
    except KeyboardInterrupt:
        signal_name = received.get("signal", "SIGINT")
        print(f"coordconv: interrupted ({signal_name}) while starting; nothing was written", file=sys.stderr)
        return 128 + int(getattr(signal, signal_name))
    from coordconv.repro.runtime.files import RunError

    stdout, stderr = sys.stdout, sys.stderr
    # a stream closed before the start (`2>&-`) is None in Python: the command still runs, its lines go nowhere
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the command
    sys.stdout = ClosableOutput(stdout if stdout is not None else open(os.devnull, "w"))  # noqa: SIM115
    try:
        with terminate_as_interrupt() as received:
            return int(command.run(argv))
    except ValueError as e:  # the command refused an option tyro took
        _usage_error(argv, str(e))
        raise  # not reached: _usage_error exits
    except (RunError, ImportError, OSError) as e:  # a refusal or failure past the options: a missing extra, ...
        print(f"coordconv: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal_name = received.get("signal", "SIGINT")
        message = f"coordconv: interrupted ({signal_name})"  # nothing to resume (and maybe no tyro)
        if not isinstance(command, _Plain):
            from coordconv.repro.commands import interrupted_message

            message = interrupted_message(command, argv, signal_name)
        print(message, file=sys.stderr)
        return 128 + int(getattr(signal, signal_name))
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = stdout, stderr


if __name__ == "__main__":
    sys.exit(main())
