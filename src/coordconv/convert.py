"""Retrofit CoordConv into an existing network: :func:`coordconvify`."""

from __future__ import annotations

import fnmatch
import gc
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from coordconv.coords import EncodingLike, Order
from coordconv.layers import COORD_TWINS, _check_plain_weight

__all__ = ["Where", "coordconvify"]

Where = str | Sequence[str] | Callable[[str, nn.Module], bool] | None
_CONV_TYPES = tuple(COORD_TWINS)


def _matcher(where: Where) -> Callable[[str, nn.Module], bool]:
    if where is None:
        return lambda name, module: True
    if isinstance(where, str):
        return lambda name, module: fnmatch.fnmatchcase(name, where)
    if callable(where):
        return where
    if isinstance(where, Sequence) and all(isinstance(p, str) for p in where):
        patterns = tuple(where)
        return lambda name, module: any(fnmatch.fnmatchcase(name, p) for p in patterns)
    raise TypeError(
        f"where must be None, a name pattern, a sequence of name patterns or a predicate (name, module) -> bool, "
        f"got {where!r}"
    )


def coordconvify(
    module: nn.Module,
    *,
    where: Where = None,
    first_only: bool = False,
    with_r: bool = False,
    encoding: EncodingLike = "linear",
    order: Order = "ij",
) -> nn.Module:
    """Replace convolutions of any ``nn.Module`` by their CoordConv twins, keeping the network's function.

    Every selected ``nn.Conv{1,2,3}d`` / ``nn.ConvTranspose{1,2,3}d`` becomes the matching
    ``CoordConv*`` layer with the same arguments. The new layer's ``weight`` is the old filters followed by
    zero coordinate filters (a new Parameter); it keeps the old ``bias`` Parameter and every hook registered on
    the old layer (forward, pre-forward, backward, state dict), so the converted network computes exactly what
    the original did until the coordinate filters are trained. Only the exact torch classes are converted:
    subclasses with a forward of their own (weight standardisation, "same" padding wrappers, ...) are left
    alone, and so are layers that are already CoordConv.

    The module is modified in place and returned (a bare convolution passed as ``module`` is returned
    converted). Pass ``copy.deepcopy(model)`` to keep the original. Create the optimizer after converting: an
    optimizer made before holds the old ``weight`` Parameters, which the converted network no longer uses, so it
    would not train the converted layers (a live optimizer that holds one gets a warning naming the layers).

    Args:
        module: the network.
        where: which convolutions to convert, by qualified name as in ``named_modules()``: ``None`` (all),
            a glob pattern (``"layer1.*"``), a sequence of patterns, or a predicate ``(name, module) -> bool``.
        first_only: convert only the first selected convolution in ``named_modules()`` order (registration
            order, which is usually, not always, the order of the forward pass).
        with_r: give the new layers the radius channel.
        encoding: coordinate encoding of the new layers.
        order: ``"ij"`` (default) or ``"xy"``.

    Returns:
        The converted module.

    Raises:
        ValueError: nothing matched, or a selected layer is parametrized, lazy (not yet initialised) or has an
            old-style ``torch.nn.utils.weight_norm`` / ``spectral_norm`` hook.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
        >>> coordconvify(net, first_only=True)[0]
        CoordConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"coordconvify expects an nn.Module, got {type(module).__name__}")
    if not isinstance(first_only, bool):
        raise TypeError(f"first_only must be a bool, got {first_only!r}")
    selected = _matcher(where)
    # by identity: a convolution registered under several names is converted once and replaced everywhere
    targets: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, child in module.named_modules(remove_duplicate=False):
        if not isinstance(child, _CONV_TYPES) or not selected(name, child):
            continue
        if parametrize.is_parametrized(child):
            raise ValueError(f"cannot convert {name or 'the module'}: parametrized convolutions are not supported")
        if isinstance(child, nn.modules.lazy.LazyModuleMixin):
            raise ValueError(f"cannot convert {name or 'the module'}: run a forward pass to initialise it first")
        if type(child) not in COORD_TWINS:
            continue  # a subclass with a forward of its own, or already a CoordConv layer
        _check_plain_weight(child, f"cannot convert {name or 'the module'}")
        if first_only and targets and id(child) not in targets:
            continue
        targets.setdefault(id(child), (child, []))[1].append(name)
    if not targets:
        raise ValueError(
            f"coordconvify found no nn.Conv*d / nn.ConvTranspose*d layer matching where={where!r} "
            f"in {type(module).__name__}"
        )
    replaced: dict[int, tuple[object, str]] = {
        id(child.weight): (child.weight, names[0] or "the module") for child, names in targets.values()
    }
    for child, names in targets.values():
        twin = COORD_TWINS[type(child)].from_conv(child, with_r=with_r, encoding=encoding, order=order)
        for name in names:
            if not name:
                module = twin
                break
            parent_name, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent_name), attr, twin)
    _warn_if_optimized(replaced)
    return module


def _warn_if_optimized(replaced: dict[int, tuple[object, str]]) -> None:
    """Warn when a live optimizer holds a ``weight`` that :func:`coordconvify` replaced (it would train nothing).

    ``replaced`` maps ``id(weight)`` to the weight (kept alive, so ids stay unique) and its layer's name.
    """
    for obj in gc.get_objects():
        if not issubclass(type(obj), torch.optim.Optimizer):  # type(): no __class__ lookups on proxies
            continue
        held = [replaced[id(p)][1] for group in obj.param_groups for p in group["params"] if id(p) in replaced]
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            warnings.warn(
                f"coordconvify replaced the weight of {shown}, which a {type(obj).__name__} created before holds: "
                "it would not train the converted layers. Create the optimizer after coordconvify.",
                UserWarning,
                stacklevel=3,
            )
