"""Sort-of-Clevr, the object finder and entropy, the GAN and VAE models, and their runs through the CLI."""

import copy
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from command import coordconv
from coordconv import CoordConv2d
from coordconv.repro.data import sortofclevr as soc
from coordconv.repro.experiments import generative
from coordconv.repro.models import generative as models
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")


# ---------------------------------------------------------------------------------------------------------
# data


def test_scenes_follow_the_rules():
    scenes = soc.sample_scenes(2000, seed=3)
    c = scenes.centers
    assert c.shape == (2000, 2, 2) and scenes.circle.shape == (2000, 2)
    assert c.min() == soc.FIRST and c.max() == soc.LAST  # uniform in [10, 54): both ends are drawn
    assert ((c[:, 0] - c[:, 1]).float().norm(dim=1) >= soc.MIN_DISTANCE).all()
    assert 0.4 < scenes.circle.float().mean() < 0.6


def test_images_hold_one_red_and_one_blue_object_of_the_right_shape():
    images, scenes = soc.generate(300, seed=1)
    assert images.shape == (300, 3, 64, 64) and images.dtype == torch.uint8
    red, blue, ink = soc.colour_masks(images)
    white = (images == 255).all(dim=1)
    assert (red | blue | white).all()  # nothing but white, red and blue
    assert torch.equal(ink, red | blue)
    # objects that do not touch have their exact areas: 21x21 squares, radius-10 discs
    apart = ((scenes.centers[:, 0] - scenes.centers[:, 1]).abs() > 2 * soc.HALF).any(dim=1)
    disc = sum(1 for dx in range(-10, 11) for dy in range(-10, 11) if dx * dx + dy * dy <= 100)
    for k, mask in enumerate((red, blue)):
        expected = torch.where(scenes.circle[:, k], disc, 21 * 21)
        assert torch.equal(mask.flatten(1).sum(1)[apart], expected[apart])
    found = soc.find_objects(images)
    assert found.one_each.all()
    # objects with a gap between them are two regions; adjacent or overlapping ones form one
    gap = ((scenes.centers[:, 0] - scenes.centers[:, 1]).abs() > 2 * soc.HALF + 1).any(dim=1)
    assert found.two_objects[gap].all() and found.two_objects.float().mean() > 0.75  # ~0.8: many touch
    assert torch.allclose(found.blue, scenes.centers[:, 1].float())  # blue is drawn last, never covered
    assert (found.red - scenes.centers[:, 0].float()).abs().max() <= 1.0  # a covered edge row moves it < 1 px


def test_generation_is_deterministic_for_a_seed():
    a, _ = soc.generate(50, seed=7)
    b, _ = soc.generate(50, seed=7)
    c, _ = soc.generate(50, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_counts():
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        soc.sample_scenes(-1)


# ---------------------------------------------------------------------------------------------------------
# the object finder and the entropy, on known answers


def _canvas(*objects):
    """White images with given (colour, x0, y0, size) filled squares."""
    img = torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)
    for colour, x0, y0, size in objects:
        img[0, :, y0 : y0 + size, x0 : x0 + size] = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1)
    return img


