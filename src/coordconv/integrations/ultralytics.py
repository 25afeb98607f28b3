"""CoordConv as an ultralytics block: ``Conv``'s ``(c1, c2, k, s, p, g, d, act)`` convention, usable in a YAML.

:class:`CoordConv` is ultralytics' ``Conv`` (convolution, ``BatchNorm2d``, activation, ``autopad``,
``forward_fuse``) with a :class:`~coordconv.CoordConv2d` as its convolution. It subclasses ``Conv``, so
``model.fuse()`` folds its BatchNorm (exactly: the coordinate filters are rows of ``weight``) and switches it to
``forward_fuse``.

A model YAML names it as ``[-1, 1, CoordConv, [64, 3, 2]]`` once :func:`register` has run. ultralytics'
``parse_model`` (checked on 8.4.190) looks module names up in its own module and computes ``c1`` and the
width-scaled ``c2`` only for the classes in a set local to the function, which cannot be extended. :func:`register`
therefore wraps ``ultralytics.nn.tasks.parse_model``: rows naming ``CoordConv`` are parsed as ``Conv`` rows (same
channel arithmetic, width multiple and ``max_channels``), and the built ``Conv`` blocks are then replaced by
:class:`CoordConv` blocks of the same arguments. Arguments after ``act`` are CoordConv's: ``with_r``,
``encoding``, ``order`` (``[-1, 1, CoordConv, [64, 3, 2, None, 1, 1, True, True]]`` adds the radius channel).

Importing this module imports ultralytics; without it the import fails with one line naming the extra
``torch-coordconv[frameworks]``.
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn

from coordconv.integrations import _require
from coordconv.layers import CoordConv2d

_conv_module = _require("ultralytics.nn.modules.conv", "ultralytics")
_tasks: Any = _require("ultralytics.nn.tasks", "ultralytics")
_Conv: Any = _conv_module.Conv
_autopad: Any = _conv_module.autopad

__all__ = ["CoordConv", "register", "unregister"]

NAME = "CoordConv"
"""The module name a model YAML uses for :class:`CoordConv`."""

_CONV_ARGS = 7  # c2, k, s, p, g, d, act: the YAML arguments of ultralytics' Conv


class CoordConv(_Conv):  # type: ignore[misc]
    """ultralytics' ``Conv`` block with a :class:`~coordconv.CoordConv2d`: conv (no bias), BatchNorm2d, activation.

    Args:
        c1: input channels.
        c2: output channels.
        k: kernel size.
        s: stride.
        p: padding; ``None`` pads to keep the size (ultralytics' ``autopad``).
        g: groups.
        d: dilation.
        act: ``True`` for ultralytics' default activation (``Conv.default_act``), a module, or ``False`` for none.
        with_r: add the radius channel.
        encoding: coordinate encoding of the layer.
        order: coordinate channel order.

    Example:
        >>> import torch
        >>> block = CoordConv(3, 16, 3, 2)
        >>> tuple(block(torch.randn(1, 3, 32, 32)).shape)
        (1, 16, 16, 16)
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 1,
        s: int = 1,
        p: int | None = None,
        g: int = 1,
        d: int = 1,
        act: bool | nn.Module = True,
        with_r: bool = False,
        encoding: Any = "linear",
        order: Any = "ij",
    ) -> None:
        super().__init__(c1, c2, k, s, p, g, d, act)
        self.conv = CoordConv2d(
            c1, c2, k, s, _autopad(k, p, d), groups=g, dilation=d, bias=False,
            with_r=with_r, encoding=encoding, order=order,
        )  # fmt: skip


def _single(value: Any) -> Any:
    """``(3, 3)`` as ``3``, as ultralytics' blocks take them; uneven tuples unchanged."""
    return value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value


def _to_coordconv(block: Any, extra: list[Any]) -> CoordConv:
    """A :class:`CoordConv` with the arguments of the ``Conv`` block that ``parse_model`` built."""
    conv = block.conv
    new = CoordConv(
        conv.in_channels, conv.out_channels, _single(conv.kernel_size), _single(conv.stride),
        _single(conv.padding), conv.groups, _single(conv.dilation), block.act, *extra,
    )  # fmt: skip
    for attribute in ("i", "f"):
        if hasattr(block, attribute):
            setattr(new, attribute, getattr(block, attribute))
    setattr(new, "type", f"{__name__}.{NAME}")  # noqa: B010 (nn.Module.type is a method, shadowed as parse_model does)
    new.np = sum(p.numel() for p in new.parameters())
    return new


def _wrap(parse_model: Any) -> Any:
    @functools.wraps(parse_model)
    def parse_model_with_coordconv(d: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        extras: dict[int, list[Any]] = {}
        for index, row in enumerate(d.get("backbone", []) + d.get("head", [])):
            if row[2] in (NAME, CoordConv):
                row[2] = "Conv"
                extras[index], row[3] = list(row[3][_CONV_ARGS:]), list(row[3][:_CONV_ARGS])
        layers, save = parse_model(d, *args, **kwargs)
        for index, extra in extras.items():
            layer = layers[index]
            if isinstance(layer, nn.Sequential):  # n > 1 repeats
                for j, block in enumerate(layer):
                    layer[j] = _to_coordconv(block, extra)
                setattr(layer, "type", f"{__name__}.{NAME}")  # noqa: B010 (as parse_model labels its layers)
            else:
                layers[index] = _to_coordconv(layer, extra)
        return layers, save

    parse_model_with_coordconv.__coordconv_wrapped__ = parse_model  # type: ignore[attr-defined]
    return parse_model_with_coordconv


def register() -> None:
    """Let ultralytics model YAMLs name :class:`CoordConv` (``[-1, 1, CoordConv, [64, 3, 2]]``).

    Wraps ``ultralytics.nn.tasks.parse_model`` (which ``DetectionModel`` and the other task models call) and
    makes ``CoordConv`` a name of ``ultralytics.nn.tasks``. Calling it again does nothing; :func:`unregister`
    undoes it.
    """
    if not hasattr(_tasks.parse_model, "__coordconv_wrapped__"):
        _tasks.parse_model = _wrap(_tasks.parse_model)
    setattr(_tasks, NAME, CoordConv)


def unregister() -> None:
    """Undo :func:`register`."""
    original = getattr(_tasks.parse_model, "__coordconv_wrapped__", None)
    if original is not None:
        _tasks.parse_model = original
    if getattr(_tasks, NAME, None) is CoordConv:
        delattr(_tasks, NAME)
