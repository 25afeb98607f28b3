"""Coordinate grids and their encodings: the pure functions behind every CoordConv layer.

The coordinate convention (binding for the whole package):

* A grid over ``spatial_shape = (n_1, ..., n_k)`` (k = 1, 2 or 3) has one *linear* channel per spatial
  axis, in the tensor's dimension order: 2D gives ``i`` (the row / height index) then ``j`` (the column /
  width index); 3D gives depth, row, column. This is the paper's order (Liu et al. 2018, Fig. 3).
* Values are ``c = 2 * index / (n - 1) - 1``: the first and last pixel centres are exactly ``-1`` and
  ``+1`` on every axis, square or not, and the grid is exactly antisymmetric. An axis of size 1 is ``0``.
* The optional radius channel is ``r = sqrt(sum_k c_k ** 2)``, centred on the middle of the grid, range
  ``[0, sqrt(k)]``, as in the official code. It is appended after the encoding's channels.
* ``order="xy"`` reverses the axis order (2D: column then row), which is what the official TensorFlow
  code appends (``[xx, yy]``). It exists for porting that code's weights; it is never the default.
* Grids are built in the dtype and on the device asked for and never require a gradient.

Differences from other code: the official TF ``AddCoords`` divides the column index by ``x_dim - 1`` and the
row index by ``y_dim - 1`` with the two sizes swapped, so non-square inputs get wrong ranges; several
PyTorch ports shift ``r`` by 0.5 and divide by zero on size-1 axes. None of that happens here.

Paper: "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution", Liu et al.,
NeurIPS 2018, https://arxiv.org/abs/1807.03247. Reference code: https://github.com/uber-research/CoordConv.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch
from torch import Tensor

__all__ = [
    "CoordEncoding",
    "EncodingLike",
    "FourierEncoding",
    "LinearEncoding",
    "Order",
    "RadiusEncoding",
    "coord_channels",
    "coord_grid",
    "linear_coords",
    "resolve_encoding",
    "tile_vector",
]

Order: TypeAlias = Literal["ij", "xy"]
_ORDERS = ("ij", "xy")


class CoordEncoding(abc.ABC):
    """How the linear coordinates of a grid become the channels a layer sees.

    Subclass it to plug in your own encoding: implement :meth:`channels` (how many channels for a grid of a
    given rank) and :meth:`encode` (linear coordinates in, channels out). Encodings hold no parameters and
    must be picklable; frozen dataclasses are a good fit. They are applied under ``torch.no_grad()``. The
    layers cache the grids of frozen dataclasses (of numbers, strings and tuples) only; any other encoding is
    applied on every call, so one whose state changes (an annealed scale) is always read as it is.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Squares(CoordEncoding):
        ...     def channels(self, rank):
        ...         return 2 * rank
        ...     def encode(self, coords):
        ...         return torch.cat([coords, coords.square()])
        >>> coord_grid((3,), encoding=Squares())
        tensor([[-1.,  0.,  1.],
                [ 1.,  0.,  1.]])
    """

    @abc.abstractmethod
    def channels(self, rank: int) -> int:
        """Number of channels :meth:`encode` returns for a grid with ``rank`` spatial axes."""

    @abc.abstractmethod
    def encode(self, coords: Tensor) -> Tensor:
        """Map linear coordinates ``(rank, *spatial)`` to encoded channels ``(channels(rank), *spatial)``."""


@dataclass(frozen=True)
class LinearEncoding(CoordEncoding):
    """The paper's encoding: the linear coordinates themselves, one channel per spatial axis (the default).

    Example:
        >>> LinearEncoding().channels(2), coord_grid((2,), encoding=LinearEncoding())
        (2, tensor([[-1.,  1.]]))
    """

    def channels(self, rank: int) -> int:
        return rank

    def encode(self, coords: Tensor) -> Tensor:
        return coords


@dataclass(frozen=True)
class RadiusEncoding(CoordEncoding):
    """The linear coordinates plus the radius channel ``r = sqrt(sum_k c_k ** 2)``, appended last.

    The same as ``encoding="linear", with_r=True``.

    Example:
        >>> coord_grid((3,), encoding=RadiusEncoding())
        tensor([[-1.,  0.,  1.],
                [ 1.,  0.,  1.]])
    """

    def channels(self, rank: int) -> int:
        return rank + 1

    def encode(self, coords: Tensor) -> Tensor:
        return torch.cat([coords, _radius(coords)], dim=0)


@dataclass(frozen=True)
class FourierEncoding(CoordEncoding):
    """Sine and cosine features of the linear coordinates (Tancik et al. 2020, arXiv 2006.10739).

    Channels, in order: the linear coordinates (if ``include_linear``), then for each frequency ``f``
    ``sin(pi * f * c_k)`` for every axis ``k``, then ``cos(pi * f * c_k)`` for every axis ``k``. With
    ``f = 1`` one period spans the grid from ``-1`` to ``+1``.

    Args:
        frequencies: positive frequencies, in periods per half grid.
        include_linear: also emit the plain linear coordinates first.

    Example:
        >>> enc = FourierEncoding(frequencies=(1.0,), include_linear=False)
        >>> enc.channels(2), coord_grid((4, 6), encoding=enc).shape  # sin(pi i), sin(pi j), cos(pi i), cos(pi j)
        (4, torch.Size([4, 4, 6]))
    """

    frequencies: tuple[float, ...] = (1.0, 2.0, 4.0)
    include_linear: bool = True

    def __post_init__(self) -> None:
        given: object = self.frequencies
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            raise ValueError(f"frequencies must be a non-empty sequence of numbers, got {self.frequencies!r}")
        freqs = tuple(self.frequencies)
        if not freqs or not all(isinstance(f, int | float) and not isinstance(f, bool) for f in freqs):
            raise ValueError(f"frequencies must be a non-empty sequence of numbers, got {self.frequencies!r}")
        if not all(math.isfinite(f) and f > 0 for f in freqs):
            raise ValueError(f"frequencies must be finite and positive, got {self.frequencies!r}")
        object.__setattr__(self, "frequencies", tuple(float(f) for f in freqs))

    def channels(self, rank: int) -> int:
        return rank * (int(self.include_linear) + 2 * len(self.frequencies))

    def encode(self, coords: Tensor) -> Tensor:
        freqs = torch.tensor(self.frequencies, dtype=coords.dtype, device=coords.device) * math.pi
        # (F, 1, rank, *spatial): every frequency times every axis, then flattened frequency-major.
        phase = (freqs.view(-1, *([1] * coords.dim())) * coords.unsqueeze(0)).unsqueeze(1)
        waves = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1).flatten(0, 2)
        return torch.cat([coords, waves], dim=0) if self.include_linear else waves


EncodingLike: TypeAlias = str | CoordEncoding
_ENCODINGS: dict[str, CoordEncoding] = {
    "linear": LinearEncoding(),
    "radius": RadiusEncoding(),
    "fourier": FourierEncoding(),
}


def resolve_encoding(encoding: EncodingLike = "linear", *, with_r: bool = False) -> CoordEncoding:
    """Turn an encoding name or object (plus the ``with_r`` shorthand) into one :class:`CoordEncoding`.

    ``with_r=True`` with the linear encoding gives :class:`RadiusEncoding`; with any other encoding it appends
    the radius channel after that encoding's channels.

    Raises:
        ValueError: unknown encoding name, or ``with_r=True`` on an encoding that already has ``r``.
        TypeError: ``with_r`` is not a bool, or ``encoding`` is neither a name nor a :class:`CoordEncoding`.
    """
    if not isinstance(with_r, bool):
        raise TypeError(f"with_r must be a bool, got {with_r!r}")
    if isinstance(encoding, str):
        if encoding not in _ENCODINGS:
            raise ValueError(f"unknown coordinate encoding {encoding!r}; expected one of {sorted(_ENCODINGS)}")
        resolved = _ENCODINGS[encoding]
    elif isinstance(encoding, CoordEncoding):
        resolved = encoding
    else:
        raise TypeError(f"encoding must be one of {sorted(_ENCODINGS)} or a CoordEncoding instance, got {encoding!r}")
    if not with_r:
        return resolved
    if isinstance(resolved, LinearEncoding):
        return RadiusEncoding()
    if isinstance(resolved, RadiusEncoding | _WithRadius):
        raise ValueError(f"with_r=True would add a second radius channel to encoding {encoding!r}")
    return _WithRadius(resolved)


@dataclass(frozen=True)
class _WithRadius(CoordEncoding):
    """Another encoding's channels followed by the radius channel (what ``with_r=True`` makes)."""

    base: CoordEncoding

    def channels(self, rank: int) -> int:
        return self.base.channels(rank) + 1

    def encode(self, coords: Tensor) -> Tensor:
        return torch.cat([self.base.encode(coords), _radius(coords)], dim=0)


