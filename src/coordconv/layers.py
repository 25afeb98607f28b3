"""CoordConv layers: ``AddCoords`` and ``CoordConv{1,2,3}d`` / ``CoordConvTranspose{1,2,3}d``.

A CoordConv is mathematically a convolution of the input with coordinate channels appended,
``conv(cat([x, coords]), [W | W_c])``. Convolution is linear in its input, so this equals

    conv(x, W) + conv(coords, W_c)

and the second term does not depend on the batch. The layers here compute it at batch size 1, on every
call from the parameters as they are then (nothing that depends on a parameter is kept between calls, so no
way of changing one can leave a stale result), and add it to the plain convolution's output in place. That
is exact (borders, padding modes, strides, dilations and transposed convolutions included), skips the
concatenation's copy of the whole input, and works for any ``groups``: every group of input channels is
followed by its own copy of the coordinate channels, so the coordinate filters reach every output channel.

``weight`` is the concatenated layer's, coordinate filters included, as the paper defines the layer:
``(out, in / groups + coords, *k)`` (``[W | W_c]``) for ``CoordConv{1,2,3}d``, ``(in + groups * coords,
out / groups, *k)`` for the transposed classes (each group's input rows, then its coordinate rows). Code that
treats the layer as a convolution is therefore right or loud: whatever rescales ``weight`` and ``bias`` per
output channel (BatchNorm folding) rescales the coordinate filters too, ``_conv_forward(x, weight, bias)``
computes the whole layer, and a copy of ``weight`` into a plain convolution of ``in_channels`` inputs fails on
the shape. The forward reads the two parts as views (``coord_weight`` is one). Plain convolutions' checkpoints
load strictly, with zero coordinate filters, which make the layer exactly the plain convolution. The
coordinate grid follows the convention of :mod:`coordconv.coords`.

Paper: "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution", Liu et al.,
NeurIPS 2018, https://arxiv.org/abs/1807.03247.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from coordconv._term import (
    add_coord_term,
    batched,
    coord_term,
    fused_forward,
    like_input,
    static_sizes,
    transposed_output_padding,
)
from coordconv.coords import (
    _ENCODINGS,
    CoordEncoding,
    EncodingLike,
    Frame,
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
    "freeze_input_filters",
]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_T = TypeVar("_T", bound="_CoordConvMixin")

# torch.fx symbolic tracing records these as single calls instead of tracing into them (no leaf modules needed).
torch.fx.wrap("coord_term")
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
    frame: Frame | None = None,
) -> Tensor:
    """Append coordinate channels to ``x``: ``(N, C, *spatial) -> (N, C + k, *spatial)``.

    The grid describes ``x``'s own spatial axes, is built in ``x``'s dtype and on its device, carries no
    gradient and is broadcast over the batch (no per-sample copies before the concatenation).

    Args:
        x: input of shape ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        with_r: also append the radius channel.
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`~coordconv.CoordEncoding`.
        order: ``"ij"`` (rows before columns, the default) or ``"xy"`` (the official TF code's order).
        frame: ``x`` as a window of a larger grid, ``(whole size, offset)`` per spatial axis (see
            :func:`linear_coords`), or ``None``.

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
    grid = coord_grid(
        x.shape[2:], encoding=encoding, with_r=with_r, order=order, dtype=x.dtype, device=x.device, frame=frame
    )
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

    frame: Frame | None = None
    """The input as a window of a larger grid (see :func:`coordconv.window`); ``None``: the whole."""

    def channels(self, rank: int) -> int:
        """Number of channels this module appends for an input with ``rank`` spatial axes."""
        return resolve_encoding(self.encoding, with_r=self.with_r).channels(rank)

    def forward(self, x: Tensor) -> Tensor:
        batched(x, type(self).__name__, self.rank)
        return add_coords(x, with_r=self.with_r, encoding=self.encoding, order=self.order, frame=self.frame)

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


def _split(weight: Tensor, inputs_per_group: int, groups: int, transposed: bool) -> tuple[Tensor, Tensor]:
    """A CoordConv weight as (input filters in the plain layer's shape, dense coordinate filters).

    Dense coordinate filters: ``(out, coords, *k)`` for forward convolutions, ``(coords, out, *k)`` for transposed
    ones. Views of ``weight``, except for grouped transposed layers (whose group-major rows cannot be viewed that
    way): copies there, which keep the autograd graph.
    """
    n = inputs_per_group
    # one split, not two slices: its backward writes the weight's gradient once (a concatenation), where two
    # slices' backward each fill a weight-sized tensor of zeros, then added (compiled ResNet-18 training, every
    # conv converted: 51 copies a step instead of 100, 26 ms instead of 37 at 112x112, batch 8). The method
    # split_with_sizes, not torch.split: the same operation without the Python wrapper's ~15 us a call, which is
    # most of a small layer's time on a GPU
    if not transposed:
        input_filters, coord_filters = weight.split_with_sizes([n, weight.shape[1] - n], 1)
        return input_filters, coord_filters
    if groups == 1:
        input_filters, coord_filters = weight.split_with_sizes([n, weight.shape[0] - n], 0)
        return input_filters, coord_filters
    # (groups, n + coords, out / groups, *k); unflatten, not reshape: torch.fx traces it without the sizes
    rows = weight.unflatten(0, (groups, -1))  # type: ignore[no-untyped-call]
    return rows[:, :n].flatten(0, 1), rows[:, n:].transpose(0, 1).flatten(1, 2)


def _join(input_weight: Tensor, coord_weight: Tensor, groups: int, transposed: bool) -> Tensor:
    """The inverse of :func:`_split`: the full weight from the input filters and the dense coordinate filters."""
    if not transposed:
        return torch.cat([input_weight, coord_weight], dim=1)
    if groups == 1:
        return torch.cat([input_weight, coord_weight], dim=0)
    rows = input_weight.unflatten(0, (groups, -1))  # type: ignore[no-untyped-call]
    coords = coord_weight.unflatten(1, (groups, -1)).transpose(0, 1)  # type: ignore[no-untyped-call]
    return torch.cat([rows, coords], dim=1).flatten(0, 1)


class _FrozenInputFilters(nn.Module):
    """A parametrization of a CoordConv ``weight``: fixed input filters joined with trainable coordinate filters."""

    def __init__(self, layer: _CoordConvMixin) -> None:
        super().__init__()
        self.inputs_per_group = layer.in_channels // layer.groups
        self.groups = layer.groups
        self.transposed = layer.transposed
        input_weight = _split(layer.weight.detach(), self.inputs_per_group, self.groups, self.transposed)[0]
        self.register_buffer("input_filters", input_weight.clone())

    input_filters: Tensor

    def forward(self, coord_weight: Tensor) -> Tensor:
        return _join(self.input_filters, coord_weight, self.groups, self.transposed)

    def right_inverse(self, weight: Tensor) -> Tensor:
        return _split(weight, self.inputs_per_group, self.groups, self.transposed)[1].clone()


def freeze_input_filters(module: nn.Module) -> list[nn.Parameter]:
    """Train only the coordinate filters of every CoordConv layer in ``module``; returns them, for the optimizer.

    Each layer's ``weight`` becomes a parametrization (``torch.nn.utils.parametrize``): its input filters are
    kept fixed in a buffer, and its coordinate filters are the parametrization's ``original``, a Parameter of
    the shape of :attr:`~CoordConv2d.coord_weight` (``layer.parametrizations.weight.original``). Nothing else
    in ``module`` is changed: freeze the other parameters yourself (``module.requires_grad_(False)`` first).
    Weight decay and optimizer state then touch the coordinate filters only. To undo (the layer keeps the
    trained filters in a plain ``weight`` again), call
    ``torch.nn.utils.parametrize.remove_parametrizations(layer, "weight")``.

    Raises:
        ValueError: ``module`` holds no CoordConv layer, or one whose ``weight`` is already parametrized.

    Example:
        >>> net = nn.Sequential(CoordConv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
        >>> _ = net.requires_grad_(False)
        >>> (coord,) = freeze_input_filters(net)  # one CoordConv layer: its coordinate filters
        >>> tuple(coord.shape)
        (8, 2, 3, 3)
    """
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, _CoordConvMixin)]
    if not layers:
        raise ValueError(f"freeze_input_filters: {type(module).__name__} has no CoordConv layer")
    for name, layer in layers:
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(
                f"freeze_input_filters: the weight of {name or type(layer).__name__} is already parametrized"
            )
    params = []
    for _, layer in layers:
        parametrize.register_parametrization(layer, "weight", _FrozenInputFilters(layer))
        original = layer.parametrizations.weight.original  # type: ignore[union-attr]
        assert isinstance(original, nn.Parameter)
        original.requires_grad_(True)
        params.append(original)
    return params


class _CoordConvMixin(nn.Module):
    """What every CoordConv layer adds to its ``nn.ConvNd`` / ``nn.ConvTransposeNd`` base.

    That is the coordinate options, the layout of ``weight`` (coordinate filters included), checkpoint loading
    and the conversion from a plain layer; the forward's speed machinery lives in ``coordconv._term``.

    Subclasses set ``_rank`` and ``_plain`` (the torch class they mirror) and put this mixin before it.
    """

    _rank: ClassVar[int]
    _plain: ClassVar[type[nn.modules.conv._ConvNd]]
    frame: Frame | None = None
    """The layer's input as a window of a larger grid (see :func:`coordconv.window`); ``None``: the whole."""

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
    coord_channels: int

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
        # The torch base is built with the coordinate channels counted as inputs (one copy of them per group), so
        # that ``weight`` gets the layer's full shape and torch's own initialisation draws it: forward
        # convolutions (out, in / groups + coords, *k), transposed ones (in + groups * coords, out / groups, *k)
        # with each group's coordinate rows after its input rows. ``in_channels`` is then set back to the
        # channels the layer is fed.
        coords = grid_encoding.channels(self._rank)
        plain: Any = super()
        if output_padding is None:
            plain.__init__(
                in_channels + groups * coords, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                padding_mode, device, dtype,
            )  # fmt: skip
        else:
            plain.__init__(
                in_channels + groups * coords, out_channels, kernel_size, stride, padding, output_padding, groups,
                bias, dilation, padding_mode, device, dtype,
            )  # fmt: skip
        self.in_channels = in_channels
        self.encoding = resolve_encoding(encoding)
        self.with_r = with_r
        self.order = order
        self._grid_encoding = grid_encoding
        self.coord_channels = coords

    def reset_parameters(self) -> None:
        """Initialise ``weight`` (coordinate filters included) and ``bias`` as the concatenated layer would be.

        This is ``nn.ConvNd``'s own initialisation on the full weight: with ``groups=1`` the layer draws exactly
        what ``nn.ConvNd`` with ``in_channels + coord_channels`` input channels draws (same distribution, same
        random stream); with ``groups > 1`` the fan-in counts the coordinate channels that reach every output.
        """
        super().reset_parameters()  # type: ignore[misc]

    # -- the two parts of ``weight`` ------------------------------------------------------------------------

    def _plain_weight_shape(self) -> tuple[int, ...]:
        """The shape of the plain layer's weight (no coordinate filters)."""
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def _full_weight_shape(self) -> tuple[int, ...]:
        d, g = self.coord_channels, self.groups
        if self.transposed:
            return (self.in_channels + g * d, self.out_channels // g, *self.kernel_size)
        return (self.out_channels, self.in_channels // g + d, *self.kernel_size)

    def _split(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        """``weight`` as (input filters in the plain layer's shape, dense coordinate filters); see :func:`_split`."""
        return _split(weight, self.in_channels // self.groups, self.groups, self.transposed)

    def _join(self, input_weight: Tensor, coord_weight: Tensor) -> Tensor:
        """The inverse of :meth:`_split`: the full weight from the two parts."""
        return _join(input_weight, coord_weight, self.groups, self.transposed)

    @property
    def coord_weight(self) -> Tensor:
        """The coordinate filters: the part of ``weight`` that reads the coordinate channels.

        ``(out_channels, coord_channels, *kernel_size)`` for ``CoordConv{1,2,3}d``, ``(coord_channels,
        out_channels, *kernel_size)`` for the transposed classes, dense over groups. A view of ``weight``
        (writes go through), except for a transposed layer with ``groups > 1``, where it is a copy: write into
        ``weight`` there. To train only these filters, see :func:`coordconv.freeze_input_filters`.
        """
        return self._split(self.weight)[1]

    def _check_weight(self, weight: Any, who: str) -> None:
        if isinstance(weight, torch.fx.Proxy) or not isinstance(weight, Tensor):
            return
        expected = self._full_weight_shape()
        if static_sizes(weight) != expected:
            plain = " (the plain convolution's shape, without the coordinate filters)"
            raise ValueError(
                f"{type(self).__name__}.{who}: weight must have shape {expected} (the coordinate filters are part "
                f"of weight), got {tuple(weight.shape)}"
                f"{plain if tuple(weight.shape) == self._plain_weight_shape() else ''}; to fold a BatchNorm into "
                "a CoordConv layer use coordconv.fuse_conv_bn_eval"
            )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Also load earlier development checkpoints (``coord_weight`` apart) and plain convolutions' ones.

        A checkpoint with a separate ``coord_weight`` entry has it joined into ``weight``; a ``weight`` of the
        plain layer's shape (a checkpoint of the plain convolution) gets zero coordinate filters, so the layer
        computes what the plain one did. A ``weight`` of the full shape (this version's checkpoints, and other
        implementations' concatenated ones) loads as it is.
        """
        key, coord_key = prefix + "weight", prefix + "coord_weight"
        weight = state_dict.get(key)
        if isinstance(weight, Tensor) and tuple(weight.shape) == self._plain_weight_shape():
            coords = state_dict.pop(coord_key, None)
            if not isinstance(coords, Tensor):
                shape = list(self._split(torch.empty(self._full_weight_shape(), device="meta"))[1].shape)
                coords = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
            elif coords.dim() == weight.dim():
                coords = coords.to(weight)
            state_dict[key] = self._join(weight, coords)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

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

        The twin's ``weight`` is a new Parameter: ``conv``'s filters followed by the zero coordinate filters
        (create the optimizer after converting). It keeps ``conv``'s ``bias`` Parameter object, training mode
        and hooks (forward, pre-forward, backward and state-dict hooks: the twin shares ``conv``'s hook
        dictionaries, so a handle returned when a hook was registered on ``conv`` removes it from the twin), so
        its output equals ``conv``'s until the coordinate filters are trained.

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
        with torch.no_grad():
            source = conv.weight.detach()
            coords = torch.zeros(twin._split(twin.weight)[1].shape, device=source.device, dtype=source.dtype)
            twin.weight = nn.Parameter(twin._join(source, coords), requires_grad=conv.weight.requires_grad)
        twin.bias = conv.bias
        # The twin takes over conv's hooks (forward, pre-forward, backward, state dict): the same dictionaries, so
        # the handles their registration returned still remove them.
        for name in _HOOK_DICTS:
            if name in conv.__dict__:
                twin.__dict__[name] = conv.__dict__[name]
        twin.train(conv.training)
        return twin

    def _check_traceable(self, input: Any) -> None:
        if isinstance(input, torch.fx.Proxy) and not dataclasses.is_dataclass(self._grid_encoding):
            raise TypeError(
                f"{type(self).__name__}: torch.fx symbolic tracing needs the coordinate encoding to be a dataclass "
                f"(as the built-in encodings are), got {type(self.encoding).__name__}"
            )

    def _quantization_call(self, input: Any, *args: Any) -> Any:
        """Under FX quantization's tracer (``prepare_fx``): this layer recorded as one call of itself, else None.

        Traced into, the layer's convolutions of slices of ``weight`` match FX quantization's convolution patterns,
        whose lowering then fails (``KeyError '_0_weight'``, or an observer fed a list). Recorded as a module
        call, the layer is left in floating point (its input dequantized) while the rest of the model is
        quantized, as with ``qconfig_mapping.set_object_type(CoordConv2d, None)``.
        """
        if not isinstance(input, torch.fx.Proxy):
            return None
        from torch.ao.quantization.fx.tracer import QuantizationTracer

        tracer = input.tracer
        if not isinstance(tracer, QuantizationTracer):
            return None
        return tracer.create_proxy("call_module", tracer.path_of_module(self), (input, *args), {})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call,unused-ignore]
        if "_grid_encoding" not in self.__dict__:  # pickled by coordconv 0.1
            self._grid_encoding = resolve_encoding(self.encoding, with_r=self.with_r)
        old = self._parameters.pop("coord_weight", None)
        if old is not None:  # pickled by an earlier development version: coordinate filters apart
            with torch.no_grad():
                joined = self._join(self.weight, old)
            self.weight = nn.Parameter(joined, requires_grad=self.weight.requires_grad or old.requires_grad)

    def __prepare_scriptable__(self) -> nn.Module:
        raise TypeError(
            f"torch.jit.script does not support {type(self).__name__} (TorchScript is in maintenance mode in "
            "PyTorch); use torch.jit.trace, torch.export / torch.onnx.export(dynamo=True) or torch.compile"
        )

    def extra_repr(self) -> str:
        return ", ".join([super().extra_repr(), *_coord_repr(self.encoding, self.with_r, self.order)])


# nn.Module's per-module hook registries, which from_conv hands over to the twin
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_is_full_backward_hook",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)  # fmt: skip


def _check_plain_weight(conv: nn.Module, who: str) -> None:
    """Refuse a convolution with a pruning or old-style ``weight_norm`` / ``spectral_norm`` hook."""
    from torch.nn.utils import prune

    pruned = [hook for hook in conv._forward_pre_hooks.values() if isinstance(hook, prune.BasePruningMethod)]
    if pruned:
        raise ValueError(
            f"{who}: {type(conv).__name__} is pruned (torch.nn.utils.prune, {type(pruned[0]).__name__}): its weight "
            f"is weight_orig times a mask, computed by a hook; call torch.nn.utils.prune.remove(module, "
            f"'{pruned[0]._tensor_name}') first (the pruned weights stay zero), then prune the converted layer again "
            "if the mask must stay applied in training"
        )
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
        quantization_call = self._quantization_call(input)
        if quantization_call is not None:
            return quantization_call  # type: ignore[no-any-return]
        self._check_traceable(input)
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's function with the given full ``weight`` and ``bias`` (``nn.ConvNd``'s hook for this).

        Code written for ``nn.ConvNd`` that calls ``conv._conv_forward(x, new_weight, new_bias)`` (mmcv's
        ``efficient_conv_bn_eval``, for one) gets the CoordConv layer with those parameters, coordinate term
        included; a ``weight`` without the coordinate filters is refused.
        """
        self._check_weight(weight, "_conv_forward")
        x = batched(input, type(self).__name__, self._rank, self.in_channels)
        input_weight, coord_weight = self._split(weight)
        fused = fused_forward(self, x, input_weight, coord_weight, bias)
        if fused is not None:
            return like_input(fused, input, self._rank)
        plain_forward: Any = self._plain._conv_forward  # type: ignore[attr-defined,unused-ignore]
        out = plain_forward(self, x, input_weight, None)
        term = coord_term(
            x, coord_weight, bias, self._grid_encoding, self.order, self.stride, self.padding, self.dilation,
            self.padding_mode, pad=self._reversed_padding_repeated_twice, frame=self.frame, out=out,
        )  # fmt: skip
        out = add_coord_term(out, term)
        return like_input(out, input, self._rank)


class _CoordConvTransposeNd(_CoordConvMixin):
    """Shared forward of ``CoordConvTranspose{1,2,3}d``."""

    output_padding: tuple[int, ...]
    _conv_transpose: ClassVar[Any]

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        quantization_call = self._quantization_call(input, *([] if output_size is None else [output_size]))
        if quantization_call is not None:
            return quantization_call  # type: ignore[no-any-return]
        self._check_traceable(input)
        self._check_weight(self.weight, "forward")
        x = batched(input, type(self).__name__, self._rank, self.in_channels)
        output_padding = transposed_output_padding(
            input, output_size, self.output_padding, self.stride, self.padding, self.kernel_size, self.dilation
        )
        input_weight, coord_weight = self._split(self.weight)
        out = type(self)._conv_transpose(
            x, input_weight, None, self.stride, self.padding, output_padding, self.groups, self.dilation
        )
        term = coord_term(
            x, coord_weight, self.bias, self._grid_encoding, self.order, self.stride, self.padding, self.dilation,
            self.padding_mode, output_padding=output_padding, frame=self.frame, out=out,
        )  # fmt: skip
        out = add_coord_term(out, term)
        return like_input(out, input, self._rank)


class CoordConv1d(_CoordConvNd, nn.Conv1d):
    """1D CoordConv: ``nn.Conv1d`` over the input and its coordinate channel(s).

    Arguments before ``*`` are ``nn.Conv1d``'s, in the same order with the same meaning; the keyword-only
    options are those of :class:`CoordConv2d`. ``weight`` is ``(out_channels, in_channels / groups +
    coord_channels, k)``; ``coord_weight``, its coordinate part, ``(out_channels, coord_channels, k)``.

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

    Computes ``conv(cat([x, coords]), weight) + bias`` exactly (``weight`` is ``[W | W_c]``), as the plain
    convolution of the input plus a coordinate term computed once at batch size 1 (see :mod:`coordconv.layers`). The
    coordinates describe this layer's own input grid and are padded like the input (``padding_mode``).

    Arguments before ``*`` are ``nn.Conv2d``'s, in the same order with the same meaning; ``in_channels``
    counts the channels you feed in, not the coordinate channels. Any ``groups`` works, depthwise included.

    Args:
        with_r: also feed the radius channel ``r = sqrt(i ** 2 + j ** 2)``.
        encoding: ``"linear"`` (default), ``"radius"``, ``"fourier"`` or a :class:`~coordconv.CoordEncoding`.
        order: ``"ij"`` (rows first, the default) or ``"xy"`` (columns first, the official TF code's order).

    Attributes:
        weight: the filters of the concatenated layer, ``[W | W_c]``: ``(out_channels, in_channels / groups +
            coord_channels, kH, kW)``, the input filters then the coordinate filters (every group sees the
            coordinates). Rescaling it per output channel (BatchNorm folding) is exact.
        bias: ``nn.Conv2d``'s bias ``(out_channels,)``, or ``None``.
        coord_weight: read-only property, the coordinate filters ``weight[:, in_channels // groups:]``
            ``(out_channels, coord_channels, kH, kW)``, a view. To train only them, see
            :func:`freeze_input_filters`.
        coord_channels: the number of coordinate channels (2, 3 with ``r``, more for Fourier features).
        frame: ``None`` (the coordinates describe the input's own grid), or ``((H, top), (W, left))``: the input
            is the window at ``(top, left)`` of an ``H x W`` grid, and gets that grid's coordinates there (for
            tiles; :func:`coordconv.window` sets it on every layer of a model).

    Shape:
        - Input: :math:`(N, C_{in}, H, W)` or :math:`(C_{in}, H, W)`.
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})` or :math:`(C_{out}, H_{out}, W_{out})`, as ``nn.Conv2d``.

    Example:
        >>> layer = CoordConv2d(3, 16, 3, padding=1, with_r=True)
        >>> layer(torch.randn(8, 3, 32, 48)).shape
        torch.Size([8, 16, 32, 48])
        >>> layer.weight.shape, layer.coord_weight.shape
        (torch.Size([16, 6, 3, 3]), torch.Size([16, 3, 3, 3]))
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
    options are those of :class:`CoordConv2d` (``r = sqrt(d ** 2 + i ** 2 + j ** 2)``). ``weight`` is
    ``(out_channels, in_channels / groups + coord_channels, kD, kH, kW)``, its coordinate part ``coord_weight``
    ``(out_channels, coord_channels, kD, kH, kW)``.

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
    :class:`CoordConv2d`. ``weight`` is ``(in_channels + groups * coord_channels, out_channels / groups, k)``;
    ``coord_weight``, its coordinate rows, ``(coord_channels, out_channels, k)``.

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
    :class:`CoordConv2d`. ``weight`` is ``nn.ConvTranspose2d``'s over the input and one copy of the
    coordinate channels per group, ``(in_channels + groups * coord_channels, out_channels / groups, kH, kW)``
    (each group's input rows, then its coordinate rows); ``coord_weight`` is the coordinate part as
    ``(coord_channels, out_channels, kH, kW)``, a view when ``groups=1``.

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
