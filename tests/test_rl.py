"""The RL agents: CoordConv bodies, their SB3 extractor and policy, and A2C runs on MinAtar and Atari."""

import json

import pytest
import torch

from command import coordconv
from coordconv import CoordConv2d
from coordconv.repro.models.rl import MinAtarCNN, NatureCNN

gym = pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from stable_baselines3 import A2C  # noqa: E402
from stable_baselines3.common.envs import FakeImageEnv  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

from coordconv.repro.experiments import rl, rl_agent  # noqa: E402
from coordconv.repro.models.sb3 import ActorCoordPolicy, CNNExtractor  # noqa: E402


def count_coordconv(module: torch.nn.Module) -> int:
    """Number of CoordConv layers in ``module``."""
    return sum(isinstance(m, CoordConv2d) for m in module.modules())


@pytest.mark.parametrize(("coord", "expected"), [("none", 0), ("first", 1), ("all", 3)])
def test_nature_cnn_placements(coord, expected):
    net = NatureCNN(4, coord=coord, with_r=True)
    assert net(torch.rand(2, 4, 84, 84)).shape == (2, 512)
    assert count_coordconv(net) == expected
    if expected:
        first = net.convs[0]
        assert isinstance(first, CoordConv2d) and first.with_r and first.stride == (4, 4)


def test_plain_bodies_match_the_reference_networks():
    # Nature CNN: 32*(4*64+1) + 64*(32*16+1) + 64*(64*9+1) + (3136*512+512) parameters
    nature = sum(p.numel() for p in NatureCNN(4).parameters())
    assert nature == 32 * (4 * 64 + 1) + 64 * (32 * 16 + 1) + 64 * (64 * 9 + 1) + 3136 * 512 + 512
    minatar = sum(p.numel() for p in MinAtarCNN(4).parameters())
    assert minatar == 16 * (4 * 9 + 1) + 16 * 8 * 8 * 128 + 128  # MinAtar's baseline network
    assert MinAtarCNN(4, coord="first")(torch.rand(3, 4, 10, 10)).shape == (3, 128)


def test_bad_placement():
    with pytest.raises(ValueError, match="invalid coord placement 'middle'"):
        NatureCNN(4, coord="middle")


def test_extractor_layouts_and_bodies():
    chw = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")
    ext = CNNExtractor(chw, coord="first")
    assert ext.body == "nature" and ext.channels_first and ext.features_dim == 512
    assert ext(torch.rand(2, 4, 84, 84)).shape == (2, 512)
    board = gym.spaces.Box(0, 1, (10, 10, 6), dtype=bool)  # MinAtar: channels last, booleans
    ext = CNNExtractor(board, coord="all")
    assert ext.body == "minatar" and not ext.channels_first and ext.features_dim == 128
    assert ext(torch.zeros(5, 10, 10, 6, dtype=torch.bool)).shape == (5, 128)
    with pytest.raises(ValueError, match="expects a 3D Box"):
        CNNExtractor(gym.spaces.Box(0, 1, (10,)))
    with pytest.raises(ValueError, match="invalid body 'resnet'"):
        CNNExtractor(chw, body="resnet")


@pytest.mark.parametrize("share", [True, False])
def test_a2c_on_sb3_fake_image_env(share):
    env = FakeImageEnv(screen_height=84, screen_width=84, n_channels=4, discrete=True)
    model = A2C(
        ActorCoordPolicy,
        env,
        n_steps=5,
        seed=0,
        device="cpu",
        policy_kwargs={
            "features_extractor_class": CNNExtractor,
            "features_extractor_kwargs": {"coord": "first"},
            "share_features_extractor": share,
        },
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<time> folder in the temporary directory
    coord = model.policy.pi_features_extractor.net.convs[0].coord_weight.detach().clone()
    model.learn(100)
    assert not torch.equal(model.policy.pi_features_extractor.net.convs[0].coord_weight, coord)  # it trains
    pi, vf = model.policy.pi_features_extractor, model.policy.vf_features_extractor
    assert count_coordconv(pi) == 1
    if share:
        assert vf is pi
    else:  # CoordConv in the actor only: the critic's body is plain and separate
        assert count_coordconv(vf) == 0
        assert not {id(p) for p in pi.parameters()} & {id(p) for p in vf.parameters()}


def test_env_ids():
    assert rl_agent.env_id("MinAtar/Breakout") == "MinAtar/Breakout-v1"
    assert rl_agent.env_id("MsPacman") == "ALE/MsPacman-v5"
    assert rl_agent.env_id("ALE/Pong-v5") == "ALE/Pong-v5"


def _summary(out):
    summary = json.loads((out / "summary.json").read_text())
    timed = {"train_seconds", "steps_per_second", "files", "summary_sha256"}
    return {k: v for k, v in summary.items() if k not in timed}


@pytest.mark.slow
def test_minatar_smoke_is_deterministic_and_resumes(tmp_path):
    pytest.importorskip("minatar")
    args = ["train", "rl", "--env", "MinAtar/Breakout", "--model", "coordconv", "--preset", "smoke"]
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        result = coordconv(*args, "--out", out)
        assert result.returncode == 0, result.stderr
        assert "steps/s" in result.stdout
    summary = _summary(a)
    assert summary == _summary(b)  # same seed, same run
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert summary["steps"] >= 2000 and summary["episodes"] > 0 and summary["env"] == "MinAtar/Breakout-v1"
    assert {"final_return", "auc", "params", "model", "seed", "task"} <= set(summary)

    c = tmp_path / "c"  # interrupted after the first log point, then resumed
    assert coordconv(*args, "--out", c, stop_after=1).returncode == 0
    assert not (c / "summary.json").exists()
    result = coordconv(*args, "--out", c, "--resume", stop_after=1)
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line)["step"] for line in (c / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1000, 2000]
    assert _summary(c)["steps"] == 2000


