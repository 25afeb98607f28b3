"""The RL experiment's games and agent: gymnasium ids, vectorised environments and SB3's A2C (see :mod:`.rl`)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from coordconv.repro.runtime.files import RunError

if TYPE_CHECKING:
    from coordconv.repro.experiments.rl import Config

__all__ = ["build_agent", "env_id", "import_rl", "make_env", "register"]


def env_id(name: str) -> str:
    """The gymnasium id of a game: ``MinAtar/Breakout`` -> ``MinAtar/Breakout-v1``, ``MsPacman`` -> ``ALE/MsPacman-v5``.

    Full ids (with a version) pass through unchanged.
    """
    if "-v" in name:
        return name
    if name.startswith("MinAtar/"):
        return f"{name}-v1"
    return f"ALE/{name.removeprefix('ALE/')}-v5"


def import_rl() -> None:
    """Import Gymnasium and Stable-Baselines3 (their absence is a one-line RunError naming the extra)."""
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError as e:
        raise RunError(f"the RL experiments need the rl extra ({e}); pip install 'torch-coordconv[rl]'") from e


def register(name: str) -> None:
    """Register the games of ``name``'s package with gymnasium (once per process).

    Raises:
        RunError: the package is not installed, or it has no game ``name``.
    """
    import gymnasium as gym

    if name in gym.registry:
        return
    try:
        if name.startswith("MinAtar/"):
            import minatar.gym

            minatar.gym.register_envs()
        else:
            import ale_py

            gym.register_envs(ale_py)
    except ImportError as e:
        raise RunError(f"{name} needs a package that is missing ({e}); pip install 'torch-coordconv[rl]'") from e
    if name not in gym.registry:
        family = name.split("/")[0] + "/"
        known = sorted(k for k in gym.registry if k.startswith(family) and k.endswith(name[-3:]))
        hint = f"; for example {', '.join(known[:5])}" if known else ""
        raise RunError(f"unknown environment {name!r}{hint}")


def _make_game(name: str, **kwargs: Any) -> Any:
    """``gym.make(name)`` after registering the game's package: runs in each environment subprocess too."""
    import gymnasium as gym

    register(name)
    return gym.make(name, **kwargs)


def make_env(cfg: Config) -> Any:
    """The vectorised, monitored environments of ``cfg`` (SB3's Atari preprocessing for Atari games)."""
    import_rl()
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    name = env_id(cfg.env)
    if not name.startswith(("MinAtar/", "ALE/")):
        raise RunError(
            f"{cfg.env!r} is not a game this experiment trains on: it takes a MinAtar game (MinAtar/Breakout) or an "
            "Atari game (MsPacman, ALE/MsPacman-v5), whose observations are images"
        )
    subproc = cfg.vec_env == "subproc" or (cfg.vec_env == "auto" and not cfg.is_minatar)
    vec_cls = SubprocVecEnv if subproc and cfg.n_envs > 1 else DummyVecEnv
    if cfg.is_minatar:
        return make_vec_env(partial(_make_game, name), n_envs=cfg.n_envs, seed=cfg.seed, vec_env_cls=vec_cls)
    # ALE v5 skips 4 frames itself; SB3's AtariWrapper skips (and max-pools) 4, so the env must not skip again
    env = make_atari_env(
        partial(_make_game, name), n_envs=cfg.n_envs, seed=cfg.seed, env_kwargs={"frameskip": 1}, vec_env_cls=vec_cls
    )
    return VecFrameStack(env, cfg.frame_stack)


def build_agent(cfg: Config, env: Any) -> Any:
    """SB3's A2C with the RL Zoo's Atari hyperparameters and our body."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    from coordconv.repro.models.sb3 import ActorCoordPolicy, CNNExtractor

    coord = "none" if cfg.model == "conv" else cfg.coord_layers
    policy_kwargs = {
        "features_extractor_class": CNNExtractor,
        "features_extractor_kwargs": {"coord": coord, "with_r": cfg.with_r},
        "share_features_extractor": cfg.coord_in == "shared",
        "optimizer_class": RMSpropTFLike,
        "optimizer_kwargs": {"alpha": 0.99, "eps": 1e-5, "weight_decay": 0},
    }
    agent = A2C(
        ActorCoordPolicy,
        env,
        learning_rate=cfg.lr,
        n_steps=cfg.n_steps,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs=policy_kwargs,
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    # a logger with no outputs: without one, every learn() call makes SB3 create an empty SB3-<time> folder in the
    # system's temporary directory (the run's metrics go to its own metrics.jsonl)
    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent
