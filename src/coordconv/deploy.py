"""Deployment: ONNX export with dynamic sizes (:func:`export_onnx`) and a fixed-size form (:func:`freeze_coordinates`).

A CoordConv layer builds its coordinate grid from its input's shape, so an exported graph computes the grid with
shape, ``Range`` and arithmetic operators and serves every input size. :func:`export_onnx` wraps
``torch.onnx.export`` for both of torch's exporters with the batch and spatial axes made dynamic, and refuses,
naming the opset it can write, when the exporter hands back another opset than the one asked for.

Runtimes and accelerators without dynamic shape operators get :func:`freeze_coordinates`: for one input size the
coordinate term of every CoordConv layer (coordinate filters and bias applied to the grid) is a constant, so each
layer becomes its plain convolution plus the addition of a constant tensor. That is exact (bit for bit) at that
size, and refused at any other.

Only torch is imported here; ``onnx`` (which both exporters need) is imported by :func:`export_onnx` when it runs.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from coordconv._term import transposed_output_padding
from coordconv.layers import _CoordConvMixin

__all__ = ["FrozenCoordConv", "export_onnx", "freeze_coordinates"]


def export_onnx(
    model: nn.Module,
    example_input: Tensor,
    f: str | os.PathLike[str],
    *,
    opset_version: int = 18,
    dynamo: bool = True,
    dynamic_batch: bool = True,
    dynamic_spatial: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> None:
    """Export a one-input model to an ONNX file whose batch and spatial axes are dynamic.

    ``dynamo=True`` uses torch's ``torch.export``-based exporter, which builds opset 18 and converts the graph
    down with ONNX's version converter; for graphs with dynamic shapes that conversion reaches at least opset 16
    (some graphs lower), but only 18 with ``padding_mode`` ``"reflect"``, ``"replicate"`` or ``"circular"``, whose
    ``Pad`` it cannot convert. ``dynamo=False`` uses the legacy TorchScript exporter, which writes the opset
    asked for directly (9 and later; 11 to 18 are tested).
    Where torch's exporter keeps another opset than the one asked for (it only logs that), this function deletes
    the file and raises, naming the opset it can write.

    Args:
        model: the model, in the mode it should be exported in (call ``.eval()`` first for inference).
        example_input: an ``(N, C, *spatial)`` input. Axes that are dynamic must have size 2 or more here:
            ``torch.export`` fixes an axis of size 1 to 1.
        f: the file to write.
        opset_version: the ONNX opset of the default domain that the file must have.
        dynamo: the exporter: ``torch.export``-based (default) or the legacy TorchScript one.
        dynamic_batch: make the batch axis dynamic.
        dynamic_spatial: make every spatial axis dynamic (with ``dynamo=True``, torch.export infers the relations
            that strides impose between them).
        input_name: the graph's input name.
        output_name: the graph's output name.

    Raises:
        TypeError: ``example_input`` is not a tensor.
        ValueError: a dynamic axis has size 1 in ``example_input`` (with ``dynamo=True``), or the exporter wrote
            another opset than ``opset_version``.

    Example:
        The runnable examples are in the deployment guide (they need ``onnx``); the one mistake refused before
        exporting is an example input of size 1 on a dynamic axis:

        >>> from coordconv import CoordConv2d
        >>> export_onnx(CoordConv2d(3, 8, 3).eval(), torch.randn(1, 3, 16, 16), "m.onnx")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: export_onnx: example_input of shape (1, 3, 16, 16) has size 1 on dynamic axes [0], ...
    """
    import warnings

    if not isinstance(example_input, Tensor):
        raise TypeError(f"export_onnx expects a tensor as example_input, got {type(example_input).__name__}")
    axes = ([0] if dynamic_batch else []) + (list(range(2, example_input.dim())) if dynamic_spatial else [])
    path = os.fspath(f)
    if dynamo:
        ones = [a for a in axes if example_input.shape[a] == 1]
        if ones:
            raise ValueError(
                f"export_onnx: example_input of shape {tuple(example_input.shape)} has size 1 on dynamic axes {ones}, "
                "which torch.export would fix at 1; give an example with size 2 or more there"
            )
        auto = torch.export.Dim.AUTO
        torch.onnx.export(
            model, (example_input,), path, dynamo=True, opset_version=opset_version, input_names=[input_name],
            output_names=[output_name], dynamic_shapes=(dict.fromkeys(axes, auto),), verbose=False,
        )  # fmt: skip
    else:
        names = {a: "batch" if a == 0 else f"size{a - 1}" for a in axes}
        with warnings.catch_warnings():
            # the deprecation of the legacy exporter itself, and the tracer's notes on the layers' shape checks
            # (Python conditions on sizes that only raise errors: the graph keeps the sizes symbolic)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            # torch's constant folding notes that it leaves a strided Slice (of reflect / circular padding) alone
            warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
            torch.onnx.export(
                model, (example_input,), path, dynamo=False, opset_version=opset_version, input_names=[input_name],
                output_names=[output_name], dynamic_axes={input_name: names},
            )  # fmt: skip
    import onnx

    written = [o.version for o in onnx.load(path, load_external_data=False).opset_import if o.domain in ("", "ai.onnx")]
    if written != [opset_version]:
        os.remove(path)
        got = written[0] if written else None
        raise ValueError(
            f"export_onnx: asked for opset {opset_version}, but torch's {'dynamo' if dynamo else 'legacy'} exporter "
            f"wrote opset {got} (ONNX's version converter cannot take this graph down to {opset_version}; with dynamic "
            "sizes it reaches at least opset 16, but only 18 with padding_mode 'reflect', 'replicate' or 'circular'); "
            "export with a higher opset_version, or with dynamo=False (the legacy exporter writes opsets 9 and later "
            "directly)"
        )


class FrozenCoordConv(nn.Module):
    """A CoordConv layer for one input size: its plain convolution plus its coordinate term as a constant.

    Made by :func:`freeze_coordinates`. ``conv`` is the plain ``nn.ConvNd`` / ``nn.ConvTransposeNd`` with the
    layer's input filters and no bias; the buffer ``coord_term`` (shape ``(1, out_channels, *out_spatial)``) is
    the coordinate filters and the bias applied to the grid. Its output equals the layer's bit for bit at
    ``input_size``; any other spatial size is refused.

    Example:
        >>> from coordconv import CoordConv2d
        >>> frozen = freeze_coordinates(CoordConv2d(3, 8, 3).eval(), torch.randn(1, 3, 16, 16))
        >>> frozen.input_size, tuple(frozen.coord_term.shape)
        ((16, 16), (1, 8, 14, 14))
    """

    coord_term: Tensor

    def __init__(self, conv: nn.Module, coord_term: Tensor, input_size: Sequence[int], name: str) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("coord_term", coord_term)
        self.input_size = tuple(int(n) for n in input_size)
        self.name = name

    def forward(self, input: Tensor) -> Tensor:
        rank = len(self.input_size)
        size = tuple(input.shape[-rank:])
        # a trace (the legacy ONNX exporter) records a fixed input shape, which the runtime then enforces: the
        # check on traced sizes would only add tracer warnings
        if not torch.jit.is_tracing() and size != self.input_size:  # type: ignore[attr-defined,no-untyped-call,unused-ignore]
            raise ValueError(
                f"FrozenCoordConv {self.name!r}: its coordinates were frozen for spatial size {self.input_size} "
                f"(freeze_coordinates' example input), got an input of shape {tuple(input.shape)}; freeze the "
                "original model again for this size, or export the original model with dynamic sizes"
            )
        term = self.coord_term if input.dim() == rank + 2 else self.coord_term[0]
        out: Tensor = self.conv(input) + term
        return out

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}"


def freeze_coordinates(model: nn.Module, example_input: Any, *args: Any, **kwargs: Any) -> nn.Module:
    """A copy of ``model`` whose CoordConv layers hold their coordinate term as a constant for one input size.

    ``model(example_input, *args, **kwargs)`` is run once (without gradients) to record the input each CoordConv
    layer sees; each is then replaced by a :class:`FrozenCoordConv`: its plain convolution plus the addition of
    the coordinate term (coordinate filters and bias applied to the grid), computed at that size. An exported
    graph of the result has plain convolutions and constant additions only (no shape or ``Range`` operators),
    for runtimes and accelerators without dynamic shape support. The result equals ``model`` bit for bit at that
    input size and refuses other sizes. ``model`` itself is not changed; BatchNorm layers are not folded (see
    :func:`coordconv.fuse_conv_bn_eval`). The coordinate term is fixed: train the original, freeze for export.

    Args:
        model: the model (a CoordConv layer itself works too), usually in eval mode.
        example_input: the input at the size to freeze for.
        *args: further positional arguments ``model`` is called with.
        **kwargs: keyword arguments ``model`` is called with (``output_size`` for a transposed layer).

    Raises:
        ValueError: ``model`` has no CoordConv layer, one is not called by the example, or one is called more than
            once at different sizes.

    Example:
        >>> from coordconv import CoordConv2d
        >>> net = nn.Sequential(CoordConv2d(3, 8, 3, padding=1, with_r=True), nn.ReLU()).eval()
        >>> x = torch.randn(2, 3, 32, 48)
        >>> frozen = freeze_coordinates(net, x)
        >>> torch.equal(frozen(x), net(x))
        True
        >>> frozen[0]
        FrozenCoordConv(
          input_size=(32, 48)
          (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
        )
    """
    layers = {name: m for name, m in model.named_modules(remove_duplicate=False) if isinstance(m, _CoordConvMixin)}
    if not layers:
        raise ValueError(f"freeze_coordinates: {type(model).__name__} has no CoordConv layer")
    calls: dict[int, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}

    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.setdefault(id(module), []).append((args, kwargs))

    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in set(layers.values())]
    try:
        with torch.no_grad():
            model(example_input, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    missing = sorted(name or "(the model)" for name, m in layers.items() if id(m) not in calls)
    if missing:
        raise ValueError(
            f"freeze_coordinates: the example input does not reach the CoordConv layers {missing}; their size is "
            "unknown, so they cannot be frozen"
        )
    frozen: dict[int, FrozenCoordConv] = {}
    for name, layer in layers.items():
        if id(layer) not in frozen:
            frozen[id(layer)] = _freeze(layer, calls[id(layer)], name or type(layer).__name__)
    if isinstance(model, _CoordConvMixin):
        return frozen[id(model)]
    result = copy.deepcopy(model)
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = result.get_submodule(parent_name)
        setattr(parent, child, frozen[id(layer)])
    return result


def _freeze(layer: _CoordConvMixin, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], name: str) -> FrozenCoordConv:
    """The frozen twin of one layer, from the calls recorded for it."""
    rank = layer._rank
    seen = set()
    for args, kwargs in calls:
        size = tuple(args[0].shape[-rank:])
        output_size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
        seen.add((size, None if output_size is None else tuple(output_size)))
    if len(seen) != 1:
        raise ValueError(
            f"freeze_coordinates: CoordConv layer {name!r} is called at several sizes ((input size, output_size): "
            f"{sorted(seen, key=lambda s: (s[0], str(s[1])))}); one constant cannot serve them all"
        )
    (size, output_size) = seen.pop()
    args, kwargs = calls[0]
    x = args[0]
    probe = torch.zeros(1, layer.in_channels, *size, dtype=x.dtype, device=x.device)
    input_weight, _ = layer._split(layer.weight)
    common: dict[str, Any] = {
        "stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation, "groups": layer.groups,
        "bias": False, "padding_mode": layer.padding_mode, "device": "meta", "dtype": input_weight.dtype,
    }  # fmt: skip
    with torch.no_grad():
        if layer.transposed:
            own_padding: tuple[int, ...] = layer.output_padding  # type: ignore[assignment]
            padding = transposed_output_padding(
                x, output_size, own_padding, layer.stride, layer.padding, layer.kernel_size, layer.dilation
            )
            # the plain convolution of a zero input is exactly zero, so this is the coordinate term as the layer
            # computes and adds it
            term = layer(probe, output_size=list(output_size)) if output_size is not None else layer(probe)
            common["output_padding"] = tuple(padding)
        else:
            term = layer(probe)
        conv = layer._plain(layer.in_channels, layer.out_channels, layer.kernel_size, **common)
        conv.weight = nn.Parameter(input_weight.detach().clone(), requires_grad=layer.weight.requires_grad)
    conv.train(layer.training)
    frozen = FrozenCoordConv(conv, term.detach().clone(), size, name)
    frozen.train(layer.training)
    return frozen
