"""A run's directory: resolved config, metrics log, summary, weights and the training-state checkpoint.

Layout of ``DIR``:

* ``config.json``: the resolved config, the git revision, versions and the command line;
* ``metrics.jsonl``: one JSON object per evaluation;
* ``checkpoint.pt``: the training state (model, optimizer, counters, metrics history), loaded with
  ``torch.load(..., weights_only=True)`` so that no checkpoint can execute code;
* ``model.safetensors``: the final weights, with the config in the metadata;
* ``summary.json``: written last; its presence marks a finished run.

Every file is written atomically (a temporary file in the same folder, then a rename), so an interrupted run
leaves either the old or the new version of each file, never half of one. A run resumed from its checkpoint
rewrites ``metrics.jsonl`` from the history stored in the checkpoint, so the log never holds evaluations
that the resumed run will redo.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coordconv._version import __version__

__all__ = ["Run", "RunError", "git_revision", "write_atomic", "write_json"]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
SUMMARY = "summary.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, WEIGHTS, SUMMARY)


class RunError(Exception):
    """A run cannot start, resume or be read; the message is one line meant for the user."""


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def git_revision(cwd: Path | None = None) -> dict[str, Any]:
    """The commit and dirty flag of the git checkout the package runs from (``None`` outside a checkout)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


class Run:
    """One run directory. Create it with :meth:`start`; experiments never touch its files directly.

    Args:
        path: the run directory.
        config: the resolved config (JSON-serialisable).
    """

    def __init__(self, path: Path, config: Mapping[str, Any]) -> None:
        self.path = path
        self.config = dict(config)
        self.history: list[dict[str, Any]] = []

    @classmethod
    def start(
        cls, path: str | Path, config: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False
    ) -> Run:
        """Open ``path`` for a new run, or for resuming the run already there.

        Raises:
            RunError: the folder holds another run (and neither ``resume`` nor ``overwrite``), or ``resume`` finds
                no run, a different config or a missing checkpoint.
        """
        path = Path(path)
        run = cls(path, config)
        existing = [name for name in RUN_FILES if (path / name).exists()]
        if resume:
            if not (path / CONFIG).exists():
                raise RunError(f"cannot resume: {path} holds no run ({CONFIG} is missing)")
            stored = run.stored_config()
            if stored != run.config:
                changed = sorted(k for k in set(stored) | set(run.config) if stored.get(k) != run.config.get(k))
                raise RunError(
                    f"cannot resume {path}: its config differs in {', '.join(changed)} (--overwrite replaces it)"
                )
            return run
        if existing and not overwrite:
            raise RunError(
                f"{path} already holds a run ({', '.join(existing)}); "
                "pass --resume to continue it or --overwrite to replace it"
            )
        for name in existing:
            (path / name).unlink()
        path.mkdir(parents=True, exist_ok=True)
        write_json(
            path / CONFIG,
            {
                "config": run.config,
                "git": git_revision(),
                "versions": {
                    "coordconv": __version__,
                    "torch": torch.__version__,
                    "python": platform.python_version(),
                },
                "command": sys.argv,
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            },
        )
        return run

    def stored_config(self) -> dict[str, Any]:
        """The config saved in ``config.json``."""
        try:
            return dict(json.loads((self.path / CONFIG).read_text())["config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RunError(f"{self.path / CONFIG} is unreadable: {e}") from e

    @property
    def finished(self) -> bool:
        """Whether the run wrote its summary."""
        return (self.path / SUMMARY).exists()

    def summary(self) -> dict[str, Any]:
        """The finished run's summary."""
        try:
            return dict(json.loads((self.path / SUMMARY).read_text()))
        except (OSError, ValueError) as e:
            raise RunError(f"{self.path / SUMMARY} is unreadable: {e}") from e

    # -- metrics ----------------------------------------------------------------------------------------------

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one evaluation to the history and to ``metrics.jsonl``."""
        self.history.append(dict(record))
        self._write_metrics()

    def _write_metrics(self) -> None:
        write_atomic(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in self.history))

    # -- checkpoints ------------------------------------------------------------------------------------------

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Save the training state (tensors, numbers, strings, lists and dicts only) with the metrics history."""
        tmp = self.path / f".{CHECKPOINT}.tmp{os.getpid()}"
        torch.save({**state, "history": self.history}, tmp)
        os.replace(tmp, self.path / CHECKPOINT)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The saved training state (``None`` if there is none yet); restores the metrics history.

        Raises:
            RunError: the checkpoint exists but cannot be read.
        """
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.history = [dict(r) for r in state.pop("history")]
        except Exception as e:  # a truncated or foreign file raises many different errors
            raise RunError(f"cannot resume: {path} is corrupt or not a checkpoint ({type(e).__name__})") from e
        self._write_metrics()
        return dict(state)

    # -- results ----------------------------------------------------------------------------------------------

    def save_weights(self, model: nn.Module) -> None:
        """Save the model's state dict as safetensors, with the config as metadata (shared tensors copied)."""
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        seen: set[tuple[int, int]] = set()
        for k, v in model.state_dict().items():
            v = v.detach().contiguous().cpu()
            where = (v.untyped_storage().data_ptr(), v.storage_offset())
            # safetensors refuses tensors that share memory (a body shared by two heads appears under two names)
            tensors[k] = v.clone() if where in seen else v
            seen.add(where)
        tmp = self.path / f".{WEIGHTS}.tmp{os.getpid()}"
        save_file(tensors, str(tmp), metadata={"config": json.dumps(self.config)})
        os.replace(tmp, self.path / WEIGHTS)

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json``, which marks the run finished."""
        write_json(self.path / SUMMARY, dict(summary))
