"""``coordconv sweep``: grid expansion, errors, and smoke sweeps on an embedded local Ray."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from coordconv.repro import sweep
from coordconv.repro.experiments import toy
from coordconv.repro.runtime.rundir import SELF_KEY, summary_hash


def _sweep(*args, timeout=600, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "coordconv.cli", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def test_paper_grids_have_the_official_sizes():
    trials = sweep.expand("classification", "paper")
    conv = [t for t in trials if t.config.model == "conv"]
    coord = [t for t in trials if t.config.model == "coordconv"]
    assert len(conv) == 2 * 324 and len(coord) == 2 * 6  # experiment_logs.sh: 324 deconv configs per split
    assert {t.config.lr for t in conv} == {0.001, 0.002, 0.005, 0.01, 0.02, 0.05}
    assert {(t.config.filter_size, t.config.multiplier, t.config.batch_size) for t in conv} == {
        (f, m, b) for f in (2, 3, 4) for m in (1, 2, 3) for b in (16, 32)
    }
    assert all(t.config.epochs == 1000 and t.config.lr_step_every == 200 for t in conv)
    assert all(t.config.epochs == 50 and t.config.batch_size == 16 for t in coord)
    assert len(sweep.expand("regression", "paper")) == 2 * 2 * 9


@pytest.mark.parametrize("task", toy.TASKS)
@pytest.mark.parametrize("grid", ["smoke", "quick", "paper"])
def test_every_grid_expands_to_valid_distinct_trials(task, grid):
    trials = sweep.expand(task, grid, seeds=2, threads=3)
    names = [t.name for t in trials]
    assert len(set(names)) == len(names)
    assert all(t.config.task == task and t.config.threads == 3 for t in trials)
    assert {t.config.seed for t in trials} == {0, 1}
    for t in trials:  # the varied values are in the config and in the name
        assert all(getattr(t.config, k) == v and f"{k}=" in t.name for k, v in t.values.items())


def test_quick_classification_grid_size():
    trials = sweep.expand("classification", "quick")
    assert sum(t.config.model == "conv" for t in trials) == 2 * 36
    assert sum(t.config.model == "coordconv" for t in trials) == 2 * 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "painting", "grid": "quick"}, "unknown task 'painting'"),
        ({"task": "classification", "grid": "huge"}, "unknown grid 'huge'; expected one of smoke, quick, paper"),
        ({"task": "classification", "grid": "quick", "seeds": 0}, "seeds must be >= 1, got 0"),
        ({"task": "classification", "grid": "quick", "threads": 0}, "threads per trial must be >= 1, got 0"),
    ],
)
def test_expand_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand(**kwargs)


def test_bad_grid_name_is_a_usage_error(tmp_path):
    result = _sweep("classification", "--grid", "huge", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "invalid choice 'huge'" in result.stderr and "Traceback" not in result.stderr


def test_bad_resources_are_usage_errors(tmp_path):
    result = _sweep("classification", "--grid", "smoke", "--cpus-per-trial", "0", "--out", str(tmp_path))
    assert result.returncode == 2 and "cpus_per_trial must be >= 1, got 0" in result.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"gpus_per_trial": float("nan")}, "gpus_per_trial must be a fraction in [0, 1] or a whole number, got nan"),
        ({"gpus_per_trial": 1024.0}, "gpus_per_trial 1024.0 is more than this machine's"),
        ({"cpus_per_trial": 4096}, "cpus_per_trial 4096 is more than this machine's"),
    ],
)
def test_resources_this_machine_lacks_are_refused_before_ray_waits_for_them(option, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        sweep.main(sweep.Options(task="classification", grid="smoke", out=str(tmp_path), **option))


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(sweep.RunError, match=r"pip install 'torch-coordconv\[sweep\]'"):
        sweep.main(sweep.Options(task="classification", grid="smoke", out=str(tmp_path)))


@pytest.mark.parametrize(("preset", "expected"), [(None, "0"), ("7", "7")])
def test_the_embedded_ray_runs_trials_at_normal_priority_unless_told(preset, expected, tmp_path, monkeypatch):
    """Ray would start its workers at niceness 15, where beside any other job a sweep nearly stops."""
    seen = {}

    class Stop(Exception):
        pass

    def init(**kwargs):
        seen["niceness"] = os.environ.get("RAY_worker_niceness")  # noqa: SIM112 - Ray's own spelling
        raise Stop

    tune = types.ModuleType("ray.tune")
    ray = types.ModuleType("ray")
    ray.init, ray.tune = init, tune
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.tune", tune)
    if preset is None:
        monkeypatch.delenv("RAY_worker_niceness", raising=False)
    else:
        monkeypatch.setenv("RAY_worker_niceness", preset)
    with pytest.raises(Stop):
        sweep._run_with_ray([], sweep.Options(task="classification"), tmp_path, 1, 0, 1)
    assert seen["niceness"] == expected


def test_unreachable_address_fails_fast_with_a_clear_error(tmp_path):
    pytest.importorskip("ray")
    started = time.perf_counter()
    result = _sweep("classification", "--grid", "smoke", "--address", "127.0.0.1:9", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 120
    result = _sweep("classification", "--grid", "smoke", "--address", "nonsense", "--out", str(tmp_path))
    assert result.returncode == 1 and "invalid Ray address 'nonsense'" in result.stderr


def test_out_holding_another_sweep_is_refused(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"task": "rendering", "grid": "quick", "seeds": 1, "trials": 8}))
    with pytest.raises(sweep.RunError, match="holds another sweep"):
        sweep.main(sweep.Options(task="classification", grid="smoke", out=str(tmp_path)))


def _rewrite(run: Path, summary: dict) -> None:
    """A run's summary.json replaced as a run would have written it (its self-hash recomputed)."""
    summary[SELF_KEY] = summary_hash(summary)
    (run / "summary.json").write_text(json.dumps(summary))


