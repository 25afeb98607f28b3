"""The ``coordconv`` command's entry point, outside the package so that it runs before torch is imported.

Importing :mod:`coordconv` imports torch, which takes a second or more (and, without NumPy, warns about it): a
Ctrl-C or SIGTERM meanwhile would print a ``KeyboardInterrupt`` traceback or end the process without a word.
Here both are one line; nothing has been written yet. :func:`coordconv.cli.main` takes over once it is imported.
"""

from __future__ import annotations

import signal
import sys
import warnings
from types import FrameType


def main() -> int:
    """Import the command (and torch) with SIGTERM and Ctrl-C as one line each, then run it."""
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    # without NumPy (a torch-only install: the library needs nothing else) torch warns at import that it could not
    # initialise NumPy; the commands that need NumPy say so themselves, naming the extra
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    try:
        from coordconv.cli import main as command
    except KeyboardInterrupt:
        name = received[0] if received else "SIGINT"
        print(f"coordconv: interrupted ({name}) while starting; nothing was written", file=sys.stderr)
        return 128 + int(getattr(signal, name))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return command()


if __name__ == "__main__":
    sys.exit(main())
