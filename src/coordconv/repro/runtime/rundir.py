"""A run's directory: resolved config, metrics log, summary, weights and the training-state checkpoint.

Layout of ``DIR``:

* ``config.json``: the resolved config, the git revision, versions and the command line;
* ``metrics.jsonl``: one JSON object per evaluation;
* ``checkpoint.pt``: the training state (model, optimizer, counters, metrics history, the run's config), loaded
  with ``torch.load(..., weights_only=True)`` so that no checkpoint can execute code;
* ``model.safetensors``: the final weights, with the config in the metadata;
* ``summary.json``: written last; its presence marks a finished run. It records the size and SHA-256 of every
  other file of the run (``files``), checked whenever the finished run is read back. The checkpoint and the
  weights may be absent from a finished run (results committed to a repository keep only the small files that
  the reports read); every file that is present must be what the run wrote;
* ``.lock``: held (``flock``) by the process that runs in the directory, so that a second one refuses.

Every file is written atomically (a temporary file in the same folder, then a rename; the temporary file is
removed when writing fails), so an interrupted run leaves either the old or the new version of each file, never
half of one. A run resumed from its checkpoint rewrites ``metrics.jsonl`` from the history stored in the
checkpoint, so the log never holds evaluations that the resumed run will redo. JSON files never hold NaN or
Infinity.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from coordconv._version import __version__
from coordconv.repro.runtime.config import complete_config, to_dict
from coordconv.repro.runtime.files import (
    RunError,
    failure_reason,
    file_mode,
)

__all__ = [
    "SELF_KEY",
    "FinishedRun",
    "RunError",
    "config_changes",
    "finished_summary",
    "read_finished",
    "release",
    "summary_hash",
]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
SUMMARY = "summary.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, WEIGHTS, SUMMARY)
FILES_KEY = "files"  # summary.json's record of the run's files: name -> {"bytes": ..., "sha256": ...}
DROPPABLE = (CHECKPOINT, WEIGHTS)  # what a finished run may lack: the reports never read them

# -- provenance: what a run's numbers depend on and what it wrote -------------------------------------------

SELF_KEY = "summary_sha256"  # summary.json's hash of itself (its other keys), so that an edited number is caught


def git_revision() -> dict[str, Any]:
    """The commit and dirty flag of the git checkout the package runs from (``None`` outside a checkout)."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    # the header "# branch.oid <commit>" ("(initial)" before the first commit), then a line per changed file
    commit = next((line.split()[2] for line in status if line.startswith("# branch.oid ")), "(initial)")
    dirty = any(not line.startswith("#") for line in status)
    return {"commit": None if commit == "(initial)" else commit, "dirty": dirty}


def sha256(path: Path) -> str:
    """The SHA-256 of a file's content, as hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def record_files(folder: Path, but: str) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every visible file in ``folder`` but ``but`` (the summary that holds the record)."""
    return {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != but
    }


