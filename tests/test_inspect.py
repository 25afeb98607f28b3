import math

import pytest
import torch
from torch import nn

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose2d,
    coordconvify,
    format_usage,
    inspect_model,
)

LAYERS = [
    (lambda: CoordConv1d(3, 4, 3, padding=1), (2, 3, 9)),
    (lambda: CoordConv2d(3, 4, 3, padding=1, padding_mode="reflect", with_r=True), (2, 3, 7, 6)),
    (lambda: CoordConv2d(4, 4, 3, groups=2, stride=2), (2, 4, 9, 9)),
    (lambda: CoordConv3d(2, 3, 3), (2, 2, 5, 5, 5)),
    (lambda: CoordConvTranspose2d(3, 4, 4, stride=2, padding=1), (2, 3, 5, 6)),
]


@pytest.mark.parametrize(("make", "shape"), LAYERS)
def test_zero_coordinate_filters_report_zero(make, shape):
    layer = make()
    nn.init.zeros_(layer.coord_weight)
    (row,) = inspect_model(layer, torch.randn(shape))
    assert row.coord_norm == 0.0
    assert row.norm_ratio == 0.0
    assert row.rms_ratio == 0.0
    assert row.variance_share == 0.0


@pytest.mark.parametrize(("make", "shape"), LAYERS)
def test_zero_input_filters_report_share_one(make, shape):
    layer = make()
    with torch.no_grad():
        layer._split(layer.weight)[0].zero_()  # the input filters (views of weight)
    (row,) = inspect_model(layer, torch.randn(shape))
    assert row.input_norm == 0.0
    assert row.norm_ratio == math.inf
    assert row.variance_share == 1.0
    assert math.isnan(row.correlation)


def test_known_norms_and_share():
    # 1x1, one input channel, one output: input filter 3, coordinate filters (0, 4) on (i, j)
    layer = CoordConv2d(1, 1, 1, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([3.0, 0.0, 4.0]).view(1, 3, 1, 1))  # [W | W_c]
        layer.bias.fill_(7.0)  # a constant adds no variance
    x = torch.randn(4, 1, 5, 5, dtype=torch.float64).to(torch.float32)
    (row,) = inspect_model(layer, x)
    assert row.input_norm == pytest.approx(3.0)
    assert row.coord_norm == pytest.approx(4.0)
    assert row.norm_ratio == pytest.approx(4 / 3)
    assert row.rms_ratio == pytest.approx((4 / math.sqrt(2)) / 3)
    j = torch.linspace(-1, 1, 5).double()
    v_c = (4 * j).var(unbiased=False).item()  # the j channel, the same for every row and sample
    v_x = (3 * x.double()).var(unbiased=False).item()
    assert row.variance_share == pytest.approx(v_c / (v_x + v_c), rel=1e-5)


def test_unbatched_input_and_train_mode_kept():
    model = nn.Sequential(CoordConv2d(3, 4, 3), nn.BatchNorm2d(4))
    running = model[1].running_mean.clone()
    rows = inspect_model(model, torch.randn(2, 3, 8, 8))
    assert len(rows) == 1 and 0 < rows[0].variance_share < 1
    layer = model[0]
    unbatched = inspect_model(layer, torch.randn(3, 8, 8))
    assert 0 < unbatched[0].variance_share < 1
    assert model.training, "inspect_model must restore the training mode"
    torch.testing.assert_close(model[1].running_mean, running)  # ran in eval mode


def test_model_names_order_and_custom_forward():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    coordconvify(net, where=["0", "4"])
    rows = inspect_model(net, {"image": torch.randn(2, 3, 12, 12)}, forward=lambda m, s: m(s["image"]))
    assert [r.name for r in rows] == ["0", "4"]
    assert [r.kind for r in rows] == ["CoordConv2d", "CoordConv2d"]
    assert all(r.variance_share == 0.0 for r in rows)  # coordconvify starts from zero coordinate filters


def test_norms_without_a_sample_and_from_a_state_dict():
    net = nn.Sequential(CoordConv2d(3, 8, 3), nn.ReLU(), CoordConvTranspose2d(8, 4, 2, stride=2, with_r=True))
    rows = inspect_model(net)
    assert [r.variance_share for r in rows] == [None, None]
    # a state dict of an earlier development version, coordinate filters apart, is still read
    old = {}
    for key, value in net.state_dict().items():
        layer = net.get_submodule(key.rpartition(".")[0])
        if key.endswith("weight"):
            old[key], old[key[: -len("weight")] + "coord_weight"] = layer._split(value)
        else:
            old[key] = value
    from_sd = inspect_model(old)
    assert [r.name for r in from_sd] == ["0", "2"]
    assert [r.coord_channels for r in from_sd] == [2, 3]
    for a, b in zip(rows, from_sd, strict=True):
        assert a.coord_norm == pytest.approx(b.coord_norm)
        assert a.input_norm == pytest.approx(b.input_norm)
    assert "| 0 | - | 2 |" in format_usage(from_sd)


