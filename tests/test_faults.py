"""Runs and data under faults and bad input: the right result, or one line that names the problem (issue 13)."""

import dataclasses
import errno
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from coordconv.cli import main as cli
from coordconv.repro import reproduce
from coordconv.repro.data import mnist_canvas, notsoclevr
from coordconv.repro.experiments import toy
from coordconv.repro.report.runs import load_finished
from coordconv.repro.runtime import files, rundir
from coordconv.repro.runtime.files import RunError, write_atomic, write_json
from coordconv.repro.runtime.rundir import read_finished
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS, Session

pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

QUIET = {"log": lambda line: None}


def _error(capsys, argv, status=1):
    """Run the command in this process; return its one-line error (after checking the status and no traceback)."""
    try:
        code = cli([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        code = e.code
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _timeless(summary):
    # the record of the files holds timings too (metrics.jsonl, checkpoint.pt); the environments name the checkout's
    # commit, which an edit or commit during the test run changes between the two runs compared
    ignored = ("files", "summary_sha256", "environments")
    return {k: v for k, v in summary.items() if "seconds" not in k and k not in ignored}


def _metrics(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in lines]


# ---------------------------------------------------------------------------------------------------------
# silent wrong results

# stops at its target in epoch 29 of 40, between two evaluations of one epoch
STOPS_EARLY = toy.preset(
    "smoke", task="classification", model="coordconv", epochs=40, train_subset=32, test_subset=16, batch_size=8,
    eval_every=1, stop_at_target=True,
)  # fmt: skip


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs, no handler catches it."""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    summary = toy.main(STOPS_EARLY, out, **QUIET)
    assert summary["stopped_at_target"] and summary["epochs"] < STOPS_EARLY.epochs
    return out, summary


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "when"),
    [("log", 7), ("checkpoint", "last"), ("_save_weights", "after"), ("finish", "before")],
)
def test_a_run_killed_at_any_moment_resumes_to_the_uninterrupted_result(method, when, uninterrupted, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    full, expected = uninterrupted
    original = getattr(Session, method)
    calls = []

    def killing(self, *args, **kwargs):
        calls.append(1)
        if when == "before":
            raise Killed
        result = original(self, *args, **kwargs)
        if when in (len(calls), "after") or (when == "last" and len(calls) == expected["epochs"]):
            raise Killed
        return result

    monkeypatch.setattr(Session, method, killing)
    with pytest.raises(Killed):
        toy.main(STOPS_EARLY, tmp_path / "run", **QUIET)
    monkeypatch.undo()
    assert not (tmp_path / "run" / "summary.json").exists()
    resumed = toy.main(STOPS_EARLY, tmp_path / "run", resume=True, **QUIET)
    assert _timeless(resumed) == _timeless(expected)
    assert _metrics(tmp_path / "run") == _metrics(full)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "runs" / "classification" / "done"
    cfg = toy.preset("smoke", task="classification", model="coordconv", epochs=1)
    toy.main(cfg, out, **QUIET)
    return cfg, out


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.pt", "metrics.jsonl", "predictions.json"])
def test_a_finished_run_with_a_damaged_file_is_refused_naming_it(name, finished, capsys):
    cfg, out = finished
    path = out / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if name != "metrics.jsonl" else b"")
    with pytest.raises(RunError, match=f"{path}.*differs from what the run wrote"):
        toy.main(cfg, out, resume=True, **QUIET)
    with pytest.raises(RunError, match=str(path)):  # reproduce does not reuse it
        reproduce._run_jobs([(out, cfg)], toy, overwrite=False, workers=1)
    path.unlink()
    args = ["train", "classification", "--preset", "smoke", "--epochs", 1, "--out", out, "--resume"]
    if name in ("model.safetensors", "checkpoint.pt"):  # may be dropped (committed results keep the small files)
        reproduce._run_jobs([(out, cfg)], toy, overwrite=False, workers=1)
        return
    assert f"{path} is missing" in _error(capsys, args)


def test_a_finished_run_without_its_checkpoint_and_weights_is_still_verified(finished):
    cfg, out = finished
    for name in ("model.safetensors", "checkpoint.pt"):
        (out / name).unlink()
    reproduce._run_jobs([(out, cfg)], toy, overwrite=False, workers=1)  # reused: the reports need neither
    (out / "metrics.jsonl").write_text("")
    with pytest.raises(RunError, match=r"metrics\.jsonl.*differs"):
        reproduce._run_jobs([(out, cfg)], toy, overwrite=False, workers=1)


def test_metrics_cut_at_a_line_end_or_mid_line_are_refused_naming_the_file(finished):
    _, out = finished
    path = out / "metrics.jsonl"
    whole = path.read_text()
    path.write_text(whole + '{"epoch": 2}\n')  # a line more: the report would be silently wrong
    with pytest.raises(RunError, match=r"metrics\.jsonl.*differs"):
        load_finished(out.parent, "*/summary.json")
    # a summary from before the record (as the committed results): no verification, but a cut line is named
    summary = json.loads((out / "summary.json").read_text())
    del summary["files"], summary[rundir.SELF_KEY]
    write_json(out / "summary.json", summary)
    path.write_text(whole + '{"epoch": 2, "te')
    with pytest.raises(RunError, match=rf"{path}, line 2, is not a JSON object"):
        read_finished(out)
    path.write_text(whole)
    assert read_finished(out).metrics == [json.loads(whole)]  # legacy runs stay readable


def test_imagefolder_splits_must_hold_the_same_classes(tmp_path):
    pytest.importorskip("torchvision")
    from PIL import Image

    from coordconv.repro.experiments import imagenet, imagenet_data

    for split, classes in (("train", ("cat", "dog", "fox")), ("val", ("cat", "fox"))):
        for name in classes:
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / name / "0.png")
    cfg = imagenet.preset("smoke", variant="plain")
    with pytest.raises(ValueError, match=r"train and .*val hold different class folders \(only in train: dog"):
        imagenet_data.datasets(cfg, tmp_path)
    (tmp_path / "val" / "dog").mkdir()
    (tmp_path / "val" / "dog" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a corrupt image
    for split in ("train", "val"):  # a notebook's hidden folder is no class
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
    train, val = imagenet_data.datasets(cfg, tmp_path)
    assert train.class_to_idx == val.class_to_idx == {"cat": 0, "dog": 1, "fox": 2}
    with pytest.raises(ValueError, match=r"dog/0.png is not a readable image"):
        [val[i] for i in range(len(val))]
    for png in (tmp_path / "train").rglob("*.png"):
        png.rename(png.with_suffix(".txt"))  # a folder of non-images
    with pytest.raises(ValueError, match=r"train holds no image files"):
        imagenet_data.datasets(cfg, tmp_path)


def test_non_finite_values_are_refused_and_a_diverging_run_stops_naming_the_step(tmp_path, capsys):
    base = ["train", "classification", "--preset", "smoke", "--out", tmp_path / "x"]
    assert "invalid l2: inf; expected a finite number" in _error(capsys, [*base, "--l2", "inf"], 2)
    assert "invalid lr_d: nan; expected a finite number" in _error(
        capsys, ["train", "gan", "--preset", "smoke", "--out", tmp_path / "g", "--lr-d", "nan"], 2
    )
    with pytest.raises(ValueError, match="invalid l2: inf; expected a finite number"):
        dataclasses.replace(toy.preset("smoke", task="classification", model="coordconv"), l2=float("inf"))
    line = _error(capsys, [*base, "--lr", "1e30"])
    assert re.search(r"training diverged: the loss at step \d+ is (nan|inf)", line), line
    assert not (tmp_path / "x" / "summary.json").exists()
    with pytest.raises(RunError, match="NaN or infinite"):
        write_json(tmp_path / "s.json", {"loss": float("nan")})
    assert not (tmp_path / "s.json").exists()


def test_a_second_process_cannot_run_in_the_same_directory(tmp_path):
    out = tmp_path / "run"
    holder = textwrap.dedent(f"""
        import sys
        from coordconv.repro.runtime.session import Session
        Session.start({str(out)!r}, {{"a": 1}})
        print("claimed", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert child.stdout.readline().strip() == "claimed"
        with pytest.raises(RunError, match=f"{out} is in use by another process"):
            Session.start(out, {"a": 1}, overwrite=True)
    finally:
        child.communicate("")
    Session.start(out, {"a": 1}, resume=True)  # the lock went with the process


def test_run_directory_must_be_a_writable_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, message in (
        (tmp_path / "file", "is a file; expected a folder"),
        (tmp_path / "file" / "run", "cannot create the run directory"),
        ("", "invalid run directory ''"),
    ):
        line = _error(capsys, ["train", "regression", "--preset", "smoke", "--out", out])
        assert message in line and str(out) in line
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        line = _error(capsys, ["train", "regression", "--preset", "smoke", "--out", tmp_path / "ro" / "run"])
        assert "Permission denied" in line


def test_run_directory_on_a_read_only_file_system(tmp_path, monkeypatch, capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(rundir.Path, "mkdir", read_only)
    line = _error(capsys, ["train", "regression", "--preset", "smoke", "--out", tmp_path / "run"])
    assert line == f"coordconv: error: cannot create the run directory {tmp_path / 'run'}: Read-only file system"


def test_a_full_disk_leaves_no_temporary_file_and_names_the_file(tmp_path, monkeypatch):
    def full_disk(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"x" * 1000)  # torch wrote part of it, then failed as it does on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    run = Session.start(tmp_path / "run", {"a": 1})
    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0))
    with pytest.raises(RunError) as caught:
        run.checkpoint({"step": 1})
    assert str(caught.value) == f"cannot write {tmp_path / 'run' / 'checkpoint.pt'}: No space left on device"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(RunError, match=r"metrics\.jsonl: No space left on device"):
        run.log({"step": 1})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "config.json"]  # no temporary files


def test_bad_mnist_files_are_named(tmp_path):
    good = torch.zeros(3, 28, 28, dtype=torch.uint8)
    for images, labels in mnist_canvas.IDX_FILES.values():
        mnist_canvas.write_idx(tmp_path / images, good)
        mnist_canvas.write_idx(tmp_path / labels, torch.tensor([1, 2, 3], dtype=torch.uint8))
    mnist_canvas.load_mnist(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    mnist_canvas.write_idx(labels, torch.tensor([1, 2, 200], dtype=torch.uint8))
    with pytest.raises(ValueError, match=f"{labels} holds label 200; expected digit labels 0 to 9"):
        mnist_canvas.load_mnist(tmp_path)
    mnist_canvas.write_idx(labels, torch.zeros(0, dtype=torch.uint8))
    mnist_canvas.write_idx(tmp_path / "t10k-images-idx3-ubyte", torch.zeros(0, 28, 28, dtype=torch.uint8))
    with pytest.raises(
        ValueError, match=r"t10k-images-idx3-ubyte holds no items \(its header announces shape \[0, 28, 28\]"
    ):
        mnist_canvas.load_mnist(tmp_path)
    fake = tmp_path / "fake.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=f"{fake} is not a complete gzip file"):
        mnist_canvas.read_idx(fake)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(bytes(1000))[:20])
    with pytest.raises(ValueError, match=f"{cut} is not a complete gzip file"):
        mnist_canvas.read_idx(cut)


def test_a_checkpoint_of_another_run_or_with_other_keys_is_refused(tmp_path, monkeypatch):
    cfg = toy.preset("smoke", task="classification", model="coordconv", epochs=2)
    other = dataclasses.replace(cfg, task="regression")
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")  # both runs unfinished, their checkpoints there
    toy.main(cfg, tmp_path / "a", **QUIET)
    toy.main(other, tmp_path / "b", **QUIET)
    checkpoint = tmp_path / "a" / "checkpoint.pt"
    mine = checkpoint.read_bytes()
    shutil.copy(tmp_path / "b" / "checkpoint.pt", checkpoint)
    with pytest.raises(RunError, match=f"{checkpoint} belongs to another run .*differs in task"):
        toy.main(cfg, tmp_path / "a", resume=True, **QUIET)
    checkpoint.write_bytes(mine)
    state = torch.load(checkpoint, weights_only=True)
    state["model"] = {f"renamed.{k}": v for k, v in state["model"].items()}
    torch.save(state, checkpoint)
    with pytest.raises(RunError, match=f"{checkpoint} does not fit this run \\(RuntimeError: Error"):
        toy.main(cfg, tmp_path / "a", resume=True, **QUIET)


def test_a_failed_start_leaves_nothing_that_blocks_the_same_command(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "detection", "--preset", "smoke", "--mnist-dir", tmp_path / "nothing", "--out", out]
    pytest.importorskip("torchvision")
    first = _error(capsys, args)
    assert "has no train-images-idx3-ubyte" in first
    assert _error(capsys, args) == first  # not "already holds a run"


def test_bad_dataset_outputs_and_values(tmp_path, capsys):
    (tmp_path / "d.npz").mkdir()
    line = _error(capsys, ["dataset", "notsoclevr", "--out", tmp_path / "d.npz", "--overwrite"])
    assert f"the output must be an .npz file, got {tmp_path / 'd.npz'} (a directory)" in line
    assert "invalid square_value: nan; expected a finite number" in _error(
        capsys, ["dataset", "notsoclevr", "--out", tmp_path / "n.npz", "--square-value", "nan"], 2
    )
    # one check for train and dataset
    with pytest.raises(ValueError, match=r"invalid square_value: -1\.0; expected a finite number above 0"):
        notsoclevr.write(tmp_path / "n.npz", square_value=-1.0)
    with pytest.raises(ValueError, match="invalid square_value"):
        toy.preset("smoke", task="rendering", model="conv", square_value=-1.0)
    assert not list(tmp_path.glob("*n.*"))


def test_seeds_and_threads_are_bounded_at_parse_time(tmp_path, capsys):
    base = ["train", "classification", "--preset", "smoke", "--out", tmp_path / "x"]
    assert "--seed: invalid literal for int() with base 10: '1e20'" in _error(capsys, [*base, "--seed", "1e20"], 2)
    assert "invalid seed: 1099511627776; expected a seed from 0 to 4294967295" in _error(
        capsys, [*base, "--seed", 2**40], 2
    )
    assert "invalid split_seed: 4294967296" in _error(capsys, [*base, "--split-seed", 2**32], 2)
    line = _error(capsys, ["reproduce", "--first-seed", 2**32 - 1, "--seeds", 2, "--out", tmp_path], 2)
    assert "goes past the largest seed" in line
    assert not (tmp_path / "x").exists()
    line = _error(capsys, [*base, "--threads", 100_000])
    assert f"invalid threads: 100000; expected 0 (torch's default) to {os.cpu_count()}" in line


def test_sweep_address_that_is_not_ray_fails_within_a_bounded_wait(tmp_path, monkeypatch):
    from coordconv.repro import sweep

    monkeypatch.setattr(sweep, "ANSWER_SECONDS", 0.5)
    with socket.socket() as server:  # listens, accepts, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(RunError, match=f"{address} answers, but not as a Ray cluster"):
            sweep._check_address(address)


def test_paper_preset_asks_before_a_gpu_job_on_the_cpu(tmp_path, capsys):
    line = _error(capsys, ["train", "classification", "--model", "conv", "--preset", "paper", "--out", tmp_path / "p"])
    assert line.endswith("preset paper: 1 run(s), 1,000 epochs in all on the CPU; the paper preset is a GPU job: "
                         "pass --yes to start it on the CPU anyway")  # fmt: skip
    line = _error(capsys, ["reproduce", "--preset", "paper", "--out", tmp_path / "r"])
    assert "preset paper: 4 run(s), 2,200 epochs in all on the CPU" in line and "--yes" in line
    assert not (tmp_path / "p").exists() and not list((tmp_path / "r").rglob("*.json"))
    pytest.importorskip("torchvision")
    line = _error(capsys, ["train", "imagenet", "--preset", "paper", "--yes", "--out", tmp_path / "i"], 2)
    assert "the paper preset trains on ImageNet: pass --data" in line


def test_all_run_files_get_the_same_mode(finished):
    _, out = finished
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if not p.name.startswith(".")}
    assert modes["model.safetensors"] == modes["config.json"] == 0o666 & ~_umask()
    assert len(set(modes.values())) == 1, modes


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    write_atomic(path, "old")
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only")))
    with pytest.raises(RunError, match=f"cannot write {path}: Read-only file system"):
        write_atomic(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


# ---------------------------------------------------------------------------------------------------------
# data loss and silent results (issue 32)


def test_an_edited_summary_is_refused_naming_it(finished):
    cfg, out = finished
    path = out / "summary.json"
    summary = json.loads(path.read_text())
    assert summary[rundir.SELF_KEY]  # the run recorded its summary's hash
    summary["test"]["accuracy"] = 0.999  # a hand-edited number the hashed metrics.jsonl contradicts
    path.write_text(json.dumps(summary, indent=2))
    with pytest.raises(RunError, match=r"summary\.json was changed after the run wrote it"):
        load_finished(out.parent, "*/summary.json")
    with pytest.raises(RunError, match=r"summary\.json was changed"):
        reproduce._run_jobs([(out, cfg)], toy, overwrite=False, workers=1)


def test_a_summary_rewritten_in_another_layout_is_not_a_change(finished):
    _, out = finished
    path = out / "summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(summary.items())))))
    assert load_finished(out.parent, "*/summary.json")[0].summary == summary


def test_a_foreign_config_json_in_out_is_kept(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    card = '{"architectures": ["BertModel"], "hidden_size": 768}'
    (out / "config.json").write_text(card)
    args = ["train", "classification", "--preset", "smoke", "--epochs", 1, "--out", out]
    assert "config.json is not a coordconv run's config; choose another --out" in _error(capsys, args)
    assert (out / "config.json").read_text() == card
    # a run's own config.json (a run that failed before its first checkpoint) still counts as empty
    Session.start(tmp_path / "failed", {"lr": 1.0})
    rundir.release((tmp_path / "failed").resolve())
    toy.main(toy.preset("smoke", task="classification", model="coordconv", epochs=1), tmp_path / "failed", **QUIET)
    assert (tmp_path / "failed" / "summary.json").exists()


def test_dataset_overwrite_never_deletes_a_folder_it_did_not_write(tmp_path, capsys):
    pytest.importorskip("PIL")
    from coordconv.repro.data import spatial_folder

    home = tmp_path / "A"
    (home / "sub").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    args = ["dataset", "spatial", "--out", home / "sub" / "..", "--train", 4, "--val", 2, "--grid", 2, "--overwrite"]
    err = _error(capsys, args)
    assert f"{home} is not a data set this command wrote (it holds notes.txt, sub)" in err
    assert (home / "notes.txt").read_text() == "mine" and (home / "sub").is_dir()
    # a folder it wrote is replaced; a copy left by a killed writer (a process that is gone) is removed
    root = spatial_folder.write(tmp_path / "s", train=4, val=2, grid=2)
    stale = tmp_path / ".s.tmp999999999"
    (stale / "train").mkdir(parents=True)
    assert spatial_folder.write(tmp_path / "s", train=6, val=2, grid=2, overwrite=True) == root
    assert sum(1 for _ in (root / "train").rglob("*.png")) == 6
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "s"]


def test_a_long_name_gets_a_temporary_name_within_the_limit(tmp_path):
    long = tmp_path / ("x" * 250 + ".json")
    write_json(long, {"a": 1})
    assert json.loads(long.read_text()) == {"a": 1}
    names = {files.temporary_name(tmp_path / ("y" * 250 + s)) for s in (".json", ".jsonl")}
    assert len(names) == 2 and all(len(n.encode()) <= 255 and n.startswith(".") for n in names)


def test_a_run_resumed_in_another_environment_records_both(tmp_path, monkeypatch):
    cfg = toy.preset("smoke", task="classification", model="coordconv", epochs=3)
    out = tmp_path / "run"
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")
    assert toy.main(cfg, out, **QUIET).get("interrupted")
    monkeypatch.delenv(STOP_AFTER_CHECKPOINTS)
    stored = json.loads((out / "config.json").read_text())
    first = json.loads(json.dumps({k: stored[k] for k in ("git", "versions", "cpu")}))  # a copy
    stored["versions"]["torch"] = "2.0.0"  # as if the first epochs ran on another machine and torch
    stored["cpu"]["capability"] = "AVX2"
    (out / "config.json").write_text(json.dumps(stored))
    lines = []
    summary = toy.main(cfg, out, resume=True, log=lines.append)
    now = torch.backends.cpu.get_cpu_capability()
    changed = [line for line in lines if "resumed in another environment" in line]
    assert len(changed) == 1 and f"torch 2.0.0 -> {torch.__version__}" in changed[0]
    assert (f"capability AVX2 -> {now}" in changed[0]) == (now != "AVX2")
    assert [e["versions"]["torch"] for e in summary["environments"]] == ["2.0.0", torch.__version__]
    assert summary["environments"][1] == {**first, "git": summary["environments"][1]["git"]}
    assert len(json.loads((out / "config.json").read_text())["resumed_in"]) == 1
    assert read_finished(out).summary == summary  # the rewritten config.json is the one the record holds


def test_a_run_resumed_in_the_same_environment_records_one(tmp_path, monkeypatch):
    cfg = toy.preset("smoke", task="classification", model="coordconv", epochs=3)
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")
    toy.main(cfg, tmp_path / "run", **QUIET)
    monkeypatch.delenv(STOP_AFTER_CHECKPOINTS)
    lines = []
    summary = toy.main(cfg, tmp_path / "run", resume=True, log=lines.append)
    assert len(summary["environments"]) == 1 and not any("another environment" in line for line in lines)
    assert "resumed_in" not in json.loads((tmp_path / "run" / "config.json").read_text())


def _children(pid):
    """The process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat))
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("fault", ["kill the parent", "kill a worker", "stop a worker, terminate the parent"])
def test_reproduce_workers_end_with_their_parent_and_a_dead_worker_is_one_line(fault, tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    # 4 runs for 2 workers: runs are still queued when the fault comes (6 seeds took 65 s a case, mostly the rerun)
    args = ["reproduce", "classification", "--preset", "smoke", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.rglob("checkpoint.pt")):  # the workers are training
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    workers = [pid for pid in _children(process.pid) if "spawn_main" in _cmdline(pid)]
    assert workers
    if fault == "kill the parent":
        process.kill()
    elif fault == "kill a worker":  # as the OOM killer would
        os.kill(workers[0], signal.SIGKILL)
    else:
        os.kill(workers[0], signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers left running after '{fault}'"
        time.sleep(0.2)
    if fault == "kill a worker":
        assert process.returncode == 1 and "Traceback" not in err
        assert "a worker process died while training" in err.strip().splitlines()[-1]
    elif fault != "kill the parent":
        assert "Traceback" not in err and "interrupted (SIGTERM)" in err.strip().splitlines()[-1]
    # no run is left locked: the same command finishes every run
    again = subprocess.run([sys.executable, "-m", "coordconv.cli", *args], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_a_closed_stdout_does_not_stop_reproduce(tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "coordconv.cli", "reproduce", "classification", "--preset", "smoke", "--out", out]
    process = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # as `| head -1` does: one line, then the pipe is closed
    process.stdout.close()
    with process.stderr:
        err = process.stderr.read()
    assert process.wait(timeout=600) == 0, err
    assert first.startswith("reproduce: 4 classification runs") and "Traceback" not in err and "BrokenPipe" not in err
    assert len(list(out.glob("classification/*/summary.json"))) == 4  # every run trained, none abandoned


@pytest.mark.parametrize(("fraction", "empty"), [("1e-9", "test"), ("0.9999999", "training")])
def test_a_test_fraction_that_empties_a_set_is_named(fraction, empty, tmp_path, capsys):
    args = ["train", "classification", "--preset", "smoke", "--test-fraction", fraction, "--out", tmp_path / "r"]
    err = _error(capsys, args)
    assert f"test_fraction {float(fraction)!r} holds out" in err and f"leaving an empty {empty} set" in err


def test_an_environment_that_is_not_an_image_game_is_named(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    args = ["train", "rl", "--preset", "smoke", "--env", "CartPole-v1", "--out", tmp_path / "r"]
    assert "'CartPole-v1' is not a game this experiment trains on" in _error(capsys, args)


def test_runs_in_sibling_folders_share_one_offline_data_set(tmp_path):
    pytest.importorskip("torchvision")
    import threading

    from coordconv.repro.experiments import imagenet, imagenet_data
    from coordconv.repro.runtime import ranks

    cfg = imagenet.preset("smoke", variant="plain")
    procs = ranks.ALONE
    roots, errors = [], []

    def one(name):
        try:
            roots.append(imagenet_data.data_root(cfg, tmp_path / name, procs))
        except Exception as e:  # any error fails the test below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(f"run{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(roots)) == 1
    assert sorted(p.name for p in roots[0].iterdir()) == ["train", "val"]


def test_a_model_too_large_for_memory_is_one_line(tmp_path, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 99 GB")

    monkeypatch.setattr(toy, "build_model", no_memory)  # as --multiplier 400 does on a 24 GB machine
    args = ["train", "classification", "--preset", "smoke", "--model", "conv", "--multiplier", 400, "--out", tmp_path]
    err = _error(capsys, args)
    assert err.startswith("coordconv: error: the run does not fit in memory (") and "--multiplier" in err
    monkeypatch.setattr(toy, "build_model", lambda cfg: (_ for _ in ()).throw(RuntimeError("another failure")))
    with pytest.raises(RuntimeError, match="another failure"):  # other errors are not dressed up as memory
        cli(["train", "classification", "--preset", "smoke", "--out", str(tmp_path / "b")])


def test_a_filter_wider_than_half_the_canvas_is_refused(tmp_path, capsys):
    args = ["train", "classification", "--preset", "smoke", "--filter-size", 99, "--out", tmp_path]
    assert "invalid filter_size: 99; expected an integer from 1 to 32" in _error(capsys, args, status=2)


def test_a_path_longer_than_the_system_takes_is_one_line(tmp_path, capsys):
    out = "/".join(["d" * 200] * 25)
    args = ["train", "classification", "--preset", "smoke", "--out", tmp_path / out]
    err = _error(capsys, args)
    assert "cannot create the run directory" in err and "File name too long" in err and len(err) < 400


@pytest.mark.skipif(sys.platform != "linux", reason="file names as bytes")
def test_a_path_that_is_not_utf8_is_printed_escaped(tmp_path):
    out = os.fsencode(tmp_path) + b"/bad\xff"
    args = [sys.executable, "-m", "coordconv.cli", "train", "classification", "--preset", "smoke", "--out"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run([*map(os.fsencode, args), out], capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.decode().rstrip().endswith("/bad\\udcff") and b"Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_inside_a_long_native_operation_stops_the_command(tmp_path):
    import signal
    import time

    script = textwrap.dedent(
        """
        import torch
        from coordconv import _process
        _process.TERMINATE_GRACE_S = 1.0
        torch.set_num_threads(1)
        a = torch.randn(6000, 6000)
        with _process.terminate_as_interrupt():
            print("ready", flush=True)
            while True:
                a @ a  # one native call of several seconds: Python's handler waits for it
        """
    )
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    process = subprocess.Popen([sys.executable, "-c", script], **pipes)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # inside the first product
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM) inside a native operation that did not end within 1 s" in err
    assert time.monotonic() - sent < 3.0 + 1.0  # not the product's several seconds


def test_copies_left_by_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "data.npz"
    dead, live = tmp_path / ".data.tmp999999999.npz", tmp_path / f".data.tmp{os.getppid()}.npz"
    other = tmp_path / ".other.tmp999999999.npz"  # another file's copy is not this write's business
    for path in (dead, live, other):
        path.write_bytes(b"half")
    write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not dead.exists() and live.exists() and other.exists()


def test_a_finished_run_leaves_no_lock_file(finished):
    _, out = finished
    assert not (out / ".lock").exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_run_made_before_a_field_existed_resumes(tmp_path, monkeypatch):
    cfg = toy.preset("smoke", task="classification", model="coordconv", epochs=3)
    out = tmp_path / "run"
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")
    toy.main(cfg, out, **QUIET)
    monkeypatch.delenv(STOP_AFTER_CHECKPOINTS)
    # as if the run predated eval_batch_size (at its default): config.json and the checkpoint lack it
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["eval_batch_size"]
    (out / "config.json").write_text(json.dumps(stored))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["config"]["eval_batch_size"]
    torch.save(state, out / "checkpoint.pt")
    assert toy.main(cfg, out, resume=True, **QUIET)["epochs"] == 3
    # a field at another value than its default is still a different run
    other = tmp_path / "other"
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")
    toy.main(cfg, other, **QUIET)
    monkeypatch.delenv(STOP_AFTER_CHECKPOINTS)
    changed = dataclasses.replace(cfg, eval_batch_size=cfg.eval_batch_size + 1)
    with pytest.raises(RunError, match="config differs in eval_batch_size"):
        toy.main(changed, other, resume=True, **QUIET)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_command_starts_is_one_line(monkeypatch, capsys, signum):
    """Parsing imports torch and the experiments (seconds): SIGTERM or Ctrl-C then is one line."""
    import os
    import time

    from coordconv import cli

    def slow_parse(argv):
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("the signal did not interrupt the start")

    monkeypatch.setattr(cli, "parse", slow_parse)
    before = signal.getsignal(signal.SIGTERM)
    # a shell's background job (`cmd &`) inherits SIGINT ignored, and the command keeps an ignored SIGINT ignored:
    # give this process Python's own Ctrl-C handler for the test, whatever started it
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["reproduce"]) == 128 + signum
    finally:
        signal.signal(signal.SIGINT, previous_int)
    err = capsys.readouterr().err
    assert err == f"coordconv: interrupted ({signal.Signals(signum).name}) while starting; nothing was written\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the previous SIGTERM handler is back


def test_a_path_through_a_file_names_the_file(tmp_path, capsys):
    """mkdir under a file fails with "File exists" or "Not a directory": the message names the file instead."""
    from coordconv.cli import main

    blocker = tmp_path / "notes"
    blocker.write_text("x")
    assert main(["dataset", "notsoclevr", "--out", str(blocker / "nsc.npz")]) == 1
    assert capsys.readouterr().err.strip().endswith(f"{blocker} is a file, not a folder")
    assert main(["train", "classification", "--preset", "smoke", "--out", str(blocker / "a" / "run")]) == 1
    assert capsys.readouterr().err.strip().endswith(f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_torch_is_imported_is_one_line(signum):
    """The command's entry point runs before `import coordconv` imports torch: a signal then is one line."""
    code = textwrap.dedent(f"""
        import importlib.abc, os, sys, time
        class Interrupt(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "coordconv.cli":  # as if the signal came while torch was being imported
                    os.kill(os.getpid(), {int(signum)})
                    time.sleep(5)
                return None
        sys.meta_path.insert(0, Interrupt())
        import _coordconv_launch
        sys.exit(_coordconv_launch.main())
    """)
    import signal as signals

    result = subprocess.run(
        [sys.executable, "-c", code, "--version"], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL),  # as a terminal starts it
    )  # fmt: skip
    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, result.stderr
    assert result.stderr == f"coordconv: interrupted ({name}) while starting; nothing was written\n"