def summary_hash(summary: Mapping[str, Any]) -> str:
    """SHA-256 of the summary's keys but its own hash, as canonical JSON (sorted keys, no spaces)."""
    body = {k: v for k, v in summary.items() if k != SELF_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


ENVIRONMENT_KEYS = ("git", "versions", "cpu")


def environment(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's numbers depend on besides its config: the code, the versions and the CPU it trains with."""
    return {
        "git": git_revision(),
        "versions": {"coordconv": __version__, "torch": torch.__version__, "python": platform.python_version()},
        # the thread count it trains with (a config's 0 resolves to torch's default here) and the CPU kernels torch
        # picks on this machine
        "cpu": {
            "threads": config.get("threads") or torch.get_num_threads(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(),
        },
    }


def difference(key: str, before: Any, now: Any) -> str:
    """``torch 2.13.0 -> 2.14.1``: what changed in one part of the environment."""
    if isinstance(before, dict) and isinstance(now, dict):
        parts = [f"{k} {before.get(k)} -> {now.get(k)}" for k in now if before.get(k) != now.get(k)]
        return ", ".join(parts) if parts else key
    return f"{key} {before} -> {now}"


# -- the lock a process holds on the run directory it trains in, so that a second process refuses -------------

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


def _prepare_dir(name: str | Path) -> Path:
    """Create the run directory ``name`` (and its parents).

    Raises:
        RunError: ``name`` is empty, a file, lies under a file, or cannot be created (read-only, permissions).
    """
    if not str(name).strip():  # Path("") is the current directory
        raise RunError(f"invalid run directory {str(name)!r}; expected the path of a folder for the run")
    path = Path(name)
    try:
        if path.exists() and not path.is_dir():
            raise RunError(f"run directory {path} is a file; expected a folder (or a path that does not exist yet)")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # also a path longer than the system takes (exists() raises then)
        shown = str(path) if len(str(path)) <= 200 else f"{str(path)[:120]}...{str(path)[-60:]}"
        raise RunError(f"cannot create the run directory {shown}: {failure_reason(e, path.parent)}") from e
    return path


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields in which a run's stored config differs from ``current``.

    Fields that ``current`` lacks were removed from the experiment's config since the run started (for example
    the test-only ``stop_after_*`` fields): they no longer change what the run does, and are ignored.
    """
    return sorted(k for k in current if stored.get(k) != current[k])


@dataclass(frozen=True)
class FinishedRun:
    """A finished run's directory, its ``summary.json`` and its ``metrics.jsonl`` (empty if absent)."""

    path: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]

    def json(self, name: str) -> dict[str, Any]:
        """Another JSON file of the run (``{}`` if the run has none by that name).

        Raises:
            RunError: the file is not JSON (cut or damaged), naming it.
        """
        path = self.path / name
        if not path.exists():
            return {}
        try:
            value = json.loads(path.read_text())
        except ValueError:
            raise RunError(f"{path} is not JSON (the file is cut or damaged)") from None
        return dict(value)


def read_finished(folder: Path) -> FinishedRun:
    """The one way to read a finished run: its summary and metrics, its files verified against the summary's record.

    A summary without the record predates it (for example the older committed runs under ``results/``, which are
    kept as they were made): it is read as it is, without verification. The checkpoint and the weights may be
    absent (``DROPPABLE``); a file that is present must match its record.

    Raises:
        RunError: a file is missing, damaged or not what the run wrote; the message names it.
    """
    path = folder / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{path} is unreadable or not JSON ({type(e).__name__}); retrain it with --overwrite") from e
    if not isinstance(summary, dict):
        raise RunError(f"{path} does not hold a JSON object; retrain the run with --overwrite")
    if SELF_KEY in summary and summary[SELF_KEY] != summary_hash(summary):
        raise RunError(
            f"finished run {folder} is damaged: {path} was changed after the run wrote it (its "
            f"{SELF_KEY} does not match its content); retrain it with --overwrite"
        )
    record = summary.get(FILES_KEY)
    if record is not None and not isinstance(record, dict):
        raise RunError(f"{path} is damaged: its {FILES_KEY!r} record is not a mapping")
    for name, expected in (record or {}).items():
        file = folder / name
        if not file.is_file() and name in DROPPABLE and not file.exists():
            continue
        if not file.is_file():
            raise RunError(f"finished run {folder} is damaged: {file} is missing; retrain it with --overwrite")
        size = file.stat().st_size
        if size != expected.get("bytes") or sha256(file) != expected.get("sha256"):
            raise RunError(
                f"finished run {folder} is damaged: {file} ({size} bytes) differs from what the run wrote "
                f"({expected.get('bytes')} bytes, recorded in {SUMMARY}); retrain it with --overwrite"
            )
    metrics = []
    path = folder / METRICS
    for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        try:
            metrics.append(json.loads(line))
        except ValueError:
            raise RunError(f"{path}, line {number}, is not a JSON object (the file is cut or damaged)") from None
    return FinishedRun(folder, summary, metrics)


def finished_summary(folder: Path, config: Any) -> dict[str, Any] | None:
    """The summary of the finished run in ``folder`` if it is a run of ``config`` (else ``None``: none, or another).

    The stored config is compared on the fields ``config`` has now: a field added later counts as the value runs
    had before it (:func:`~coordconv.repro.runtime.config.complete_config`: its default, or the config's
    ``LEGACY_DEFAULTS`` entry), a field removed since is ignored (:func:`config_changes`).

    Raises:
        RunError: the finished run's files are damaged (:func:`read_finished`).
    """
    if not (folder / CONFIG).exists() or not (folder / SUMMARY).exists():
        return None
    summary = read_finished(folder).summary
    stored = summary.get("config")
    if isinstance(stored, dict) and not config_changes(complete_config(type(config), stored), to_dict(config)):
        return summary
    return None


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` that `Session.start` wrote (not a model card's or a tool's)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stored, dict)
        and isinstance(stored.get("config"), dict)
        and isinstance(stored.get("versions"), dict)
        and "coordconv" in stored["versions"]
    )
