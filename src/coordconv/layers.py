"""CoordConv layers: ``AddCoords`` and ``CoordConv{1,2,3}d`` / ``CoordConvTranspose{1,2,3}d``.

A CoordConv is mathematically a convolution of the input with coordinate channels appended,
``conv(cat([x, coords]), [W | W_c])``. Convolution is linear in its input, so this equals

    conv(x, W) + conv(coords, W_c)

and the second term does not depend on the batch. The layers here compute it at batch size 1, on every
call from the parameters as they are then (nothing that depends on a parameter is kept between calls, so no
way of changing one can leave a stale result), and add it to the plain convolution's output in place. That
is exact (borders, padding modes, strides, dilations and transposed convolutions included), skips the
concatenation's copy of the whole input, and works for any ``groups``: the coordinate term is a dense map
from the coordinate channels to every output channel, which the concatenated form cannot express when
``in_channels + coord_channels`` is not divisible by ``groups``.

``weight`` and ``bias`` have exactly the shapes of the plain layer with the same arguments, so plain
state dicts load (``strict=False``; only ``coord_weight`` is missing) and zero coordinate filters make the
layer exactly the plain convolution. The coordinate grid follows the convention of :mod:`coordconv.coords`.

Paper: "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution", Liu et al.,
NeurIPS 2018, https://arxiv.org/abs/1807.03247.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

from coordconv._term import add_coord_term, batched, like_input, transposed_output_padding
from coordconv.coords import (
    _ENCODINGS,
    CoordEncoding,
    EncodingLike,
    Order,
    _check_order,
    coord_grid,
    resolve_encoding,
)

__all__ = [
    "AddCoords",
    "CoordConv1d",
    "CoordConv2d",
    "CoordConv3d",
    "CoordConvTranspose1d",
    "CoordConvTranspose2d",
    "CoordConvTranspose3d",
    "add_coords",
]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_T = TypeVar("_T", bound="_CoordConvMixin")

# torch.fx symbolic tracing records these as single calls instead of tracing into them (no leaf modules needed).
torch.fx.wrap("add_coord_term")
torch.fx.wrap("batched")
torch.fx.wrap("like_input")
torch.fx.wrap("transposed_output_padding")
torch.fx.wrap("add_coords")  # defined below: AddCoords calls it by its global name


# ---------------------------------------------------------------------------------------------------------
# functional core


def add_coords(
    x: Tensor,
    *,
    with_r: bool = False,
    encoding: EncodingLike = "linear",
    order: Order = "ij",
) -> Tensor:
    """Append coordinate channels to ``x``: ``(N, C, *spatial) -> (N, C + k, *spatial)``.

    The grid describes ``x``'s own spatial axes, is built in ``x``'s dtype and on its device, carries no
    gradient and is broadcast over the batch (no per-sample copies before the concatenation).

    Args:
        x: input of shape ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        with_r: also append the radius channel.
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`~coordconv.CoordEncoding`.
        order: ``"ij"`` (rows before columns, the default) or ``"xy"`` (the official TF code's order).

    Shape:
        - Input: :math:`(N, C, *S)` with 1 to 3 spatial axes :math:`S`.
        - Output: :math:`(N, C + k, *S)`, :math:`k` coordinate channels (:func:`coord_channels`).

    Example:
        >>> add_coords(torch.zeros(1, 1, 2, 3))[0, 1:]
        tensor([[[-1., -1., -1.],
                 [ 1.,  1.,  1.]],
        <BLANKLINE>
                [[-1.,  0.,  1.],
                 [-1.,  0.,  1.]]])
    """
    batched(x, "add_coords")
    grid = coord_grid(x.shape[2:], encoding=encoding, with_r=with_r, order=order, dtype=x.dtype, device=x.device)
    return torch.cat([x, grid.unsqueeze(0).expand(x.shape[0], *grid.shape)], dim=1)


class AddCoords(nn.Module):
    """Append coordinate channels to an ``(N, C, *spatial)`` input (module form of :func:`add_coords`).

    Args:
        rank: number of spatial axes to accept (1, 2 or 3), or ``None`` to accept any of them.
        with_r: also append the radius channel.
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`~coordconv.CoordEncoding`.
        order: ``"ij"`` (default) or ``"xy"``.

    Shape:
        - Input: :math:`(N, C, *S)` with 1 to 3 spatial axes :math:`S`.
        - Output: :math:`(N, C + k, *S)` where :math:`k` is the encoding's channel count for that rank.

    Example:
        >>> AddCoords(with_r=True)(torch.zeros(4, 3, 8, 5)).shape
        torch.Size([4, 6, 8, 5])
    """

    def __init__(
        self,
        rank: int | None = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__()
        if rank is not None and rank not in (1, 2, 3):
            raise ValueError(f"rank must be 1, 2, 3 or None, got {rank!r}")
        _check_order(order)
        self.rank = rank
        self.with_r = with_r
        self.encoding = resolve_encoding(encoding)
        resolve_encoding(self.encoding, with_r=with_r)  # rejects a doubled radius channel now, not at forward
        self.order = order

    def channels(self, rank: int) -> int:
        """Number of channels this module appends for an input with ``rank`` spatial axes."""
        return resolve_encoding(self.encoding, with_r=self.with_r).channels(rank)

    def forward(self, x: Tensor) -> Tensor:
        batched(x, type(self).__name__, self.rank)
        return add_coords(x, with_r=self.with_r, encoding=self.encoding, order=self.order)

    def extra_repr(self) -> str:
        parts = [] if self.rank is None else [f"rank={self.rank}"]
        return ", ".join(parts + _coord_repr(self.encoding, self.with_r, self.order))


def _coord_repr(encoding: CoordEncoding, with_r: bool, order: str) -> list[str]:
    parts = []
    if encoding != _ENCODINGS["linear"]:
        names = [name for name, enc in _ENCODINGS.items() if enc == encoding]
        parts.append(f"encoding={names[0]!r}" if names else f"encoding={encoding!r}")
    if with_r:
        parts.append("with_r=True")
    if order != "ij":
        parts.append(f"order={order!r}")
    return parts


# ---------------------------------------------------------------------------------------------------------
# argument checks: they run before any allocation and name the value they reject


def _ntuple(value: Any, rank: int, name: str, minimum: int) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,) * rank
    if len(items) != rank or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must be an int or a tuple of {rank} ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return items


def _check_conv_args(
    cls_name: str,
    rank: int,
    *,
    in_channels: Any,
    out_channels: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: Any,
    output_padding: Any = None,
) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{cls_name}: {name} must be a positive int, got {value!r}")
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            raise ValueError(f"{cls_name}: groups (={groups}) must divide {name} (={value})")
    _ntuple(kernel_size, rank, f"{cls_name}: kernel_size", 1)
    stride_ = _ntuple(stride, rank, f"{cls_name}: stride", 1)
    dilation_ = _ntuple(dilation, rank, f"{cls_name}: dilation", 1)
    transposed = output_padding is not None
    if isinstance(padding, str):
        if transposed or padding not in ("same", "valid"):
            allowed = "an int or a tuple of ints" if transposed else "'same', 'valid', an int or a tuple of ints"
            raise ValueError(f"{cls_name}: padding must be {allowed}, got {padding!r}")
        if padding == "same" and any(s != 1 for s in stride_):
            raise ValueError(f"{cls_name}: padding='same' needs stride 1, got stride={stride!r}")
    else:
        _ntuple(padding, rank, f"{cls_name}: padding", 0)
    allowed_modes = ("zeros",) if transposed else _PADDING_MODES
    if padding_mode not in allowed_modes:
        raise ValueError(f"{cls_name}: padding_mode must be one of {allowed_modes}, got {padding_mode!r}")
    if transposed:
        out_pad = _ntuple(output_padding, rank, f"{cls_name}: output_padding", 0)
        if any(p >= max(s, d) for p, s, d in zip(out_pad, stride_, dilation_, strict=True)):
            raise ValueError(
                f"{cls_name}: output_padding (={output_padding!r}) must be smaller than stride or dilation "
                f"in every dimension (stride={stride!r}, dilation={dilation!r})"
            )


# ---------------------------------------------------------------------------------------------------------
# the layers


class _CoordConvMixin(nn.Module):
    """What every CoordConv layer adds to its ``nn.ConvNd`` / ``nn.ConvTransposeNd`` base.

    That is the coordinate options, the ``coord_weight`` parameter, its initialisation and the conversion from a
    plain layer; the forward's speed machinery lives in ``coordconv._term``.

    Subclasses set ``_rank`` and ``_plain`` (the torch class they mirror) and put this mixin before it.
    """

    _rank: ClassVar[int]
    _plain: ClassVar[type[nn.modules.conv._ConvNd]]

    # Declared by the torch base class; repeated so that type checkers know them here.
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    transposed: bool
    padding_mode: PaddingMode
    _reversed_padding_repeated_twice: list[int]
    weight: Tensor
    bias: Tensor | None
    coord_weight: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: int,
        bias: bool,
        padding_mode: Any,
        device: Any,
        dtype: Any,
        *,
        output_padding: Any = None,
        with_r: bool,
        encoding: EncodingLike,
        order: Order,
    ) -> None:
        name = type(self).__name__
        # every check before anything is allocated
        _check_order(order)
        grid_encoding = resolve_encoding(resolve_encoding(encoding), with_r=with_r)
        _check_conv_args(
            name, self._rank, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
            stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode,
            output_padding=output_padding,
        )  # fmt: skip
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be a floating-point torch.dtype, got {dtype!r}")
        plain: Any = super()
        if output_padding is None:
            plain.__init__(
                in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                device, dtype,
            )  # fmt: skip
        else:
            plain.__init__(
                in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation,
                padding_mode, device, dtype,
            )  # fmt: skip
        self.encoding = resolve_encoding(encoding)
        self.with_r = with_r
        self.order = order
        self._grid_encoding = grid_encoding
        self.coord_channels = grid_encoding.channels(self._rank)
        # Transposed weights are (in, out/groups, *k); the coordinate filters are dense: (coords, out, *k).
        shape = (
            (self.coord_channels, self.out_channels, *self.kernel_size)
            if self.transposed
            else (self.out_channels, self.coord_channels, *self.kernel_size)
        )
        self.coord_weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise ``weight``, ``coord_weight`` and ``bias`` as the concatenated layer would be.

        With ``groups=1`` the three are drawn exactly as ``nn.ConvNd`` with ``in_channels + coord_channels``
        input channels draws its weight and bias (same distribution, same random stream), then split. With
        ``groups > 1`` each is uniform in ``+-1/sqrt(fan_in)``, where ``fan_in`` counts the coordinate
        channels that reach every output channel.
        """
        if "coord_weight" not in self._parameters:
            return  # called by the torch base's __init__, before the coordinate filters exist
        k = math.prod(self.kernel_size)
        if self.transposed:
            fan_in = self.out_channels // self.groups * k  # torch's fan-in for transposed weights
        else:
            fan_in = (self.in_channels // self.groups + self.coord_channels) * k
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            if self.groups == 1:
                cat_dim = 0 if self.transposed else 1
                shape = list(self.weight.shape)
                shape[cat_dim] += self.coord_channels
                full = torch.empty(shape, device=self.weight.device, dtype=self.weight.dtype)
                # kaiming_uniform_(a=sqrt(5)) is uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as nn.ConvNd uses.
                init.kaiming_uniform_(full, a=math.sqrt(5))
                weight, coord = torch.split(full, [self.weight.shape[cat_dim], self.coord_channels], dim=cat_dim)
                self.weight.copy_(weight)
                self.coord_weight.copy_(coord)
            else:
                init.uniform_(self.weight, -bound, bound)
                init.uniform_(self.coord_weight, -bound, bound)
            if self.bias is not None:
                init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(
        cls: type[_T],
        conv: nn.Module,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> _T:
        """Build the CoordConv twin of a plain convolution, with zero coordinate filters.

        The twin keeps ``conv``'s own ``weight`` and ``bias`` Parameter objects (no copy: optimizers and tied
        weights keep working) and its training mode, so its output equals ``conv``'s until the coordinate
        filters are trained.

        Raises:
            TypeError: ``conv`` is not exactly the torch class this twin mirrors.
            ValueError: ``conv`` computes its weight in a hook (``torch.nn.utils.weight_norm`` /
                ``spectral_norm``), so its ``weight`` is not a parameter the twin could keep.
        """
        if type(conv) is not cls._plain:
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.{cls._plain.__name__}, got {type(conv).__name__}")
        assert isinstance(conv, nn.modules.conv._ConvNd)
        _check_plain_weight(conv, f"{cls.__name__}.from_conv")
        kwargs: dict[str, Any] = {
            "stride": conv.stride,
            "padding": conv.padding,
            "dilation": conv.dilation,
            "groups": conv.groups,
            "bias": conv.bias is not None,
            "padding_mode": conv.padding_mode,
        }
        if conv.transposed:
            kwargs["output_padding"] = conv.output_padding
        # Built on the meta device: nothing is allocated or drawn for weights that are replaced right away.
        twin = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            **kwargs,
            device="meta",
            dtype=conv.weight.dtype,
            with_r=with_r,
            encoding=encoding,
            order=order,
        )
        twin.weight = conv.weight
        twin.bias = conv.bias
        twin.coord_weight = nn.Parameter(
            torch.zeros(twin.coord_weight.shape, device=conv.weight.device, dtype=conv.weight.dtype)
        )
        twin.train(conv.training)
        return twin

    def _check_traceable(self, input: Any) -> None:
        if isinstance(input, torch.fx.Proxy) and not dataclasses.is_dataclass(self._grid_encoding):
            raise TypeError(
                f"{type(self).__name__}: torch.fx symbolic tracing needs the coordinate encoding to be a dataclass "
                f"(as the built-in encodings are), got {type(self.encoding).__name__}"
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call,unused-ignore]
        if "_grid_encoding" not in self.__dict__:  # pickled by coordconv 0.1
            self._grid_encoding = resolve_encoding(self.encoding, with_r=self.with_r)

    def __prepare_scriptable__(self) -> nn.Module:
        raise TypeError(
            f"torch.jit.script does not support {type(self).__name__} (TorchScript is in maintenance mode in "
            "PyTorch); use torch.jit.trace, torch.export / torch.onnx.export(dynamo=True) or torch.compile"
        )

    def extra_repr(self) -> str:
        return ", ".join([super().extra_repr(), *_coord_repr(self.encoding, self.with_r, self.order)])


def _check_plain_weight(conv: nn.Module, who: str) -> None:
    """Refuse a convolution whose ``weight`` is made by an old-style ``weight_norm`` / ``spectral_norm`` hook."""
    hooks = [
        type(hook).__name__
        for hook in conv._forward_pre_hooks.values()
        if type(hook).__module__ in ("torch.nn.utils.weight_norm", "torch.nn.utils.spectral_norm")
    ]
    if hooks or not isinstance(conv.weight, nn.Parameter):
        kind = hooks[0] if hooks else "a hook"
        raise ValueError(
            f"{who}: the weight of {type(conv).__name__} is computed by {kind} (torch.nn.utils.weight_norm or "
            "spectral_norm), not a Parameter; remove it (torch.nn.utils.remove_weight_norm / "
            "remove_spectral_norm) before converting, then apply torch.nn.utils.parametrizations.weight_norm or "
            "spectral_norm to the converted layer"
        )


class _CoordConvNd(_CoordConvMixin):
    """Shared forward of ``CoordConv{1,2,3}d``: plain conv of the input plus the batch-1 coordinate term."""

    def forward(self, input: Tensor) -> Tensor:
        self._check_traceable(input)
        x = batched(input, type(self).__name__, self._rank, self.in_channels)
        out = self._conv_forward(x, self.weight, None)  # type: ignore[operator]
        out = add_coord_term(
            out, x, self.coord_weight, self.bias, self._grid_encoding, self.order, self.stride, self.padding,
            self.dilation, self.padding_mode, pad=self._reversed_padding_repeated_twice,
        )  # fmt: skip
        return like_input(out, input, self._rank)


class _CoordConvTransposeNd(_CoordConvMixin):
    """Shared forward of ``CoordConvTranspose{1,2,3}d``."""

    output_padding: tuple[int, ...]
    _conv_transpose: ClassVar[Any]

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        self._check_traceable(input)
        x = batched(input, type(self).__name__, self._rank, self.in_channels)
        output_padding = transposed_output_padding(
            x, output_size, self.output_padding, self.stride, self.padding, self.kernel_size, self.dilation
        )
        out = type(self)._conv_transpose(
            x, self.weight, None, self.stride, self.padding, output_padding, self.groups, self.dilation
        )
        out = add_coord_term(
            out, x, self.coord_weight, self.bias, self._grid_encoding, self.order, self.stride, self.padding,
            self.dilation, self.padding_mode, output_padding=output_padding,
        )  # fmt: skip
        return like_input(out, input, self._rank)


class CoordConv1d(_CoordConvNd, nn.Conv1d):
    """1D CoordConv: ``nn.Conv1d`` over the input and its coordinate channel(s).

    Arguments before ``*`` are ``nn.Conv1d``'s, in the same order with the same meaning; the keyword-only
    options are those of :class:`CoordConv2d`. ``coord_weight`` has shape ``(out_channels, coord_channels, k)``.

    Shape:
        - Input: :math:`(N, C_{in}, L)` or :math:`(C_{in}, L)`.
        - Output: :math:`(N, C_{out}, L_{out})` or :math:`(C_{out}, L_{out})`, as ``nn.Conv1d``.

    Example:
        >>> CoordConv1d(4, 8, 3, padding="same")(torch.randn(2, 4, 50)).shape
        torch.Size([2, 8, 50])
    """

    _rank = 1
    _plain = nn.Conv1d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: str | int | tuple[int] = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


class CoordConv2d(_CoordConvNd, nn.Conv2d):
    """2D CoordConv: ``nn.Conv2d`` over the input and its ``i`` (row) and ``j`` (column) coordinate channels.

    Computes ``conv(cat([x, coords]), [weight | coord_weight]) + bias`` exactly, as the plain convolution of
    the input plus a coordinate term computed once at batch size 1 (see :mod:`coordconv.layers`). The
    coordinates describe this layer's own input grid and are padded like the input (``padding_mode``).

    Arguments before ``*`` are ``nn.Conv2d``'s, in the same order with the same meaning; ``in_channels``
    counts the channels you feed in, not the coordinate channels. Any ``groups`` works, depthwise included.

    Args:
        with_r: also feed the radius channel ``r = sqrt(i ** 2 + j ** 2)``.
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`~coordconv.CoordEncoding`.
        order: ``"ij"`` (rows first, the default) or ``"xy"`` (columns first, the official TF code's order).

    Attributes:
        weight: the input filters, exactly ``nn.Conv2d``'s shape ``(out_channels, in_channels / groups, kH, kW)``.
        bias: ``nn.Conv2d``'s bias ``(out_channels,)``, or ``None``.
        coord_weight: the coordinate filters ``(out_channels, coord_channels, kH, kW)``, dense over groups.
        coord_channels: the number of coordinate channels (2, 3 with ``r``, more for Fourier features).

    Shape:
        - Input: :math:`(N, C_{in}, H, W)` or :math:`(C_{in}, H, W)`.
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})` or :math:`(C_{out}, H_{out}, W_{out})`, as ``nn.Conv2d``.

    Example:
        >>> layer = CoordConv2d(3, 16, 3, padding=1, with_r=True)
        >>> layer(torch.randn(8, 3, 32, 48)).shape
        torch.Size([8, 16, 32, 48])
        >>> layer.weight.shape, layer.coord_weight.shape
        (torch.Size([16, 3, 3, 3]), torch.Size([16, 3, 3, 3]))
    """

    _rank = 2
    _plain = nn.Conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


class CoordConv3d(_CoordConvNd, nn.Conv3d):
    """3D CoordConv: ``nn.Conv3d`` over the input and its depth, row and column coordinate channels.

    Arguments before ``*`` are ``nn.Conv3d``'s, in the same order with the same meaning; the keyword-only
    options are those of :class:`CoordConv2d` (``r = sqrt(d ** 2 + i ** 2 + j ** 2)``). ``coord_weight`` has
    shape ``(out_channels, coord_channels, kD, kH, kW)``.

    Shape:
        - Input: :math:`(N, C_{in}, D, H, W)` or :math:`(C_{in}, D, H, W)`.
        - Output: :math:`(N, C_{out}, D_{out}, H_{out}, W_{out})` or without the batch axis, as ``nn.Conv3d``.

    Example:
        >>> layer = CoordConv3d(2, 4, 3, padding=1, with_r=True)
        >>> layer(torch.randn(1, 2, 5, 6, 7)).shape, layer.coord_weight.shape
        (torch.Size([1, 4, 5, 6, 7]), torch.Size([4, 4, 3, 3, 3]))
    """

    _rank = 3
    _plain = nn.Conv3d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: str | int | tuple[int, int, int] = 0,
        dilation: int | tuple[int, int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


class CoordConvTranspose1d(_CoordConvTransposeNd, nn.ConvTranspose1d):
    """1D transposed CoordConv: ``nn.ConvTranspose1d`` over the input and its coordinate channel(s).

    Arguments before ``*`` are ``nn.ConvTranspose1d``'s; the keyword-only options are those of
    :class:`CoordConv2d`. ``coord_weight`` has shape ``(coord_channels, out_channels, k)``.

    Shape:
        - Input: :math:`(N, C_{in}, L)` or :math:`(C_{in}, L)`.
        - Output: :math:`(N, C_{out}, L_{out})` or :math:`(C_{out}, L_{out})`, as ``nn.ConvTranspose1d``.

    Example:
        >>> up = CoordConvTranspose1d(8, 4, 4, stride=2, padding=1)
        >>> up(torch.randn(3, 8, 25)).shape, up.coord_weight.shape
        (torch.Size([3, 4, 50]), torch.Size([1, 4, 4]))
    """

    _rank = 1
    _plain = nn.ConvTranspose1d
    _conv_transpose = F.conv_transpose1d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] = 0,
        output_padding: int | tuple[int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int] = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, output_padding=output_padding, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


class CoordConvTranspose2d(_CoordConvTransposeNd, nn.ConvTranspose2d):
    """2D transposed CoordConv: ``nn.ConvTranspose2d`` over the input and its coordinate channels.

    The coordinates describe the layer's input grid (the small one), as the paper's "CoordConv (or
    Deconv)" layer. Arguments before ``*`` are ``nn.ConvTranspose2d``'s, in the same order with the same
    meaning, and ``forward`` takes the same optional ``output_size``. The keyword-only options are those of
    :class:`CoordConv2d`. ``weight`` is ``(in_channels, out_channels / groups, kH, kW)`` as in torch;
    ``coord_weight`` is ``(coord_channels, out_channels, kH, kW)``, dense over groups.

    Shape:
        - Input: :math:`(N, C_{in}, H, W)` or :math:`(C_{in}, H, W)`.
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})` or :math:`(C_{out}, H_{out}, W_{out})`, as
          ``nn.ConvTranspose2d`` (``output_size`` chooses among the sizes a stride allows).

    Example:
        >>> up = CoordConvTranspose2d(16, 8, 4, stride=2, padding=1)
        >>> up(torch.randn(2, 16, 10, 12)).shape
        torch.Size([2, 8, 20, 24])
    """

    _rank = 2
    _plain = nn.ConvTranspose2d
    _conv_transpose = F.conv_transpose2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, output_padding=output_padding, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


class CoordConvTranspose3d(_CoordConvTransposeNd, nn.ConvTranspose3d):
    """3D transposed CoordConv: ``nn.ConvTranspose3d`` over the input and its coordinate channels.

    Arguments before ``*`` are ``nn.ConvTranspose3d``'s; the keyword-only options are those of
    :class:`CoordConv2d`. ``coord_weight`` has shape ``(coord_channels, out_channels, kD, kH, kW)``.

    Shape:
        - Input: :math:`(N, C_{in}, D, H, W)` or :math:`(C_{in}, D, H, W)`.
        - Output: :math:`(N, C_{out}, D_{out}, H_{out}, W_{out})` or without the batch axis, as
          ``nn.ConvTranspose3d``.

    Example:
        >>> up = CoordConvTranspose3d(4, 2, 2, stride=2)
        >>> up(torch.randn(1, 4, 3, 4, 5)).shape
        torch.Size([1, 2, 6, 8, 10])
    """

    _rank = 3
    _plain = nn.ConvTranspose3d
    _conv_transpose = F.conv_transpose3d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        output_padding: int | tuple[int, int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int, int] = 1,
        padding_mode: Literal["zeros"] = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        with_r: bool = False,
        encoding: EncodingLike = "linear",
        order: Order = "ij",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device,
            dtype, output_padding=output_padding, with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


#: The CoordConv class that mirrors each torch convolution class.
COORD_TWINS: dict[type[nn.Module], type[_CoordConvMixin]] = {
    cls._plain: cls
    for cls in (
        CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d
    )
}  # fmt: skip
