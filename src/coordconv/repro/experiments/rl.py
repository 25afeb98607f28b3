"""A2C agents with and without CoordConv on MinAtar and Atari (Liu et al. 2018, Sec. 5.3), on Stable-Baselines3.

The paper adds "a CoordConv layer to an actor network within A2C" and reports better results on 6 of 9 Atari
games, similar on 2 and worse on 1, with a large gain on Ms. Pac-Man; it names no other game and released no
code. Here the agent is SB3's ``A2C`` with SB3's reference Atari hyperparameters (RL Zoo: 16 environments,
5 steps per update, RMSprop as TensorFlow's with eps 1e-5, entropy 0.01, value 0.25, learning rate 7e-4) and
a convolutional body from :mod:`coordconv.repro.models.rl`: the Nature CNN on Atari (SB3's Atari wrappers,
84x84 grey frames, 4 stacked) and MinAtar's own small network on the 10x10 MinAtar boards.

``model="coordconv"`` makes the first convolution (``coord_layers="first"``, default) or every convolution
(``"all"``) a CoordConv layer. By default the actor and the critic share the body, as SB3's A2C does, so both
see the coordinates; ``coord_in="actor"`` gives the actor and the critic separate bodies with CoordConv in the
actor's only (the paper's wording). The plain model always uses the same sharing as the CoordConv model it is
compared with.

Measured per run: the mean episodic return of the last ``final_episodes`` episodes, the area under the
learning curve (the mean over the run of the running mean return, sampled at every log point), and
environment steps per second of training. Runs checkpoint the policy, its optimizer, the step count and the
episode history every ``log_every`` steps (a ``weights_only`` checkpoint of the run runtime); a resumed run
continues from there with freshly reset environments, so it is not identical step for step to an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from coordconv.repro.experiments import check
from coordconv.repro.experiments.rl_agent import build_agent, env_id, import_rl, make_env, register
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import check_finite
from coordconv.repro.runtime.session import Session

__all__ = [
    "ATARI_GAMES",
    "MINATAR_GAMES",
    "PRESETS",
    "REPORT_REQUIRES",
    "Config",
    "ReproduceOptions",
    "describe",
    "main",
    "plan",
    "preset",
    "report",
    "requires",
]

PRESETS = ("smoke", "quick", "long", "paper")
#: the optional packages ``report`` imports (checked before ``reproduce`` starts)
REPORT_REQUIRES: tuple[str, ...] = ("matplotlib",)
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
#: Ms. Pac-Man (the paper's named game) and eight more where positions matter
ATARI_GAMES = (
    "MsPacman", "Asterix", "Seaquest", "SpaceInvaders", "Breakout", "Amidar", "Alien", "BankHeist", "Frostbite",
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    """One A2C training run."""

    env: str = "MinAtar/Breakout-v1"
    """Game: a gymnasium id (MinAtar/Breakout-v1, ALE/MsPacman-v5) or short name (MinAtar/Breakout, MsPacman)."""
    model: Literal["conv", "coordconv"] = "coordconv"
    """Plain convolutional body (conv) or with CoordConv (coordconv)."""
    coord_layers: Literal["first", "all"] = "first"
    """Which convolutions become CoordConv in the coordconv model."""
    coord_in: Literal["shared", "actor"] = "shared"
    """shared: actor and critic share one body (SB3's A2C default); actor: separate bodies, CoordConv in the
    actor's only."""
    with_r: bool = False
    """Add the radius channel."""
    seed: int = 0
    """Seed of the agent and the environments."""
    total_steps: int = 1_000_000
    """Environment steps (over all environments; on Atari, agent steps, each 4 frames)."""
    n_envs: int = 16
    """Parallel environments."""
    n_steps: int = 5
    """Steps per environment per update."""
    lr: float = 7e-4
    """RMSprop learning rate."""
    gamma: float = 0.99
    """Discount."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    vf_coef: float = 0.25
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    frame_stack: int = 4
    """Atari: frames stacked (MinAtar boards are not stacked)."""
    vec_env: Literal["auto", "dummy", "subproc"] = "auto"
    """Environments in this process (dummy) or in subprocesses (subproc); auto: subproc for Atari, dummy for
    MinAtar, whose steps cost less than a process hop."""
    log_every: int = 50_000
    """Log a metrics line and checkpoint every this many steps."""
    final_episodes: int = 100
    """The final return is the mean over this many last episodes."""
    threads: int = 1
    """torch CPU threads (0: torch's default, which follows the machine: results then depend on it)."""

    def __post_init__(self) -> None:
        ranges = {
            ">= 1": ("total_steps", "n_envs", "n_steps", "frame_stack", "log_every", "final_episodes"),
            ">= 0": ("ent_coef", "vf_coef", "threads"),
            "> 0": ("lr", "max_grad_norm"),
            "in (0, 1]": ("gamma",),
        }
        check(self, ranges)

    @property
    def is_minatar(self) -> bool:
        return env_id(self.env).startswith("MinAtar/")


def preset(name: str, **fields: Any) -> Config:
    """The named preset for a game and model.

    ``smoke`` runs in seconds (tests), ``quick`` 1M steps (MinAtar: minutes per run on one core), ``paper`` 10M
    agent steps (the usual Atari A2C budget: hours per run on a GPU machine), ``long`` 5M steps (MinAtar's usual
    budget: about 10 minutes per run on one core).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    settings: dict[str, Any] = {
        "smoke": {"total_steps": 2_000, "n_envs": 4, "log_every": 1_000, "final_episodes": 10},
        "quick": {"total_steps": 1_000_000, "log_every": 50_000},
        "long": {"total_steps": 5_000_000, "log_every": 50_000},
        "paper": {"total_steps": 10_000_000, "log_every": 250_000},
    }[name]
    return Config(**{**settings, **fields, "env": env_id(fields.get("env", Config.env))})


def requires(cfg: Config) -> tuple[str, ...]:
    """The optional packages a run of ``cfg`` imports (checked before it starts: :mod:`..runtime.extras`)."""
    games = ("minatar",) if cfg.is_minatar else ("ale_py", "cv2")
    return ("numpy", "gymnasium", "stable_baselines3", *games, "safetensors")


def describe(s: dict[str, Any]) -> str:
    """A finished run in one line: steps, episodes, final mean return and throughput."""
    final = s["final_return"]
    return (
        f"rl {s['model']} {s['env']} seed {s['seed']}: {s['steps']} steps, {s['episodes']} episodes, final mean "
        + ("return (no episode finished)" if final is None else f"return {final:.2f}")
        + f", {s['steps_per_second']} steps/s"
    )


def plan(
    preset_name: str, seeds: range, *, task: str = "rl", games: list[str] | None = None, coord_in: str = "shared"
) -> list[tuple[str, Config]]:
    """Conv and CoordConv agents on each game and seed: ``rl/<game>/<model>-seed<k>``.

    ``games`` defaults to the five MinAtar games (the ``paper`` preset: the nine Atari games).
    """
    if not games:
        games = list(ATARI_GAMES) if preset_name == "paper" else [f"MinAtar/{g}" for g in MINATAR_GAMES]
    from coordconv.repro.report.rl import game_name

    runs = []
    for game in games:
        for model in ("conv", "coordconv"):
            for seed in seeds:
                cfg = preset(preset_name, env=game, model=model, seed=seed, coord_in=coord_in)
                runs.append((f"{task}/{game_name(cfg.env)}/{model}-seed{seed}", cfg))
    return runs


def report(out: Path, task: str = "rl") -> Path:
    """``out/rl/report.md``: wins, ties and losses, learning curves (see :mod:`..report.rl`)."""
    from coordconv.repro.report.rl import write_report

    return write_report(out)


@dataclass(frozen=True)
class ReproduceOptions:
    """The ``coordconv reproduce`` options of this task (passed to :func:`plan`)."""

    games: tuple[str, ...] = ()
    """rl: games (none given: the five MinAtar games; paper: nine Atari)"""
    coord_in: Literal["shared", "actor"] = "shared"
    """rl: CoordConv in the body actor and critic share, or in the actor's own body only"""


# ---------------------------------------------------------------------------------------------------------
# training


def _record_episodes(episodes: list[list[float]], step_locals: dict[str, Any], step_globals: dict[str, Any]) -> bool:
    """SB3's callback after each step: every episode that ended, as ``[step, return, length]`` (from its Monitor)."""
    agent = step_locals["self"]
    for info in step_locals["infos"]:
        if "episode" in info:
            episodes.append([agent.num_timesteps, float(info["episode"]["r"]), float(info["episode"]["l"])])
    return True


def main(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one agent into ``out`` and return its summary (also in ``out/summary.json``).

    Raises:
        RunError: ``out`` holds another run, the run to resume is missing, different or corrupt, or the game
            or the RL packages are missing.
    """
    import_rl()
    register(env_id(cfg.env))  # an unknown game fails before anything is written
    desc = f"rl {cfg.model} {env_id(cfg.env)} seed {cfg.seed}"
    session = Session.open(
        cfg,
        out,
        desc=desc,
        total=cfg.total_steps,
        resume=resume,
        overwrite=overwrite,
        log=log,
        every=30.0,
        unit="environment step",
    )
    if session.result is not None:
        return session.result
    # the environments close after the session, whatever ends the run
    with contextlib.closing(make_env(cfg)) as env, session:
        agent = build_agent(cfg, env)
        params = sum(p.numel() for p in agent.policy.parameters())
        state = session.restore(policy=agent.policy, optimizer=agent.policy.optimizer) or {
            "steps": 0, "episodes": [], "curve": [], "train_seconds": 0.0
        }  # fmt: skip
        agent.num_timesteps = int(state["steps"])
        episodes: list[list[float]] = [list(e) for e in state["episodes"]]  # [step, return, length]
        curve: list[float | None] = list(state["curve"])  # running mean return (last 100 episodes) at every log point
        train_seconds = float(state["train_seconds"])

        callback = functools.partial(_record_episodes, episodes)
        session.start_at(agent.num_timesteps)
        while agent.num_timesteps < cfg.total_steps:
            before = agent.num_timesteps
            chunk = min(cfg.log_every - before % cfg.log_every, cfg.total_steps - before)
            start = time.perf_counter()
            agent.learn(chunk, reset_num_timesteps=False, callback=callback, progress_bar=False)
            train_seconds += time.perf_counter() - start
            # SB3 keeps its losses to itself: a diverged update shows in the weights
            weights = float(sum(p.detach().double().abs().sum() for p in agent.policy.parameters()))
            check_finite(weights, f"the policy's weights after steps {before}-{agent.num_timesteps}")
            recent = [r for _, r, _ in episodes[-100:]]
            mean_return = statistics.fmean(recent) if recent else None
            curve.append(mean_return)
            session.log(
                {
                    "step": agent.num_timesteps,
                    "episodes": len(episodes),
                    "mean_return_100": mean_return,
                    "train_seconds": round(train_seconds, 3),
                    "steps_per_second": round(agent.num_timesteps / train_seconds, 1) if train_seconds else None,
                }
            )
            session.advance(agent.num_timesteps - before, ret=mean_return)
            shown = "none yet" if mean_return is None else f"{mean_return:.2f}"
            session.emit(
                f"{desc}: {agent.num_timesteps}/{cfg.total_steps} steps, mean return (last 100 episodes) {shown}"
            )
            state = {"steps": agent.num_timesteps, "episodes": episodes, "curve": curve, "train_seconds": train_seconds}
            session.checkpoint(
                {"policy": agent.policy.state_dict(), "optimizer": agent.policy.optimizer.state_dict(), **state},
                last=agent.num_timesteps >= cfg.total_steps,
            )
        last = [r for _, r, _ in episodes[-cfg.final_episodes :]]
        points = [c for c in curve if c is not None]
        summary = {
            "task": "rl",
            "model": cfg.model,
            "env": env_id(cfg.env),
            "seed": cfg.seed,
            "params": params,
            "episodes": len(episodes),
            "final_return": statistics.fmean(last) if last else None,
            "final_return_std": statistics.pstdev(last) if len(last) > 1 else None,
            "auc": statistics.fmean(points) if points else None,
            "steps": agent.num_timesteps,
            "train_seconds": round(train_seconds, 3),
            "steps_per_second": round(agent.num_timesteps / train_seconds, 1) if train_seconds else None,
            "config": to_dict(cfg),
        }
        session.finish(summary, agent.policy)
    return session.outcome()