def test_finder_known_answers():
    red, blue = (255, 0, 0), (0, 0, 255)
    one_each = _canvas((red, 10, 20, 5), (blue, 40, 40, 9))
    found = soc.find_objects(one_each)
    assert found.red.tolist() == [[12.0, 22.0]] and found.blue.tolist() == [[44.0, 44.0]]
    assert found.one_each.tolist() == [True]
    two_red = soc.find_objects(_canvas((red, 0, 0, 6), (red, 30, 30, 8), (blue, 50, 5, 6)))
    assert two_red.red_count.tolist() == [2] and two_red.red.tolist() == [[33.5, 33.5]]  # the larger one
    assert two_red.one_each.tolist() == [False] and two_red.object_count.tolist() == [3]
    purple = soc.find_objects(_canvas(((128, 0, 128), 5, 5, 8), ((128, 0, 128), 40, 40, 8)))
    assert purple.red_count.tolist() == purple.blue_count.tolist() == [0] and purple.two_objects.tolist() == [True]
    assert found.two_separate.tolist() == [True]
    fused = soc.find_objects(_canvas((red, 10, 10, 8), (blue, 18, 10, 8)))  # touching: the colours pass, not apart
    assert fused.one_each.tolist() == [True] and fused.two_separate.tolist() == [False]
    speck = soc.find_objects(_canvas((red, 5, 5, 4), (blue, 40, 40, 6)))  # 16 px < MIN_AREA: noise
    assert speck.red_count.tolist() == [0] and speck.red.isnan().all()
    float_images = one_each.float() / 255  # float input in [0, 1] gives the same answer
    assert soc.find_objects(float_images).red.tolist() == [[12.0, 22.0]]
    with pytest.raises(ValueError, match=r"RGB images \(N, 3, H, W\), got shape \(1, 64, 64\)"):
        soc.find_objects(one_each[:, 0])


def test_entropy_known_distributions():
    # uniform over 4 bins of 8 px -> log 4; all in one bin -> 0
    four = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]] * 25)
    assert soc.position_entropy(four) == pytest.approx(math.log(4))
    assert soc.position_entropy(torch.tensor([[1.0, 1.0], [7.0, 7.0]])) == 0.0
    # rows with NaN are left out
    with_nan = torch.cat([four, torch.full((10, 2), math.nan)])
    assert soc.position_entropy(with_nan) == pytest.approx(math.log(4))
    # the whole uniform data: close to log of the number of occupied bins
    _, scenes = soc.generate(20_000, seed=0)
    h = soc.position_entropy(scenes.centers[:, 0].float())
    assert math.log(25) < h < math.log(49)
    with pytest.raises(ValueError, match="at least one point"):
        soc.position_entropy(torch.full((3, 2), math.nan))
    assert soc.entropies(soc.find_objects(_canvas()))["red"] is None


# ---------------------------------------------------------------------------------------------------------
# models


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_gan_and_vae_shapes(model):
    g, d = models.build_gan(model, z_dim=8, width=1 / 16)
    x = g(torch.rand(3, 8) * 2 - 1)
    assert x.shape == (3, 3, 64, 64) and x.abs().max() <= 1
    assert d(x).shape == (3,)
    assert isinstance(d.convs[0], CoordConv2d) == (model == "coordconv")
    _, plain_d = models.build_gan(model, z_dim=8, width=1 / 16, batchnorm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain_d.modules()) and plain_d(x).shape == (3,)
    vae = models.build_vae(model, latent=4, width=1 / 16)
    logits, mean, logvar = vae(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 3, 64, 64) and mean.shape == logvar.shape == (2, 4)
    assert isinstance(vae.encoder.convs[0], CoordConv2d) == (model == "coordconv")


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_discriminator_width_can_differ_from_the_generators(model):
    g, d = models.build_gan(model, 8, 1 / 4, d_width=1 / 8)
    g_same, d_same = models.build_gan(model, 8, 1 / 4)
    d_small = models.build_gan(model, 8, 1 / 8)[1]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(g) == count(g_same) and count(d) == count(d_small) < count(d_same)


