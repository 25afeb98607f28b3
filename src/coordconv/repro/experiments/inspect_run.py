"""How much each CoordConv layer of a toy-task run uses the coordinates: the model behind ``coordconv inspect``.

For each CoordConv layer, :func:`coordconv.inspect_model` reports the norms of its coordinate filters (W_c) and
input filters (W), their ratio, and on sample inputs the share of the output's variance that the coordinate term
carries (0: translation invariant, 1: only the coordinates matter). A run folder of ``coordconv train
classification|rendering|regression`` is rebuilt from its ``config.json``, loaded from its ``model.safetensors``
and run on the first examples of its test set; a ``.safetensors`` state dict of an earlier development version,
with ``*coord_weight`` entries, gives the filter norms only (there is no module to run).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordconv.repro.experiments import toy, toy_tasks
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.files import RunError
from coordconv.repro.runtime.rundir import read_finished
from coordconv.usage import LayerUsage, format_usage, inspect_model

__all__ = ["Options", "inspect_path", "inspect_run", "read_safetensors"]


@dataclass(frozen=True, kw_only=True)
class Options:
    """``coordconv inspect MODEL``'s options: :func:`inspect_path`'s path and samples, and the output's form."""

    model: str
    """a run directory of coordconv train, or a .safetensors file"""
    samples: int = 256
    """test examples to run a run directory's model on"""
    json: bool = False
    """print JSON instead of a Markdown table"""

    def run(self, argv: list[str]) -> int:
        """Print the table (or JSON); a failure to read the model is one ``coordconv inspect: error:`` line."""
        path = Path(self.model)
        if self.samples < 1:  # a usage error (exit 2); inspect_path's own check would be a run error
            raise ValueError(f"--samples must be >= 1, got {self.samples}")
        # a run directory also rebuilds its test set (numpy)
        extras.require("coordconv inspect", ["safetensors", *(["numpy"] if path.is_dir() else [])])
        try:
            rows = inspect_path(path, self.samples)
        except (ValueError, OSError, ImportError, RunError) as e:
            print(f"coordconv inspect: error: {e}", file=sys.stderr)
            return 1
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2) if self.json else format_usage(rows))
        return 0


def inspect_path(path: Path, samples: int = 256) -> list[LayerUsage]:
    """Inspect a toy-task run folder (:func:`inspect_run`) or a ``.safetensors`` state dict (filter norms only).

    Raises:
        ValueError: ``samples`` is below 1, or ``path`` is neither a run folder nor a ``.safetensors`` file (the
            message says which, and what to pass instead).
        RunError: a finished run's files are not what it wrote.
    """
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if path.is_dir():
        return inspect_run(path, samples)
    if path.suffix == ".safetensors" and path.is_file():
        return inspect_model(read_safetensors(path))
    if not path.exists():
        raise ValueError(f"{path} does not exist; expected a run directory or a .safetensors file")
    raise ValueError(f"{path} is neither a run directory nor a .safetensors file")


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; a file that is not one raises ``ValueError`` naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a cut or foreign file
        raise ValueError(f"{path} is not a readable safetensors file ({type(e).__name__})") from e


def inspect_run(path: Path, samples: int) -> list[LayerUsage]:
    """Rebuild a toy-task run's model, load its weights, and inspect it on its first ``samples`` test inputs.

    Raises:
        ValueError: ``path`` is not a finished toy-task run with its weights (the message says what it is).
        RunError: a finished run's files are not what it wrote (weights swapped or cut).
    """
    if not (path / "config.json").is_file():
        runs = sorted(p.parent for p in path.glob("**/config.json"))[:3]
        hint = f" (for example {', '.join(str(r) for r in runs)})" if runs else ""
        raise ValueError(f"{path} is not a run's folder (it has no config.json); pass one run's folder{hint}")
    if (path / "summary.json").exists():
        read_finished(path)
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
        model.load_state_dict(read_safetensors(weights))
    except RuntimeError as e:  # missing or extra keys, other shapes
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{weights} does not fit the model of its config.json ({reason[:200]})") from e
    return inspect_model(model, toy_tasks.load_data(cfg).test_x[:samples])
