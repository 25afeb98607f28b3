"""What the ``coordconv`` command tells its user: one-line errors, plain-text help, how to resume, missing extras."""

import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import typing

import pytest

from coordconv.cli import main as cli
from coordconv.cli import parse
from coordconv.repro.experiments.registry import REGISTRY
from coordconv.repro.runtime import extras
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS

RST = ("``", ":func:", ":class:", ":mod:", ":meth:", ":attr:", "`~", ".. note::")


def _run(argv):
    """Run the command in this process: (status, stdout, stderr)."""
    try:
        code = cli([str(a) for a in argv])
    except SystemExit as e:  # argparse errors and --help
        code = e.code
    return code


def _helps():
    """``--help`` of every command, by command (``coordconv train classification``)."""
    commands = [[], ["demo"], ["bench"], ["inspect"], ["train"], ["reproduce"], ["sweep"], ["dataset"]]
    commands += [["train", task] for task in REGISTRY] + [["dataset", k] for k in extras.DATASET_NEEDS]
    helps = {}
    for words in commands:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            parse([*words, "--help"])
        # the text inside tyro's frames, one option per line as the terminal shows it
        helps[" ".join(["coordconv", *words])] = "\n".join(line.strip("│ ") for line in out.getvalue().splitlines())
    return helps