def test_minibatch_std_discriminator_sees_the_batch_spread():
    torch.manual_seed(0)
    d = models.Discriminator(1 / 16, batchnorm=False, minibatch_std=True)
    assert d.fc.in_features == 4 * 4 * 32 + 1
    x = torch.rand(4, 3, 64, 64)
    same = x[:1].expand(4, -1, -1, -1)
    feats = d.convs(same)
    # identical images: spread 0, so the logit is what the plain features give with a zero extra feature
    expected = d.fc(torch.cat([feats, torch.zeros(4, 1)], dim=1)).squeeze(1)
    torch.testing.assert_close(d(same), expected)
    spread = d.convs(x).std(dim=0, correction=0).mean()
    torch.testing.assert_close(d(x), d.fc(torch.cat([d.convs(x), spread.expand(4, 1)], dim=1)).squeeze(1))
    assert d(x[:1]).shape == (1,)  # a batch of one has no spread


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_spectral_norm_discriminator_has_unit_norm_layers_and_the_same_first_layer(model):
    torch.manual_seed(0)
    g, d = models.build_gan(model, 8, 1 / 16, batchnorm=False, spectral_norm=True)
    models.official_init(g, d)  # initialises the normalised layers' original weights (Glorot-uniform)
    original = d.fc.parametrizations.weight.original
    bound = math.sqrt(6 / (original.shape[1] + 1))
    assert original.abs().max() <= bound and original.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    x = torch.rand(2, 3, 64, 64)
    for _ in range(30):  # power iterations (one per forward in training mode)
        d(x)
    d.eval()
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 5
    for layer in layers:
        assert torch.linalg.matrix_norm(layer.weight.flatten(1), 2).item() == pytest.approx(1.0, abs=0.02)
    if model == "coordconv":
        # AddCoords and a five-channel convolution: the CoordConv2d of the same weights
        first = d.convs[1]
        twin = CoordConv2d(3, first.out_channels, 5, 2, 2)
        with torch.no_grad():
            twin.weight.copy_(first.weight)  # [W | W_c]: the same layout
            twin.bias.copy_(first.bias)
        torch.testing.assert_close(d.convs[:2](x), twin(x))


def test_coordconv_generator_first_layer_is_a_coordconv_of_the_tiled_latent():
    gen = models.CoordConvDecoder(6, width=1 / 16).double()
    layer = CoordConv2d(6, gen.z_in.out_features, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight[:, :6].copy_(gen.z_in.weight[:, :, None, None])
        layer.coord_weight.copy_(gen.coord_in.weight)  # a view of weight
        layer.bias.copy_(gen.z_in.bias)
    z = torch.rand(2, 6, dtype=torch.float64)
    ours = gen.z_in(z)[:, :, None, None] + gen.coord_in(gen.grid.double())
    tiled = layer(z[:, :, None, None].expand(2, 6, 64, 64))
    torch.testing.assert_close(ours, tiled)


@pytest.mark.parametrize("model", ["conv", "coordconv"])
def test_official_init(model):
    torch.manual_seed(0)
    g, d = models.build_gan(model, z_dim=64, width=1 / 2, batchnorm=False)
    models.official_init(g, d)
    for net in (g, d):
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) and m.bias is not None:
                assert not m.bias.any()
    # Glorot-uniform: bound sqrt(6 / (fan_in + fan_out)); the CoordConv's coordinate filters share its fan-in
    first = d.convs[0]
    extra = 2 if model == "coordconv" else 0
    bound = math.sqrt(6 / (25 * (3 + extra) + 25 * first.out_channels))
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    if model == "coordconv":
        assert first.coord_weight.abs().max() <= bound
        # He-normal (truncated at 2 std, std corrected): std sqrt(2 / fan_in); the first layer's fan-in is z + i, j
        layer = g.body[1]
        std = math.sqrt(2 / layer.in_channels)
        assert layer.weight.std().item() == pytest.approx(std, rel=0.1)
        assert layer.weight.abs().max() <= 2 * std / 0.8796 + 1e-6
        first_std = math.sqrt(2 / 66)
        assert g.z_in.weight.std().item() == pytest.approx(first_std, rel=0.1)
        assert g.coord_in.weight.abs().max() <= 2 * first_std / 0.8796 + 1e-6
    else:
        deconv = g.deconvs[0]  # (in, out, k, k): fan_in = out * k * k for the transposed convolution's input grads
        bound = math.sqrt(6 / (25 * deconv.in_channels + 25 * deconv.out_channels))
        assert deconv.weight.abs().max() <= bound


