"""The paper's networks for the three Not-so-Clevr coordinate tasks, as in the official code.

Architectures and sizes follow ``model_builders.py`` of github.com/uber-research/CoordConv (facts in
PAPER.md sections 3-5). The parameter counts below are asserted by the tests.

* :class:`DeconvPainter`: (x, y) -> 64x64 logits, six stride-2 transposed convolutions with BatchNorm
  (the convolutional baseline of classification and rendering; 103,585 parameters at ``multiplier=1``,
  ``filter_size=3``).
* :class:`CoordConvPainter`: (x, y) tiled over the canvas, a CoordConv layer, then 1x1 convolutions
  (classification; 7,553 parameters).
* :class:`CoordConvImagePainter`: the painter's logits, a softmax over the 4,096 pixels, then five
  convolutions that paint the square (rendering; 11,850 parameters at ``multiplier=1``, ``filter_size=3``).
* :class:`ConvRegressorUniform` (72,850 parameters) and :class:`ConvRegressorQuadrant` (12,914): the two
  convolutional regressors the paper needed, one per split.
* :class:`CoordConvRegressor`: one-hot -> (x, y), a CoordConv layer and four more convolutions with no
  non-linearity, then a global max-pool (906 parameters).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from coordconv import CoordConv2d, tile_vector

__all__ = [
    "ConvRegressorQuadrant",
    "ConvRegressorUniform",
    "CoordConvImagePainter",
    "CoordConvPainter",
    "CoordConvRegressor",
    "DeconvPainter",
    "he_normal_",
]


def he_normal_(module: nn.Module) -> None:
    """The official initialisation: Keras' ``he_normal`` kernels, zero biases, for every convolution.

    ``he_normal`` draws from a normal truncated at two standard deviations, rescaled so that the variance is
    ``2 / fan_in``. A CoordConv layer's coordinate filters are part of the same kernel (same fan-in).
    """
    for m in module.modules():
        if not isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            continue
        # torch's fan-in of a transposed weight (in, out/groups, k, k) is (out/groups) k^2, as Keras computes it
        # (a CoordConv layer's weight holds its coordinate filters: they count in the fan-in; the two parts are
        # drawn one after the other, as views)
        fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
        kernels = list(m._split(m.weight)) if isinstance(m, CoordConv2d) else [m.weight]
        std = (2.0 / fan_in) ** 0.5 / 0.87962566103423978  # the std of a unit normal truncated at +-2
        for kernel in kernels:
            nn.init.trunc_normal_(kernel, 0.0, std, -2 * std, 2 * std)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _same_transposed(in_channels: int, out_channels: int, filter_size: int) -> nn.ConvTranspose2d:
    """A stride-2 transposed convolution that exactly doubles the size (TF's 'same')."""
    padding = (filter_size - 1) // 2
    return nn.ConvTranspose2d(
        in_channels, out_channels, filter_size, stride=2, padding=padding, output_padding=2 + 2 * padding - filter_size
    )


class DeconvPainter(nn.Module):
    """(x, y) -> 64x64 logits through six stride-2 transposed convolutions (the paper's conv baseline).

    Widths ``64m, 64m, 64m, 32m, 32m, 1``; BatchNorm then ReLU after all but the last.

    Args:
        multiplier: the width multiplier ``m`` (the paper swept 1, 2, 3).
        filter_size: kernel size of every transposed convolution (the paper swept 2, 3, 4).
    """

    def __init__(self, multiplier: int = 1, filter_size: int = 3) -> None:
        super().__init__()
        if multiplier < 1 or filter_size < 2:
            raise ValueError(f"multiplier must be >= 1 and filter_size >= 2, got {multiplier} and {filter_size}")
        widths = [2, 64 * multiplier, 64 * multiplier, 64 * multiplier, 32 * multiplier, 32 * multiplier]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            # BatchNorm2d's default momentum 0.1 is the official code's TensorFlow momentum 0.9
            layers += [_same_transposed(cin, cout, filter_size), nn.BatchNorm2d(cout), nn.ReLU()]
        layers.append(_same_transposed(widths[-1], 1, filter_size))
        self.net = nn.Sequential(*layers)
        he_normal_(self)

    def forward(self, xy: Tensor) -> Tensor:
        """``(B, 2)`` coordinates -> ``(B, 1, 64, 64)`` logits."""
        out: Tensor = self.net(xy.view(-1, 2, 1, 1))
        return out


class CoordConvPainter(nn.Module):
    """(x, y) -> 64x64 logits: tile (x, y) over the canvas, a 1x1 CoordConv, then 1x1 convolutions.

    Widths ``32, 32, 64, 64, 1`` with ReLU between; the first layer sees the two tiled inputs and the two
    coordinate channels (7,553 parameters).
    """

    def __init__(self, canvas: int = 64) -> None:
        super().__init__()
        self.canvas = canvas
        self.coordconv = CoordConv2d(2, 32, 1)
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(32, 32, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 1),
            nn.ReLU(),
            nn.Conv2d(64, 1, 1),
        )
        he_normal_(self)

    def forward(self, xy: Tensor) -> Tensor:
        """``(B, 2)`` coordinates -> ``(B, 1, 64, 64)`` logits."""
        # channels_last: these 1x1 stacks run about twice as fast that way on CPU
        tiled = tile_vector(xy, (self.canvas, self.canvas)).contiguous(memory_format=torch.channels_last)
        out: Tensor = self.net(self.coordconv(tiled))
        return out