def test_the_command_is_the_launcher():
    """pyproject's script entry point is the launcher, which hands over to coordconv.cli.main."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"coordconv": "_coordconv_launch:main"}
    result = subprocess.run([sys.executable, "-m", "_coordconv_launch", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("coordconv ")


def test_no_numpy_warning_from_the_command_in_a_torch_only_install():
    """torch warns at import when NumPy is missing; the command's own messages are all a user sees."""
    code = "import sys; sys.modules['numpy'] = None; import _coordconv_launch; sys.exit(_coordconv_launch.main())"
    result = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: coordconv")
    assert result.stderr == ""
    check = subprocess.run([sys.executable, "-c", "import sys; sys.modules['numpy'] = None; import torch"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Failed to initialize NumPy" in check.stderr  # what the command hides (torch's own warning)


def test_git_revision_reads_the_commit_and_whether_tracked_files_changed(tmp_path, monkeypatch):
    import subprocess

    from coordconv.repro.runtime import rundir

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    monkeypatch.setattr(rundir, "__file__", str(tmp_path / "pkg" / "rundir.py"))  # the checkout it runs from
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no checkout above tmp_path counts
    (tmp_path / "pkg").mkdir()
    assert rundir.git_revision() == {"commit": None, "dirty": None}  # not a checkout
    git("init", "-q")
    assert rundir.git_revision()["commit"] is None  # no commit yet
    (tmp_path / "pkg" / "a.txt").write_text("a")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    assert rundir.git_revision() == {"commit": git("rev-parse", "HEAD").strip(), "dirty": False}
    (tmp_path / "pkg" / "untracked.txt").write_text("b")
    assert rundir.git_revision()["dirty"] is False  # untracked files do not count
    (tmp_path / "pkg" / "a.txt").write_text("changed")
    assert rundir.git_revision()["dirty"] is True
