"""CoordConv layers: ``AddCoords`` and ``CoordConv{1,2,3}d`` / ``CoordConvTranspose{1,2,3}d``.

A CoordConv is mathematically a convolution of the input with coordinate channels appended,
``conv(cat([x, coords]), [W | W_c])``. Convolution is linear in its input, so this equals

    conv(x, W) + conv(coords, W_c)

and the second term does not depend on the batch. The layers here compute it once, at batch size 1, and
add it to the plain convolution's output in place. That is exact (borders, padding modes, strides,
dilations and transposed convolutions included), skips the concatenation's copy of the whole input, and
works for any ``groups``: the coordinate term is a dense map from the coordinate channels to every output
channel, which the concatenated form cannot express when ``in_channels + coord_channels`` is not divisible
by ``groups``.

``weight`` and ``bias`` have exactly the shapes of the plain layer with the same arguments, so plain
state dicts load (``strict=False``; only ``coord_weight`` is missing) and zero coordinate filters make the
layer exactly the plain convolution. The coordinate grid follows the convention of :mod:`coordconv.coords`.

Paper: "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution", Liu et al.,
NeurIPS 2018, https://arxiv.org/abs/1807.03247.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

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
_SMALL_GRID = 20480  # elements; where torch's CPU convolution switches batch-1 inputs to its oneDNN path
# Channels-last outputs up to this many elements get the coordinate term through autograd's own add (measured,
# torch 2.13 CPU: 20-35 us faster per call for MinAtar-sized layers, slower than ``_AddBatchTerm`` above ~4e5).
_SMALL_OUTPUT = 131072


# ---------------------------------------------------------------------------------------------------------
# functional core


def _check_input(x: Tensor, rank: int | None, who: str) -> int:
    """Validate an (N, C, *spatial) input and return its spatial rank."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{who} expects a floating-point input, got dtype {x.dtype}")
    spatial = x.dim() - 2
    if rank is None and spatial not in (1, 2, 3):
        raise ValueError(
            f"{who} expects an (N, C, *spatial) input with 1 to 3 spatial axes, got shape {tuple(x.shape)}"
        )
    if rank is not None and spatial != rank:
        raise ValueError(
            f"{who} expects a {rank + 2}D (N, C, *spatial) input with {rank} spatial axes, got shape {tuple(x.shape)}"
        )
    return spatial


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

    Example:
        >>> add_coords(torch.zeros(1, 1, 2, 3))[0, 1:]
        tensor([[[-1., -1., -1.],
                 [ 1.,  1.,  1.]],
        <BLANKLINE>
                [[-1.,  0.,  1.],
                 [-1.,  0.,  1.]]])
    """
    _check_input(x, None, "add_coords")
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
        _check_input(x, self.rank, type(self).__name__)
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

    Subclasses set ``_rank`` and ``_conv_fn`` and put this mixin before the torch base class.
    """

    _rank: ClassVar[int]
    _conv_fn: ClassVar[Callable[..., Tensor]]

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
    encoding: CoordEncoding
    with_r: bool
    order: Order
    coord_channels: int

    def _init_coords(
        self,
        encoding: CoordEncoding,
        with_r: bool,
        order: Order,
        device: Any,
        dtype: Any,
    ) -> None:
        self.encoding = encoding
        self.with_r = with_r
        self.order = order
        self.coord_channels = resolve_encoding(encoding, with_r=with_r).channels(self._rank)
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
        """
        base = _TWINS_BY_COORD[cls]
        if type(conv) is not base:
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.{base.__name__}, got {type(conv).__name__}")
        assert isinstance(conv, nn.modules.conv._ConvNd)
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

    def _prepare(self, input: Tensor) -> tuple[Tensor, bool]:
        """Check ``input`` and return it batched, plus whether it came batched."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(input).__name__}")
        if not input.dtype.is_floating_point:
            raise TypeError(f"{name} expects a floating-point input, got dtype {input.dtype}")
        if input.dim() not in (self._rank + 1, self._rank + 2):
            raise ValueError(
                f"{name} expects a {self._rank + 2}D (N, C, *spatial) or {self._rank + 1}D (C, *spatial) input, "
                f"got shape {tuple(input.shape)}"
            )
        batched = input.dim() == self._rank + 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} expects {self.in_channels} input channels (in_channels), "
                f"got {x.shape[1]} in an input of shape {tuple(input.shape)}"
            )
        if any(n == 0 for n in x.shape[2:]):
            raise ValueError(f"{name} expects non-empty spatial axes, got an input of shape {tuple(input.shape)}")
        return x, batched

    def _grid(self, x: Tensor) -> Tensor:
        """The batch-1 coordinate input ``(1, coord_channels, *spatial)`` for ``x``'s grid.

        Kept for the next call with the same size, dtype, device and grad mode (outside ``torch.compile`` and
        ``torch.func`` transforms): building a grid costs several small operations.
        """
        key = None
        if not _plain_autograd(x):
            key = (
                tuple(x.shape[2:]), x.dtype, x.device, torch.is_inference_mode_enabled(), self.encoding, self.with_r,
                self.order,
            )  # fmt: skip
            cached = self.__dict__.get("_grid_cache")
            if cached is not None and cached[0] == key:
                return cast(Tensor, cached[1])
        grid = coord_grid(
            x.shape[2:], encoding=self.encoding, with_r=self.with_r, order=self.order, dtype=x.dtype, device=x.device
        ).unsqueeze(0)
        # Layout only (the values are the same): on CPU, torch runs a batch-1 2D convolution of a large
        # contiguous input through a slow path (about 15x slower at 128x128, torch 2.13); channels_last avoids
        # it, while small grids are fastest contiguous.
        if grid.dim() == 4 and grid.device.type == "cpu" and grid.numel() > _SMALL_GRID:
            grid = grid.contiguous(memory_format=torch.channels_last)
        if key is not None:
            self.__dict__["_grid_cache"] = (key, grid)
        return grid

    def _term(self, out: Tensor, compute: Callable[[], Tensor], *extra: Any) -> Tensor:
        """The coordinate term for ``out``, in ``out``'s layout; reused between calls without autograd.

        Without gradient recording (``torch.no_grad``, ``torch.inference_mode``) the term depends only on the
        coordinate filters, the bias, the grid and the layer's options, so it is computed once and kept until
        one of them changes: a new or in-place-updated parameter (its version counter and storage are part of
        the key), another input size, dtype, device, layout or autocast state. The cache holds one batch-1
        output; it is never pickled or copied (nor is the cached grid).
        """
        fmt = _memory_format(out)
        if torch.is_grad_enabled() or _plain_autograd(out):
            return compute().contiguous(memory_format=fmt)
        params = (self.coord_weight, self.bias)
        device = out.device.type
        key = (
            tuple(out.shape[2:]), out.dtype, out.device, fmt, torch.is_inference_mode_enabled(),
            torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device),
            self.stride, self.padding, self.dilation, self.padding_mode, self.encoding, self.with_r, self.order,
            extra, *((p._version, p.data_ptr(), p.dtype, p.device) for p in params if p is not None),
        )  # fmt: skip
        cached = self.__dict__.get("_term_cache")
        if cached is not None and cached[0] == key and all(a is b for a, b in zip(cached[1], params, strict=True)):
            return cast(Tensor, cached[2])
        term = compute().contiguous(memory_format=fmt)
        self.__dict__["_term_cache"] = (key, params, term)
        return term

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_term_cache", None)
        state.pop("_grid_cache", None)
        return state

    def extra_repr(self) -> str:
        return ", ".join([super().extra_repr(), *_coord_repr(self.encoding, self.with_r, self.order)])


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last(_3d) when ``x`` is laid out that way (and not also plain contiguous), else contiguous."""
    if x.is_contiguous():
        return torch.contiguous_format
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _sum_over_batch(grad: Tensor) -> Tensor:
    """``grad.sum(0, keepdim=True)``, computed in ``grad``'s physical layout.

    torch reduces a channels_last tensor over its batch axis about ten times slower than a contiguous one
    (torch 2.13, CPU); summing the rows of the physically ordered ``(B, -1)`` view avoids that.
    """
    if grad.shape[0] == 1:
        return grad
    if grad.stride(0) == 0:  # a gradient expanded over the batch, as ``out.sum().backward()`` makes
        return grad[:1] * grad.shape[0]
    perm = [0, *sorted(range(1, grad.dim()), key=lambda d: grad.stride(d), reverse=True)]
    physical = grad.permute(perm)
    if not physical.is_contiguous():
        return grad.sum(0, keepdim=True)
    summed = physical.reshape(grad.shape[0], -1).sum(0).view(1, *physical.shape[1:])
    return summed.permute([perm.index(d) for d in range(grad.dim())])


class _AddBatchTerm(torch.autograd.Function):
    """``out += term`` in place, ``term`` of batch size 1 broadcast over ``out``'s batch."""

    @staticmethod
    def forward(ctx: Any, out: Tensor, term: Tensor) -> Tensor:
        ctx.mark_dirty(out)
        return out.add_(term)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        return grad, _sum_over_batch(grad)


