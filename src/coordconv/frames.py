"""Tiles that see where they lie: :func:`window` runs a model on a window of a larger image.

A CoordConv layer's coordinates describe its own input grid, so a model run on a tile of an image (sliding
windows, tiled inference of large images, crops) gives every tile the coordinates of a whole image: ``-1`` at
the tile's first row, wherever the tile is. Inside :func:`window`, each CoordConv layer of the model gets the
coordinates of the whole image's feature map at the window's place instead, so that a tile's outputs equal the
whole image's outputs wherever the tile's receptive fields lie inside it (the usual overlap, or halo, of tiled
inference).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from coordconv.layers import AddCoords, _CoordConvMixin

__all__ = ["window"]


@contextlib.contextmanager
def window(
    model: nn.Module, image_size: Sequence[int], offset: Sequence[int], *, size: Sequence[int] | None = None
) -> Iterator[nn.Module]:
    """Run ``model`` on the window at ``offset`` of an image of ``image_size``, with the image's coordinates.

    Within the ``with`` block, every CoordConv layer and :class:`~coordconv.AddCoords` module of ``model`` gets, at
    each call, the coordinates its input grid has when ``model`` runs on the whole image (their ``frame``
    attribute; see :func:`~coordconv.linear_coords`). A layer's place in the whole feature map is found from its
    input's size: a layer whose input is the model's input downsampled by an integer factor ``s`` (a stride-2
    convolution with ``padding=k // 2``, a pooling, a ResNet stage) or upsampled by one, with the image size and
    the offset multiples of ``s``, as tiling a network with total stride ``S`` needs anyway (sizes and offsets
    multiples of ``S``). Any other layer raises ``ValueError`` naming it, rather than guessing. The frames
    set before the block are restored after it.

    Args:
        model: the model (or one layer).
        image_size: the whole input's spatial size, ``(H, W)`` (one entry per spatial axis).
        offset: the window's place in it, ``(top, left)``.
        size: the window's spatial size; default: the spatial size of the model's first tensor argument at each
            call.

    Example:
        >>> import torch
        >>> from coordconv import CoordConv2d
        >>> layer = CoordConv2d(1, 4, 3, padding=1)
        >>> image = torch.randn(1, 1, 16, 16)
        >>> tile = image[..., 4:12, 8:16]  # rows 4-11, columns 8-15
        >>> with window(layer, image_size=(16, 16), offset=(4, 8)):
        ...     out = layer(tile)
        >>> torch.allclose(out[..., 1:-1, 1:-1], layer(image)[..., 5:11, 9:15])  # away from the tile's border
        True
    """
    rank = len(image_size)
    if not isinstance(offset, Sequence) or len(offset) != rank:
        raise ValueError(
            f"window: image_size {tuple(image_size)} and offset {offset!r} must have the same number of entries (one "
            "per spatial axis)"
        )
    whole = _ints(image_size, "image_size", rank)
    place = _ints(offset, "offset", rank)
    fixed = None if size is None else _ints(size, "size", rank)
    for k in range(rank):
        if fixed is not None and place[k] + fixed[k] > whole[k]:
            raise ValueError(f"window: the window of size {fixed} at offset {place} must lie inside image_size {whole}")
    seen: dict[str, tuple[int, ...]] = {}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _CoordConvMixin | AddCoords)]
    previous = {name: m.frame for name, m in layers}

    def capture(module: nn.Module, args: tuple[Any, ...]) -> None:
        tensor = next((a for a in args if isinstance(a, Tensor)), None)
        if tensor is None or tensor.dim() < rank:
            raise ValueError(f"window: the model's first tensor argument must have {rank} spatial axes")
        seen["size"] = tuple(int(n) for n in tensor.shape[-rank:])

    def place_layer(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            size_now = fixed if fixed is not None else seen.get("size")
            assert size_now is not None
            x = args[0]
            local = tuple(int(n) for n in x.shape[-rank:])
            setattr(module, "frame", _frame(name or type(module).__name__, local, size_now, whole, place))  # noqa: B010

        return hook

    handles = [] if fixed is not None else [model.register_forward_pre_hook(capture)]
    try:
        handles += [m.register_forward_pre_hook(place_layer(name)) for name, m in layers]
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for name, m in layers:
            m.frame = previous[name]


def _ints(values: Sequence[int], what: str, rank: int) -> tuple[int, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) != rank:
        raise ValueError(f"window: {what} must have {rank} entries (one per spatial axis), got {values!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise ValueError(f"window: {what} must be non-negative ints, got {values!r}")
    return tuple(values)


def _frame(
    name: str, local: tuple[int, ...], size: tuple[int, ...], whole: tuple[int, ...], place: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """The whole feature map's size and the window's offset in it, for a layer whose input is ``local``."""
    frame = []
    for k, (n, h, big, off) in enumerate(zip(local, size, whole, place, strict=True)):
        if n <= h and h % n == 0 and big % (h // n) == 0 and off % (h // n) == 0:
            s = h // n
            frame.append((big // s, off // s))
        elif n > h and n % h == 0:
            u = n // h
            frame.append((big * u, off * u))
        else:
            raise ValueError(
                f"window: layer {name!r} gets a grid of {n} on axis {k} from a window of {h}: not the window "
                f"downsampled or upsampled by an integer factor that divides the image size {big} and the offset "
                f"{off}, so its place in the whole feature map is not defined (use sizes and offsets that are "
                "multiples of the network's total stride)"
            )
    return tuple(frame)
