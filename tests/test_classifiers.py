"""The classification experiment's offline data set (an ImageFolder of positions) and its ResNet variants."""

import copy

import pytest
import torch

from coordconv import CoordConv2d
from coordconv.repro.data import sortofclevr, spatial_folder
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS


def _scenes(centres):
    c = torch.tensor(centres).view(-1, 1, 2).expand(-1, 2, 2).clone()
    return sortofclevr.Scenes(c, torch.zeros(len(centres), 2, dtype=torch.bool))


def test_labels_are_the_red_centre_cell():
    scenes = _scenes([(10, 10), (53, 53), (20, 40), (47, 16)])  # (x, y)
    assert spatial_folder.labels(scenes, grid=4).tolist() == [0, 15, 2 * 4 + 1, 1 * 4 + 2]
    assert spatial_folder.labels(scenes).tolist() == [1 * 8 + 1, 6 * 8 + 6, 5 * 8 + 2, 2 * 8 + 5]  # 8x8 by default
    assert spatial_folder.class_names(grid=4)[9] == "r2c1"
    with pytest.raises(ValueError, match="grid must be between 1 and 10, got 0"):
        spatial_folder.labels(scenes, grid=0)


def test_write_an_image_folder(tmp_path):
    root = spatial_folder.write(tmp_path / "spatial", train=40, val=12)
    names = spatial_folder.class_names()
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(names)
    assert sum(1 for _ in (root / "train").rglob("*.png")) == 40 and sum(1 for _ in (root / "val").rglob("*.png")) == 12
    with pytest.raises(FileExistsError, match="exists; pass --overwrite"):
        spatial_folder.write(root, train=4, val=4)
    tv = pytest.importorskip("torchvision")
    folder = tv.datasets.ImageFolder(str(root / "train"), allow_empty=True)  # 40 images leave some cells empty
    assert folder.classes == names and len(folder) == 40
    image, label = folder[0]
    assert image.size == (64, 64) and 0 <= label < 64
    # the label names the cell of the red object
    import numpy as np

    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0)
    found = sortofclevr.find_objects(pixels)
    x, y = found.red[0].tolist()
    assert names[label] == f"r{int(y * 8 // 64)}c{int(x * 8 // 64)}"  # the default 8x8 grid


@pytest.mark.parametrize("variant", ["plain", "input_layer", "coordconvify"])
def test_resnet_variants_build_and_run(variant):
    pytest.importorskip("torchvision")
    from coordconv.repro.models.classifiers import build_classifier

    net = build_classifier("resnet18", variant, 16)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 16)
    coords = [m for m in net.modules() if isinstance(m, CoordConv2d)]
    assert len(coords) == (0 if variant == "plain" else 1)
    if variant == "input_layer":
        assert net[0].out_channels == 8 and net[0].with_r and net[0].kernel_size == (1, 1)
        assert net[1].conv1.in_channels == 8


def test_retrofitted_resnet_equals_the_plain_one_at_conversion():
    tv = pytest.importorskip("torchvision")
    from coordconv import coordconvify

    torch.manual_seed(0)
    plain = tv.models.resnet18(weights=None, num_classes=16).eval()
    converted = coordconvify(copy.deepcopy(plain), where="conv1", with_r=True).eval()
    assert isinstance(converted.conv1, CoordConv2d)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x))


def test_dataset_command(tmp_path):
    import subprocess
    import sys

    run = [sys.executable, "-m", "coordconv.cli", "dataset", "spatial", "--out", str(tmp_path / "s")]
    r = subprocess.run([*run, "--train", "8", "--val", "4", "--grid", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "s" / "val").iterdir()) == ["r0c0", "r0c1", "r1c0", "r1c1"]
    again = subprocess.run([*run, "--train", "8", "--val", "4"], capture_output=True, text=True)
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr


def test_local_weights_make_the_retrofitted_network_start_where_the_plain_one_is(tmp_path):
    tv = pytest.importorskip("torchvision")
    from safetensors.torch import save_file

    from coordconv.repro.models.classifiers import build_classifier

    torch.manual_seed(1)
    pretrained = tv.models.resnet18(weights=None, num_classes=16).eval()
    save_file({k: v.contiguous() for k, v in pretrained.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.save(pretrained.state_dict(), tmp_path / "w.pth")
    x = torch.rand(2, 3, 64, 64)
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        net = build_classifier("resnet18", "coordconvify", 16, weights=path).eval()
        with torch.no_grad():
            torch.testing.assert_close(net(x), pretrained(x))
    with pytest.raises(ValueError, match="does not fit the network"):
        build_classifier("resnet18", "plain", 10, weights=tmp_path / "w.pth")
    with pytest.raises(ValueError, match="cannot be loaded into the input_layer variant"):
        build_classifier("resnet18", "input_layer", 16, weights=tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_classifier("resnet18", "plain", 16, weights=tmp_path / "none.pth")


def test_bad_classifier_arguments():
    pytest.importorskip("torchvision")
    from coordconv.repro.models.classifiers import build_classifier

    with pytest.raises(ValueError, match="arch must be one of resnet18, resnet50, got 'vgg'"):
        build_classifier("vgg", "plain", 10)
    with pytest.raises(ValueError, match="variant must be one of"):
        build_classifier("resnet18", "deep", 10)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        build_classifier("resnet18", "plain", 0)


# ---------------------------------------------------------------------------------------------------------
# training runs, alone and under torchrun (gloo)


def _cli(*args, torchrun=0, cwd=None, stop_after=0):
    import os
    import subprocess
    import sys
    import tempfile

    launcher = (
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}"]
        if torchrun
        else [sys.executable]
    )
    with tempfile.TemporaryDirectory() as tmp:  # torchrun writes a torchelastic_* folder there: removed after
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": tmp}
        if stop_after:
            env[STOP_AFTER_CHECKPOINTS] = str(stop_after)
        return subprocess.run(
            [*launcher, "-m", "coordconv.cli", "train", "imagenet", "--preset", "smoke", *map(str, args)],
            capture_output=True, text=True, timeout=600, env=env, cwd=cwd,
        )  # fmt: skip


def _summary(folder):
    import json

    return json.loads((folder / "summary.json").read_text())


SMALL = ("--lr", "0.01", "--epochs", "1", "--batch-size", "16", "--offline-train", "64", "--offline-grid", "4")


@pytest.mark.slow
def test_two_processes_agree_and_match_one_process(tmp_path):
    pytest.importorskip("torchvision")
    one = _cli("--out", tmp_path / "one", *SMALL)
    assert one.returncode == 0, one.stderr
    two = _cli("--out", tmp_path / "two", *SMALL, torchrun=2)
    assert two.returncode == 0, two.stderr
    a, b = _summary(tmp_path / "one"), _summary(tmp_path / "two")
    assert (a["world_size"], b["world_size"]) == (1, 2) and a["ranks_agree"] and b["ranks_agree"]
    # the same global batches and averaged gradients; BatchNorm statistics are per process on CPU, hence the tolerance
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.1)
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.2)
    assert (tmp_path / "two" / "model.safetensors").exists() and not (tmp_path / "two" / "rank1").exists()


@pytest.mark.slow
def test_resume_on_another_process_count(tmp_path):
    pytest.importorskip("torchvision")
    args = ("--out", tmp_path / "run", "--offline-grid", "4")
    cut = _cli(*args, torchrun=2, stop_after=1)
    assert cut.returncode == 0, cut.stderr
    assert not (tmp_path / "run" / "summary.json").exists() and (tmp_path / "run" / "checkpoint.pt").exists()
    resumed = _cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = _summary(tmp_path / "run")
    assert summary["epochs"] == 2 and summary["world_size"] == 1
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_bad_data_folder(tmp_path):
    pytest.importorskip("torchvision")
    (tmp_path / "data" / "train").mkdir(parents=True)
    r = _cli("--out", tmp_path / "x", "--data", tmp_path / "data")
    assert r.returncode == 1 and "has no val/ folder" in r.stderr
