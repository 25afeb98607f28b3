"""A tiny U-Net that regresses a keypoint's position, conv against CoordConv, side by side.

Each image holds one bright blob on noise; the target is its centre (row, column) in [-1, 1]. Both networks
are the same small U-Net whose two-channel output map is averaged over the image, so the answer must come out
of the feature maps themselves: plain convolutions are (nearly) translation equivariant and can only find the
position through the zero padding at the borders, while CoordConv layers see the coordinates and can copy
them out where the blob is (the failing, and the fix, of Liu et al. 2018).

    python examples/unet_keypoints.py [--steps 300]
"""

import argparse

import torch
from torch import nn

from coordconv import CoordConv2d

SIZE = 32


def blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 1, SIZE, SIZE)`` images with a Gaussian blob each, and the blobs' centres in [-1, 1]."""
    centre = torch.rand(n, 2, generator=generator) * (SIZE - 9) + 4
    grid = torch.arange(SIZE, dtype=torch.float32)
    rows = (grid.view(1, SIZE, 1) - centre[:, 0].view(n, 1, 1)) ** 2
    cols = (grid.view(1, 1, SIZE) - centre[:, 1].view(n, 1, 1)) ** 2
    images = torch.exp(-(rows + cols) / 4).unsqueeze(1) + 0.05 * torch.randn(n, 1, SIZE, SIZE, generator=generator)
    return images, centre / (SIZE - 1) * 2 - 1


class UNet(nn.Module):
    """Two levels, 16 and 32 channels; ``coord=True`` makes every 3x3 convolution a CoordConv."""

    def __init__(self, coord: bool) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> nn.Module:
            layer = CoordConv2d(cin, cout, 3, padding=1) if coord else nn.Conv2d(cin, cout, 3, padding=1)
            return nn.Sequential(layer, nn.ReLU())

        self.down = conv(1, 16)
        self.bottom = nn.Sequential(nn.MaxPool2d(2), conv(16, 32), nn.Upsample(scale_factor=2))
        self.up = conv(48, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down(x)
        y = self.up(torch.cat([skip, self.bottom(skip)], dim=1))
        return self.out(y).mean(dim=(2, 3))  # (N, 2): row and column


def train_and_test(coord: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = UNet(coord)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = blobs(32, g)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = blobs(512, torch.Generator().manual_seed(1))
    with torch.no_grad():
        return ((model(x) - y) * (SIZE - 1) / 2).norm(dim=1).mean().item()  # pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per model (default: 300)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, coord in (("conv U-Net", False), ("CoordConv U-Net", True)):
        print(f"{name:16s} mean keypoint error on held-out images: {train_and_test(coord, args.steps):.2f} px")


if __name__ == "__main__":
    main()