class CoordConvImagePainter(nn.Module):
    """(x, y) -> 64x64 square logits: :class:`CoordConvPainter`, a softmax over the pixels, five convolutions.

    The softmax "sharpens" the centre logits into a map that sums to 1; convolutions of widths
    ``8m, 8m, 16m, 16m, 1`` (ReLU between, 'same' padding) then paint the square around it.

    Args:
        multiplier: width multiplier of the painting convolutions.
        filter_size: their kernel size (3 or more is needed to grow a point into a 9x9 square).
    """

    def __init__(self, multiplier: int = 1, filter_size: int = 3, canvas: int = 64) -> None:
        super().__init__()
        if multiplier < 1 or filter_size < 1 or filter_size % 2 == 0:
            raise ValueError(f"multiplier must be >= 1 and filter_size odd, got {multiplier} and {filter_size}")
        self.painter = CoordConvPainter(canvas)
        widths = [1, 8 * multiplier, 8 * multiplier, 16 * multiplier, 16 * multiplier]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):
            layers += [nn.Conv2d(cin, cout, filter_size, padding="same"), nn.ReLU()]
        layers.append(nn.Conv2d(widths[-1], 1, filter_size, padding="same"))
        self.paint = nn.Sequential(*layers)
        he_normal_(self.paint)

    def forward(self, xy: Tensor) -> Tensor:
        """``(B, 2)`` coordinates -> ``(B, 1, 64, 64)`` logits of the square image."""
        return self.forward_with_centre(xy)[0]

    def forward_with_centre(self, xy: Tensor) -> tuple[Tensor, Tensor]:
        """The square image's logits and the centre logits before the softmax (for the intermediate loss)."""
        centre = self.painter(xy)
        sharpened = centre.flatten(1).softmax(dim=1).view_as(centre)
        out: Tensor = self.paint(sharpened)
        return out, centre


class ConvRegressorUniform(nn.Module):
    """One-hot -> (x, y): the convolutional regressor the paper used on the uniform split (72,850 parameters).

    Three blocks of 3x3 conv (16) + ReLU + 2x2 max-pool, a fourth 3x3 conv + ReLU, then dense 64 + ReLU and a
    linear dense 2.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(16 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 2))
        he_normal_(self.features)
        for m in self.head:
            if isinstance(m, nn.Linear):  # TF's default dense initialisation: Glorot-uniform, zero bias
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, onehot: Tensor) -> Tensor:
        """``(B, 1, 64, 64)`` one-hot maps -> ``(B, 2)`` predicted ``(x, y) / 64``."""
        out: Tensor = self.head(self.features(onehot))
        return out


class ConvRegressorQuadrant(nn.Module):
    """One-hot -> (x, y): the fully convolutional regressor the paper used on the quadrant split.

    Nine convolutions (5x5 stride 2, 1x1, 3x3, three 3x3 stride 2, 1x1, 3x3 stride 2, 3x3 to two channels),
    ReLU after each, BatchNorm after the second (after its ReLU) and on the sixth (before its ReLU), then a
    global average pool (12,914 parameters at ``multiplier=1``).
    """

    def __init__(self, multiplier: int = 1) -> None:
        super().__init__()
        if multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {multiplier}")
        w = 16 * multiplier

        def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
            # 'same' sizes as TF; TF puts an odd padding pixel at the end, torch splits evenly (a 1-pixel shift)
            return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2)

        self.net = nn.Sequential(
            conv(1, w, 5, 2), nn.ReLU(),
            conv(w, w, 1), nn.ReLU(), nn.BatchNorm2d(w),
            conv(w, w, 3), nn.ReLU(),
            conv(w, w, 3, 2), nn.ReLU(),
            conv(w, w, 3, 2), nn.BatchNorm2d(w), nn.ReLU(),
            conv(w, w, 3, 2), nn.ReLU(),
            conv(w, w, 1), nn.ReLU(),
            conv(w, w, 3, 2), nn.ReLU(),
            conv(w, 2, 3), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        he_normal_(self)

    def forward(self, onehot: Tensor) -> Tensor:
        """``(B, 1, 64, 64)`` one-hot maps -> ``(B, 2)`` predicted ``(x, y) / 64``."""
        out: Tensor = self.net(onehot)
        return out


class CoordConvRegressor(nn.Module):
    """One-hot -> (x, y): a 1x1 CoordConv, two 1x1 and two 3x3 convolutions, no non-linearity, global max-pool.

    Widths ``8, 8, 8, 8, 2`` (906 parameters). Without activations the network is linear up to the max-pool,
    as in the official code.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            CoordConv2d(1, 8, 1),
            nn.Conv2d(8, 8, 1),
            nn.Conv2d(8, 8, 1),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Conv2d(8, 2, 3, padding=1),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        he_normal_(self)

    def forward(self, onehot: Tensor) -> Tensor:
        """``(B, 1, 64, 64)`` one-hot maps -> ``(B, 2)`` predicted ``(x, y) / 64``."""
        out: Tensor = self.net(onehot)
        return out
