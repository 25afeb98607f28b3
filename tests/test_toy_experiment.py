import json

import pytest
import torch

from command import coordconv
from coordconv.repro.experiments import toy
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS

pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

SUMMARY_KEYS = {
    "task", "model", "split", "seed", "params", "train", "test", "best_test", "seconds_to_target", "wall_seconds",
    "epochs",
}  # fmt: skip


@pytest.mark.parametrize("task", toy.TASKS)
@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_smoke_preset_through_the_cli(task, model, tmp_path):
    out = tmp_path / "run"
    split = "quadrant" if model == "conv" else "uniform"
    result = coordconv(
        "train", task, "--model", model, "--split", split, "--seed", 3, "--preset", "smoke", "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["task"], summary["model"], summary["split"], summary["seed"]) == (task, model, split, 3)
    assert summary["epochs"] == 2 and summary["params"] > 0
    metric = summary["metric"]
    assert metric in summary["train"] and metric in summary["test"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["epoch"] == 2
    for name in ("config.json", "model.safetensors", "checkpoint.pt", "predictions.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["task"] == task and "commit" in config["git"]


def test_overrides_reach_the_config(tmp_path):
    out = tmp_path / "run"
    result = coordconv(
        "train", "regression", "--preset", "smoke", "--out", out, "--lr", "0.002", "--batch-size", "16",
        "--no-stop-at-target", "--epochs", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["lr"], config["batch_size"], config["epochs"]) == (0.002, 16, 1)


def _without_times(summary):
    # the record of the run's files holds timings too (in metrics.jsonl and checkpoint.pt)
    timeless = {k: v for k, v in summary.items() if "seconds" not in k and k not in ("files", "summary_sha256")}
    return json.loads(json.dumps(timeless))


def test_resume_after_interruption_gives_the_same_result(tmp_path, monkeypatch):
    base = toy.preset("smoke", task="classification", model="coordconv", split="quadrant", epochs=3)
    full = toy.main(base, tmp_path / "full", log=lambda line: None)
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")  # the runtime's test hook: stop after one checkpoint
    interrupted = toy.main(base, tmp_path / "cut", log=lambda line: None)
    assert interrupted == {"interrupted": True, "done": 1}
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = toy.main(base, tmp_path / "cut", resume=True, log=lambda line: None)
    assert resumed == {"interrupted": True, "done": 2}
    resumed = toy.main(base, tmp_path / "cut", resume=True, log=lambda line: None)
    assert _without_times(resumed) | {"config": None} == _without_times(full) | {"config": None}
    full_log = [
        {k: v for k, v in json.loads(line).items() if "seconds" not in k}
        for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    ]
    cut_log = [
        {k: v for k, v in json.loads(line).items() if "seconds" not in k}
        for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    ]
    assert cut_log == full_log


def test_killed_run_resumes_through_the_cli(tmp_path):
    out = tmp_path / "run"
    args = ["train", "classification", "--preset", "smoke", "--epochs", "3", "--out", out]
    first = coordconv(*args, stop_after=1)
    assert first.returncode == 0, first.stderr
    assert "resume with --resume" in first.stderr
    (out / "metrics.jsonl").write_text((out / "metrics.jsonl").read_text() + '{"partial": "line of a killed run"}\n')
    again = coordconv(*args, "--resume", stop_after=1)
    assert again.returncode == 0, again.stderr
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # the stray line is gone, no epoch twice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "painting", "--out", "X"], "Unrecognized or misplaced options: painting"),
        (["train", "classification", "--model", "mlp", "--out", "X"], "invalid choice 'mlp'"),
        (["train", "classification", "--out", "X", "--batch-size", "0"], "invalid batch_size: 0"),
        (["train", "classification", "--out", "X", "--lr", "fast"], "could not convert string to float: 'fast'"),
        (["train", "classification"], "Missing from coordconv train classification: --out"),
        (["reproduce", "painting"], "unknown task 'painting'"),
        (["reproduce", "--seeds", "0"], "--seeds must be >= 1"),
    ],
)
def test_bad_cli_input(args, message):
    result = coordconv(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_existing_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    args = ["train", "regression", "--preset", "smoke", "--epochs", "1", "--out", out]
    assert coordconv(*args).returncode == 0
    before = (out / "summary.json").read_text()
    result = coordconv(*args)
    assert result.returncode == 1
    assert "already holds a run" in result.stderr and "--overwrite" in result.stderr
    assert (out / "summary.json").read_text() == before
    assert coordconv(*args, "--overwrite").returncode == 0


def test_resume_errors(tmp_path):
    result = coordconv("train", "regression", "--preset", "smoke", "--out", tmp_path / "none", "--resume")
    assert result.returncode == 1 and "holds no run" in result.stderr
    out = tmp_path / "run"
    args = ["train", "regression", "--preset", "smoke", "--epochs", "2", "--out", out]
    assert coordconv(*args, stop_after=1).returncode == 0
    result = coordconv(*args, "--lr", "0.5", "--resume", stop_after=1)
    assert result.returncode == 1 and "config differs in lr" in result.stderr
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = coordconv(*args, "--resume", stop_after=1)
    assert result.returncode == 1 and "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_reproduce_smoke_writes_report(tmp_path):
    out = tmp_path / "repro"
    result = coordconv("reproduce", "regression", "--preset", "smoke", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "| uniform | coordconv" in result.stdout
    names = ("report.md", "summary.png", "regression/report.md", "regression/table.md", "regression/heatmaps.png")
    for name in (*names, "regression/curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert "[regression](regression/report.md)" in (out / "report.md").read_text()  # the index
    report = (out / "regression" / "report.md").read_text()
    assert "fits train and test perfectly" in report  # the paper's claim sits beside ours
    again = coordconv("reproduce", "regression", "--preset", "smoke", "--out", out)
    assert again.returncode == 0 and again.stdout.count("(reused)") == 4
    table = (out / "regression" / "table.md").read_text()
    # the main job's default of one seed: the table says so and where the committed 10 seeds are
    assert "one seed per model and split, so each value is that seed's (no spread" in table
    assert "mean ± standard deviation" not in table
    # a run kept elsewhere under the output folder (an ablation, say) is not part of the report
    stray = out / "ablations" / "extra-run"
    args = ["train", "regression", "--model", "coordconv", "--preset", "smoke", "--epochs", "1", "--out", stray]
    assert coordconv(*args).returncode == 0
    assert coordconv("reproduce", "regression", "--preset", "smoke", "--out", out).returncode == 0
    assert (out / "regression" / "table.md").read_text() == table


@pytest.mark.parametrize(
    ("device", "message"),
    [("bogus", "invalid device 'bogus'"), ("cuda:7", "device 'cuda:7' asked for, but torch sees")],
)
def test_unavailable_device_is_refused_before_anything_is_written(device, message, tmp_path):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "run"
    result = coordconv("train", "classification", "--preset", "smoke", "--device", device, "--out", out)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_reproduce_in_parallel_processes_gives_the_same_runs_as_one_after_the_other(tmp_path):
    """One thread per run by default, so the numbers do not depend on how many runs train at once (or where)."""
    outs = {jobs: tmp_path / f"jobs{jobs}" for jobs in (1, 2)}
    for jobs, out in outs.items():
        result = coordconv("reproduce", "regression", "--preset", "smoke", "--jobs", jobs, "--out", out)
        assert result.returncode == 0, result.stderr
        assert f"{jobs} at a time, 1 thread each" in result.stdout
    runs = sorted(p.parent.name for p in outs[1].glob("regression/*/model.safetensors"))
    assert len(runs) == 4
    for run in runs:
        weights = [(out / "regression" / run / "model.safetensors").read_bytes() for out in outs.values()]
        assert weights[0] == weights[1], run
        stored = json.loads((outs[2] / "regression" / run / "config.json").read_text())
        assert stored["config"]["threads"] == 1 and stored["cpu"]["threads"] == 1
        assert stored["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize(("flag", "value"), [("--jobs", "0"), ("--threads", "-1"), ("--threads", "100000")])
def test_reproduce_threads_and_jobs_are_bounded(flag, value):
    result = coordconv("reproduce", flag, value)
    assert result.returncode == 2 and f"invalid {flag[2:]} '{value}': expected an integer from" in result.stderr