# -- argument errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (["train"], "coordconv train", "Expected one of {classification, rendering"),
        (["frobnicate"], "coordconv", "Unrecognized options: frobnicate"),
        (["train", "classification", "--model", "mlp", "--out", "x"], "coordconv train classification",
         "invalid choice 'mlp' for argument '--model'"),
        (["train", "classification", "--lr", "-0.1", "--out", "x"], "coordconv train classification",
         "invalid lr: -0.1; expected a finite number > 0"),
        (["train", "classification", "--epochs", "0", "--out", "x"], "coordconv train classification",
         "invalid epochs: 0; expected an integer >= 1"),
        (["train", "rl", "--gamma", "1.5", "--out", "x"], "coordconv train rl",
         "invalid gamma: 1.5; expected a finite number in (0, 1]"),
        (["train", "gan", "--beta1", "1", "--out", "x"], "coordconv train gan",
         "invalid beta1: 1.0; expected a finite number in [0, 1)"),
        (["dataset", "notsoclevr", "--out", "x.npz", "--test-fraction", "nan"], "coordconv dataset notsoclevr",
         "invalid test_fraction: nan; expected a finite number"),
    ],
)  # fmt: skip
def test_an_argument_error_is_one_line_with_a_pointer_to_help(argv, prog, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(f" (see {prog} --help)")
    assert message in lines[0]
    assert "usage:" not in captured.err + captured.out
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_failed_config_check_names_the_allowed_values(name):
    """Set each numeric field out of range (negative, or far too large); every refusal says what is expected."""
    module = REGISTRY[name].module
    hints = typing.get_type_hints(module.Config)
    refused = 0
    for field in dataclasses.fields(module.Config):
        if hints[field.name] not in (int, float):
            continue
        for value in (-1, 10**12):
            value = hints[field.name](value)
            try:
                module.preset("smoke", **REGISTRY[name].fixed, **{field.name: value})
            except ValueError as e:
                refused += 1
                assert re.search(rf"invalid {field.name}: .*; expected ", str(e)), str(e)
    assert refused >= 3


# -- help ----------------------------------------------------------------------------------------------------


def test_no_help_shows_rst_markup_and_train_lists_every_task(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    helps = _helps()
    for command, text in helps.items():
        for markup in RST:
            assert markup not in text, f"{command} --help shows {markup!r}"
    for task in REGISTRY:
        assert task in helps["coordconv train"], f"train --help lacks {task}"
        assert task in helps["coordconv reproduce"]
    assert re.search(r"--lr FLOAT +Adam learning rate\. \(default: 0\.01\)", helps["coordconv train classification"])


def test_train_help_shows_what_each_preset_sets(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one preset per line
    helps = _helps()
    for name, entry in REGISTRY.items():
        presets = helps[f"coordconv train {name}"].split("Each preset sets:")[1]
        for preset in entry.presets:
            assert re.search(rf"^\* {preset}[:,]", presets, re.MULTILINE), (name, preset)
    toy = helps["coordconv train classification"].split("Each preset sets:")[1]
    # the quick preset of the CoordConv classifier, as toy_presets.QUICK sets it
    line = next(line for line in toy.splitlines() if line.startswith("* quick, --model coordconv:"))
    assert "--epochs 30" in line and "--input-scale unit" in line and "--stop-at-target" in line
    assert "--batch-size" not in line  # 16 is the default: not a change
    imagenet = helps["coordconv train imagenet"]
    assert re.search(r"^\* paper: .*--arch resnet50.*--data \(required\)", imagenet, re.MULTILINE)


# -- interruptions -------------------------------------------------------------------------------------------------


def test_an_interrupted_train_says_how_to_resume(tmp_path, capsys, monkeypatch):
    toy = REGISTRY["classification"].module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(toy, "main", interrupted)
    out = tmp_path / "run"
    # stopped before the run wrote its config: nothing to resume, the same command starts it
    assert _run(["train", "classification", "--preset", "smoke", "--out", out]) == 130
    assert capsys.readouterr().err.strip() == (
        f"coordconv: interrupted (SIGINT) before the run in {out} started; start it again with: "
        f"coordconv train classification --preset smoke --out {out}"
    )
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert _run(["train", "classification", "--preset", "smoke", "--out", out, "--overwrite"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"coordconv: interrupted (SIGINT); the run in {out} keeps its last checkpoint. Resume it from there with: "
        f"coordconv train classification --preset smoke --out {out} --resume"
    )


def test_an_interrupted_reproduce_says_to_run_the_same_command(tmp_path, capsys, monkeypatch):
    from coordconv.repro import reproduce

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "main", interrupted)
    assert _run(["reproduce", "classification", "--preset", "smoke", "--out", tmp_path]) == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        f"Continue with the same command: coordconv reproduce classification --preset smoke --out {tmp_path}"
    )
    assert "unfinished ones resume from their last checkpoint" in err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_stops_a_run_with_the_resume_command_and_the_resumed_run_says_where_it_starts(tmp_path):
    pytest.importorskip("safetensors")
    out = tmp_path / "run"
    args = ["train", "classification", "--preset", "smoke", "--epochs", "500", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():  # wait for the first checkpoint
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("coordconv: interrupted (SIGTERM); ")
    command = last.split("Resume it from there with: ")[1]
    assert command == "coordconv " + " ".join([*args, "--resume"])
    done = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["epoch"]

    resumed = subprocess.run(
        [sys.executable, "-m", "coordconv.cli", *command.split()[1:]], capture_output=True, text=True, timeout=300,
        env={**env, STOP_AFTER_CHECKPOINTS: "1"},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    # the checkpoint may be a little ahead of the last metrics line read above, never behind
    match = re.search(
        r"resumed from its checkpoint: (\d+) of 500 epochs done, continuing with epoch (\d+)", resumed.stderr
    )
    assert match, resumed.stderr
    assert int(match[1]) >= done and int(match[2]) == int(match[1]) + 1


# -- progress lines ------------------------------------------------------------------------------------------------


def test_progress_lines_name_the_batch_mean_and_the_full_set_evaluation(tmp_path):
    pytest.importorskip("safetensors")
    toy = REGISTRY["classification"].module
    lines = []
    cfg = toy.preset("smoke", task="classification", model="coordconv")
    summary = toy.main(cfg, tmp_path / "run", log=lines.append)
    epochs = [line for line in lines if ": epoch " in line]
    assert epochs and all("train accuracy (mean over the epoch's batches) " in line for line in epochs)
    described = toy.describe(summary)
    assert "on the full training set" in described and "train accuracy" not in described
    # metrics.jsonl keeps its keys (committed runs are read with them)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_loss", "train_accuracy", "test_accuracy", "epoch", "step"} <= set(record)


# -- missing extras ------------------------------------------------------------------------------------------------


def _forbid_training(monkeypatch):
    for entry in REGISTRY.values():
        monkeypatch.setattr(entry.module, "main", lambda *a, **k: pytest.fail("trained without its extra"))


@pytest.mark.parametrize(
    ("blocked", "argv", "line"),
    [
        ("safetensors", ["train", "classification", "--preset", "smoke"],
         'coordconv train classification needs safetensors: pip install "torch-coordconv[experiments]"'),
        ("numpy", ["train", "regression"],
         'coordconv train regression needs numpy: pip install "torch-coordconv[experiments]"'),
        ("minatar", ["train", "rl", "--preset", "smoke"],
         'coordconv train rl needs minatar: pip install "torch-coordconv[rl]"'),
        ("ale_py", ["train", "rl", "--env", "Breakout", "--preset", "smoke"],
         'coordconv train rl needs ale-py: pip install "torch-coordconv[rl]"'),
        ("torchmetrics", ["train", "detection", "--preset", "smoke"],
         'coordconv train detection needs torchmetrics: pip install "torch-coordconv[detection]"'),
        ("scipy", ["reproduce", "gan", "--preset", "smoke"],
         'coordconv reproduce gan needs scipy: pip install "torch-coordconv[experiments]"'),
        ("ray", ["sweep", "classification", "--grid", "smoke"],
         'coordconv sweep classification needs ray: pip install "torch-coordconv[sweep]"'),
        ("numpy", ["dataset", "notsoclevr"],
         'coordconv dataset notsoclevr needs numpy: pip install "torch-coordconv[experiments]"'),
        ("PIL", ["dataset", "spatial"],
         'coordconv dataset spatial needs pillow: pip install "torch-coordconv[experiments]"'),
    ],
)  # fmt: skip
def test_a_missing_extra_stops_the_command_before_any_work(blocked, argv, line, tmp_path, capsys, monkeypatch):
    _forbid_training(monkeypatch)
    monkeypatch.setitem(sys.modules, blocked, None)  # find_spec reports a module blocked this way as missing
    out = tmp_path / "out"
    assert _run([*argv, "--out", out]) == 1
    assert capsys.readouterr().err == f"coordconv: error: {line}\n"
    assert not out.exists()


def test_missing_lists_every_absent_module_and_the_smallest_extras(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    assert extras.missing(["torch", "numpy", "torchvision", "numpy"]) == ["numpy", "torchvision"]
    with pytest.raises(extras.MissingExtraError) as error:
        extras.require("coordconv train imagenet", ["numpy", "torchvision", "safetensors"])
    # the detection extra installs the experiments extra too
    assert (
        str(error.value)
        == 'coordconv train imagenet needs numpy, torchvision: pip install "torch-coordconv[detection]"'
    )


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_to_a_parallel_reproduce_stops_its_workers_and_the_same_command_resumes(tmp_path):
    pytest.importorskip("safetensors")
    # quick-preset runs take a minute or more: the parent must not wait for them to end
    args = ["reproduce", "regression", "--preset", "quick", "--jobs", "2", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("regression/*/checkpoint.pt"))) < 2:  # both workers are training
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # to the parent only, as `kill PID` does
    _, err = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Continue with the same command" in err
    deadline = time.monotonic() + 10  # and no worker outlives it
    with pytest.raises(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.2)
    again = subprocess.run(
        [sys.executable, "-m", "coordconv.cli", *args], capture_output=True, text=True, timeout=600,
        env={**env, STOP_AFTER_CHECKPOINTS: "1"},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("resumed from its checkpoint") >= 2


def test_a_preset_another_task_owns_is_a_usage_error_naming_both(capsys):
    from coordconv.cli import main

    for task, preset, owner, own in [
        ("classification", "cpu", "gan", "smoke, quick, paper"),
        ("vae", "matched", "gan", "smoke, quick, paper"),
        ("gan", "long", "rl", "smoke, quick, cpu, matched, paper"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["reproduce", task, "--preset", preset, "--out", "unused"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"the {preset} preset is the {owner} task's; {task} takes {own}" in err and "('" not in err


def test_the_commands_checks_are_the_librarys(tmp_path):
    """The command only turns these ValueErrors into usage errors: each public function checks its own inputs."""
    from coordconv.repro import reproduce
    from coordconv.repro.data import notsoclevr
    from coordconv.repro.experiments.inspect_run import inspect_path

    with pytest.raises(ValueError, match="unknown task 'painting'"):
        reproduce.check_request(["painting"])
    with pytest.raises(ValueError, match="the cpu preset is the gan task's; classification takes smoke, quick"):
        reproduce.check_request(["classification"], preset="cpu")
    with pytest.raises(ValueError, match="--games applies to the rl task only"):
        reproduce.check_request(["classification"], options={"games": ("Breakout",)})
    with pytest.raises(ValueError, match="--samples must be >= 1, got 0"):
        inspect_path(tmp_path, 0)
    with pytest.raises(ValueError, match="invalid seed: -1; expected a seed from 0 to 4294967295"):
        notsoclevr.write(tmp_path / "n.npz", seed=-1)
    with pytest.raises(ValueError, match=r"invalid lr: -0\.1; expected a finite number > 0"):
        REGISTRY["classification"].train("smoke", {"lr": -0.1}, tmp_path / "run")
    assert not list(tmp_path.iterdir())
