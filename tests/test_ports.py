"""load_concatenated: other implementations' weights give their outputs in this library's layers.

Each port's coordinate channels are rebuilt here from its documented convention (docs/guide/ports.md, the
sources cited in coordconv/ports.py), its convolution run over ``cat([x, channels])`` with random weights, and
the result compared with the CoordConv layer the weights were loaded into.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coordconv import CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose2d
from coordconv.ports import PORTS, Port, load_concatenated


def _ramp(n: int, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    if n == 1:
        return torch.full((1,), float("nan"), dtype=torch.float64)  # most ports divide by n - 1 = 0
    return lo + (hi - lo) * torch.arange(n, dtype=torch.float64) / (n - 1)


def _grid(*sizes: int, lo: float = -1.0, hi: float = 1.0) -> list[torch.Tensor]:
    """Per axis, in the tensor's axis order, the ramp from lo to hi broadcast over the grid."""
    ramps = torch.meshgrid(*[_ramp(n, lo, hi) for n in sizes], indexing="ij")
    return list(ramps)


def _shifted_radius(axes: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((a - 0.5) ** 2 for a in axes))


def _channels(port: str, sizes: tuple[int, ...], with_r: bool) -> tuple[list[torch.Tensor], str]:
    """The port's coordinate channels of a grid, in its order, and where they go."""
    if port == "official":  # NHWC (batch, x_dim, y_dim, c): xx runs along columns but is divided by x_dim - 1
        h, w = sizes
        i, j = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
        xx, yy = 2 * j / (h - 1) - 1, 2 * i / (w - 1) - 1
        return [xx, yy] + ([torch.sqrt(xx**2 + yy**2)] if with_r else []), "append"
    if port in ("mkocabas", "walsvid"):
        axes = _grid(*sizes)
        return axes + ([_shifted_radius(axes)] if with_r else []), "append"
    if port == "jacinle":
        axes = _grid(*sizes)
        return axes[::-1] + ([_shifted_radius(axes)] if with_r else []), "append"
    if port == "wizaron":
        axes = _grid(*sizes)
        r = torch.sqrt(sum(a**2 for a in axes))
        return axes + ([r / r.max()] if with_r else []), "prepend"
    if port == "mmdet":  # torch.linspace(-1, 1, n): -1 on a size-1 axis
        axes = [torch.linspace(-1, 1, n, dtype=torch.float64) for n in sizes]
        y, x = torch.meshgrid(*axes, indexing="ij")
        return [x, y], "append"
    if port == "paddledet":  # arange(w) / ((w - 1) * 2) - 1: from -1 to -0.5
        return _grid(*sizes, lo=-1.0, hi=-0.5)[::-1], "append"
    if port == "monai":
        return _grid(*sizes, lo=-0.5, hi=0.5), "append"
    raise AssertionError(port)


def _theirs(port: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool, **conv):
    channels, place = _channels(port, tuple(x.shape[2:]), with_r=_has_r(x, weight, transposed))
    coords = torch.stack(channels).unsqueeze(0).expand(x.shape[0], -1, *x.shape[2:])
    inp = torch.cat([x, coords] if place == "append" else [coords, x], dim=1)
    rank = x.dim() - 2
    if transposed:
        return getattr(F, f"conv_transpose{rank}d")(inp, weight, bias, **conv)
    return getattr(F, f"conv{rank}d")(inp, weight, bias, **conv)


def _has_r(x: torch.Tensor, weight: torch.Tensor, transposed: bool) -> bool:
    inputs = weight.shape[0] if transposed else weight.shape[1]
    return inputs - x.shape[1] == x.dim() - 2 + 1


CASES = [
    # port, with_r, padding, sizes (square only for the official layer: its non-square range is its bug)
    ("official", False, 1, [(6, 6), (3, 3)]),
    ("official", True, 0, [(5, 5)]),
    ("mkocabas", False, 1, [(5, 7), (2, 9)]),
    ("walsvid", False, 2, [(4, 6)]),
    ("jacinle", False, 1, [(6, 4)]),
    ("wizaron", False, 1, [(5, 8)]),
    ("wizaron", True, 1, [(5, 8), (3, 2)]),
    ("mmdet", False, 1, [(7, 5), (1, 4)]),  # its -1 on a size-1 axis is ours too only in its channel's filters
    ("paddledet", False, 0, [(6, 9)]),
    ("monai", False, 1, [(4, 5)]),
]


