"""Frames: a window's coordinates are the whole grid's there, so tiled inference equals whole-image inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coordconv import (
    AddCoords,
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose2d,
    SampledEncoding,
    coord_grid,
    linear_coords,
    relative_coords,
    window,
)


@pytest.mark.parametrize("encoding", ["linear", "radius", "fourier"])
@pytest.mark.parametrize("order", ["ij", "xy"])
@pytest.mark.parametrize(
    ("whole", "start", "size"), [((9,), (3,), (4,)), ((7, 10), (2, 5), (3, 5)), ((4, 5, 6), (1, 0, 2), (3, 5, 1))]
)
def test_a_framed_grid_is_the_whole_grid_cut_to_the_window(encoding, order, whole, start, size):
    frame = tuple(zip(whole, start, strict=True))
    for dtype in (torch.float32, torch.float64):
        full = coord_grid(whole, encoding=encoding, order=order, with_r=encoding == "linear", dtype=dtype)
        cut = full[(slice(None), *(slice(s, s + n) for s, n in zip(start, size, strict=True)))]
        framed = coord_grid(size, encoding=encoding, order=order, with_r=encoding == "linear", dtype=dtype, frame=frame)
        assert torch.equal(framed, cut)


def test_frame_errors_name_the_axis_and_values():
    with pytest.raises(ValueError, match=r"axis 1's window of 5 at offset 4 must lie inside the whole size 8"):
        linear_coords((3, 5), frame=((3, 0), (8, 4)))
    with pytest.raises(ValueError, match="for each of the 2 spatial axes"):
        linear_coords((3, 5), frame=((3, 0),))
    with pytest.raises(TypeError, match="pair of ints"):
        linear_coords((3,), frame=((3.0, 0),))


class Net(nn.Module):
    """Full resolution, a stride-2 CoordConv, a transposed CoordConv back up, AddCoords: frames at 3 scales."""

    def __init__(self) -> None:
        super().__init__()
        self.a = CoordConv2d(3, 6, 3, padding=1, with_r=True)
        self.down = CoordConv2d(6, 6, 3, stride=2, padding=1, padding_mode="reflect")
        self.up = CoordConvTranspose2d(6, 6, 4, stride=2, padding=1)
        self.coords = AddCoords()
        self.out = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.a(x))
        y = torch.tanh(self.up(torch.tanh(self.down(y))))
        return self.out(self.coords(y))


def _tiled(model: nn.Module, image: torch.Tensor, tile: int, halo: int, framed: bool) -> torch.Tensor:
    """Cores of ``tile`` pixels, each computed on its window grown by ``halo`` (clipped to the image)."""
    h, w = image.shape[-2:]
    out = torch.empty(image.shape[0], 2, h, w, dtype=image.dtype)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - halo, 0), max(left - halo, 0)
            t1, l1 = min(top + tile + halo, h), min(left + tile + halo, w)
            window_input = image[..., t0:t1, l0:l1]
            if framed:
                with window(model, image_size=(h, w), offset=(t0, l0)):
                    y = model(window_input)
            else:
                y = model(window_input)
            out[..., top : top + tile, left : left + tile] = y[
                ..., top - t0 : top - t0 + tile, left - l0 : left - l0 + tile
            ]
    return out


def test_tiled_inference_equals_the_whole_image():
    torch.manual_seed(0)
    model = Net().double()
    image = torch.randn(2, 3, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        whole = model(image)
        tiled = _tiled(model, image, tile=16, halo=8, framed=True)
        naive = _tiled(model, image, tile=16, halo=8, framed=False)
    torch.testing.assert_close(tiled, whole, rtol=1e-12, atol=1e-12)
    assert (naive - whole).abs().max() > 1e-2  # without frames every tile sees the coordinates of a whole image
    # the frames were restored and the hooks removed; later calls see their own grid again
    assert all(m.frame is None for m in model.modules() if hasattr(m, "frame"))
    assert not any(m._forward_pre_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(image), whole, rtol=0, atol=0)


def test_gradients_through_a_window_equal_the_whole_images_where_the_window_holds_them():
    torch.manual_seed(1)
    layer = CoordConv2d(2, 3, 3, padding=1).double()
    image = torch.randn(1, 2, 12, 12, dtype=torch.float64)
    with window(layer, image_size=(12, 12), offset=(4, 0)):
        out = layer(image[..., 4:10, :])
    (grad,) = torch.autograd.grad(out[..., 1:-1, :].sum(), layer.weight)
    (expected,) = torch.autograd.grad(layer(image)[..., 5:9, :].sum(), layer.weight)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize(
    ("cls", "whole", "start", "size"),
    [(CoordConv1d, (20,), (6,), (8,)), (CoordConv3d, (6, 8, 8), (2, 0, 4), (4, 8, 4))],
)
def test_other_ranks(cls, whole, start, size):
    layer = cls(2, 3, 3, padding=1).double()
    image = torch.randn(1, 2, *whole, dtype=torch.float64)
    cut = (..., *(slice(s, s + n) for s, n in zip(start, size, strict=True)))
    with window(layer, image_size=whole, offset=start):
        out = layer(image[cut])
    inner = (..., *(slice(1, n - 1) for n in size))
    torch.testing.assert_close(out[inner], layer(image)[cut][inner])


def test_a_layer_whose_place_is_not_defined_is_named():
    model = nn.Sequential(CoordConv2d(1, 2, 3), CoordConv2d(2, 2, 3))  # unpadded: 16 -> 14 -> 12
    undefined = r"layer '1' gets a grid of 14 on axis 0 from a window of 16"
    with pytest.raises(ValueError, match=undefined), window(model, image_size=(32, 32), offset=(0, 16)):
        model(torch.randn(1, 1, 16, 16))
    strided = nn.Sequential(CoordConv2d(1, 2, 3, stride=2, padding=1), CoordConv2d(2, 2, 3, padding=1))
    misplaced = r"layer '1' .* divides the image size 32 and the offset 3"
    with pytest.raises(ValueError, match=misplaced), window(strided, image_size=(32, 32), offset=(3, 0)):
        strided(torch.randn(1, 1, 16, 16))
    assert all(m.frame is None for m in strided.modules() if hasattr(m, "frame"))
    mismatched = r"image_size \(32,\) and offset \(0, 0\) must have the same number"
    with pytest.raises(ValueError, match=mismatched), window(strided, image_size=(32,), offset=(0, 0)):
        pass


def test_a_layers_own_frame():
    layer = CoordConv2d(1, 2, 3, padding=1).double()
    image = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    layer.frame = ((10, 2), (10, 3))
    out = layer(image[..., 2:8, 3:9])
    layer.frame = None
    torch.testing.assert_close(out[..., 1:-1, 1:-1], layer(image)[..., 3:7, 4:8])


def test_relative_coords_are_condinst_s_offsets():
    """CondInst: (instance location - location) / size_of_interest, locations s * j + s // 2 in input pixels, (x, y)."""
    stride, soi, (h, w) = 8, 64.0, (5, 7)
    ys, xs = torch.meshgrid(
        torch.arange(h) * stride + stride // 2, torch.arange(w) * stride + stride // 2, indexing="ij"
    )
    locations = torch.stack([xs.flatten(), ys.flatten()], 1).double()  # (h * w, 2), (x, y)
    instances = locations[[3, 17, 30]]  # three positive locations
    theirs = (instances.view(-1, 1, 2) - locations.view(1, -1, 2)) / soi  # (K, h * w, 2)
    theirs = theirs.permute(0, 2, 1).reshape(3, 2, h, w)
    # the same points in this library's units and order ("xy": column, then row)
    grid_index = torch.tensor([[3 % w, 3 // w], [17 % w, 17 // w], [30 % w, 30 // w]], dtype=torch.float64)
    centres = 2 * grid_index / torch.tensor([w - 1, h - 1]) - 1
    scale = [-stride * (w - 1) / (2 * soi), -stride * (h - 1) / (2 * soi)]
    ours = relative_coords((h, w), centres, scale=scale, order="xy")
    torch.testing.assert_close(ours, theirs)


def test_relative_coords_errors():
    with pytest.raises(ValueError, match=r"centres must be a \(K, 2\) tensor .*got \(3,\)"):
        relative_coords((4, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="scale must be a number or 2 numbers"):
        relative_coords((4, 4), torch.zeros(1, 2), scale=(1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match="floating point"):
        relative_coords((4, 4), torch.zeros(1, 2, dtype=torch.int64))


def test_sampled_encoding_is_the_concatenation_of_the_users_channels():
    torch.manual_seed(2)
    polar = torch.stack(torch.meshgrid(torch.linspace(1, 50, 12), torch.linspace(0, 6.28, 16), indexing="ij")).double()
    layer = CoordConv2d(3, 4, 3, padding=1, encoding=SampledEncoding(polar)).double()
    x = torch.randn(2, 3, 12, 16, dtype=torch.float64)
    concatenated = nn.functional.conv2d(
        torch.cat([x, polar.expand(2, -1, -1, -1)], 1), layer.weight, layer.bias, padding=1
    )
    torch.testing.assert_close(layer(x), concatenated)
    # a grid of another size gets the channels interpolated corner to corner; a window gets its part
    half = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    resampled = nn.functional.interpolate(polar[None], size=(6, 8), mode="bilinear", align_corners=True)
    concatenated = nn.functional.conv2d(
        torch.cat([half, resampled.expand(2, -1, -1, -1)], 1), layer.weight, layer.bias, padding=1
    )
    torch.testing.assert_close(layer(half), concatenated)
    with window(layer, image_size=(12, 16), offset=(4, 8)):
        tile = layer(x[..., 4:10, 8:16])
    torch.testing.assert_close(tile[..., 1:-1, 1:-1], layer(x)[..., 5:9, 9:15])
    assert "SampledEncoding(values of shape (2, 12, 16))" in repr(layer)


@pytest.mark.parametrize("order", ["ij", "xy"])
@pytest.mark.parametrize("size", [(5,), (4, 1), (1, 6), (3, 4, 5)])
def test_sampled_encoding_at_its_own_size_gives_its_values_in_either_order(order, size):
    values = torch.randn(2, *size, dtype=torch.float64)
    grid = coord_grid(size, encoding=SampledEncoding(values), order=order, dtype=torch.float64)
    torch.testing.assert_close(grid, values, rtol=0, atol=1e-12)


def test_sampled_encoding_errors():
    with pytest.raises(ValueError, match=r"floating \(channels, \*size\) tensor .*got shape \(5,\)"):
        SampledEncoding(torch.zeros(5))
    with pytest.raises(ValueError, match=r"values of shape \(2, 4, 4\) have 2 spatial axes, but the grid has 3"):
        CoordConv3d(1, 1, 3, encoding=SampledEncoding(torch.zeros(2, 4, 4)))


# its order detection reads values: a graph break, after which dynamo's own inspection of the layer's
# intermediate output touches its .grad (a torch warning, harmless, raised as an error by this suite's filters)
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_sampled_encoding_under_torch_compile(backend):
    # compiled calls equal eager ones at the reference size, at a resampled size and through backward
    torch.manual_seed(3)
    polar = torch.stack(torch.meshgrid(torch.linspace(1, 50, 12), torch.linspace(0, 6.28, 16), indexing="ij"))
    layer = CoordConv2d(3, 4, 3, padding=1, encoding=SampledEncoding(polar))
    compiled = torch.compile(layer, backend=backend)
    for size in [(12, 16), (6, 8)]:
        x = torch.randn(2, 3, *size, requires_grad=True)
        ours, expected = compiled(x), layer(x)
        torch.testing.assert_close(ours, expected)
        grads = torch.autograd.grad(ours.square().sum(), [x, layer.weight])
        expected_grads = torch.autograd.grad(expected.square().sum(), [x, layer.weight])
        torch.testing.assert_close(grads, expected_grads, rtol=1e-4, atol=1e-4)  # float32 sums in another order
