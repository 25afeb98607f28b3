"""A CoordConv layer in a Stable-Baselines3 policy: a features extractor for MinAtar Breakout, trained by A2C.

The extractor is MinAtar's own network (one 3x3 convolution with 16 channels, then 128 units) with the
convolution made a CoordConv2d: the policy sees where on the 10x10 board each feature is. Any SB3 algorithm
with an image policy takes it through ``policy_kwargs``. A few hundred steps show the wiring, not learning.

Needs the rl extra (`pip install "torch-coordconv[rl]"`: gymnasium, stable-baselines3, minatar).

    python examples/sb3_policy.py [--steps 500]
"""

import argparse

import gymnasium as gym
import minatar.gym
import torch
from stable_baselines3 import A2C
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from coordconv import CoordConv2d, format_usage, inspect_model


class CoordConvExtractor(BaseFeaturesExtractor):
    """``(H, W, C)`` boolean boards -> features: CoordConv2d(C, 16, 3), ReLU, a dense layer of ``features``."""

    def __init__(self, observation_space: gym.spaces.Box, features: int = 128) -> None:
        super().__init__(observation_space, features)
        height, width, channels = observation_space.shape
        self.net = nn.Sequential(
            CoordConv2d(channels, 16, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * (height - 2) * (width - 2), features),
            nn.ReLU(),
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations.float().permute(0, 3, 1, 2))  # MinAtar boards are (H, W, C)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="environment steps (default: 500)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    minatar.gym.register_envs()
    env = gym.make("MinAtar/Breakout-v1")
    model = A2C(
        "MlpPolicy",  # the extractor below replaces the policy's body; MlpPolicy leaves the boards as they are
        env,
        policy_kwargs={"features_extractor_class": CoordConvExtractor, "features_extractor_kwargs": {"features": 128}},
        seed=0,
        device="cpu",
    )
    print(model.policy.features_extractor)
    model.learn(total_timesteps=args.steps)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    print(f"trained {args.steps} steps; action on a fresh board: {int(action)}")
    boards = torch.as_tensor(obs).unsqueeze(0)
    print(format_usage(inspect_model(model.policy.features_extractor, boards)))


if __name__ == "__main__":
    main()