@pytest.mark.parametrize(("port", "with_r", "padding", "sizes"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("order", ["ij", "xy"])
def test_loaded_weights_give_the_ports_output(port, with_r, padding, sizes, order):
    torch.manual_seed(0)
    layer = CoordConv2d(3, 4, 3, padding=padding, with_r=with_r, order=order).double()
    d = 2 + int(with_r)
    weight, bias = torch.randn(4, 3 + d, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    given = weight.permute(2, 3, 1, 0).numpy() if PORTS[port].layout == "tf" else weight
    load_concatenated(layer, given, bias, source=port)
    for size in sizes:
        if port == "mmdet" and 1 in size:
            continue  # checked below: mmdet's -1 there is not ours
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        torch.testing.assert_close(layer(x), _theirs(port, x, weight, bias, False, padding=padding))


def test_official_layer_differs_only_where_its_range_is_wrong():
    """On a non-square input the official layer's channels leave [-1, 1] (PEERS: uber-research/CoordConv#5)."""
    layer = CoordConv2d(3, 4, 3, padding=1, bias=False).double()
    weight = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    load_concatenated(layer, weight.permute(2, 3, 1, 0), source="official")
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _theirs("official", x, weight, None, False, padding=1))
    x = torch.randn(1, 3, 6, 10, dtype=torch.float64)
    assert not torch.allclose(layer(x), _theirs("official", x, weight, None, False, padding=1))


def test_mmdet_size_one_axis_is_its_linspace_not_ours():
    layer = CoordConv2d(3, 4, 3, padding=1, bias=False).double()
    weight = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    load_concatenated(layer, weight, source="mmdet")
    x = torch.randn(1, 3, 1, 6, dtype=torch.float64)
    assert not torch.allclose(layer(x), _theirs("mmdet", x, weight, None, False, padding=1))
    assert "-1" in PORTS["mmdet"].size_one


@pytest.mark.parametrize("port", ["mkocabas", "wizaron", "monai"])
def test_transposed(port):
    torch.manual_seed(1)
    with_r = port == "wizaron"
    layer = CoordConvTranspose2d(3, 4, 4, stride=2, padding=1, bias=False, with_r=with_r).double()
    weight = torch.randn(3 + 2 + int(with_r), 4, 4, 4, dtype=torch.float64)
    load_concatenated(layer, weight, source=port)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _theirs(port, x, weight, None, True, stride=2, padding=1))


@pytest.mark.parametrize(("cls", "port", "sizes"), [(CoordConv1d, "walsvid", (7,)), (CoordConv3d, "monai", (3, 4, 5))])
def test_other_ranks(cls, port, sizes):
    rank = len(sizes)
    layer = cls(2, 3, 3, padding=1, bias=False).double()
    weight = torch.randn(3, 2 + rank, *([3] * rank), dtype=torch.float64)
    load_concatenated(layer, weight, source=port)
    x = torch.randn(2, 2, *sizes, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _theirs(port, x, weight, None, False, padding=1))


def test_a_zero_shifted_radius_loads_and_a_trained_one_is_refused():
    layer = CoordConv2d(3, 4, 3, padding=1, with_r=True, bias=False).double()
    weight = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    weight[:, 5] = 0
    load_concatenated(layer, weight, source="mkocabas")
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _theirs("mkocabas", x, weight, None, False, padding=1))
    weight[:, 5] = 1
    before = layer.weight.detach().clone()
    with pytest.raises(ValueError, match=r"radius channel does not convert: .*centred half a unit off"):
        load_concatenated(layer, weight, source="mkocabas")
    assert torch.equal(layer.weight, before)  # nothing was written


def test_an_offset_under_padding_is_refused():
    layer = CoordConv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"offset by -0.75 .*padding=0 .*got padding=\(1, 1\)"):
        load_concatenated(layer, torch.randn(4, 5, 3, 3), source="paddledet")
    with pytest.raises(ValueError, match="bias=True"):
        load_concatenated(CoordConv2d(3, 4, 1, bias=False), torch.randn(4, 5, 1, 1), source="paddledet")


def test_bad_inputs_are_named():
    layer = CoordConv2d(3, 4, 3)
    shapes = r"weight has shape \(4, 6, 3, 3\); CoordConv2d expects \(4, 5, 3, 3\).*with_r"
    with pytest.raises(ValueError, match=shapes):
        load_concatenated(layer, torch.randn(4, 6, 3, 3), source="mkocabas")
    with pytest.raises(ValueError, match=r"expects \(3, 3, 5, 4\)"):
        load_concatenated(layer, np.zeros((4, 5, 3, 3), dtype=np.float32), source="official")
    with pytest.raises(ValueError, match="source must be one of official, mkocabas"):
        load_concatenated(layer, torch.randn(4, 5, 3, 3), source="nope")
    with pytest.raises(ValueError, match="groups must be 1, got 2"):
        load_concatenated(CoordConv2d(4, 4, 3, groups=2), torch.randn(4, 6, 3, 3), source="mkocabas")
    with pytest.raises(ValueError, match="describes 2D layers, got CoordConv3d"):
        load_concatenated(CoordConv3d(3, 4, 3), torch.randn(4, 6, 3, 3, 3), source="mkocabas")
    with pytest.raises(ValueError, match="linear encoding"):
        load_concatenated(CoordConv2d(3, 4, 3, encoding="fourier"), torch.randn(4, 5, 3, 3), source="mkocabas")
    with pytest.raises(TypeError, match="floating point"):
        load_concatenated(layer, torch.zeros(4, 5, 3, 3, dtype=torch.int64), source="mkocabas")
    with pytest.raises(TypeError, match="must be a CoordConv layer, got Conv2d"):
        load_concatenated(torch.nn.Conv2d(5, 4, 3), torch.randn(4, 5, 3, 3), source="mkocabas")  # type: ignore[arg-type]


def test_a_custom_port():
    """A Port describes any other convention: here channels in [0, 1] (scale 0.5, offset 0.5), column first."""
    port = Port("mine", order="xy", scale=0.5, offset=0.5, radius=None)
    layer = CoordConv2d(3, 4, 3).double()  # no padding: the offset folds into the bias
    weight, bias = torch.randn(4, 5, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    load_concatenated(layer, weight, bias, source=port)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    i, j = _grid(6, 7, lo=0.0, hi=1.0)
    theirs = F.conv2d(torch.cat([x, torch.stack([j, i]).expand(2, -1, -1, -1)], 1), weight, bias)
    torch.testing.assert_close(layer(x), theirs)
    assert math.isclose(PORTS["wizaron"].radius or 0, 1 / math.sqrt(2))


def test_the_guide_table_has_a_row_per_port():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "ports.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")}
    assert rows - {"source"} == set(PORTS)
