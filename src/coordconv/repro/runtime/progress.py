"""Progress of a long loop: a bar on a terminal, plain log lines elsewhere (CI logs, files, pipes)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Count steps towards ``total``; show a tqdm bar on a terminal, else a log line every ``every`` seconds.

    Args:
        total: number of steps.
        desc: a short label.
        every: seconds between log lines when there is no terminal.
        stream: where to write (default: standard error).
        bar: force the bar on (``True``) or off (``False``); default: only on a terminal, when tqdm is installed.
    """

    def __init__(
        self, total: int, desc: str, *, every: float = 10.0, stream: TextIO | None = None, bar: bool | None = None
    ) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.stream = stream or sys.stderr
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._last = time.monotonic()
        self._bar: Any = None
        if bar is None:
            bar = self.stream.isatty()
        if bar:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped]
            except ImportError:
                bar = False
            else:
                self._bar = tqdm(total=total, desc=desc, file=self.stream, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` steps and show ``postfix`` values (metrics) next to the count."""
        self.n += n
        self.postfix.update(postfix)
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix_str(self._format_postfix(), refresh=False)
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.write(f"{self.desc}: {self.n}/{self.total} {self._format_postfix()}".rstrip())

    def write(self, line: str) -> None:
        """Print a line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _format_postfix(self) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
