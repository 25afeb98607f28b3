"""CoordConv as an OpenMMLab conv type: ``conv_cfg=dict(type="CoordConv")`` in mmcv's ``ConvModule`` and configs.

mmcv's ``build_conv_layer`` (mmcv 2.x, checked on mmcv-lite 2.2.0 with mmengine 0.10.7) looks the cfg's
``type`` up in mmengine's ``MODELS`` registry, which mmdet and mmseg configs use too. :func:`register` adds:

- ``"CoordConv"`` and ``"CoordConv2d"``: :class:`~coordconv.CoordConv2d`;
- ``"CoordConv1d"``, ``"CoordConv3d"``: the other ranks.

The layer's keyword arguments go in the cfg: ``dict(type="CoordConv", with_r=True, encoding="linear")``.
Importing this module registers them (registering again does nothing), so a config may also name the module in
``custom_imports = dict(imports=["coordconv.integrations.mmcv"])``.

mmcv's ``fuse_conv_bn`` folds the BatchNorm of a ``ConvModule`` with a CoordConv exactly (the coordinate filters
are rows of ``weight``). Importing this module imports mmengine; without it the import fails with one line
naming the extra ``torch-coordconv[frameworks]``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from coordconv.integrations import _require
from coordconv.layers import CoordConv1d, CoordConv2d, CoordConv3d

_registry: Any = _require("mmengine.registry", "mmcv")

__all__ = ["LAYERS", "register"]

LAYERS: dict[str, type[nn.Module]] = {
    "CoordConv": CoordConv2d,
    "CoordConv1d": CoordConv1d,
    "CoordConv2d": CoordConv2d,
    "CoordConv3d": CoordConv3d,
}
"""The registered names and their layers."""


def register(registry: Any = None) -> None:
    """Register the CoordConv layers under :data:`LAYERS`' names in mmengine's ``MODELS`` (or ``registry``).

    A name that the registry already holds for another class is an error (``KeyError`` from mmengine); the same
    class again is fine.
    """
    registry = _registry.MODELS if registry is None else registry
    for name, layer in LAYERS.items():
        if registry.get(name) is not layer:
            registry.register_module(name, module=layer)


register()
