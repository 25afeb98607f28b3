"""``coordconv demo``: a tour of the layer library, printed."""

from __future__ import annotations

__all__ = ["tour"]


def tour(seed: int = 0) -> int:
    """A tour of the layer library: the convention, exactness, grouped layers, retrofitting, speed."""
    import torch
    from torch import nn

    from coordconv import CoordConv2d, coord_grid, coordconvify
    from coordconv.bench import QUICK_CASES, format_table, run

    torch.manual_seed(seed)
    print("1. The coordinate convention: channels i (row) then j (column), exactly -1..+1 on every axis.")
    print("   coord_grid((2, 3), with_r=True) ->")
    for name, channel in zip(("i", "j", "r"), coord_grid((2, 3), with_r=True), strict=True):
        print(f"   {name}: {channel.tolist()}")

    print("\n2. Exactness: CoordConv2d equals conv(cat([x, coords]), [W | W_c]) (float64, non-square input).")
    layer = CoordConv2d(3, 8, 3, padding=1, padding_mode="reflect", with_r=True, dtype=torch.float64)
    x = torch.randn(4, 3, 7, 11, dtype=torch.float64)
    coords = coord_grid((7, 11), with_r=True, dtype=torch.float64).expand(4, -1, -1, -1)
    concat = nn.functional.conv2d(
        nn.functional.pad(torch.cat([x, coords], 1), (1, 1, 1, 1), mode="reflect"),
        layer.weight,  # [W | W_c]: the coordinate filters are part of weight
        layer.bias,
    )
    print(f"   max |difference| = {(layer(x) - concat).abs().max().item():.2e}")

    print("\n3. Grouped and depthwise layers work (the coordinate filters are dense over groups):")
    depthwise = CoordConv2d(16, 16, 3, padding=1, groups=16)
    print(f"   {depthwise} -> output {tuple(depthwise(torch.randn(2, 16, 9, 5)).shape)}")

    print("\n4. Retrofit: coordconvify() swaps convolutions in place, keeping the output identical.")
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    image = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        before = net(image)
        coordconvify(net)
        after = net(image)
    print(f"   converted: {[type(m).__name__ for m in net if isinstance(m, nn.Conv2d)]}")
    print(f"   max |output change| = {(after - before).abs().max().item():.2e}")

    print("\n5. Speed (small cases, one thread; `coordconv bench layer` runs the full benchmark):")
    print(format_table(run(QUICK_CASES, threads=[1], repeats=5, warmup=1)))
    return 0
