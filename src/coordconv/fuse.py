"""Fold an eval-mode BatchNorm into the convolution before it, CoordConv layers included: :func:`fuse_conv_bn_eval`.

A CoordConv layer keeps its coordinate filters inside ``weight``, so folding a BatchNorm is the plain
convolution's rescaling of ``weight`` and ``bias`` per output channel. torch's own
``torch.nn.utils.fusion.fuse_conv_bn_eval`` is therefore exact on CoordConv layers too (forward ones; its
``transpose=True`` form, like this function, on transposed ones with ``groups=1``). This function adds what torch's
leaves out: checks with clear errors, float64 arithmetic, and transposed layers with ``groups > 1`` (whose
output channels are spread over the groups' rows).
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = ["fuse_conv_bn_eval"]

_C = TypeVar("_C", bound=_ConvNd)


def fuse_conv_bn_eval(conv: _C, bn: _BatchNorm) -> _C:
    """A new convolution that computes ``bn(conv(x))``, for ``conv`` and ``bn`` in eval mode.

    Works for every ``nn.Conv{1,2,3}d`` / ``nn.ConvTranspose{1,2,3}d`` and every CoordConv layer (whose
    coordinate filters, part of ``weight``, are rescaled with the rest), any ``groups`` and with or without bias.
    ``conv`` and ``bn`` are left unchanged; the result is a deep copy of ``conv`` with new ``weight`` and ``bias``
    (always present).

    Args:
        conv: the convolution, in eval mode.
        bn: the BatchNorm that reads its output, in eval mode, with running statistics.

    Raises:
        TypeError: ``conv`` is not a convolution or ``bn`` not a BatchNorm.
        ValueError: either module is in training mode, ``bn`` keeps no running statistics, or the channel
            counts differ.

    Example:
        >>> from coordconv import CoordConv2d
        >>> conv, bn = CoordConv2d(3, 8, 3).eval(), nn.BatchNorm2d(8).eval()
        >>> fused = fuse_conv_bn_eval(conv, bn)
        >>> x = torch.randn(2, 3, 10, 12)
        >>> torch.allclose(fused(x), bn(conv(x)), atol=1e-6)
        True
    """
    if not isinstance(conv, _ConvNd):
        raise TypeError(f"fuse_conv_bn_eval expects a convolution as conv, got {type(conv).__name__}")
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f"fuse_conv_bn_eval expects a BatchNorm as bn, got {type(bn).__name__}")
    if conv.training or bn.training:
        raise ValueError(
            f"fuse_conv_bn_eval needs both modules in eval mode (call .eval()), got conv.training={conv.training}, "
            f"bn.training={bn.training}"
        )
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fuse_conv_bn_eval needs a BatchNorm with running statistics (track_running_stats=True)")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"fuse_conv_bn_eval: bn has {bn.num_features} features but conv has {conv.out_channels} output channels"
        )
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        fused = copy.deepcopy(conv)
        weight = conv.weight
        fused.weight = nn.Parameter(_scale_out(weight, scale, conv.transposed, conv.groups), weight.requires_grad)
        bias = shift if conv.bias is None else conv.bias.double() * scale + shift
        like = weight if conv.bias is None else conv.bias
        fused.bias = nn.Parameter(bias.to(like.dtype), like.requires_grad)
    return fused


def _scale_out(weight: Tensor, scale: Tensor, transposed: bool, groups: int) -> Tensor:
    """Multiply each output channel's filters by its ``scale``; returns a new tensor in ``weight``'s dtype."""
    k = [1] * (weight.dim() - 2)
    if not transposed:  # (out, in / groups, *k)
        return (weight.double() * scale.view(-1, 1, *k)).to(weight.dtype)
    # (in, out / groups, *k): output channel g * (out / groups) + o sits in group g's rows, column o
    rows, cols = weight.shape[:2]
    grouped = weight.double().reshape(groups, rows // groups, cols, *weight.shape[2:])
    return (grouped * scale.view(groups, 1, cols, *k)).reshape(weight.shape).to(weight.dtype)
