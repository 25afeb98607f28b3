import math
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from coordconv import (
    CoordEncoding,
    FourierEncoding,
    LinearEncoding,
    RadiusEncoding,
    coord_channels,
    coord_grid,
    linear_coords,
    tile_vector,
)
from coordconv.coords import resolve_encoding
from reference import reference_grid

R2 = math.sqrt(2.0)


def test_known_answer_2x3():
    """The convention, pinned: i (rows) then j (columns), endpoints exactly -1 and +1, r from the centre."""
    grid = coord_grid((2, 3), with_r=True, dtype=torch.float64)
    i, j, r = grid
    assert i.tolist() == [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    assert j.tolist() == [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]
    # torch's float64 sqrt may be one ulp off the correctly rounded value (2.14.1 on CPU is), hence approx
    assert r.tolist() == [pytest.approx([R2, 1.0, R2], rel=1e-15, abs=0)] * 2


def test_order_xy_is_the_official_column_row_order():
    ij = coord_grid((2, 3))
    xy = coord_grid((2, 3), order="xy")
    assert torch.equal(xy, ij.flip(0))
    assert xy[0].tolist() == [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]  # official xx: varies along columns


def test_size_one_axes_are_zero_not_nan():
    assert coord_grid((1, 1), with_r=True).tolist() == [[[0.0]], [[0.0]], [[0.0]]]
    assert coord_grid((1,)).tolist() == [[0.0]]
    grid = coord_grid((1, 4), dtype=torch.float64)
    assert grid[0].tolist() == [[0.0] * 4]
    assert grid[1].tolist() == [[-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]]


def test_known_answer_3d():
    d, i, j, r = coord_grid((2, 1, 3), with_r=True, dtype=torch.float64)
    assert d[:, 0, :].tolist() == [[-1.0] * 3, [1.0] * 3]
    assert i.abs().sum() == 0
    assert j[0, 0].tolist() == [-1.0, 0.0, 1.0]
    assert r[0, 0].tolist() == pytest.approx([R2, 1.0, R2], rel=1e-15, abs=0)
    assert coord_grid((2, 2, 2), with_r=True)[3].max().item() == pytest.approx(math.sqrt(3))


def test_known_answer_1d():
    assert coord_grid((5,), with_r=True, dtype=torch.float64).tolist() == [
        [-1.0, -0.5, 0.0, 0.5, 1.0],
        [1.0, 0.5, 0.0, 0.5, 1.0],
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@given(n=st.integers(1, 700))
def test_endpoints_exact_and_antisymmetric(dtype, n):
    c = linear_coords((n,), dtype=dtype)[0]
    assert c.dtype == dtype
    if n == 1:
        assert c.tolist() == [0.0]
        return
    assert c[0].item() == -1.0 and c[-1].item() == 1.0
    assert torch.equal(c, -c.flip(0))
    exact = torch.arange(n, dtype=torch.float64) * 2 / (n - 1) - 1
    torch.testing.assert_close(c.double(), exact, rtol=0, atol=torch.finfo(dtype).eps)


@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), with_r=st.booleans(), xy=st.booleans())
def test_matches_linspace_meshgrid(shape, with_r, xy):
    order = "xy" if xy else "ij"
    ours = coord_grid(shape, with_r=with_r, order=order, dtype=torch.float64)
    torch.testing.assert_close(ours, reference_grid(shape, with_r=with_r, order=order), rtol=0, atol=1e-15)


def test_dtype_device_and_no_grad():
    with torch.enable_grad():
        grid = coord_grid((3, 4), dtype=torch.float64, device="cpu")
    assert grid.dtype == torch.float64 and grid.device.type == "cpu" and not grid.requires_grad
    assert coord_grid((2,)).dtype == torch.get_default_dtype()
    assert coord_grid((2, 2), device="meta").is_meta


def test_encodings_channels():
    assert coord_channels(2) == 2
    assert coord_channels(2, with_r=True) == 3
    assert coord_channels(3, "radius") == 4
    assert coord_channels(2, "fourier") == 2 * (1 + 2 * 3)
    assert coord_channels(1, FourierEncoding(frequencies=(1.0,), include_linear=False)) == 2
    assert coord_channels(2, "fourier", with_r=True) == 15