@pytest.mark.parametrize("width", [1.0, 1 / 8])
def test_vaes_have_matched_sizes(width):
    sizes = [sum(p.numel() for p in models.build_vae(m, 16, width).parameters()) for m in ("conv", "coordconv")]
    assert abs(sizes[0] - sizes[1]) / max(sizes) < 0.25


def test_official_gan_sizes():
    g, _ = models.build_gan("coordconv", 256, 1.0)
    pointwise = [(256, 512), (512, 256), (256, 256), (256, 128), (128, 64)]
    expected = sum(i * o + o for i, o in pointwise) + 2 * 512  # first layer: z (with bias) and the i, j filters
    expected += 2 * (64 * 64 * 9 + 64) + 64 * 3 + 3
    assert sum(p.numel() for p in g.parameters()) == expected
    with pytest.raises(ValueError, match="model must be 'conv' or 'coordconv', got 'dense'"):
        models.build_gan("dense")


# ---------------------------------------------------------------------------------------------------------
# runs


def test_bad_config_and_preset():
    with pytest.raises(ValueError, match="width"):
        generative.Config(width=0)
    with pytest.raises(ValueError, match="beta2"):
        generative.Config(beta2=1.0)
    with pytest.raises(ValueError, match="invalid init: 'he'"):
        generative.Config(init="he")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="r1"):
        generative.Config(r1=-1.0)
    with pytest.raises(ValueError, match="invalid d_input: 'raw'"):
        generative.Config(d_input="raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"invalid d_width: 0; expected None or in \(0, 16\]"):
        generative.Config(d_width=0)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        generative.preset("huge", task="gan", model="conv")
    with pytest.raises(ValueError, match="unknown task 'flow'"):
        generative.preset("smoke", task="flow", model="conv")


def test_cpu_preset_treats_both_gans_alike():
    conv, coord = (generative.preset("cpu", task="gan", model=m) for m in ("conv", "coordconv"))
    # the same training and stabiliser; only the width, the latent size and, as in the official code, the
    # discriminator's input differ
    differ = {"model", "width", "d_input", "z_dim"}
    assert {k: v for k, v in to_dict(conv).items() if k not in differ} == {
        k: v for k, v in to_dict(coord).items() if k not in differ
    }
    assert (conv.width, conv.d_input, coord.width, coord.d_input) == (1 / 2, "tanh", 1 / 8, "pre_tanh")
    assert (conv.init, conv.d_batchnorm, conv.d_minibatch_std, conv.beta1, conv.beta2, conv.r1, conv.g_ema) == (
        "official", False, False, 0.5, 0.999, 10.0, 0.0,
    )  # fmt: skip
    assert (conv.z_dim, coord.z_dim, conv.d_spectral_norm) == (256, 16, False)
    assert (conv.steps, conv.lr_decay, conv.train_images) == (6_000, 0.5, 10_000)
    with pytest.raises(ValueError, match="the cpu preset is the GAN's"):
        generative.preset("cpu", task="vae", model="conv")
    # smoke, quick and paper keep the settings their committed runs were made with
    for name in ("smoke", "quick", "paper"):
        cfg = generative.preset(name, task="gan", model="conv")
        assert (cfg.init, cfg.d_input, cfg.beta1, cfg.beta2, cfg.z_dim) == ("torch", "tanh", 0.5, 0.999, 256)


def test_matched_preset_pairs_the_gans_as_the_paper_did():
    conv, coord = (generative.preset("matched", task="gan", model=m) for m in ("conv", "coordconv"))
    # the CoordConv GAN is the cpu preset's, so its committed runs serve the matched comparison unchanged
    assert coord == generative.preset("cpu", task="gan", model="coordconv")
    # the conv GAN: the cpu preset's training at the CoordConv GAN's width and latent size
    assert conv == dataclasses.replace(generative.preset("cpu", task="gan", model="conv"), width=1 / 8, z_dim=16)
    g_conv, d_conv = models.build_gan("conv", conv.z_dim, conv.width, batchnorm=conv.d_batchnorm)
    g_coord, d_coord = models.build_gan("coordconv", coord.z_dim, coord.width, batchnorm=coord.d_batchnorm)

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    # one discriminator (the CoordConv GAN's sees two coordinate channels more) and the paper's ~14x generator ratio
    assert count(d_coord) - count(d_conv) == 2 * 5 * 5 * 64 // 8  # 2 channels into the first 5x5 conv
    assert 13 < count(g_conv) / count(g_coord) < 15
    with pytest.raises(ValueError, match="the matched preset is the GAN's"):
        generative.preset("matched", task="vae", model="conv")


@pytest.mark.parametrize("d_input", ["tanh", "pre_tanh"])
def test_discriminator_input_and_samples(d_input):
    cfg = generative.preset("smoke", task="gan", model="coordconv", d_input=d_input, init="official")
    trainer = models.GANTrainer(cfg)
    z = trainer.latents(4, torch.Generator().manual_seed(0))
    seen, raw = trainer._fake(z), trainer.g(z)
    torch.testing.assert_close(seen, raw if d_input == "pre_tanh" else torch.tanh(raw))
    samples = trainer.sample(z)  # always through the tanh, in [0, 1]
    torch.testing.assert_close(samples, torch.tanh(trainer.g.eval()(z)) * 0.5 + 0.5)
    assert samples.min() >= 0 and samples.max() <= 1


def test_gan_logs_its_balance(tmp_path):
    cfg = generative.preset("smoke", task="gan", model="conv", threads=1, d_input="pre_tanh", init="official", r1=10.0)
    generative.main(cfg, tmp_path / "run", log=lambda _: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6]
    for r in records:
        assert r["d_loss"] > 0 and r["g_loss"] > 0 and r["r1_penalty"] > 0
        assert 0 <= r["d_real_acc"] <= 1 and 0 <= r["d_fake_acc"] <= 1
        assert 0 <= r["two_separate"] <= r["one_each"] + 1e-9 and r["sample_spread"] >= 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["two_separate"] > 0.5  # the data: objects touch in about a sixth of the images
    from PIL import Image

    with Image.open(tmp_path / "run" / "progress.png") as img:  # one row of 8 samples per evaluation
        assert img.size[0] > 3 * img.size[1]


@pytest.mark.parametrize(("task", "lr_decay"), [("gan", 0.0), ("vae", 0.0), ("gan", 0.8)])
def test_resumed_run_equals_an_uninterrupted_one(task, lr_decay, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    cfg = generative.preset("smoke", task=task, model="coordconv", threads=1, lr_decay=lr_decay)
    whole = generative.main(cfg, tmp_path / "whole", log=lambda _: None)
    monkeypatch.setenv(STOP_AFTER_CHECKPOINTS, "1")  # the smoke preset checkpoints every 3 steps
    stopped = generative.main(cfg, tmp_path / "cut", log=lambda _: None)
    assert stopped == {"interrupted": True, "done": 3}
    resumed = generative.main(cfg, tmp_path / "cut", resume=True, log=lambda _: None)
    assert resumed["steps"] == whole["steps"] == cfg.steps
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    for name in ("samples.png", "interpolation.png", "progress.png", "objects.npz", "summary.json", "metrics.jsonl"):
        assert (tmp_path / "cut" / name).exists()
    # the logged interval means and the progress rows survive the interruption
    whole_log, cut_log = ((tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("whole", "cut"))
    drop = ("train_seconds",)
    assert [{k: v for k, v in json.loads(x).items() if k not in drop} for x in whole_log] == [
        {k: v for k, v in json.loads(x).items() if k not in drop} for x in cut_log
    ]
    assert (tmp_path / "whole" / "progress.png").read_bytes() == (tmp_path / "cut" / "progress.png").read_bytes()


@pytest.mark.slow
def test_train_and_reproduce_through_the_cli(tmp_path):
    out = tmp_path / "gan"
    r = coordconv("train", "gan", "--preset", "smoke", "--model", "conv", "--out", out, "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "gan conv seed 0: 6 steps" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["one_each"] == 1.0 and set(summary["entropy"]) == {"red", "blue", "diff"}
    again = coordconv("train", "gan", "--preset", "smoke", "--model", "conv", "--out", out)
    assert again.returncode == 1 and "already holds a run" in again.stderr
    rep = coordconv("reproduce", "gan", "vae", "--preset", "smoke", "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr
    report = (tmp_path / "rep" / "gan" / "report.md").read_text() + (tmp_path / "rep" / "vae" / "report.md").read_text()
    assert "CoordConv GAN" in report and "conv VAE" in report and "3.13 / 2.69 / 2.81" in report
    index = (tmp_path / "rep" / "report.md").read_text()
    assert "[gan](gan/report.md)" in index and "[vae](vae/report.md)" in index
    for task in ("gan", "vae"):
        assert (tmp_path / "rep" / task / "objects.png").exists()
    reused = coordconv("reproduce", "gan", "--preset", "smoke", "--out", tmp_path / "rep")
    assert reused.returncode == 0 and reused.stdout.count("(reused)") == 2
    # a run from before a config field existed is reused when the field has its default
    path = tmp_path / "rep" / "gan" / "conv-seed0" / "summary.json"
    summary = json.loads(path.read_text())
    del summary["config"]["d_batchnorm"]
    del summary["summary_sha256"]  # such runs also predate the self-hash
    path.write_text(json.dumps(summary))
    again = coordconv("reproduce", "gan", "--preset", "smoke", "--out", tmp_path / "rep")
    assert again.returncode == 0 and again.stdout.count("(reused)") == 2


def test_dataset_command(tmp_path):
    import numpy as np

    r = coordconv("dataset", "sortofclevr", "--out", tmp_path / "s.npz", "--count", "20", "--seed", "4")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "s.npz") as z:
        assert z["images"].shape == (20, 64, 64, 3) and z["centers"].shape == (20, 2, 2)
        images, _ = soc.generate(20, seed=4)
        assert (z["images"] == images.permute(0, 2, 3, 1).numpy()).all()
    assert (tmp_path / "s.png").exists()
    refused = coordconv("dataset", "sortofclevr", "--out", tmp_path / "s.npz", "--count", "20")
    assert refused.returncode == 1 and "exists; pass --overwrite" in refused.stderr


def test_gan_report_tests_the_difference(tmp_path):
    from scipy import stats

    from coordconv.repro.report import generative as report
    from coordconv.repro.runtime.rundir import FinishedRun

    def run(model, seed, red, separate):
        summary = {
            "task": "gan", "model": model, "seed": seed, "entropy": {"red": red, "blue": 3.0, "diff": 2.0},
            "one_each": 0.9, "two_objects": 0.8, "two_separate": separate, "interpolation_one_each": 0.9,
            "interpolation_two_objects": 0.8, "train_seconds": 10.0, "config": {"eval_samples": 100},
            "data": {"entropy": {"red": 3.5, "blue": 3.5, "diff": 4.3}, "one_each": 1.0, "two_objects": 0.8},
        }  # fmt: skip
        return FinishedRun(tmp_path / f"{model}-seed{seed}", summary, [])

    conv = [run("conv", s, r, 0.5) for s, r in enumerate([2.0, 2.2, 2.4])]  # "apart": no spread, no test
    coord = [run("coordconv", s, r, 0.7) for s, r in enumerate([3.0, 3.1, 3.5])]
    text = report.gan_test(conv + coord)
    ci = stats.ttest_ind([3.0, 3.1, 3.5], [2.0, 2.2, 2.4], equal_var=False).confidence_interval(0.95)
    assert (
        f"| entropy red | 2.20 ± 0.20 | 3.20 ± 0.26 | +1.00 [{ci.low:+.2f}, {ci.high:+.2f}] | higher | reproduced |"
        in text
    )
    # no spread in either group: the interval is the point, and the paper says nothing about this measure
    assert "| one of each, apart | 0.50 ± 0.00 | 0.70 ± 0.00 | +0.20 [+0.20, +0.20] | no claim | higher |" in text
    assert "| entropy blue | 3.00 ± 0.00 | 3.00 ± 0.00 | +0.00 [+0.00, +0.00] | higher | no difference (no" in text
    assert "needs at least two" in report.gan_test(conv + coord[:1])
    broken = FinishedRun(tmp_path / "coordconv-seed3", {**coord[0].summary, "seed": 3, "one_each": 0.1}, [])
    text = report.gan_test(conv + coord[:1] + [broken])  # one working seed of a model: no comparison at all
    assert "No comparison" in text and "CoordConv GAN: 1 of 2" in text and "95% interval" not in text
    # a seed that does not work leaves the entropies to the working seeds, the object counts to all of them
    text = report.gan_test(conv + coord + [broken])
    assert f"| entropy red | 2.20 ± 0.20 | 3.20 ± 0.26 | +1.00 [{ci.low:+.2f}, {ci.high:+.2f}] |" in text
    assert "| one red + one blue | 0.90 ± 0.00 | 0.70 ± 0.40 |" in text
    assert "over the working seeds only (3 and 3; not working: CoordConv GAN: 1 of 4;" in text
    table = report.gan_table(conv + coord)
    assert "| CoordConv GAN | 3 | 3 of 3 |" in table and "70.0 ± 0.0%" in table
    # both work: the finding compares the spread of the positions (red 3.2 against 2.2, blue 3.0 both) and of the
    # relative placement (difference entropy 2.0 both)
    finding = report.finding(conv + coord, "gan")
    assert finding.startswith("Both GANs work in every seed")
    assert (
        "the paper's less mode collapse (CoordConv's objects more spread over the canvas; its binning is not "
        in finding
    )
    assert (
        "only the direction is tested): reproduced (mean entropy of the red and blue centres 3.10 against 2.60 nats"
        in finding
    )
    assert (
        "the paper's slightly less varied relative placement: no difference (no spread: every seed of both gives "
        in finding
    )
    assert "(difference entropy 2.00 against 2.00, the data's 4.30; difference +0.00 [+0.00, +0.00])" in finding
    tied = [run("coordconv", s, r, 0.7) for s, r in enumerate([2.0, 2.3, 2.3])]
    finding = report.finding(conv + tied, "gan")
    assert (
        "only the direction is tested): no detectable difference; this test could detect effects larger than" in finding
    )
    assert "cannot be compared" in report.finding(conv + coord[:1] + [broken], "gan")
    # the matched pairing's outcome: a conv GAN that draws the scene but in one place (collapsed) in most seeds
    collapsed = [run("conv", s, r, 0.0) for s, r in enumerate([0.0, 0.1, 0.0])]
    collapsed.append(FinishedRun(tmp_path / "conv-seed3", {**collapsed[0].summary, "seed": 3, "one_each": 0.0}, []))
    finding = report.finding(collapsed + coord, "gan")
    assert finding.startswith("The CoordConv GAN works in every seed and the GAN (DCGAN-like) in 3 of 4 seeds")
    assert "the paper's less mode collapse (over the working seeds: 3 and 3) (CoordConv" in finding
    assert "binning is not given, so only the direction is tested): reproduced (mean entropy" in finding
    assert "| data (Sort-of-Clevr) | - | - | 3.50 |" in table  # runs from before two_separate existed: "-"


def test_reproduce_refuses_a_preset_a_task_lacks(tmp_path):
    r = coordconv("reproduce", "vae", "--preset", "cpu", "--out", tmp_path / "rep")
    assert r.returncode == 2 and "the cpu preset is the gan task's; vae takes" in r.stderr


def test_generator_ema_averages_the_weights_and_samples_from_the_average():
    import copy

    cfg = generative.preset("smoke", task="gan", model="conv", g_ema=0.75)
    trainer = models.GANTrainer(cfg)
    before = copy.deepcopy(trainer.g.state_dict())
    images, _ = soc.generate(16, seed=0)
    trainer.step(images, torch.Generator().manual_seed(0))
    after, ema = trainer.g.state_dict(), trainer.g_sample.state_dict()
    for name, value in ema.items():
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(value, 0.75 * before[name] + 0.25 * after[name], msg=name)
    z = trainer.latents(4, torch.Generator().manual_seed(1))
    samples = trainer.sample(z)
    torch.testing.assert_close(samples, torch.tanh(trainer.g_sample.eval()(z)) * 0.5 + 0.5)
    # the averaged generator's BatchNorm statistics are its own: the mean of its first BatchNorm's input
    gen = torch.Generator().manual_seed(cfg.seed)
    latents = torch.cat([trainer.latents(cfg.batch_size, gen) for _ in range(models.STANDING_BATCHES)])
    with torch.no_grad():
        first = trainer.g_sample.fc(latents).view(len(latents), trainer.g_sample.start, 4, 4)
    torch.testing.assert_close(trainer.g_sample.bn0.running_mean, first.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(trainer.sample(z), samples)  # recomputed the same way each time
    plain = models.GANTrainer(generative.preset("smoke", task="gan", model="conv"))
    assert "generator_ema" in trainer.modules and plain.g_sample
    with pytest.raises(ValueError, match="g_ema"):
        generative.Config(g_ema=1.0)


def test_learning_rates_decay_linearly_to_zero_over_the_last_fraction_of_the_run():
    cfg = generative.preset("smoke", task="gan", model="conv", steps=10, lr_decay=0.5, lr_g=4e-4, lr_d=2e-4)
    trainer = models.build_trainer(cfg)
    seen = []
    for step in range(cfg.steps):
        generative._decay_learning_rates(cfg, trainer, step)
        seen += [opt.param_groups[0]["lr"] for opt in trainer.optimizers.values()]
    scales = [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2]
    assert seen == pytest.approx([lr * k for k in scales for lr in (4e-4, 2e-4)])
    with pytest.raises(ValueError, match=r"invalid lr_decay: 1.5; expected .*\[0, 1\]"):
        generative.preset("smoke", lr_decay=1.5)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_feature_matching_adds_the_mean_absolute_feature_gap_to_the_generators_loss(weight):
    cfg = generative.preset(
        "smoke", task="gan", model="coordconv", g_steps=1, d_batchnorm=False, feature_match=weight, init="official"
    )
    trainer = models.GANTrainer(cfg)
    before = copy.deepcopy(trainer.g)
    images = torch.randint(
        0, 256, (cfg.batch_size, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    gen = torch.Generator().manual_seed(1)
    out = trainer.step(images, gen)
    # the same latents again: one batch for the discriminator's step, then one for the generator's
    gen = torch.Generator().manual_seed(1)
    trainer.latents(cfg.batch_size, gen)
    z = trainer.latents(cfg.batch_size, gen)
    with torch.no_grad():  # the discriminator after its step (the generator's step does not change it)
        fake = trainer.d.features(torch.tanh(before(z)))
        real = trainer.d.features(images.float() / 127.5 - 1)
        expected = F.binary_cross_entropy_with_logits(trainer.d.fc(fake).squeeze(1), torch.ones(len(z)))
        expected += weight * (fake - real).abs().mean()
    assert out["g_loss"] == pytest.approx(expected.item(), rel=1e-4)
    with pytest.raises(ValueError, match="feature_match"):
        generative.Config(feature_match=-1.0)
