"""Exact in every state: after any way of changing its parameters, a layer computes its own definition.

Each case warms the layer up (no_grad and inference_mode calls, which would fill any cache), changes its
parameters one way, then compares the layer with the concatenating reference under no_grad, inference_mode
and with autograd recording.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    coord_grid,
    coordconvify,
)
from reference import reference_forward, tolerance

CLASSES = [CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d]


def _step(optimizer_cls, **kwargs):
    def change(layer, x):
        try:
            optimizer = optimizer_cls(layer.parameters(), lr=0.1, **kwargs)
        except (RuntimeError, ValueError) as error:  # a fused kernel this device or dtype lacks
            pytest.skip(f"{optimizer_cls.__name__}({kwargs}) unavailable here: {error}")
        for _ in range(2):
            optimizer.zero_grad()
            layer(x).square().mean().backward()
            optimizer.step()

    return change


def _data_mul(layer, x):
    for p in layer.parameters():
        p.data.mul_(-2.0)


def _data_add(layer, x):
    layer.bias.data.add_(1.0)
    layer.coord_weight.data.add_(0.5)  # a view of weight: the edit reaches it


def _data_swap(layer, x):
    layer.weight.data = layer.weight.data * 3.0  # new storage, no version bump
    layer.bias.data = layer.bias.data - 1.0


def _ema(layer, x):
    other = copy.deepcopy(layer)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_()
    for p, q in zip(layer.parameters(), other.parameters(), strict=True):  # EMA through .data, as many scripts do
        p.data.mul_(0.5).add_(q.data, alpha=0.5)


def _averaged_model(layer, x):
    ema = torch.optim.swa_utils.get_ema_multi_avg_fn(0.5)
    average = torch.optim.swa_utils.AveragedModel(layer, multi_avg_fn=ema)
    for mode in MODES:  # the averaged copy is a layer too: warm it up, update it, it must equal its definition
        _call(average.module, x, mode)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    average.update_parameters(layer)
    average.update_parameters(layer)
    expected = reference_forward(average.module, x).detach()
    for mode in MODES:
        torch.testing.assert_close(_call(average.module, x, mode), expected, **tolerance(x.dtype))
    layer.load_state_dict(average.module.state_dict())


def _foreach(layer, x):
    with torch.no_grad():
        torch._foreach_add_(list(layer.parameters()), 0.25)


def _detach_edit(layer, x):
    layer.coord_weight.detach().mul_(-1.0)  # a view of weight


def _load_state_dict(layer, x):
    other = copy.deepcopy(layer)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_()
    layer.load_state_dict(other.state_dict())


def _swap_parameters(layer, x):
    layer.weight = nn.Parameter(torch.randn_like(layer.weight))
    layer.bias = nn.Parameter(torch.randn_like(layer.bias))


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(1.0))

    def forward(self, w):
        return w * self.factor


def _parametrization(layer, x):
    parametrize.register_parametrization(layer, "weight", _Scale().to(layer.weight))
    layer(x)
    with torch.no_grad():
        layer.parametrizations.weight[0].factor.fill_(3.0)


def _weight_norm(layer, x):
    torch.nn.utils.parametrizations.weight_norm(layer, "weight")
    layer(x)
    with torch.no_grad():
        layer.parametrizations.weight.original0.mul_(2.0)


def _dtype_round_trip(layer, x):
    other = torch.float32 if layer.weight.dtype == torch.float64 else torch.float64
    layer.to(other)
    with torch.no_grad():
        layer(x.to(other))
    layer.to(x.dtype)


CHANGES = {
    "sgd": _step(torch.optim.SGD),
    "sgd-fused": _step(torch.optim.SGD, fused=True),
    "adam-fused": _step(torch.optim.Adam, fused=True),
    "adamw-fused": _step(torch.optim.AdamW, fused=True),
    "adam-foreach": _step(torch.optim.Adam, foreach=True),
    "data-mul": _data_mul,
    "data-add": _data_add,
    "data-swap": _data_swap,
    "ema-through-data": _ema,
    "averaged-model": _averaged_model,
    "foreach-add": _foreach,
    "detach-edit": _detach_edit,
    "load-state-dict": _load_state_dict,
    "swap-parameters": _swap_parameters,
    "parametrization": _parametrization,
    "weight-norm": _weight_norm,
    "dtype-round-trip": _dtype_round_trip,
}


MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "grad": torch.enable_grad}


def _call(layer, x, mode):
    with MODES[mode]():
        return layer(x).detach().clone()


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_layer_equals_its_definition_after_every_change(cls, change, device, dtype):
    fresh = cls(3, 4, 3, stride=2, padding=1, device=device, dtype=dtype)
    x = torch.randn(2, 3, *([5] * cls._rank), device=device, dtype=dtype)
    for mode in MODES:
        layer = copy.deepcopy(fresh)
        _call(layer, x, mode)  # warm up in this mode: whatever a layer might keep between calls, it keeps now
        CHANGES[change](layer, x)
        expected = reference_forward(layer, x).detach()
        out = _call(layer, x, mode)
        torch.testing.assert_close(out, expected, **tolerance(dtype), msg=lambda m, mode=mode: f"{mode}: {m}")


@pytest.mark.parametrize("edit", ["weight", "bias"])
def test_converted_layer_follows_data_edits_of_the_plain_parameters(edit, device, dtype):
    """Edits through .data of the converted layer's parameters (its input filters, its bias) reach its output."""
    plain = nn.Conv2d(3, 5, 3, padding=1, device=device, dtype=dtype).eval()
    converted = coordconvify(copy.deepcopy(plain))
    x = torch.randn(2, 3, 6, 7, device=device, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x), **tolerance(dtype))
    plain_part = plain.weight if edit == "weight" else plain.bias
    converted_part = converted.weight[:, :3] if edit == "weight" else converted.bias  # the input filters
    for part in (plain_part, converted_part):
        part.data.mul_(3.0).add_(0.5)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x), **tolerance(dtype))
    with torch.inference_mode():
        torch.testing.assert_close(converted(x), plain(x), **tolerance(dtype))


