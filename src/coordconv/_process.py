"""Process plumbing of the ``coordconv`` command: SIGTERM handled as Ctrl-C, an output a closed pipe does not stop."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["TERMINATE_GRACE_S", "ClosableOutput", "terminate_as_interrupt"]


class ClosableOutput:
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
def terminate_as_interrupt() -> Iterator[dict[str, str]]:
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
