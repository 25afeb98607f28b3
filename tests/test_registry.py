"""The experiment registry: every task has the same surface, and a new experiment is one module and one line."""

import inspect
import json
import os
import pathlib
import subprocess
import sys

import pytest

from coordconv.repro.experiments.registry import REGISTRY

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_experiment_has_the_registry_surface(name):
    module = REGISTRY[name].module
    for attribute in ("Config", "PRESETS", "preset", "main", "describe", "plan", "report"):
        assert hasattr(module, attribute), f"{module.__name__} lacks {attribute}"
    assert list(inspect.signature(module.preset).parameters) == ["name", "fields"]
    plan = module.plan("smoke", range(2), task=name, **({} if name != "rl" else {"games": ["MinAtar/Breakout"]}))
    assert plan and all(folder.startswith(f"{name}/") and isinstance(cfg, module.Config) for folder, cfg in plan)
    assert len({folder for folder, _ in plan}) == len(plan)


def _cli(*args, cwd):
    """The coordconv command with one more registry line: the example experiment of the README."""
    code = (
        "import sys, example_experiment; from coordconv.repro.experiments.registry import REGISTRY, Experiment; "
        "REGISTRY['pixel'] = Experiment('pixel', example_experiment, 'where is the lit pixel?'); "
        "from coordconv.cli import main; sys.exit(main())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.mark.slow
def test_a_new_experiment_is_one_module_and_one_registry_line(tmp_path):
    trained = _cli("train", "pixel", "--model", "conv", "--preset", "smoke", "--out", tmp_path / "one", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "pixel conv seed 0: final loss" in trained.stdout
    assert "--steps" in _cli("train", "pixel", "--help", cwd=tmp_path).stdout  # options from the Config's fields
    result = _cli("reproduce", "pixel", "--seeds", "2", "--out", tmp_path / "all", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[pixel](pixel/report.md)" in (tmp_path / "all" / "report.md").read_text()
    assert (tmp_path / "all" / "pixel" / "command.txt").read_text().strip().endswith("--out " + str(tmp_path / "all"))
    losses = {
        model: [json.loads((tmp_path / "all" / "pixel" / f"{model}-seed{s}" / "summary.json").read_text())["loss"]
                for s in (0, 1)]
        for model in ("conv", "coordconv")
    }  # fmt: skip
    assert max(losses["coordconv"]) < 0.05 < min(losses["conv"])  # the paper's point, in one layer
