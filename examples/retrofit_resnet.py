"""Retrofit CoordConv into a torchvision ResNet and fine-tune only the new coordinate filters.

`coordconvify` turns the ResNet's first convolution into a CoordConv layer with zero coordinate filters, so the
network computes exactly what it did before. Then everything the ResNet had stays frozen: only the coordinate
filters (and a new two-output head, which the new task needs) are trained, to regress where a bright square
is. The same head on the frozen plain ResNet is trained beside it for comparison.

Needs torchvision (`pip install "torch-coordconv[detection]"` or just torchvision). Runs offline from random
weights; pass a local torchvision checkpoint (for example resnet18-f37072fd.pth) to start from pretrained ones:

    python examples/retrofit_resnet.py [--weights resnet18.pth] [--steps 60]
"""

import argparse
import copy

import torch
import torchvision
from torch import nn

from coordconv import coordconvify, format_usage, freeze_input_filters, inspect_model


def squares(n: int, size: int = 32, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with one bright 6x6 square; targets: its centre (row, column) scaled to [-1, 1]."""
    images = 0.1 * torch.randn(n, 3, size, size, generator=generator)
    corner = torch.randint(0, size - 6, (n, 2), generator=generator)
    for image, (i, j) in zip(images, corner.tolist(), strict=True):
        image[:, i : i + 6, j : j + 6] += 1.0
    return images, (corner + 2.5) / (size - 1) * 2 - 1


def train(model: nn.Module, steps: int, seed: int) -> float:
    """Train the parameters that require gradients; return the test error in pixels."""
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        x, y = squares(32, generator=g)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = squares(256, generator=torch.Generator().manual_seed(1234))
    model.eval()
    with torch.no_grad():
        error = ((model(x) - y) * 31 / 2).norm(dim=1).mean().item()
    model.train()
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a local torchvision ResNet-18 state dict (default: random weights)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per model (default: 60)")
    args = parser.parse_args()
    torch.manual_seed(0)

    resnet = torchvision.models.resnet18()
    if args.weights:
        resnet.load_state_dict(torch.load(args.weights, weights_only=True))
    resnet.eval()

    # 1. Retrofit: the first convolution becomes a CoordConv2d with zero coordinate filters; same output.
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = resnet(x)
        coord_resnet = coordconvify(copy.deepcopy(resnet), first_only=True)
        after = coord_resnet(x)
    print(f"converted: resnet.conv1 -> {coord_resnet.conv1}")
    print(f"max |output change| after conversion: {(after - before).abs().max().item():.1e}")

    # 2. Freeze everything, then train only the coordinate filters and a new head (the task has 2 outputs).
    plain = resnet
    for model in (plain, coord_resnet):
        model.requires_grad_(False)
        model.fc = nn.Linear(512, 2)  # new, trainable
        model.train()
    coord_resnet.fc.load_state_dict(plain.fc.state_dict())  # the same starting head for both
    freeze_input_filters(coord_resnet.conv1)  # conv1's coordinate filters become a Parameter of their own
    trained = [name for name, p in coord_resnet.named_parameters() if p.requires_grad]
    print(f"trained in the CoordConv ResNet: {trained}")

    plain_error = train(plain, args.steps, seed=0)
    coord_error = train(coord_resnet, args.steps, seed=0)
    print(f"mean position error, frozen ResNet + head:                 {plain_error:.2f} px")
    print(f"mean position error, frozen ResNet + coordinate filters + head: {coord_error:.2f} px")

    # 3. Where did the network learn to use the coordinates?
    print(format_usage(inspect_model(coord_resnet, squares(64)[0])))


if __name__ == "__main__":
    main()