def _plain_autograd(out: Tensor) -> bool:
    """Whether ``out`` lives under a transform that custom autograd Functions do not suit.

    ``torch.compile`` traces its own backward, and ``torch.func`` transforms (``vmap``, ``grad``) wrap tensors; in
    both the plain in-place add, with autograd's own reduction, is used.
    """
    if torch.compiler.is_compiling():
        return True
    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(is_wrapped is not None and is_wrapped(out))


def _add_batch_term(out: Tensor, term: Tensor) -> Tensor:
    """Add the batch-1 coordinate term (already in ``out``'s layout, see ``_term``) to the output.

    Autograd's own broadcast add is used where its batch reduction is fast: without gradients, under
    ``torch.compile`` / ``torch.func``, and for contiguous outputs. A channels-last output is added in its physical
    order (a permuted view, so the reduction runs over contiguous rows) when small, where a custom autograd
    Function's fixed cost would dominate, and through ``_AddBatchTerm`` when large, which adds in place.
    """
    needs_grad = torch.is_grad_enabled() and (out.requires_grad or term.requires_grad)
    if not needs_grad or out.is_contiguous() or _plain_autograd(out):
        return out.add_(term)
    if out.numel() <= _SMALL_OUTPUT:
        rank = out.dim() - 2
        last = (0, *range(2, rank + 2), 1)
        first = (0, rank + 1, *range(1, rank + 1))
        return (out.permute(last) + term.permute(last)).permute(first)
    return _AddBatchTerm.apply(out, term)  # type: ignore[no-any-return,no-untyped-call,unused-ignore]