def test_errors():
    with pytest.raises(ValueError, match="has no CoordConv layer"):
        inspect_model(nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match=r"no coord_weight entry.*load it into the model and pass the model"):
        inspect_model(CoordConv2d(3, 3, 1).state_dict())
    net = nn.ModuleDict({"used": CoordConv2d(3, 3, 1), "unused": CoordConv2d(3, 3, 1)})
    with pytest.raises(ValueError, match="did not reach CoordConv layer 'unused'"):
        inspect_model(net, torch.randn(1, 3, 4, 4), forward=lambda m, s: m["used"](s))


def test_cli_inspects_a_toy_run_and_its_safetensors(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from coordconv.cli import main

    run = tmp_path / "run"
    assert main(["train", "regression", "--preset", "smoke", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(run), "--samples", "16"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| layer | class |")
    assert table[2].startswith("| net.0 | CoordConv2d | 2 |")
    assert main(["inspect", str(run), "--samples", "16", "--json"]) == 0
    import json

    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "net.0" and row["variance_share"] is not None and row["coord_norm"] > 0
    # a bare state dict of this version cannot say which channels are coordinates: a clear error
    assert main(["inspect", str(run / "model.safetensors")]) == 1
    assert "load it into the model and pass the model" in capsys.readouterr().err


def test_cli_inspect_errors(tmp_path, capsys):
    from coordconv.cli import main

    assert main(["inspect", str(tmp_path / "missing")]) == 1
    assert "missing does not exist; expected a run directory or a .safetensors file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["inspect", str(tmp_path / "notes.txt")]) == 1
    assert "notes.txt is neither a run directory nor a .safetensors file" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"config": {"env": "MinAtar/Breakout"}}')
    assert main(["inspect", str(tmp_path)]) == 1
    assert "is not a run of coordconv train" in capsys.readouterr().err


def test_cli_inspect_refuses_what_the_run_did_not_write(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file, save_file

    from coordconv.cli import main

    run = tmp_path / "run"
    assert main(["train", "regression", "--preset", "smoke", "--out", str(run)]) == 0
    capsys.readouterr()
    weights = run / "model.safetensors"
    original = weights.read_bytes()
    # other weights of the same shapes: the run's file record catches them
    save_file({k: torch.zeros_like(v) for k, v in load_file(str(weights)).items()}, str(weights))
    assert main(["inspect", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "model.safetensors" in err and "differs from what the run wrote" in err
    # a loose file: a wrong shape, an extra key, garbage
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "config.json").write_text((run / "config.json").read_text())
    weights.write_bytes(original)
    state = load_file(str(weights))
    cases = {
        "shape": {**state, "net.1.weight": torch.zeros(3, 3, 1, 1)},
        "extra": {**state, "surplus": torch.zeros(1)},
    }
    for name, tensors in cases.items():
        save_file(tensors, str(loose / "model.safetensors"))
        assert main(["inspect", str(loose)]) == 1, name
        err = capsys.readouterr().err
        assert "does not fit the model of its config.json" in err and "Traceback" not in err, name
    (loose / "model.safetensors").write_bytes(b"garbage")
    assert main(["inspect", str(loose)]) == 1
    assert "is not a readable safetensors file" in capsys.readouterr().err
    assert main(["inspect", str(loose / "model.safetensors")]) == 1
    assert "is not a readable safetensors file" in capsys.readouterr().err
    (loose / "config.json").write_text("[1, 2]")
    assert main(["inspect", str(loose)]) == 1
    assert "does not hold a run's config" in capsys.readouterr().err


def test_cli_inspect_says_what_a_committed_run_and_a_folder_of_runs_are(tmp_path, capsys):
    from coordconv.cli import main

    run = tmp_path / "runs" / "one"
    assert main(["train", "regression", "--preset", "smoke", "--out", str(run)]) == 0
    capsys.readouterr()
    (run / "model.safetensors").unlink()  # as the committed results keep them
    (run / "checkpoint.pt").unlink()
    assert main(["inspect", str(run)]) == 1
    assert "is a finished run whose weights were not kept" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "is not a run's folder (it has no config.json); pass one run's folder (for example" in err
    assert str(run) in err and "Errno" not in err


def test_layers_with_frozen_input_filters_are_reported_by_their_class():
    from coordconv import freeze_input_filters

    layer = CoordConv2d(3, 4, 3)
    before = inspect_model(layer)
    freeze_input_filters(layer)
    (row,) = inspect_model(layer, torch.randn(2, 3, 8, 8))
    assert row.kind == "CoordConv2d" and row.coord_norm == pytest.approx(before[0].coord_norm)
