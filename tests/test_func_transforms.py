"""torch.func transforms, forward-mode AD and output_size forms: as for ``nn.ConvNd``, on every class."""

import copy

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call, stack_module_state, vmap

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
)
from reference import reference_forward

CLASSES = [CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d]
TRANSPOSED = [CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d]
F64 = {"dtype": torch.float64}
SPATIAL = {1: (9,), 2: (7, 9), 3: (4, 5, 6)}
LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
name = lambda c: c.__name__  # noqa: E731


def _layer(cls):
    torch.manual_seed(0)
    return cls(3, 4, 3, padding=1, with_r=True, **F64)


def _input(cls, *batch):
    """A float64 input, channels-last where the rank has such a layout (the case vmap could not handle)."""
    x = torch.randn(*batch, 3, *SPATIAL[cls._rank], **F64)
    if cls._rank in LAST and x.dim() == cls._rank + 2:
        x = x.contiguous(memory_format=LAST[cls._rank])
    return x


@pytest.mark.parametrize("cls", CLASSES, ids=name)
def test_vmap_over_a_channels_last_batch(cls):
    layer = _layer(cls)
    x = _input(cls, 2)
    xs = torch.stack([x, 2 * x])  # vmap's dimension in front of a channels-last batch
    expected = torch.stack([reference_forward(layer, x), reference_forward(layer, 2 * x)]).detach()
    torch.testing.assert_close(vmap(layer)(xs).detach(), expected)
    torch.testing.assert_close(vmap(layer)(x).detach(), reference_forward(layer, x).detach())  # per sample


@pytest.mark.parametrize("cls", CLASSES, ids=name)
def test_stack_module_state_ensemble(cls):
    models = [_layer(cls) for _ in range(3)]
    with torch.no_grad():
        for i, m in enumerate(models):
            m.weight.mul_(i + 1)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = _input(cls, 2)
    out = vmap(lambda p, b, xx: functional_call(base, (p, b), (xx,)), in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(out.detach(), torch.stack([reference_forward(m, x) for m in models]).detach())


@pytest.mark.parametrize("param", ["weight", "bias"])
@pytest.mark.parametrize("cls", CLASSES, ids=name)
def test_vmap_over_one_parameter(cls, param):
    layer = _layer(cls)
    x = _input(cls, 2)
    values = torch.randn(3, *getattr(layer, param).shape, **F64)
    out = vmap(lambda v: functional_call(layer, {param: v}, (x,)))(values)
    for i in range(3):
        twin = copy.deepcopy(layer)
        with torch.no_grad():
            getattr(twin, param).copy_(values[i])
        torch.testing.assert_close(out[i].detach(), reference_forward(twin, x).detach())


# torch's forward AD loads its decompositions through the deprecated torch.jit.script on first use
@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
@pytest.mark.parametrize("cls", CLASSES, ids=name)
def test_forward_mode_ad_with_a_channels_last_input(cls):
    layer = _layer(cls)
    x = _input(cls, 2)
    tangent = torch.randn_like(x)
    with fwAD.dual_level():
        ours = fwAD.unpack_dual(layer(fwAD.make_dual(x, tangent))).tangent
        expected = fwAD.unpack_dual(reference_forward(layer, fwAD.make_dual(x, tangent))).tangent
    torch.testing.assert_close(ours.detach(), expected.detach())
    # and the tangent of a parameter (the coordinate filters included)
    direction = torch.randn_like(layer.weight)
    ours = torch.func.jvp(lambda w: functional_call(layer, {"weight": w}, (x,)), (layer.weight,), (direction,))[1]
    reference = torch.func.jvp(lambda w: reference_forward(_with(layer, w), x), (layer.weight.detach(),), (direction,))[
        1
    ]
    torch.testing.assert_close(ours.detach(), reference.detach())


def _with(layer, weight):
    twin = copy.deepcopy(layer)
    del twin.weight
    twin.weight = weight
    return twin


@pytest.mark.parametrize("cls", TRANSPOSED, ids=name)
def test_output_size_with_the_channels_on_an_unbatched_input(cls):
    rank = cls._rank
    layer = cls(3, 4, 3, stride=2, padding=1, **F64)
    x = torch.randn(3, *SPATIAL[rank], **F64)
    size = [2 * n for n in SPATIAL[rank]]  # one more than the default output, which the stride allows
    out = layer(x, output_size=[4, *size])  # (C, *S) as nn.ConvTranspose accepts for an unbatched input
    assert out.shape == (4, *size)
    torch.testing.assert_close(out, layer(x, output_size=size))
    torch.testing.assert_close(out, reference_forward(layer, x[None], output_size=size)[0])
    plain = torch.nn.modules.conv.__dict__[cls._plain.__name__](3, 4, 3, stride=2, padding=1, **F64)
    assert plain(x, output_size=[4, *size]).shape == out.shape
