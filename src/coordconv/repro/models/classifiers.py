"""ResNets for the classification experiment (Liu et al. 2018, Sec. 5.4), from torchvision.

Three variants: plain, with the paper's CoordConv input layer, or retrofitted by :func:`~coordconv.coordconvify`.

* ``plain``: ``torchvision.models.resnet18`` / ``resnet50``.
* ``input_layer``: the paper's variant, one 1x1 CoordConv layer with the radius channel and 8 output channels
  at the bottom of the network, whose first convolution then reads those 8 channels.
* ``coordconvify``: the network's first convolution becomes a CoordConv layer with zero coordinate filters,
  so the network computes exactly what the plain one does until training moves them; with weights a user
  supplies (a local file), a pretrained network starts from its own accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torch import nn

from coordconv import CoordConv2d, coordconvify

__all__ = ["ARCHS", "VARIANTS", "build_classifier"]

ARCHS = ("resnet18", "resnet50")
VARIANTS = ("plain", "input_layer", "coordconvify")


def build_classifier(
    arch: str, variant: str, num_classes: int, *, with_r: bool = True, weights: str | Path | None = None
) -> nn.Module:
    """A ResNet of ``arch`` for ``num_classes`` classes in the given ``variant``.

    ``with_r`` gives the CoordConv layer of ``input_layer`` / ``coordconvify`` the radius channel (the paper's
    input layer has it). ``weights`` is a local file with the plain network's state dict (``.safetensors``, or a
    ``torch.save`` file read with ``weights_only=True``), loaded before the conversion, so a ``coordconvify``
    network starts from exactly the pretrained network's outputs. Nothing is downloaded.

    Raises:
        ValueError: unknown ``arch`` or ``variant``, ``num_classes`` below 1, ``weights`` with ``input_layer``
            (its first convolution has another shape), or weights that do not fit the network.
        FileNotFoundError: ``weights`` does not exist.
        ImportError: torchvision is not installed.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    try:
        import torchvision
    except ImportError as e:
        raise ImportError(
            "the classification experiment needs torchvision: pip install 'torch-coordconv[detection]'"
        ) from e
    net = cast(nn.Module, getattr(torchvision.models, arch)(weights=None, num_classes=num_classes))
    if weights:
        if variant == "input_layer":
            raise ValueError("weights cannot be loaded into the input_layer variant (its conv1 reads 8 channels)")
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(f"weights file {path} does not exist")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path} does not fit the network: {str(e).splitlines()[0]}") from e
    if variant == "plain":
        return net
    if variant == "coordconvify":
        return coordconvify(net, where="conv1", with_r=with_r)
    # the ResNet stem, reading the 8 channels of the CoordConv layer: 7x7, stride 2, padding 3, as torchvision's
    net.conv1 = nn.Conv2d(8, cast(nn.Conv2d, net.conv1).out_channels, 7, 2, 3, bias=False)
    return nn.Sequential(CoordConv2d(3, 8, 1, with_r=with_r), net)
