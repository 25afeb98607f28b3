"""A SOLO-style instance-mask head, conv against CoordConv, side by side.

Each image holds two or three identical squares on noise. As in SOLOv2 (Wang et al. 2020), the image is divided
into an S x S grid; the cell that holds an object's centre predicts a kernel, and the object's mask is that
kernel applied (a 1x1 dynamic convolution) to a shared mask-feature map. The squares look alike, so a cell's
kernel can pick its own square out of the feature map only if the features say where things are: plain
convolutions are (nearly) translation equivariant and draw every square, CoordConv layers at the start of the
mask-feature and kernel branches (where SOLO and SOLOv2 put them) let a kernel select by position.

    python examples/solo_masks.py [--steps 400]
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from coordconv import CoordConv2d

SIZE, GRID, SIDE = 32, 4, 6  # canvas, grid cells per side, square side
CELL = SIZE // GRID
EMBED = 8  # mask-feature channels = kernel length


def squares(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images of two or three squares, where their centres lie, and each one's mask.

    Returns images ``(n, 1, SIZE, SIZE)``, which grid cells hold an object's centre ``(n, GRID, GRID)`` and that
    object's mask per cell ``(n, GRID, GRID, SIZE, SIZE)`` (zero where no object).
    """
    images = 0.1 * torch.randn(n, 1, SIZE, SIZE, generator=generator)
    centres = torch.zeros(n, GRID, GRID)
    masks = torch.zeros(n, GRID, GRID, SIZE, SIZE)
    for b in range(n):
        count = 2 + int(torch.randint(2, (1,), generator=generator))
        cells = torch.randperm(GRID * GRID, generator=generator)[:count]
        for cell in cells.tolist():
            a, c = divmod(cell, GRID)
            # the square's centre lies inside its cell, the square inside the canvas
            top = a * CELL + int(torch.randint(CELL, (1,), generator=generator)) - SIDE // 2
            left = c * CELL + int(torch.randint(CELL, (1,), generator=generator)) - SIDE // 2
            top, left = min(max(top, 0), SIZE - SIDE), min(max(left, 0), SIZE - SIDE)
            a, c = (top + SIDE // 2) // CELL, (left + SIDE // 2) // CELL  # the cell of the clamped centre
            if centres[b, a, c]:
                continue  # two centres in one cell: keep the first
            images[b, 0, top : top + SIDE, left : left + SIDE] += 1.0
            centres[b, a, c] = 1.0
            masks[b, a, c, top : top + SIDE, left : left + SIDE] = 1.0
    return images, centres, masks


class SoloHead(nn.Module):
    """A backbone, a mask-feature branch and a kernel/category branch.

    ``coord=True`` makes the first convolution of each branch a CoordConv.
    """

    def __init__(self, coord: bool) -> None:
        super().__init__()
        first = CoordConv2d if coord else nn.Conv2d
        self.backbone = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.mask_features = nn.Sequential(first(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, EMBED, 1))
        self.kernel_trunk = nn.Sequential(first(16, 32, 3, padding=1), nn.ReLU())
        self.kernels = nn.Conv2d(32, EMBED, 1)
        self.category = nn.Conv2d(32, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Category logits ``(N, GRID, GRID)`` and every cell's mask logits ``(N, GRID, GRID, SIZE, SIZE)``."""
        features = F.relu(self.backbone(x))
        mask_features = self.mask_features(features)  # (N, E, SIZE, SIZE)
        trunk = self.kernel_trunk(F.adaptive_avg_pool2d(features, GRID))  # (N, 32, GRID, GRID)
        kernels = self.kernels(trunk)  # (N, E, GRID, GRID): one 1x1 kernel per cell
        masks = torch.einsum("negh,nexy->nghxy", kernels, mask_features)
        return self.category(trunk).squeeze(1), masks


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - 2 * (p * t).sum(1) / (p.square().sum(1) + t.square().sum(1) + 1e-6)).mean()


def train_and_test(coord: bool, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = SoloHead(coord)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, centres, masks = squares(16, g)
        category, mask_logits = model(x)
        positive = centres.bool()
        loss = F.binary_cross_entropy_with_logits(category, centres) + 3 * dice_loss(
            mask_logits[positive], masks[positive]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, centres, masks = squares(256, torch.Generator().manual_seed(1))
    with torch.no_grad():
        category, mask_logits = model(x)
    positive = centres.bool()
    predicted, target = mask_logits[positive] > 0, masks[positive].bool()
    iou = (predicted & target).flatten(1).sum(1) / (predicted | target).flatten(1).sum(1).clamp(min=1)
    found = ((category > 0) == positive).float().mean()
    return iou.mean().item(), found.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per model (default: 400)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, coord in (("conv head", False), ("CoordConv head", True)):
        iou, found = train_and_test(coord, args.steps)
        print(
            f"{name:15s} mean mask IoU of each object's own cell on held-out images: {iou:.3f} "
            f"(centre cells classified right: {found:.3f})"
        )


if __name__ == "__main__":
    main()
