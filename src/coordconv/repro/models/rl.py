"""Convolutional bodies of the RL agents, plain or with CoordConv layers (framework-free: plain ``nn.Module``).

* :class:`NatureCNN`: the Atari network of Mnih et al. (2015) that A2C baselines use: 8x8/4 (32), 4x4/2 (64),
  3x3/1 (64), then a 512-unit layer, on 84x84 stacks of frames.
* :class:`MinAtarCNN`: MinAtar's own baseline network (Young and Tian, 2019): one 3x3 convolution with 16
  channels, then a 128-unit layer, on the 10x10 boards.

``coord`` places CoordConv: ``"none"`` (the plain network), ``"first"`` (the first convolution only, as the
paper's toy models and its "a CoordConv layer in the actor network") or ``"all"`` (every convolution). Inputs
are ``(N, C, H, W)`` floats; the Stable-Baselines3 extractor in :mod:`coordconv.repro.rl` handles layouts.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from coordconv import CoordConv2d

__all__ = ["PLACEMENTS", "MinAtarCNN", "NatureCNN", "Placement"]

Placement = Literal["none", "first", "all"]
PLACEMENTS: tuple[str, ...] = ("none", "first", "all")


class _Body(nn.Module):
    """Convolutions of ``LAYERS`` (channels, kernel, stride), then a ``FEATURES``-unit layer, ReLU after each.

    ``height`` and ``width`` default to the network's own ``SIZE``.
    """

    LAYERS: tuple[tuple[int, int, int], ...]
    SIZE: int
    FEATURES: int

    def __init__(
        self,
        in_channels: int,
        height: int | None = None,
        width: int | None = None,
        *,
        coord: Placement = "none",
        with_r: bool = False,
    ) -> None:
        super().__init__()
        if coord not in PLACEMENTS:
            raise ValueError(f"invalid coord placement {coord!r}; expected one of {PLACEMENTS}")
        convs: list[nn.Module] = []
        channels = in_channels
        for i, (out, k, s) in enumerate(self.LAYERS):
            coordinates = coord == "all" or (coord == "first" and i == 0)
            conv = CoordConv2d(channels, out, k, s, with_r=with_r) if coordinates else nn.Conv2d(channels, out, k, s)
            convs += [conv, nn.ReLU()]
            channels = out
        self.convs = nn.Sequential(*convs, nn.Flatten())
        h, w = (self.SIZE if n is None else n for n in (height, width))
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, in_channels, h, w)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, self.FEATURES), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.convs(x))  # type: ignore[no-any-return]


class NatureCNN(_Body):
    """The Nature DQN body: three convolutions and a 512-unit layer, ReLU after each, on 84x84 inputs."""

    LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
    SIZE = 84
    FEATURES = 512


class MinAtarCNN(_Body):
    """MinAtar's baseline body: a 3x3 convolution with 16 channels and a 128-unit layer, ReLU after each, on 10x10."""

    LAYERS = ((16, 3, 1),)
    SIZE = 10
    FEATURES = 128
