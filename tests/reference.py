"""A straightforward concatenating CoordConv, written independently of the package, for the tests to compare with."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from coordconv import FourierEncoding, LinearEncoding, RadiusEncoding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def reference_grid(shape, *, with_r=False, encoding=None, order="ij", dtype=torch.float64) -> Tensor:
    """(channels, *shape) from linspace + meshgrid, the textbook way."""
    axes = [torch.linspace(-1, 1, n, dtype=dtype) if n > 1 else torch.zeros(1, dtype=dtype) for n in shape]
    coords = list(torch.meshgrid(*axes, indexing="ij"))
    linear = torch.stack(coords[::-1] if order == "xy" else coords)
    encoding = encoding or LinearEncoding()
    if isinstance(encoding, LinearEncoding):
        channels = [linear]
    elif isinstance(encoding, RadiusEncoding):
        channels = [linear, linear.square().sum(0, keepdim=True).sqrt()]
    elif isinstance(encoding, FourierEncoding):
        channels = [linear] if encoding.include_linear else []
        for f in encoding.frequencies:
            channels += [torch.sin(math.pi * f * linear), torch.cos(math.pi * f * linear)]
    else:
        raise NotImplementedError(encoding)
    if with_r:
        channels.append(linear.square().sum(0, keepdim=True).sqrt())
    return torch.cat(channels)


def with_coords(x: Tensor, coords: Tensor, groups: int) -> Tensor:
    """Each group's input channels followed by the coordinate channels: the input of the concatenated layer."""
    return torch.cat([part for chunk in x.chunk(groups, 1) for part in (chunk, coords)], 1)


def reference_forward(layer, x: Tensor, output_size=None) -> Tensor:
    """The layer's output by its definition: a convolution, with ``layer.weight``, of the input with coordinates.

    Every group of input channels is followed by a copy of the coordinate channels (with ``groups == 1``, the
    paper's ``conv(cat([x, coords]), W)``), so the coordinate filters reach every output channel.
    """
    rank = layer._rank
    grid = reference_grid(
        x.shape[2:], with_r=layer.with_r, encoding=layer.encoding, order=layer.order, dtype=x.dtype
    ).to(x.device)
    coords = grid.unsqueeze(0).repeat(x.shape[0], *([1] * grid.dim()))
    inp = with_coords(x, coords, layer.groups)
    if layer.transposed:
        output_padding = layer._output_padding(
            x, output_size, layer.stride, layer.padding, layer.kernel_size, rank, layer.dilation
        )
        args = (layer.stride, layer.padding, output_padding)
        return CONV_T[rank](inp, layer.weight, layer.bias, *args, layer.groups, layer.dilation)
    padding = layer.padding
    if layer.padding_mode != "zeros":
        inp = F.pad(inp, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
        padding = 0
    return CONV[rank](inp, layer.weight, layer.bias, layer.stride, padding, layer.dilation, layer.groups)


def tolerance(dtype):
    """rtol/atol for comparing a layer with its definition computed another way, in ``dtype``."""
    return {
        torch.float64: {"rtol": 1e-10, "atol": 1e-10},
        torch.float32: {"rtol": 1e-5, "atol": 1e-5},
        torch.bfloat16: {"rtol": 0.02, "atol": 0.05},
        torch.float16: {"rtol": 3e-3, "atol": 3e-3},
    }[dtype]
