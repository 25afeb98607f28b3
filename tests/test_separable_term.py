"""The separable coordinate term (issue 30): exact against the concatenating definition wherever it can run.

The layers compute the linear encoding's coordinate term axis by axis on CPU (see ``coordconv._term._separable``);
these tests force that path (and the batch-1 convolution it replaces) to compare both with the definition in
every rank, for transposed layers, every padding mode, stride, dilation, groups, order and layout, gradients
included.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    FourierEncoding,
    LinearEncoding,
    _term,
)
from reference import reference_forward
from test_layers import _build, layer_cases

F64 = {"dtype": torch.float64}


@pytest.fixture
def separable(monkeypatch):
    monkeypatch.setattr(_term, "SEPARABLE", "separable")


def _linear_cases():
    """The layer cases of test_layers with the linear encoding (the one the separable path computes)."""
    return layer_cases().map(lambda c: (*c[:5], {**c[5], "encoding": "linear", "with_r": False}, *c[6:]))


@given(_linear_cases(), st.booleans())
def test_separable_equals_concatenated_reference(case, channels_last):
    _term.SEPARABLE = "separable"
    try:
        layer, x = _build(case)
        if channels_last and x.dim() in (4, 5):
            fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
            x = x.detach().contiguous(memory_format=fmt).requires_grad_(True)
        try:
            expected = reference_forward(layer, x)
        except RuntimeError:
            event("geometry refused by torch")
            with pytest.raises((RuntimeError, ValueError)):
                layer(x)
            return
        event(f"rank {layer._rank}, {'transposed' if layer.transposed else 'conv'}, groups {layer.groups > 1}")
        assert _term._separable(x, layer._grid_encoding, layer.transposed, layer.kernel_size)
        out = layer(x)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
        grad_out = torch.randn_like(expected)
        params = [x, *layer.parameters()]
        ours = torch.autograd.grad(out, params, grad_out)
        theirs = torch.autograd.grad(expected, params, grad_out)
        for name, a, b in zip(["input", *(n for n, _ in layer.named_parameters())], ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=lambda m, name=name: f"grad of {name}: {m}")
    finally:
        _term.SEPARABLE = "auto"


LAYERS = [
    lambda: CoordConv1d(3, 5, 4, stride=2, padding=3, dilation=2, padding_mode="circular", **F64),
    lambda: CoordConv2d(4, 6, (3, 5), padding="same", dilation=(2, 1), groups=2, order="xy", **F64),
    lambda: CoordConv2d(3, 8, 7, stride=2, padding=3, padding_mode="reflect", **F64),
    lambda: CoordConv3d(2, 4, 3, stride=(1, 2, 2), padding=(1, 0, 2), padding_mode="replicate", **F64),
    lambda: CoordConvTranspose1d(3, 4, 5, stride=3, padding=2, output_padding=1, dilation=2, **F64),
    lambda: CoordConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2, bias=False, **F64),
    lambda: CoordConvTranspose3d(2, 3, (2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 1), **F64),
]


@pytest.mark.parametrize("make", LAYERS)
def test_separable_gradcheck_of_the_coordinate_filters(separable, make):
    # gradients through the separable term to the whole weight (the coordinate filters are its last part)
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(2, layer.in_channels, *([5] * layer._rank), **F64)

    def f(weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    bias = layer.bias if layer.bias is not None else None
    inputs = (layer.weight.detach().requires_grad_(True), None if bias is None else bias.detach().requires_grad_(True))
    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("make", LAYERS)
def test_separable_and_convolution_paths_agree_in_float32(monkeypatch, make):
    torch.manual_seed(0)
    layer = make().float()
    x = torch.randn(3, layer.in_channels, *([9] * layer._rank))
    monkeypatch.setattr(_term, "SEPARABLE", "separable")
    a = layer(x)
    monkeypatch.setattr(_term, "SEPARABLE", "convolution")
    b = layer(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_auto_rule_chooses_the_measured_path():
    linear = LinearEncoding()
    rule = _term._separable
    assert rule(torch.empty(2, 3, 8, 8, 8), linear, False, (3, 3, 3))  # 3D: always
    assert rule(torch.empty(2, 3, 32, 32), linear, False, (3, 3))  # 3x3 from 32x32 pixels
    assert not rule(torch.empty(2, 3, 16, 16), linear, False, (3, 3))  # small 3x3: the convolution
    assert rule(torch.empty(2, 3, 16, 16), linear, True, (3, 3))  # transposed
    assert rule(torch.empty(2, 3, 14, 14), linear, False, (7, 7))  # other kernels
    assert not rule(torch.empty(2, 3, 64, 64), linear, False, (1, 1))  # 2D 1x1: the convolution (bit for bit as before)
    assert rule(torch.empty(2, 3, 14, 14), linear, True, (1, 1))  # transposed 1x1
    assert not rule(torch.empty(2, 3, 100), linear, False, (3,))  # 1D: the convolution
    radius = CoordConv2d(3, 4, 3, with_r=True)._grid_encoding
    assert not rule(torch.empty(2, 3, 64, 64), radius, False, (3, 3))  # only the linear encoding
    assert not rule(torch.empty(2, 3, 64, 64, device="meta"), linear, False, (3, 3))  # CPU only


def test_separable_factors_are_cached_and_not_shared_across_inference_mode():
    layer = CoordConv3d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 6, 7, 8)
    _term._factor_cache.clear()
    expected = layer(x)
    assert len(_term._factor_cache) == 2  # the axis factors and the 3D term's matrices built from them
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected)
    assert len(_term._factor_cache) == 4  # inference-mode tensors kept apart: they cannot enter autograd later
    layer(x).sum().backward()  # the cached, autograd-side factors still work in training
    assert layer.weight.grad is not None


@st.composite
def _pointwise_cases(draw):
    """Unpadded 2D forward 1x1 layers (the product path): every encoding, stride, groups, bias, order, layout."""
    groups = draw(st.sampled_from([1, 1, 2]))
    encoding = draw(st.sampled_from(["linear", "radius", FourierEncoding((1.0, 3.0))]))
    kwargs = {
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": draw(st.sampled_from([0, (0, 0), "valid"])),
        "padding_mode": draw(st.sampled_from(["zeros", "reflect"])),
        "groups": groups,
        "bias": draw(st.booleans()),
        "encoding": encoding,
        "with_r": encoding == "linear" and draw(st.booleans()),
        "order": draw(st.sampled_from(["ij", "xy"])),
    }
    layer = CoordConv2d(groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3)), 1, **kwargs, **F64)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    x = torch.randn(draw(st.integers(1, 3)), layer.in_channels, draw(st.integers(1, 9)), draw(st.integers(1, 9)), **F64)
    if draw(st.booleans()):
        x = x.contiguous(memory_format=torch.channels_last)
    return layer, x, draw(st.sampled_from(["no_grad", "inference_mode"]))


@given(_pointwise_cases())
def test_pointwise_term_equals_concatenated_reference_outside_autograd(case):
    layer, x, mode = case
    expected = reference_forward(layer, x)
    with torch.no_grad() if mode == "no_grad" else torch.inference_mode():
        cw = layer.coord_weight
        assert _term._pointwise(x, cw, layer.bias, layer.padding, layer._reversed_padding_repeated_twice, None)
        out = layer(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert out.is_contiguous(memory_format=_term._memory_format(x))


def test_pointwise_term_only_outside_autograd_and_in_plain_calls(monkeypatch):
    """In training (and under tracers) 1x1 layers keep the batch-1 convolution, bit for bit as before."""
    layer = CoordConv2d(4, 8, 1)
    x = torch.randn(2, 4, 16, 16)
    cw = layer.coord_weight
    args = (x, cw, layer.bias, layer.padding, None, None)
    assert not _term._pointwise(*args)  # the filters require a gradient
    with torch.no_grad():
        assert _term._pointwise(*args)
        assert not _term._pointwise(x, cw, layer.bias, (1, 1), None, None)  # padded: border pixels see zeros
        assert not _term._pointwise(x, cw[..., :1, :1].expand(8, 2, 3, 3), layer.bias, 0, None, None)  # 3x3
        assert not _term._pointwise(x.to("meta"), cw, layer.bias, 0, None, None)  # CPU only
        monkeypatch.setattr(_term, "SEPARABLE", "convolution")
        assert not _term._pointwise(*args)  # the convolution asked for everywhere
        convolved = layer(x)
        monkeypatch.setattr(_term, "SEPARABLE", "auto")
        torch.testing.assert_close(layer(x), convolved, rtol=1e-6, atol=1e-6)
    before = layer(x)
    monkeypatch.setattr(_term, "_pointwise_term", None)  # never called in training
    assert torch.equal(layer(x), before)


def test_pointwise_term_of_a_framed_layer_is_the_framed_convolution(monkeypatch):
    layer = CoordConv2d(3, 5, 1, stride=2)
    layer.frame = ((40, 8), (30, 3))
    x = torch.randn(2, 3, 11, 9)
    with torch.no_grad():
        ours = layer(x)
        monkeypatch.setattr(_term, "SEPARABLE", "convolution")
        torch.testing.assert_close(ours, layer(x), rtol=1e-6, atol=1e-6)
