"""The fused inference forward (``coordconv._term.fused_forward``): one oneDNN call for convolution and term.

Large float32 outputs computed without autograd on CPU run the convolution with the coordinate term added by
oneDNN's binary post-op. These tests lower the size threshold so that small layers take that path, and check that
it gives bit for bit what the unfused forward gives, and that everything outside its conditions keeps the unfused
forward.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from coordconv import CoordConv2d, CoordConv3d, _term
from test_layers import layer_cases

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _forward_cases():
    """test_layers' forward 2D and 3D cases with zero padding: those the fused path takes.

    ``padding="same"`` where it pads one side more than the other is left out (tested not to be taken).
    """

    def even_same(case):
        kernel, kwargs = case[3], case[4]
        totals = [d * (k - 1) for d, k in zip(kwargs["dilation"], kernel, strict=True)]
        return kwargs["padding"] != "same" or not any(t % 2 for t in totals)

    return layer_cases().filter(
        lambda c: not c[1] and c[0] in (2, 3) and c[4]["padding_mode"] == "zeros" and even_same(c)
    )


def _both(layer, x, monkeypatch):
    """The layer's output unfused and fused (threshold 1), and whether the fused path was taken."""
    taken = []
    real = _term.fused_forward

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 1 << 62)
    unfused = layer(x)
    monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 1)
    monkeypatch.setattr("coordconv.layers.fused_forward", spy)
    fused = layer(x)
    return unfused, fused, any(taken)


@given(_forward_cases(), st.sampled_from(["no_grad", "inference_mode", "frozen"]))
def test_fused_forward_is_bitwise_the_unfused_one(case, mode):
    rank, _, (cin, cout), kernel, kwargs, coord_kwargs, spatial, batch = case
    with pytest.MonkeyPatch.context() as monkeypatch:
        layer = (CoordConv2d if rank == 2 else CoordConv3d)(cin, cout, kernel, **kwargs, **coord_kwargs)
        x = torch.randn(batch, cin, *spatial)
        if mode == "frozen":  # grad mode on, but nothing requires a gradient
            layer.requires_grad_(False)
        context = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "frozen": torch.enable_grad}
        try:
            with context[mode]():
                unfused, fused, taken = _both(layer, x, monkeypatch)
        except RuntimeError:
            event("geometry refused by torch")
            return
    assert taken
    assert torch.equal(fused, unfused)


def test_fused_forward_at_its_threshold_and_unbatched_input(monkeypatch):
    torch.manual_seed(0)
    layer = CoordConv2d(4, 8, 3, padding="same", with_r=True)
    x = torch.randn(4, 9, 7)  # unbatched
    with torch.no_grad():
        monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 8 * 9 * 7)  # exactly the output's size: taken
        split = layer._split(layer.weight)
        assert _term.fused_forward(layer, x[None], *split, layer.bias) is not None
        fused = layer(x)
        monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 8 * 9 * 7 + 1)
        assert _term.fused_forward(layer, x[None], *split, layer.bias) is None
        assert torch.equal(fused, layer(x))
    assert fused.shape == (8, 9, 7)


def _taken(layer, x, monkeypatch):
    monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 1)
    calls = []
    real = _term.fused_forward
    monkeypatch.setattr("coordconv.layers.fused_forward", lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    out = layer(x)
    return calls[-1] is not None, out


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # forward AD's first use
@pytest.mark.parametrize(
    "why",
    ["grad", "channels_last", "float64", "padding_mode", "same_uneven", "compile", "forward_ad", "conv1d"],
)
def test_fused_forward_not_taken_outside_its_conditions(why, monkeypatch):
    torch.manual_seed(0)
    kwargs = {"padding": 1}
    if why == "padding_mode":
        kwargs["padding_mode"] = "reflect"
    if why == "same_uneven":
        kwargs = {"padding": "same", "kernel_size": 4}
    layer = CoordConv2d(3, 5, **{"kernel_size": 3, **kwargs})
    x = torch.randn(2, 3, 8, 6)
    if why == "conv1d":
        from coordconv import CoordConv1d

        layer, x = CoordConv1d(3, 5, 3, padding=1), torch.randn(2, 3, 8)
    if why == "float64":
        layer, x = layer.double(), x.double()
    if why == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if why == "grad":
        taken, _ = _taken(layer, x, monkeypatch)
        assert not taken
        return
    if why == "compile":
        monkeypatch.setattr(_term, "_FUSED_MIN_NUMEL", 1)
        compiled = torch.compile(layer, backend="eager", fullgraph=True)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), layer(x), rtol=0, atol=1e-6)
        return
    if why == "forward_ad":
        import torch.autograd.forward_ad as fwAD

        with torch.no_grad(), fwAD.dual_level():
            taken, out = _taken(layer, fwAD.make_dual(x, torch.ones_like(x)), monkeypatch)
            assert fwAD.unpack_dual(out).tangent is not None
        assert not taken
        return
    with torch.no_grad():
        taken, _ = _taken(layer, x, monkeypatch)
    assert not taken