def test_finished_trials_are_reused_across_config_fields_added_since_and_another_config_is_refused(
    tmp_path, monkeypatch
):
    # the trials trained directly (as Ray would), then their records made older: each stored config lacks a field
    # that the config class has now, at its default (a run made before the field existed)
    trials = sweep.expand("classification", "smoke")
    default = toy.Config()
    added = next(
        f.name for f in dataclasses.fields(toy.Config) if getattr(trials[0].config, f.name) == getattr(default, f.name)
    )
    for trial in trials:
        run = tmp_path / "runs" / trial.name
        toy.main(trial.config, run, log=lambda line: None)
        summary = json.loads((run / "summary.json").read_text())
        del summary["config"][added]
        _rewrite(run, summary)
    monkeypatch.setattr(sweep, "_run_with_ray", lambda *a, **k: pytest.fail("a finished trial was run again"))
    assert sweep.main(sweep.Options(task="classification", grid="smoke", out=str(tmp_path))).exists()
    assert "2 of 2 trials finished" in (tmp_path / "report.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    summary["config"]["lr"] *= 2
    _rewrite(run, summary)
    with pytest.raises(sweep.RunError, match=f"{trials[-1].name} holds a run with another config"):
        sweep.main(sweep.Options(task="classification", grid="smoke", out=str(tmp_path)))


def _summaries(out: Path) -> dict[str, tuple[int, str]]:
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in sorted((out / "runs").glob("*/summary.json"))}


@pytest.mark.slow
def test_smoke_sweep_on_local_ray_then_a_killed_sweep_resumes_without_rerunning(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    # one trial at a time, killed (the whole process group, Ray included) once the first trial has finished
    args = ("classification", "--grid", "smoke", "--max-concurrent", "1", "--out", str(out))
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", "sweep", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not _summaries(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    before = _summaries(out)
    assert before, "no trial finished before the kill"

    result = _sweep(*args)
    assert result.returncode == 0, result.stderr
    assert f"2 trials, {len(before)} already finished" in result.stdout
    after = _summaries(out)
    assert len(after) == 2
    for name, stamp in before.items():  # finished trials were not run again
        assert after[name] == stamp

    table = (out / "table.md").read_text()
    assert "| coordconv | uniform | 2 |" in table and "lr " in table
    assert (out / "distribution.png").stat().st_size > 0
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("name,model,split,seed,lr,") and len(rows) == 3
    for run in (out / "runs").iterdir():
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs"] == 2 and summary["config"]["threads"] == 1

    # a third start finds everything done and does not start Ray at all
    sessions = sorted((out / "ray").iterdir())
    result = _sweep(*args)
    assert result.returncode == 0 and "2 trials, 2 already finished, 0 to run" in result.stdout
    assert sorted((out / "ray").iterdir()) == sessions


@pytest.mark.slow
def test_sigterm_stops_a_sweep_with_the_interrupted_line_not_rays_stack_dump(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", "sweep", "classification", "--grid", "smoke", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.glob("runs/*/config.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # Ray runs the trials: its handler is in place
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received at time" not in err and "interrupted (SIGTERM)" in err.strip().splitlines()[-1]