class _CoordConvNd(_CoordConvMixin):
    """Shared forward of ``CoordConv{1,2,3}d``: plain conv of the input plus the batch-1 coordinate term."""

    def _coord_term(self, x: Tensor) -> Tensor:
        grid = self._grid(x)
        padding: str | tuple[int, ...] = self.padding
        if self.padding_mode != "zeros":
            grid = F.pad(grid, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0,) * self._rank
        # groups=1: the coordinate filters reach every output channel whatever the layer's groups.
        return type(self)._conv_fn(grid, self.coord_weight, self.bias, self.stride, padding, self.dilation, 1)

    def forward(self, input: Tensor) -> Tensor:
        x, batched = self._prepare(input)
        out: Tensor = self._conv_forward(x, self.weight, None)  # type: ignore[operator]
        out = _add_batch_term(out, self._term(out, lambda: self._coord_term(x), tuple(x.shape[2:])))
        return out if batched else out.squeeze(0)


class _CoordConvTransposeNd(_CoordConvMixin):
    """Shared forward of ``CoordConvTranspose{1,2,3}d``."""

    output_padding: tuple[int, ...]

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        x, batched = self._prepare(input)
        output_padding = self._output_padding(  # type: ignore[operator]
            x, output_size, self.stride, self.padding, self.kernel_size, self._rank, self.dilation
        )
        conv = type(self)._conv_fn
        out = conv(x, self.weight, None, self.stride, self.padding, output_padding, self.groups, self.dilation)

        def term() -> Tensor:
            return conv(
                self._grid(x), self.coord_weight, self.bias, self.stride, self.padding, output_padding, 1, self.dilation
            )

        out = _add_batch_term(out, self._term(out, term, tuple(x.shape[2:]), tuple(output_padding)))
        return out if batched else out.squeeze(0)