def test_new_input_sizes_layouts_and_batches(device, dtype):
    layer = CoordConv2d(3, 4, 3, padding=1, with_r=True, device=device, dtype=dtype)
    base = torch.randn(3, 3, 6, 8, device=device, dtype=dtype)
    for x in (base, base[..., :-1], base[:1], base.contiguous(memory_format=torch.channels_last), base[0]):
        expected = reference_forward(layer, x.unsqueeze(0) if x.dim() == 3 else x).detach()
        for mode in MODES:
            out = _call(layer, x, mode)
            torch.testing.assert_close(out, expected.squeeze(0) if x.dim() == 3 else expected, **tolerance(dtype))


# ---------------------------------------------------------------------------------------------------------
# the grid cache: plain tensors only, and only for encodings that cannot change


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_call_under_fake_tensor_mode_leaves_no_fake_grid(cls):
    from torch._subclasses.fake_tensor import FakeTensorMode

    layer = cls(3, 4, 3, padding=1, dtype=torch.float64)
    shape = (2, 3, *[7, 9, 5][: cls._rank])
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = layer(torch.randn(shape, dtype=torch.float64))
    assert type(fake) is not torch.Tensor  # it ran under the fake mode
    x = torch.randn(shape, dtype=torch.float64)
    for mode in MODES:  # a real call at that size afterwards is exact
        torch.testing.assert_close(_call(layer, x, mode), reference_forward(layer, x).detach(), **tolerance(x.dtype))


def test_a_changing_encoding_is_never_served_a_stale_grid():
    from coordconv import CoordEncoding

    class Scaled(CoordEncoding):  # not a frozen dataclass: its scale is annealed during training
        def __init__(self):
            self.scale = 1.0

        def channels(self, rank):
            return rank

        def encode(self, coords):
            return coords * self.scale

    encoding = Scaled()
    layer = CoordConv2d(3, 4, 3, padding=1, encoding=encoding, dtype=torch.float64)
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    grid = coord_grid((6, 8), dtype=torch.float64).expand(2, -1, -1, -1)
    for scale in (1.0, 3.0, 0.5):
        encoding.scale = scale
        expected = F.conv2d(torch.cat([x, scale * grid], 1), layer.weight, layer.bias, padding=1)
        for mode in MODES:
            torch.testing.assert_close(_call(layer, x, mode), expected.detach(), **tolerance(x.dtype))


def test_only_immutable_encodings_key_the_grid_cache():
    from dataclasses import dataclass, field

    from coordconv import FourierEncoding, LinearEncoding, RadiusEncoding
    from coordconv._term import _immutable
    from coordconv.coords import resolve_encoding

    assert _immutable(LinearEncoding()) and _immutable(RadiusEncoding()) and _immutable(FourierEncoding())
    assert _immutable(resolve_encoding("fourier", with_r=True))

    @dataclass(frozen=True)
    class Frozen:
        scale: float = 1.0

    @dataclass(frozen=True)
    class HoldsAList:
        values: list = field(default_factory=list)

    @dataclass
    class Mutable:
        scale: float = 1.0

    assert _immutable(Frozen()) and not _immutable(HoldsAList()) and not _immutable(Mutable())
    assert not _immutable(Frozen(scale=torch.tensor(1.0)))  # a tensor field can change in place