@pytest.mark.slow
def test_atari_smoke_ms_pacman(tmp_path):
    pytest.importorskip("ale_py")
    out = tmp_path / "pacman"
    result = coordconv("train", "rl", "--env", "MsPacman", "--model", "conv", "--preset", "smoke", "--out", out)
    assert result.returncode == 0, result.stderr
    summary = _summary(out)
    assert summary["env"] == "ALE/MsPacman-v5" and summary["steps"] >= 2000
    assert summary["config"]["vec_env"] == "auto"  # subprocess environments for Atari


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--env", "MinAtar/Pong"], 1, "unknown environment 'MinAtar/Pong-v1'; for example MinAtar/Asterix-v1"),
        (["--n-envs", "0"], 2, "invalid n_envs: 0"),
        (["--coord-in", "critic"], 2, "invalid choice 'critic'"),
    ],
)
def test_bad_rl_input(tmp_path, args, code, message):
    pytest.importorskip("minatar")
    out = tmp_path / "run"
    result = coordconv("train", "rl", "--preset", "smoke", "--out", out, *args)
    assert result.returncode == code and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_verdict_counts_only_clear_differences():
    from coordconv.repro.report.rl import verdict

    assert verdict([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) == "reproduced"
    assert verdict([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]) == "contradicted"
    assert verdict([1.0, 5.0, 9.0], [2.0, 6.0, 7.0]) == "no detectable difference"  # spread larger than the gap
    assert verdict([3.0, 3.0], [3.0, 3.0]) == "no detectable difference"
    assert verdict([], [1.0]) == "?"
    # one seed has no measurable spread: three conv seeds close together must not make it a win (a real case:
    # Freeway at 5M steps, conv 57.5 +- 0.3 over 3 seeds, CoordConv 58.5 in its one finished seed)
    assert verdict([58.45], [57.2, 57.5, 57.8]) == "?"
    assert verdict([58.45], [57.5]) == "?"


@pytest.mark.slow
def test_reproduce_rl_smoke_writes_report_and_reuses_runs(tmp_path):
    pytest.importorskip("minatar")
    pytest.importorskip("matplotlib")
    out = tmp_path / "repro"
    args = ["reproduce", "rl", "--preset", "smoke", "--games", "MinAtar/Breakout", "--out", out]
    result = coordconv(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(trained)") == 2
    table = (out / "rl" / "table.md").read_text()
    assert (
        "| MinAtar-Breakout |" in table and "no detectable difference in" in table and "coordconv reproduce rl" in table
    )
    assert (out / "rl" / "curves.png").stat().st_size > 0
    assert "![learning curves](curves.png)" in (out / "rl" / "report.md").read_text()
    result = coordconv(*args)
    assert result.returncode == 0 and result.stdout.count("(reused)") == 2
    result = coordconv("reproduce", "classification", "--games", "MinAtar/Breakout", "--out", out)
    assert result.returncode == 2 and "--games applies to the rl task only" in result.stderr


def test_training_leaves_nothing_in_the_temporary_directory(tmp_path, monkeypatch):
    pytest.importorskip("minatar")
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    cfg = rl.preset("smoke", env="MinAtar/Breakout", model="coordconv", total_steps=2_000)
    rl.main(cfg, tmp_path / "run", log=lambda _: None)
    assert list((tmp_path / "tmp").iterdir()) == []  # SB3 would leave an SB3-<time> folder per learn() call