def _conv_init(
    self: _CoordConvMixin,
    base: type[nn.modules.conv._ConvNd],
    args: dict[str, Any],
) -> None:
    rank = self._rank
    with_r, encoding, order = args.pop("with_r"), args.pop("encoding"), args.pop("order")
    _check_order(order)
    enc = resolve_encoding(encoding)
    resolve_encoding(enc, with_r=with_r)  # validate before allocating anything
    _check_conv_args(
        type(self).__name__,
        rank,
        **{k: args[k] for k in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation")},
        groups=args["groups"],
        padding_mode=args["padding_mode"],
        output_padding=args.get("output_padding"),
    )
    base.__init__(cast(nn.modules.conv._ConvNd, self), **args)
    self._init_coords(enc, with_r, order, args["device"], args["dtype"])


class CoordConv1d(_CoordConvNd, nn.Conv1d):
    """1D CoordConv: ``nn.Conv1d`` over the input and its coordinate channel(s).

    Arguments before ``*`` are ``nn.Conv1d``'s, in the same order with the same meaning; the keyword-only
    options are those of :class:`CoordConv2d`. ``coord_weight`` has shape ``(out_channels, coord_channels, k)``.

    Example:
        >>> CoordConv1d(4, 8, 3, padding="same")(torch.randn(2, 4, 50)).shape
        torch.Size([2, 8, 50])
    """

    _rank = 1
    _conv_fn = F.conv1d

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
        _conv_init(self, nn.Conv1d, _args(locals()))


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
    _conv_fn = F.conv2d

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
        _conv_init(self, nn.Conv2d, _args(locals()))


class CoordConv3d(_CoordConvNd, nn.Conv3d):
    """3D CoordConv: ``nn.Conv3d`` over the input and its depth, row and column coordinate channels.

    Arguments before ``*`` are ``nn.Conv3d``'s, in the same order with the same meaning; the keyword-only
    options are those of :class:`CoordConv2d` (``r = sqrt(d ** 2 + i ** 2 + j ** 2)``). ``coord_weight`` has
    shape ``(out_channels, coord_channels, kD, kH, kW)``.
    """

    _rank = 3
    _conv_fn = F.conv3d

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
        _conv_init(self, nn.Conv3d, _args(locals()))


class CoordConvTranspose1d(_CoordConvTransposeNd, nn.ConvTranspose1d):
    """1D transposed CoordConv: ``nn.ConvTranspose1d`` over the input and its coordinate channel(s).

    Arguments before ``*`` are ``nn.ConvTranspose1d``'s; the keyword-only options are those of
    :class:`CoordConv2d`. ``coord_weight`` has shape ``(coord_channels, out_channels, k)``.
    """

    _rank = 1
    _conv_fn = F.conv_transpose1d

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
        _conv_init(self, nn.ConvTranspose1d, _args(locals()))


class CoordConvTranspose2d(_CoordConvTransposeNd, nn.ConvTranspose2d):
    """2D transposed CoordConv: ``nn.ConvTranspose2d`` over the input and its coordinate channels.

    The coordinates describe the layer's input grid (the small one), as the paper's "CoordConv (or
    Deconv)" layer. Arguments before ``*`` are ``nn.ConvTranspose2d``'s, in the same order with the same
    meaning, and ``forward`` takes the same optional ``output_size``. The keyword-only options are those of
    :class:`CoordConv2d`. ``weight`` is ``(in_channels, out_channels / groups, kH, kW)`` as in torch;
    ``coord_weight`` is ``(coord_channels, out_channels, kH, kW)``, dense over groups.

    Example:
        >>> up = CoordConvTranspose2d(16, 8, 4, stride=2, padding=1)
        >>> up(torch.randn(2, 16, 10, 12)).shape
        torch.Size([2, 8, 20, 24])
    """

    _rank = 2
    _conv_fn = F.conv_transpose2d

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
        _conv_init(self, nn.ConvTranspose2d, _args(locals()))


class CoordConvTranspose3d(_CoordConvTransposeNd, nn.ConvTranspose3d):
    """3D transposed CoordConv: ``nn.ConvTranspose3d`` over the input and its coordinate channels.

    Arguments before ``*`` are ``nn.ConvTranspose3d``'s; the keyword-only options are those of
    :class:`CoordConv2d`. ``coord_weight`` has shape ``(coord_channels, out_channels, kD, kH, kW)``.
    """

    _rank = 3
    _conv_fn = F.conv_transpose3d

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
        _conv_init(self, nn.ConvTranspose3d, _args(locals()))


def _args(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments (its ``locals()``), without ``self`` and ``__class__``."""
    return {k: v for k, v in local_vars.items() if k not in ("self", "__class__")}


_TWINS_BY_COORD: dict[type[nn.Module], type[nn.Module]] = {
    CoordConv1d: nn.Conv1d,
    CoordConv2d: nn.Conv2d,
    CoordConv3d: nn.Conv3d,
    CoordConvTranspose1d: nn.ConvTranspose1d,
    CoordConvTranspose2d: nn.ConvTranspose2d,
    CoordConvTranspose3d: nn.ConvTranspose3d,
}
#: The CoordConv class that mirrors each torch convolution class.
COORD_TWINS: dict[type[nn.Module], type[_CoordConvMixin]] = {
    base: coord  # type: ignore[misc]
    for coord, base in _TWINS_BY_COORD.items()
}