def _radius(coords: Tensor) -> Tensor:
    return coords.square().sum(dim=0, keepdim=True).sqrt()


def _check_order(order: str) -> None:
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")


def _check_shape(spatial_shape: object) -> tuple[int, ...]:
    if isinstance(spatial_shape, str | bytes) or not isinstance(spatial_shape, Sequence):
        raise TypeError(f"spatial_shape must be a sequence of ints, got {spatial_shape!r}")
    shape: tuple[object, ...] = tuple(spatial_shape)
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"coordinate grids have 1 to 3 spatial axes, got spatial shape {shape}")
    for n in shape:
        # Symbolic sizes (torch.compile, export) and traced ones (torch.jit.trace: 0-dim integer tensors) are
        # accepted as they are; only concrete ints are checked for their value.
        traced = isinstance(n, Tensor) and n.dim() == 0 and not n.dtype.is_floating_point
        if isinstance(n, bool) or (not isinstance(n, int | torch.SymInt) and not traced):
            raise TypeError(f"spatial sizes must be ints, got {n!r} in spatial shape {shape}")
        if isinstance(n, int) and n < 1:
            raise ValueError(f"every spatial size must be at least 1, got spatial shape {shape}")
    return shape  # type: ignore[return-value]


def linear_coords(
    spatial_shape: Sequence[int],
    *,
    order: Order = "ij",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The linear coordinate channels of a grid, ``(rank, *spatial_shape)``, values in ``[-1, 1]``.

    Channel ``k`` varies along spatial axis ``k`` (``order="ij"``) or along axis ``rank - 1 - k``
    (``order="xy"``). Values are ``(2 * index - (n - 1)) / (n - 1)``, which is ``2 * index / (n - 1) - 1``
    computed so that the endpoints are exactly ``-1`` and ``+1``; a size-1 axis gives ``0``.

    Args:
        spatial_shape: the grid's spatial sizes (1 to 3 of them).
        order: ``"ij"`` (tensor dimension order, the default) or ``"xy"`` (reversed, the official code's).
        dtype: floating dtype of the result (default: ``torch.get_default_dtype()``).
        device: device of the result.

    Example:
        >>> linear_coords((2, 3))
        tensor([[[-1., -1., -1.],
                 [ 1.,  1.,  1.]],
        <BLANKLINE>
                [[-1.,  0.,  1.],
                 [-1.,  0.,  1.]]])
    """
    shape = _check_shape(spatial_shape)
    _check_order(order)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"coordinate grids need a floating dtype, got {dtype}")
    # Low-precision grids are computed in float32 and rounded once, so they are the nearest representable values.
    work = torch.float64 if dtype == torch.float64 else torch.float32
    rank = len(shape)
    axes = []
    with torch.no_grad():
        for k, n in enumerate(shape):
            index = torch.arange(n, dtype=work, device=device)
            # a traced size (torch.jit.trace, the legacy ONNX exporter) is a 0-dim tensor: clamp it in the graph,
            # not with Python's max, which would bake the traced size's branch in (NaN at size 1 later)
            span = (n - 1).clamp(min=1) if isinstance(n, Tensor) else max(n - 1, 1)  # type: ignore[unreachable]
            axis = (2 * index - (n - 1)) / span
            view = [1] * rank
            view[k] = n
            axes.append(axis.view(view).expand(shape))
        if order == "xy":
            axes.reverse()
        return torch.stack(axes).to(dtype)


def coord_channels(rank: int, encoding: EncodingLike = "linear", *, with_r: bool = False) -> int:
    """How many coordinate channels an encoding adds to an input with ``rank`` spatial axes.

    Example:
        >>> coord_channels(2), coord_channels(2, with_r=True), coord_channels(3, "fourier")
        (2, 3, 21)
    """
    if rank not in (1, 2, 3):
        raise ValueError(f"rank must be 1, 2 or 3, got {rank!r}")
    return resolve_encoding(encoding, with_r=with_r).channels(rank)


def coord_grid(
    spatial_shape: Sequence[int],
    *,
    encoding: EncodingLike = "linear",
    with_r: bool = False,
    order: Order = "ij",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The encoded coordinate channels of a grid, ``(channels, *spatial_shape)``.

    Args:
        spatial_shape: the grid's spatial sizes (1 to 3 of them).
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`CoordEncoding`.
        with_r: append the radius channel ``r = sqrt(sum_k c_k ** 2)`` (computed from the linear coordinates,
            whatever the encoding and ``order``).
        order: axis order of the linear coordinates, ``"ij"`` or ``"xy"``.
        dtype: floating dtype of the result (default: ``torch.get_default_dtype()``).
        device: device of the result.

    Example:
        >>> coord_grid((3,), with_r=True)
        tensor([[-1.,  0.,  1.],
                [ 1.,  0.,  1.]])
    """
    enc = resolve_encoding(encoding, with_r=with_r)
    coords = linear_coords(spatial_shape, order=order, dtype=dtype, device=device)
    with torch.no_grad():
        out = enc.encode(coords)
    expected = (enc.channels(coords.shape[0]), *coords.shape[1:])
    if tuple(out.shape) != expected:
        raise ValueError(f"encoding {enc!r} returned shape {tuple(out.shape)}, expected {expected}")
    return out


def tile_vector(vector: Tensor, spatial_shape: Sequence[int]) -> Tensor:
    """Tile a per-sample vector ``(B, C)`` over a grid: ``(B, C, *spatial_shape)``.

    This is the official code's ``AddCoords(skiptile=False)`` mode, which feeds (x, y) inputs to the
    coordinate classification and rendering tasks. The result is a broadcast view (no copy); call
    ``.contiguous()`` if you need to write into it.

    Example:
        >>> tile_vector(torch.tensor([[1.0, 2.0]]), (2, 2))[0, 1]
        tensor([[2., 2.],
                [2., 2.]])
    """
    if vector.dim() != 2:
        raise ValueError(f"tile_vector expects a (B, C) tensor, got shape {tuple(vector.shape)}")
    shape = _check_shape(spatial_shape)
    return vector.view(*vector.shape, *([1] * len(shape))).expand(*vector.shape, *shape)