def test_radius_encoding_equals_with_r():
    assert torch.equal(coord_grid((4, 5), encoding="radius"), coord_grid((4, 5), with_r=True))
    assert resolve_encoding("linear", with_r=True) == RadiusEncoding()


def test_fourier_values():
    enc = FourierEncoding(frequencies=(1.0, 2.5))
    grid = coord_grid((3, 4), encoding=enc, dtype=torch.float64)
    linear = coord_grid((3, 4), dtype=torch.float64)
    assert grid.shape == (2 + 2 * 2 * 2, 3, 4)
    torch.testing.assert_close(grid[:2], linear)
    torch.testing.assert_close(grid[2:4], torch.sin(math.pi * linear))
    torch.testing.assert_close(grid[4:6], torch.cos(math.pi * linear))
    torch.testing.assert_close(grid[6:8], torch.sin(2.5 * math.pi * linear))
    torch.testing.assert_close(grid[8:10], torch.cos(2.5 * math.pi * linear))
    torch.testing.assert_close(grid, reference_grid((3, 4), encoding=enc))


def test_fourier_with_r_appends_radius_last():
    grid = coord_grid((3, 3), encoding="fourier", with_r=True)
    torch.testing.assert_close(grid[-1], coord_grid((3, 3), with_r=True)[-1])


class Quadratic(CoordEncoding):
    """A user's own encoding: c and c**2."""

    def channels(self, rank):
        return 2 * rank

    def encode(self, coords):
        return torch.cat([coords, coords.square()])


def test_custom_encoding():
    grid = coord_grid((2, 3), encoding=Quadratic())
    assert grid.shape == (4, 2, 3)
    torch.testing.assert_close(grid[2:], coord_grid((2, 3)).square())


class Liar(CoordEncoding):
    def channels(self, rank):
        return rank

    def encode(self, coords):
        return coords[:1]


def test_encoding_that_breaks_its_promise_is_caught():
    with pytest.raises(ValueError, match=r"returned shape \(1, 2, 2\), expected \(2, 2, 2\)"):
        coord_grid((2, 2), encoding=Liar())


def test_encodings_pickle():
    for enc in (LinearEncoding(), RadiusEncoding(), FourierEncoding((1.0, 2.0), include_linear=False)):
        assert pickle.loads(pickle.dumps(enc)) == enc


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"encoding": "polar"}, ValueError, "unknown coordinate encoding 'polar'"),
        ({"encoding": 3}, TypeError, "got 3"),
        ({"with_r": 1}, TypeError, "with_r must be a bool, got 1"),
        ({"encoding": "radius", "with_r": True}, ValueError, "second radius channel"),
        ({"order": "yx"}, ValueError, "order must be one of .* got 'yx'"),
        ({"dtype": torch.int64}, TypeError, "floating dtype, got torch.int64"),
    ],
)
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        coord_grid((2, 2), **kwargs)


@pytest.mark.parametrize("shape", [(), (0, 3), (2, 2, 2, 2), (3, -1)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match="spatial"):
        coord_grid(shape)


@pytest.mark.parametrize("shape", ["44", (4.5, 4), 4, (True, 2), None])
def test_shapes_of_the_wrong_type_are_named(shape):
    with pytest.raises(TypeError, match=r"spatial.*(must be|sizes must be ints)"):
        coord_grid(shape)


@pytest.mark.parametrize("freqs", [(), (0.0,), (-1.0,), (float("nan"),), ("a",), 0, 2.0, "12"])
def test_bad_fourier_frequencies(freqs):
    with pytest.raises(ValueError, match="frequencies"):
        FourierEncoding(frequencies=freqs)


def test_coord_channels_rank_check():
    with pytest.raises(ValueError, match="rank must be 1, 2 or 3, got 4"):
        coord_channels(4)


def test_tile_vector():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    tiled = tile_vector(v, (3, 5))
    assert tiled.shape == (2, 2, 3, 5)
    assert tiled.stride()[2:] == (0, 0)  # a broadcast view, no copy
    assert torch.equal(tiled[1, 0], torch.full((3, 5), 3.0))
    assert tile_vector(v, (4,)).shape == (2, 2, 4)
    with pytest.raises(ValueError, match=r"\(B, C\) tensor, got shape \(2,\)"):
        tile_vector(torch.zeros(2), (3, 3))
