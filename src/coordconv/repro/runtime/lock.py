"""The lock a process holds on the run directory it trains in, so that a second process refuses to run there."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from coordconv.repro.runtime.files import RunError, failure_reason, file_mode

__all__ = ["LOCK", "claim", "release"]

LOCK = ".lock"

# Locks this process holds, by resolved run directory: a run started again in the same process (reproduce after
# a failed run, tests) keeps its claim; another process is refused. The kernel drops them when the process ends.
_CLAIMS: dict[Path, int] = {}


def claim(path: Path) -> None:
    """Hold an exclusive lock on ``path/.lock`` for this process's life (or until the run finishes).

    Raises:
        RunError: another process holds it, or the directory is not writable.
    """
    key = path.resolve()
    if key in _CLAIMS:
        return
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, file_mode())
    except OSError as e:
        raise RunError(f"cannot write in the run directory {path}: {failure_reason(e, path)}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        raise RunError(f"{path} is in use by another process (it holds {path / LOCK}); wait for it to end") from e
    _CLAIMS[key] = fd


def release(path: Path) -> None:
    """Drop the lock that :func:`claim` took on ``path`` (nothing if this process holds none)."""
    fd = _CLAIMS.pop(path.resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the lock
