"""How much each CoordConv layer of a model uses the coordinates: :func:`inspect_model`.

The paper's abstract claims that CoordConv "allows networks to learn either complete translation invariance or
varying degrees of translation dependence, as required by the end task". A CoordConv layer computes

    y = conv(x, W) + conv(coords, W_c) + b

so two numbers tell where a trained network chose which:

* **Filter norms.** ``||W_c||`` against ``||W||`` (Frobenius norms), and the same per weight (RMS), which
  does not grow with the number of input channels. Zero coordinate filters make the layer exactly the plain
  convolution: translation invariant.
* **Variance share.** On a sample input, the share of the output's variance that the coordinate term carries:
  ``V_c / (V_x + V_c)``, where ``V_x`` and ``V_c`` are the variances of ``conv(x, W)`` and of
  ``conv(coords, W_c)`` over the batch and the positions, summed over output channels (the bias adds none).
  ``0`` means the layer's output does not depend on where it is computed (coordinate filters zero, or
  constant over the grid); ``1`` means the input filters contribute nothing. The covariance of the two terms
  is left out, so the share is always in ``[0, 1]``; it is also reported as ``correlation``.

The layers' inputs are captured with forward hooks during one forward pass of the sample, in eval mode and
without gradients; the coordinate term is the layer's output for an all-zero input (a convolution of zeros is
zero, so what is left is ``conv(coords, W_c) + b``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from coordconv.layers import _CoordConvMixin

__all__ = ["LayerUsage", "format_usage", "inspect_model"]


@dataclasses.dataclass(frozen=True)
class LayerUsage:
    """How much one CoordConv layer uses its coordinate channels (one row of :func:`inspect_model`).

    Attributes:
        name: the layer's qualified name in the model (``named_modules()``) or its state-dict prefix.
        kind: the layer's class name (``"CoordConv2d"``, ...); ``""`` when read from a state dict.
        coord_channels: number of coordinate channels the layer sees (``None`` where a state dict leaves it
            ambiguous).
        input_norm: Frobenius norm of the input filters ``weight``.
        coord_norm: Frobenius norm of the coordinate filters ``coord_weight``.
        norm_ratio: ``coord_norm / input_norm`` (``inf`` when only the input filters are zero, ``nan`` when
            both are).
        rms_ratio: the same ratio per weight, ``(coord_norm / sqrt(coord_weight.numel())) /
            (input_norm / sqrt(weight.numel()))``: how strongly an average coordinate weight is used compared
            with an average input weight, whatever the channel counts.
        variance_share: ``V_c / (V_x + V_c)`` on the sample input (``None`` without a sample, ``nan`` when the
            output does not vary at all).
        correlation: correlation of the two terms over the sample (``None`` without a sample, ``nan`` when
            either term is constant).

    Example:
        >>> from coordconv import CoordConv2d
        >>> row = inspect_model(CoordConv2d(3, 8, 3))[0]  # no sample: filter norms only
        >>> row.name, row.coord_channels, row.variance_share
        ('CoordConv2d', 2, None)
    """

    name: str
    kind: str
    coord_channels: int | None
    input_norm: float
    coord_norm: float
    norm_ratio: float
    rms_ratio: float
    variance_share: float | None = None
    correlation: float | None = None


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _norm_row(name: str, kind: str, weight: Tensor, coord_weight: Tensor, coord_channels: int | None) -> LayerUsage:
    w, c = weight.detach().double(), coord_weight.detach().double()
    input_norm, coord_norm = w.norm().item(), c.norm().item()
    rms_in = input_norm / math.sqrt(max(w.numel(), 1))
    rms_c = coord_norm / math.sqrt(max(c.numel(), 1))
    return LayerUsage(
        name=name,
        kind=kind,
        coord_channels=coord_channels,
        input_norm=input_norm,
        coord_norm=coord_norm,
        norm_ratio=_ratio(coord_norm, input_norm),
        rms_ratio=_ratio(rms_c, rms_in),
    )


def _channel_first(t: Tensor) -> Tensor:
    """``(N, C, *S)`` -> ``(C, N * prod(S))`` in float64."""
    return t.double().transpose(0, 1).reshape(t.shape[1], -1)


def _share(input_term: Tensor, coord_term: Tensor) -> tuple[float, float]:
    """Variance share and correlation of two ``(N, C, *S)`` terms (``coord_term`` may have batch size 1)."""
    coord_term = coord_term.expand_as(input_term)
    a, c = _channel_first(input_term), _channel_first(coord_term)
    a = a - a.mean(dim=1, keepdim=True)
    c = c - c.mean(dim=1, keepdim=True)
    v_x, v_c = a.square().sum().item(), c.square().sum().item()
    share = _ratio(v_c, v_x + v_c) if v_x + v_c > 0 else math.nan
    corr = (a * c).sum().item() / math.sqrt(v_x * v_c) if v_x > 0 and v_c > 0 else math.nan
    return share, corr


def _class_name(m: nn.Module) -> str:
    """The layer's class name; torch.nn.utils.parametrize's generated ``Parametrized...`` subclass reads as its base."""
    cls = type(m).__bases__[0] if nn.utils.parametrize.is_parametrized(m) else type(m)
    return cls.__name__


def _state_dict_rows(state_dict: Mapping[str, Tensor]) -> list[LayerUsage]:
    rows = []
    for key, coord_weight in state_dict.items():
        if not key.endswith("coord_weight"):
            continue
        prefix = key[: -len("coord_weight")]
        weight = state_dict.get(prefix + "weight")
        if weight is None:
            raise ValueError(f"state dict has {key!r} but no {prefix + 'weight'!r}: not a CoordConv layer's entries")
        # plain layers store (out, coords, *k) beside a weight (out, in / groups, *k); transposed ones
        # (coords, out, *k) beside (in, out / groups, *k). Where both readings fit, the one that gives the linear
        # encoding's count (rank, or rank + 1 with r) is taken; where that does not decide, the count is left open.
        readings = set()
        if coord_weight.shape[0] == weight.shape[0]:
            readings.add(int(coord_weight.shape[1]))
        if coord_weight.shape[1] % weight.shape[1] == 0:
            readings.add(int(coord_weight.shape[0]))
        if len(readings) > 1:
            rank = coord_weight.dim() - 2
            readings &= {rank, rank + 1}
        channels = readings.pop() if len(readings) == 1 else None
        rows.append(_norm_row(prefix.rstrip("."), "", weight, coord_weight, channels))
    return rows


def inspect_model(
    model: nn.Module | Mapping[str, Tensor],
    sample: Any = None,
    *,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> list[LayerUsage]:
    """Report, for each CoordConv layer, how much it uses the coordinates.

    Args:
        model: a module (its CoordConv layers are found with ``named_modules()``), or a state dict of an earlier
            development version (for example ``safetensors.torch.load_file(path)``), whose ``*coord_weight``
            entries and the ``*weight`` beside them give the filter norms only. (A CoordConv layer now keeps its
            coordinate filters inside ``weight``: load such a state dict into its model and pass the model.)
        sample: an input for the model's forward pass. With a sample each row also gets ``variance_share`` and
            ``correlation``; without one, only the filter norms. A tensor, or a tuple of positional arguments.
        forward: how to run the model on ``sample`` (default: ``model(sample)``, or ``model(*sample)`` for a
            tuple), for models whose forward takes something else.

    Returns:
        One :class:`LayerUsage` per CoordConv layer, in ``named_modules()`` (or state-dict) order.

    Raises:
        ValueError: the model holds no CoordConv layer, or a layer was not reached by the forward pass.

    Example:
        >>> from coordconv import CoordConv2d
        >>> layer = CoordConv2d(3, 8, 3)
        >>> _ = torch.nn.init.zeros_(layer.coord_weight)  # exactly the plain convolution
        >>> usage = inspect_model(layer, torch.randn(4, 3, 16, 16))
        >>> usage[0].norm_ratio, usage[0].variance_share
        (0.0, 0.0)
    """
    if not isinstance(model, nn.Module):
        rows = _state_dict_rows(model)
        if not rows:
            raise ValueError(
                "inspect_model: the state dict has no coord_weight entry. Only checkpoints of earlier development "
                "versions keep the coordinate filters apart; a CoordConv layer now holds them inside weight, so a "
                "state dict alone does not say which channels are coordinates: load it into the model and pass the "
                "model"
            )
        return rows
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _CoordConvMixin)]
    if not layers:
        raise ValueError(f"inspect_model: {type(model).__name__} has no CoordConv layer")
    rows = [
        _norm_row(name or _class_name(m), _class_name(m), *m._split(m.weight), m.coord_channels) for name, m in layers
    ]
    if sample is None:
        return rows

    captured: dict[int, tuple[tuple[Any, ...], dict[str, Any], Tensor]] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Tensor) -> None:
        captured.setdefault(id(module), (args, kwargs, output))

    handles = [m.register_forward_hook(hook, with_kwargs=True) for _, m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if forward is not None:
                forward(model, sample)
            elif isinstance(sample, tuple):
                model(*sample)
            else:
                model(sample)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    out = []
    with torch.no_grad():
        for row, (name, m) in zip(rows, layers, strict=True):
            if id(m) not in captured:
                raise ValueError(f"inspect_model: the forward pass did not reach CoordConv layer {name!r}")
            args, kwargs, output = captured[id(m)]
            x = args[0]
            # conv(0, W) = 0, so the layer's output for a zero input is the coordinate term plus the bias
            coord_and_bias = m(torch.zeros_like(x[:1] if x.dim() == m._rank + 2 else x), *args[1:], **kwargs)
            if x.dim() == m._rank + 1:  # unbatched input
                output, coord_and_bias = output.unsqueeze(0), coord_and_bias.unsqueeze(0)
            share, corr = _share(output - coord_and_bias, coord_and_bias)
            out.append(dataclasses.replace(row, variance_share=share, correlation=corr))
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.{digits}e}"


def format_usage(rows: Sequence[LayerUsage]) -> str:
    """A Markdown table of :func:`inspect_model`'s rows (one line per layer).

    Example:
        >>> from coordconv import CoordConv2d
        >>> layer = CoordConv2d(3, 4, 1)
        >>> _ = nn.init.zeros_(layer.weight), nn.init.ones_(layer.coord_weight)
        >>> print(format_usage(inspect_model(layer, torch.randn(2, 3, 5, 5))))
        | layer | class | coord channels | ‖W_c‖ | ‖W‖ | ‖W_c‖/‖W‖ | RMS ratio | variance share | correlation |
        |---|---|---:|---:|---:|---:|---:|---:|---:|
        | CoordConv2d | CoordConv2d | 2 | 2.828 | 0.000 | inf | inf | 1.000 | nan |
    """
    lines = [
        "| layer | class | coord channels | ‖W_c‖ | ‖W‖ | ‖W_c‖/‖W‖ | RMS ratio | variance share | correlation |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        channels = "?" if r.coord_channels is None else str(r.coord_channels)
        cells = [r.name, r.kind or "-", channels, *map(_fmt, (r.coord_norm, r.input_norm, r.norm_ratio, r.rms_ratio))]
        cells += [_fmt(r.variance_share), _fmt(r.correlation)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)
