"""Stable-Baselines3 features extractors and policy with CoordConv (needs the ``rl`` extra).

Use them with any SB3 on-policy algorithm::

    from stable_baselines3 import A2C
    from coordconv.repro.models.sb3 import CNNExtractor

    model = A2C("CnnPolicy", env, policy_kwargs={
        "features_extractor_class": CNNExtractor,
        "features_extractor_kwargs": {"coord": "first"},
    })

With ``share_features_extractor=True`` (SB3's default for A2C) the actor and the critic share one body, so
both see the coordinates. :class:`ActorCoordPolicy` with ``share_features_extractor=False`` gives the actor a
CoordConv body and the critic a plain one: "a CoordConv layer in the actor network", as the paper words it.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor

from coordconv.repro.models.rl import MinAtarCNN, NatureCNN, Placement

__all__ = ["ActorCoordPolicy", "CNNExtractor"]


class CNNExtractor(BaseFeaturesExtractor):
    """The Nature CNN (Atari) or MinAtar's network as an SB3 features extractor, plain or with CoordConv.

    Args:
        observation_space: a ``(C, H, W)`` or ``(H, W, C)`` box (the layout is found as SB3 finds it: the
            smallest axis holds the channels). MinAtar's boolean boards are cast to float.
        body: ``nature``, ``minatar``, or ``auto`` (``minatar`` for boards smaller than 36x36).
        coord: CoordConv placement: ``none``, ``first`` or ``all``.
        with_r: add the radius channel.
    """

    def __init__(
        self,
        observation_space: gym.Space[Any],
        body: Literal["auto", "nature", "minatar"] = "auto",
        coord: Placement = "none",
        with_r: bool = False,
    ) -> None:
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"CNNExtractor expects a 3D Box observation space, got {observation_space}")
        shape = observation_space.shape
        self.channels_first = is_image_space_channels_first(observation_space)
        c, h, w = shape if self.channels_first else (shape[2], shape[0], shape[1])
        if body == "auto":
            body = "minatar" if min(h, w) < 36 else "nature"
        if body not in ("nature", "minatar"):
            raise ValueError(f"invalid body {body!r}; expected 'auto', 'nature' or 'minatar'")
        net = (NatureCNN if body == "nature" else MinAtarCNN)(c, h, w, coord=coord, with_r=with_r)
        super().__init__(observation_space, net.FEATURES)
        self.net = net
        self.body = body

    def forward(self, observations: Tensor) -> Tensor:
        x = observations.float()
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        return self.net(x)  # type: ignore[no-any-return]


class ActorCoordPolicy(ActorCriticPolicy):
    """An actor-critic policy whose critic body is always plain: CoordConv in the actor network only.

    Use it with ``share_features_extractor=False`` and :class:`CNNExtractor` (its ``coord`` applies to the
    actor); with a shared body it is the ordinary ``ActorCriticPolicy``.
    """

    def _build(self, lr_schedule: Any) -> None:
        if not self.share_features_extractor:
            kwargs = {**self.features_extractor_kwargs, "coord": "none"}
            self.vf_features_extractor = self.features_extractor_class(self.observation_space, **kwargs)
        super()._build(lr_schedule)
