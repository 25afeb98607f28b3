import numpy as np
import pytest
import torch

from coordconv.repro.data import notsoclevr
from coordconv.repro.experiments import toy, toy_tasks
from coordconv.repro.models import toy as models


def test_counts_and_centres():
    xy = notsoclevr.centers()
    assert xy.shape == (3136, 2) and notsoclevr.NUM_EXAMPLES == 3136
    assert xy.min().item() == 4 and xy.max().item() == 59
    assert len({tuple(p) for p in xy.tolist()}) == 3136
    assert xy[1].tolist() == [5, 4]  # y-major order: x varies fastest


def test_onehots_and_squares():
    xy = torch.tensor([[4, 4], [59, 10], [30, 59]])
    onehots = notsoclevr.onehot_maps(xy)
    assert onehots.shape == (3, 1, 64, 64) and onehots.sum().item() == 3
    assert onehots[1, 0, 10, 59] == 1  # row y, column x
    squares = notsoclevr.square_images(xy)
    assert squares.sum((1, 2, 3)).tolist() == [81.0, 81.0, 81.0]
    rows, cols = squares[1, 0].nonzero().T
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (6, 14, 55, 63)
    grey = notsoclevr.square_images(xy, 128 / 255)
    assert grey.max().item() == pytest.approx(128 / 255)


def test_splits():
    quadrant = notsoclevr.make_split("quadrant")
    assert (len(quadrant.train), len(quadrant.test)) == (2407, 729)
    xy = notsoclevr.centers()
    assert (xy[quadrant.test] > 32).all()
    assert not ((xy[quadrant.train, 0] > 32) & (xy[quadrant.train, 1] > 32)).any()
    uniform = notsoclevr.make_split("uniform", seed=3)
    assert (len(uniform.train), len(uniform.test)) == (2509, 627)
    official = notsoclevr.official_uniform_split()
    assert (len(official.train), len(official.test)) == (2368, 768)  # as the official train.py's comments
    for split in (quadrant, uniform, official):
        both = torch.cat([split.train, split.test])
        assert len(both) == 3136 and len(both.unique()) == 3136  # disjoint and complete


def test_splits_are_deterministic_and_seeded():
    a, b = notsoclevr.make_split("uniform", seed=1), notsoclevr.make_split("uniform", seed=1)
    assert torch.equal(a.test, b.test)
    assert not torch.equal(a.test, notsoclevr.make_split("uniform", seed=2).test)
    assert len(notsoclevr.make_split("uniform", test_fraction=0.25).test) == 784


def test_bad_split_arguments():
    with pytest.raises(ValueError, match="split must be 'uniform' or 'quadrant', got 'diagonal'"):
        notsoclevr.make_split("diagonal")
    with pytest.raises(ValueError, match="test_fraction must be in"):
        notsoclevr.make_split("uniform", test_fraction=1.5)


def test_write_npz_and_picture(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "nsc.npz"
    written = notsoclevr.write(path, split="quadrant")
    assert written == [path, path.with_suffix(".png")] and all(p.stat().st_size > 0 for p in written)
    with np.load(path) as data:
        assert data["centers"].shape == (3136, 2) and data["onehots"].sum() == 3136
        assert len(data["test_index"]) == 729 and str(data["split"]) == "quadrant"
    with pytest.raises(FileExistsError, match="--overwrite"):
        notsoclevr.write(path)
    notsoclevr.write(path, overwrite=True)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (models.CoordConvPainter(), 7553),
        (models.CoordConvImagePainter(), 11850),
        (models.DeconvPainter(1, 3), 103585),
        (models.DeconvPainter(1, 2), 46465),
        (models.DeconvPainter(2, 3), 409921),
        (models.DeconvPainter(3, 4), 1632001),
        (models.ConvRegressorUniform(), 72850),
        (models.ConvRegressorQuadrant(), 12914),
        (models.CoordConvRegressor(), 906),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, torch.nn.Module) else str(v),
)
def test_parameter_counts_match_the_paper(model, params):
    assert sum(p.numel() for p in model.parameters()) == params


def test_model_shapes():
    xy = torch.tensor([[4.0, 59.0], [30.0, 31.0]])
    onehot = notsoclevr.onehot_maps(xy.long())
    for m in (models.DeconvPainter(1, 2), models.DeconvPainter(1, 3), models.DeconvPainter(1, 4)):
        assert m(xy).shape == (2, 1, 64, 64)
    assert models.CoordConvPainter()(xy).shape == (2, 1, 64, 64)
    assert models.CoordConvImagePainter()(xy).shape == (2, 1, 64, 64)
    for m in (models.ConvRegressorUniform(), models.ConvRegressorQuadrant(), models.CoordConvRegressor()):
        assert m(onehot).shape == (2, 2)


def test_coordconv_regressor_is_linear_before_the_pool():
    model = models.CoordConvRegressor()
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())


def test_metrics_known_answers():
    logits = torch.full((2, 1, 64, 64), -5.0)
    logits[0, 0, 10, 20] = 5.0
    logits[1, 0, 0, 0] = 5.0
    target = torch.tensor([10 * 64 + 20, 5])
    assert toy_tasks.batch_metrics("classification", logits, target)["accuracy"].tolist() == [1.0, 0.0]
    assert toy_tasks.predicted_centres("classification", logits).tolist() == [[20.0, 10.0], [0.0, 0.0]]
    square = notsoclevr.square_images(torch.tensor([[20, 10]]))
    painted = torch.where(square > 0, 4.0, -4.0)
    assert toy_tasks.batch_metrics("rendering", painted, square)["iou"].item() == 1.0
    half = painted.clone()
    half[..., :, :20] = -4.0  # keep 5 of the 9 columns: IOU 45/81
    assert toy_tasks.batch_metrics("rendering", half, square)["iou"].item() == pytest.approx(45 / 81)
    metrics = toy_tasks.batch_metrics("regression", torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.5 + 3 / 64]]))
    assert metrics["error_px"].item() == pytest.approx(3.0)
    assert metrics["within_half_px"].item() == 0.0


def test_learning_rate_steps():
    cfg = toy.Config(lr=1.0, lr_step_every=200, lr_step_ratio=0.1, lr_max_steps=4)
    rates = [toy_tasks.learning_rate(cfg, e) for e in (0, 199, 200, 400, 800, 999)]
    assert rates == pytest.approx([1.0, 1.0, 0.1, 0.01, 1e-4, 1e-4])


def test_config_validation():
    with pytest.raises(ValueError, match="invalid batch_size: 0"):
        toy.Config(batch_size=0)
    with pytest.raises(ValueError, match="invalid task: 'painting'"):
        toy.Config(task="painting")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        toy.preset("huge", task="classification", model="conv")
