"""What a run's numbers depend on and what it wrote: the git revision, the versions and CPU, the files' hashes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from coordconv._version import __version__

__all__ = [
    "ENVIRONMENT_KEYS",
    "SELF_KEY",
    "difference",
    "environment",
    "git_revision",
    "record_files",
    "sha256",
    "summary_hash",
]

SELF_KEY = "summary_sha256"  # summary.json's hash of itself (its other keys), so that an edited number is caught


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


def sha256(path: Path) -> str:
    """The SHA-256 of a file's content, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
