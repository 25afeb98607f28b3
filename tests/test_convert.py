import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from coordconv import CoordConv1d, CoordConv2d, CoordConvTranspose2d, coordconvify


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.norm(self.conv(x)) + x)


class SmallNet(nn.Module):
    """Not a Sequential: nested blocks, a ModuleDict, a transposed conv and a 1D branch."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.heads = nn.ModuleDict({"up": nn.ConvTranspose2d(8, 4, 2, stride=2), "seq": nn.Conv1d(8, 2, 3)})

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.heads["up"](h), self.heads["seq"](h.mean(dim=2))


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_converted_model_computes_the_same_function():
    model = SmallNet().eval()
    x = torch.randn(2, 3, 16, 20)
    before = _outputs(model, x)
    params_before = dict(model.named_parameters())
    assert coordconvify(model) is model
    after = _outputs(model, x)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert isinstance(model.stem, CoordConv2d)
    assert all(isinstance(b.conv, CoordConv2d) for b in model.blocks)
    assert isinstance(model.heads["up"], CoordConvTranspose2d) and isinstance(model.heads["seq"], CoordConv1d)
    # the biases (and every other Parameter) are kept; each converted weight is a new Parameter that holds the
    # old filters followed by zero coordinate filters
    for name, p in model.named_parameters():
        if name.endswith("weight") and hasattr(model.get_submodule(name.rpartition(".")[0]), "coord_channels"):
            input_weight, coord_weight = model.get_submodule(name.rpartition(".")[0])._split(p)
            assert torch.equal(input_weight, params_before[name]) and not coord_weight.any()
        else:
            assert p is params_before[name]


def test_gradients_reach_the_coordinate_filters():
    model = coordconvify(SmallNet())
    up, seq = model(torch.randn(2, 3, 16, 20))
    (up.square().mean() + seq.square().mean()).backward()
    layers = [m for m in model.modules() if hasattr(m, "coord_channels")]
    assert len(layers) == 5
    assert all(m._split(m.weight.grad)[1].abs().sum() > 0 for m in layers)


def test_training_mode_and_device_dtype_are_kept():
    model = SmallNet().double().eval()
    coordconvify(model)
    assert not model.stem.training
    assert model.stem.coord_weight.dtype == torch.float64


@pytest.mark.parametrize(
    ("where", "converted"),
    [
        ("stem", {"stem"}),
        ("blocks.*", {"blocks.0.conv", "blocks.1.conv"}),
        (["stem", "heads.up"], {"stem", "heads.up"}),
        (lambda name, m: isinstance(m, nn.Conv1d), {"heads.seq"}),
        (lambda name, m: m.kernel_size == (3, 3) and m.stride == (1, 1), {"blocks.0.conv", "blocks.1.conv"}),
    ],
)
def test_selection(where, converted):
    model = coordconvify(SmallNet(), where=where)
    assert {n for n, m in model.named_modules() if hasattr(m, "coord_weight")} == converted


def test_first_only_and_options():
    model = coordconvify(SmallNet(), first_only=True, with_r=True, order="xy")
    assert {n for n, m in model.named_modules() if hasattr(m, "coord_weight")} == {"stem"}
    assert model.stem.with_r and model.stem.order == "xy" and model.stem.coord_channels == 3
    model = coordconvify(SmallNet(), where="blocks.*", first_only=True, encoding="fourier")
    assert {n for n, m in model.named_modules() if hasattr(m, "coord_weight")} == {"blocks.0.conv"}


def test_shared_convolution_is_converted_once_everywhere():
    conv = nn.Conv2d(3, 3, 1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    coordconvify(model)
    assert model[0] is model[2] and isinstance(model[0], CoordConv2d)


def test_bare_convolution_is_returned_converted():
    conv = nn.Conv2d(3, 4, 3)
    twin = coordconvify(conv)
    assert isinstance(twin, CoordConv2d) and torch.equal(twin.weight[:, :3], conv.weight) and twin.bias is conv.bias


def test_subclasses_and_coordconv_layers_are_left_alone():
    class StdConv2d(nn.Conv2d):
        def forward(self, x):
            w = (self.weight - self.weight.mean()) / self.weight.std()
            return self._conv_forward(x, w, self.bias)

    model = nn.Sequential(StdConv2d(3, 3, 1), CoordConv2d(3, 3, 1), nn.Conv2d(3, 3, 1))
    coordconvify(model)
    assert type(model[0]) is StdConv2d and type(model[1]) is CoordConv2d and type(model[2]) is CoordConv2d
    with pytest.raises(ValueError, match=r"found no nn\.Conv"):
        coordconvify(nn.Sequential(StdConv2d(3, 3, 1)))


def test_errors():
    with pytest.raises(ValueError, match=r"no nn.Conv\*d / nn.ConvTranspose\*d layer matching where='tail\*'"):
        coordconvify(SmallNet(), where="tail*")
    with pytest.raises(ValueError, match="found no"):
        coordconvify(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match=r"where must be"):
        coordconvify(SmallNet(), where=3)
    with pytest.raises(TypeError, match=r"expects an nn\.Module, got Tensor"):
        coordconvify(torch.zeros(1))
    with pytest.raises(ValueError, match=r"cannot convert 0: run a forward pass"):
        coordconvify(nn.Sequential(nn.LazyConv2d(3, 3)))
    with pytest.raises(ValueError, match="cannot convert 0: parametrized"):
        coordconvify(nn.Sequential(parametrizations.weight_norm(nn.Conv2d(3, 3, 1))))
    with pytest.raises(ValueError, match="unknown coordinate encoding"):
        coordconvify(SmallNet(), encoding="nope")


def test_converted_model_state_dict_loads_plain_checkpoint():
    plain = SmallNet()
    model = coordconvify(copy.deepcopy(plain))
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "coord_channels"):
                m.weight.normal_()
    model.load_state_dict(plain.state_dict())  # strict: each plain weight gets zero coordinate filters
    x = torch.randn(2, 3, 16, 20)
    for a, b in zip(_outputs(model.eval(), x), _outputs(plain.eval(), x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_torchvision_resnet18():
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    net = models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 80)
    before = _outputs(net, x)
    coordconvify(net)
    assert sum(isinstance(m, CoordConv2d) for m in net.modules()) == 20
    torch.testing.assert_close(_outputs(net, x), before, rtol=1e-5, atol=1e-5)
    net.train()
    net(x).square().mean().backward()
    assert net.conv1.weight.grad[:, 3:].abs().sum() > 0  # the coordinate filters
    assert net.layer4[1].conv2.weight.grad[:, 512:].abs().sum() > 0


def test_hooks_of_a_converted_convolution_are_kept():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    conv = model[0]
    seen = []
    handles = [
        conv.register_forward_pre_hook(lambda m, args: seen.append(("pre", type(m).__name__))),
        conv.register_forward_hook(lambda m, args, out: seen.append(("post", type(m).__name__))),
        conv.register_forward_pre_hook(lambda m, args, kwargs: seen.append(("pre-kw", len(kwargs))), with_kwargs=True),
        conv.register_full_backward_hook(lambda m, gi, go: seen.append(("backward", type(m).__name__))),
        conv.register_forward_hook(lambda m, args, out: out * 2.0),  # a hook that changes the output
    ]
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    expected = model(x)
    seen.clear()
    coordconvify(model)
    out = model(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert seen == [("pre", "CoordConv2d"), ("pre-kw", 0), ("post", "CoordConv2d"), ("backward", "CoordConv2d")]
    for handle in handles:  # the handles returned at registration still remove them
        handle.remove()
    seen.clear()
    torch.testing.assert_close(model(x), expected / 2.0)
    assert seen == []


def test_an_optimizer_made_before_coordconvify_gets_a_warning():
    """coordconvify replaces each converted weight: an optimizer made before would not train those layers."""
    import warnings

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    before = torch.optim.Adam(net.parameters())
    with pytest.warns(UserWarning, match=r"replaced the weight of 0, which a Adam created before holds") as caught:
        coordconvify(net, first_only=True)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller's line
    del before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no optimizer holds a replaced weight now: no warning
        coordconvify(net, where="2")
        torch.optim.Adam(net.parameters())  # made after: trains every layer
