"""Weights of other CoordConv implementations, loaded into this library's layers: :func:`load_concatenated`.

Every CoordConv implementation stores one convolution over ``cat([x, coordinate channels])``. They differ in
where the coordinate channels go (after or before the input's), in their order (row first or column first),
in their values (``[-1, 1]``, ``[-0.5, 0.5]``, ``[-1, -0.5]``) and in the radius channel's formula. A channel
that is an affine function of ours, ``scale * c + offset``, converts exactly: its filters are multiplied by
``scale``; an ``offset`` is a constant input channel, which a convolution without padding turns into a constant
per output channel (added to ``bias``), and which padding turns into a border pattern no CoordConv layer has
(refused). A radius channel converts when it is a multiple of ours; several ports shift their radius by half a
pixel unit, which no combination of our channels reproduces (refused, unless its filters are zero).

:data:`PORTS` holds the conventions of the implementations people have weights from; a :class:`Port` describes
any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from coordconv.coords import resolve_encoding
from coordconv.layers import _CoordConvMixin

__all__ = ["PORTS", "Port", "load_concatenated"]


@dataclass(frozen=True)
class Port:
    """How one implementation lays out a convolution's coordinate channels.

    Each of its linear coordinate channels is ``scale * c + offset``, ``c`` being this library's coordinate of the
    same axis (``2 * index / (n - 1) - 1``).

    Attributes:
        name: the implementation, as messages name it.
        place: ``"append"`` (after the input channels) or ``"prepend"`` (before them).
        order: ``"ij"`` (the tensor's axis order: row, then column) or ``"xy"`` (column, then row).
        scale: see above.
        offset: see above; non-zero only loads into a layer without padding.
        radius: its radius channel (after the linear ones) as a multiple of ours,
            ``sqrt(sum of c_k ** 2)``; ``None`` where it has none or where it is not a multiple of ours.
        radius_note: why a radius channel does not convert (shown when one is refused).
        ranks: the spatial ranks whose channels the description fits.
        layout: ``"torch"`` (``(out, in, *kernel)``, as PyTorch and Paddle store it) or ``"tf"``
            (``(*kernel, in, out)``, as TensorFlow's ``Conv2D`` stores it).
        size_one: how its channels differ from ours on an axis of size 1 (ours is 0), or ``""``.
    """

    name: str
    place: Literal["append", "prepend"] = "append"
    order: Literal["ij", "xy"] = "ij"
    scale: float = 1.0
    offset: float = 0.0
    radius: float | None = 1.0
    radius_note: str = ""
    ranks: tuple[int, ...] = (2,)
    layout: Literal["torch", "tf"] = "torch"
    size_one: str = ""


_SHIFTED = (
    "its radius channel is sqrt((c_1 - 0.5)^2 + (c_2 - 0.5)^2), centred half a unit off the grid's centre, which "
    "is not a function of this library's channels"
)

PORTS: dict[str, Port] = {
    "official": Port(
        "uber-research/CoordConv (TF1, the paper's code)", order="xy", layout="tf",
        size_one="divides by zero (NaN)",
    ),
    "mkocabas": Port(
        "mkocabas/CoordConv-pytorch (AddCoords, AddCoordsTh)", radius=None, radius_note=_SHIFTED,
        size_one="divides by zero (NaN)",
    ),
    "walsvid": Port(
        "walsvid/CoordConv", radius=None, radius_note=_SHIFTED, ranks=(1, 2), size_one="divides by zero (NaN)",
    ),
    "wizaron": Port(
        "Wizaron/coord-conv-pytorch", place="prepend", radius=1 / math.sqrt(2),
        size_one="divides by zero (NaN)",
    ),
    "jacinle": Port("Jacinle (jactorch CoordConv2D)", order="xy", radius=None, radius_note=_SHIFTED),
    "mmdet": Port(
        "OpenMMLab mmdet (generate_coordinate: SOLO, SOLOv2, CondInst heads)", order="xy", radius=None,
        size_one="-1 (torch.linspace)",
    ),
    "paddledet": Port(
        "PaddleDetection (add_coord: PP-YOLO, PP-YOLOv2, PP-YOLO tiny)", order="xy", scale=0.25, offset=-0.75,
        radius=None, size_one="NaN",
    ),
    "monai": Port(
        "MONAI AddCoordinateChannels (all spatial dims)", scale=0.5, radius=None, ranks=(1, 2, 3),
        size_one="-0.5 (numpy.linspace)",
    ),
}  # fmt: skip
"""The conventions of the implementations this library loads weights from (see the guide's table)."""


def load_concatenated(layer: _CoordConvMixin, weight: Any, bias: Any = None, *, source: str | Port) -> None:
    """Load another implementation's concatenated convolution weights into ``layer``, converting conventions.

    ``weight`` (and ``bias``) are the parameters of the other implementation's convolution over the input with its
    coordinate channels: a tensor or a NumPy array, in the layout of ``source``. ``layer`` must be built as that
    layer was: the same channels, kernel, stride, padding, dilation and ``groups=1``, and ``with_r`` if it had a
    radius channel. Afterwards ``layer`` computes what the other implementation computed, on every input where
    that implementation's channels are what its :class:`Port` says (see each port's ``size_one``: an axis of
    size 1, where most ports divide by zero). ``layer.order`` may be either: the rows are reordered for it.

    Args:
        layer: a ``CoordConv{1,2,3}d`` or ``CoordConvTranspose{1,2,3}d`` with the linear encoding.
        weight: the other convolution's weight.
        bias: its bias, or ``None`` (then ``layer``'s bias, if any, is left as it is unless an offset must go
            there).
        source: a name in :data:`PORTS` or a :class:`Port`.

    Raises:
        ValueError: the conventions cannot be converted exactly (named, with the reason), or the shapes do not
            match the layer (the expected shape named).

    Example:
        >>> import torch
        >>> from coordconv import CoordConv2d
        >>> theirs = torch.randn(8, 3 + 2, 3, 3)  # mkocabas' CoordConv(3, 8, kernel_size=3).conv.weight
        >>> layer = CoordConv2d(3, 8, 3, padding=1)
        >>> load_concatenated(layer, theirs, source="mkocabas")
        >>> torch.equal(layer.weight, theirs)  # the same convention as this library's default
        True
    """
    port = _resolve(source)
    who = f"load_concatenated(source={port.name!r})"
    if not isinstance(layer, _CoordConvMixin):
        raise TypeError(f"{who}: layer must be a CoordConv layer, got {type(layer).__name__}")
    rank = layer._rank
    if rank not in port.ranks:
        ranks = " or ".join(f"{r}D" for r in port.ranks)
        raise ValueError(f"{who}: this port describes {ranks} layers, got {type(layer).__name__}")
    if layer.encoding != resolve_encoding("linear"):
        raise ValueError(f"{who}: layer must use the linear encoding (other ports have no other), got {layer.encoding}")
    if layer.groups != 1:
        raise ValueError(
            f"{who}: groups must be 1, got {layer.groups} (a grouped concatenated convolution gives the coordinate "
            "channels to its last group only; a CoordConv layer gives them to every group)"
        )
    w = _as_tensor(weight, "weight", who)
    given = tuple(w.shape)
    if port.layout == "tf":
        if layer.transposed:
            raise ValueError(f"{who}: the official layer has no transposed form")
        w = w.permute(w.dim() - 1, w.dim() - 2, *range(w.dim() - 2))  # (*k, in, out) -> (out, in, *k)
    expected = layer._full_weight_shape()
    if tuple(w.shape) != expected:
        with_r = "" if layer.with_r else "; a radius channel needs with_r=True"
        stored = " stored (*kernel, in, out) as TensorFlow does" if port.layout == "tf" else ""
        raise ValueError(
            f"{who}: weight has shape {given}{stored}; {type(layer).__name__} expects "
            f"{_theirs_shape(expected, port)} (its {layer.in_channels} input channels plus "
            f"{layer.coord_channels} coordinate channels{with_r})"
        )
    axis = 0 if layer.transposed else 1
    n_in = layer.in_channels
    if port.place == "append":
        inputs, linear = w.narrow(axis, 0, n_in), w.narrow(axis, n_in, rank)
    else:
        linear, inputs = w.narrow(axis, 0, rank), w.narrow(axis, rank + int(layer.with_r), n_in)
    radius = w.narrow(axis, n_in + rank if port.place == "append" else rank, 1) if layer.with_r else None

    if radius is not None and port.radius is None and bool(radius.any()):
        raise ValueError(f"{who}: the radius channel does not convert: {port.radius_note}")
    if port.offset != 0.0:
        _check_offset(layer, who, port)
    # theirs, in their channel order, as ours: their axis k is our axis k ("ij") or rank - 1 - k ("xy")
    if port.order != layer.order:
        linear = linear.flip(axis)
    coords = [linear * port.scale]
    if layer.with_r:
        assert radius is not None
        coords.append(radius * (port.radius or 0.0))  # zero filters where the radius channel was refused
    full = torch.cat([inputs, *coords], dim=axis)  # this library's layout: input rows, then coordinate rows
    with torch.no_grad():
        new_bias = None if bias is None else _as_tensor(bias, "bias", who)
        if port.offset != 0.0:
            # a constant channel under an unpadded convolution: the same sum at every output position
            constant = port.offset * linear.sum(dim=tuple(range(2, linear.dim()))).sum(dim=1)
            assert layer.bias is not None
            new_bias = (layer.bias.detach() if new_bias is None else new_bias) + constant.to(layer.bias)
        if new_bias is not None:
            if layer.bias is None:
                raise ValueError(f"{who}: bias given, but the layer has none (build it with bias=True)")
            if tuple(new_bias.shape) != tuple(layer.bias.shape):
                raise ValueError(f"{who}: bias has shape {tuple(new_bias.shape)}, expected {tuple(layer.bias.shape)}")
            layer.bias.copy_(new_bias)
        layer.weight.copy_(full)


def _resolve(source: str | Port) -> Port:
    if isinstance(source, Port):
        return source
    if isinstance(source, str) and source in PORTS:
        return PORTS[source]
    raise ValueError(f"source must be one of {', '.join(PORTS)} or a coordconv.ports.Port, got {source!r}")


def _as_tensor(value: Any, name: str, who: str) -> Tensor:
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{who}: {name} must be a tensor or an array, got {type(value).__name__}") from error
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{who}: {name} must be floating point, got dtype {tensor.dtype}")
    return tensor.detach()


def _theirs_shape(expected: tuple[int, ...], port: Port) -> tuple[int, ...]:
    if port.layout == "tf":
        return (*expected[2:], expected[1], expected[0])
    return expected


def _check_offset(layer: _CoordConvMixin, who: str, port: Port) -> None:
    padding = layer.padding
    unpadded = padding == "valid" or (not isinstance(padding, str) and not any(padding))
    if layer.transposed or not unpadded:
        raise ValueError(
            f"{who}: its coordinate channels are offset by {port.offset} from this library's (scale {port.scale}), "
            "a constant input channel: under a padded or transposed convolution it adds a border pattern that no "
            f"CoordConv layer computes, so only a layer with padding=0 converts exactly (got padding={padding!r}"
            f"{', transposed' if layer.transposed else ''})"
        )
    if layer.bias is None:
        raise ValueError(
            f"{who}: its coordinate channels' offset of {port.offset} becomes a bias: build the layer with bias=True"
        )
