"""PyTorch's whole-model tools on CoordConv layers: torch.fx, feature extraction, BatchNorm fusion, jit, export."""

import copy
import warnings

import pytest
import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval as torch_fuse_conv_bn_eval

from coordconv import (
    AddCoords,
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    CoordEncoding,
    coordconvify,
    fuse_conv_bn_eval,
)
from reference import tolerance

CLASSES = [CoordConv1d, CoordConv2d, CoordConv3d, CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d]
BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
# torch 2.14 deprecates TorchScript; the tests of jit.trace / jit.script still check what they do
jit_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")


def _model(device=None, dtype=None):
    kw = {"device": device, "dtype": dtype}
    return nn.Sequential(
        CoordConv2d(3, 8, 3, padding=1, with_r=True, **kw),
        nn.ReLU(),
        CoordConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2, **kw),
        CoordConv2d(4, 4, 3, padding=1, padding_mode="reflect", encoding="fourier", with_r=True, order="xy", **kw),
        AddCoords(2),
    )


# ---------------------------------------------------------------------------------------------------------
# torch.fx


def test_fx_symbolic_trace_equals_eager_at_other_sizes(device, dtype):
    model = _model(device, dtype)
    traced = torch.fx.symbolic_trace(model)
    for shape in [(2, 3, 8, 8), (1, 3, 5, 9), (3, 3, 1, 4)]:
        x = torch.randn(shape, device=device, dtype=dtype)
        torch.testing.assert_close(traced(x), model(x), **tolerance(dtype))
    # the traced graph calls the coordinate term as one function: no control flow was baked in
    targets = {getattr(node.target, "__name__", node.target) for node in traced.graph.nodes}
    assert {"add_coord_term", "batched", "like_input", "add_coords"} <= targets


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fx_trace_of_every_layer_takes_unbatched_and_other_sizes(cls):
    layer = cls(2, 3, 3, stride=2, padding=1, dtype=torch.float64)
    traced = torch.fx.symbolic_trace(layer)
    for spatial in (5, 8):
        x = torch.randn(2, *([spatial] * cls._rank), dtype=torch.float64)  # unbatched
        torch.testing.assert_close(traced(x), layer(x))
        torch.testing.assert_close(traced(x[None]), layer(x[None]))


def test_fx_trace_refuses_an_encoding_it_cannot_record():
    class Squares(CoordEncoding):  # a valid encoding, but not a dataclass: FX cannot put it in a graph
        def channels(self, rank):
            return rank

        def encode(self, coords):
            return coords.square()

    with pytest.raises(TypeError, match=r"needs the coordinate encoding to be a dataclass.*Squares"):
        torch.fx.symbolic_trace(CoordConv2d(2, 3, 3, encoding=Squares()))


def test_feature_extraction_from_a_converted_torchvision_model():
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.feature_extraction import create_feature_extractor

    model = coordconvify(torchvision.models.resnet18(num_classes=10)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CoordConv2d):
                m.coord_weight.normal_(std=0.1)  # a view of weight
    extractor = create_feature_extractor(model, {"layer1": "early", "layer4": "late", "fc": "logits"})
    seen = {}
    hooks = [
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
        for name in ("layer1", "layer4", "fc")
    ]
    for shape in [(2, 3, 64, 64), (1, 3, 48, 80)]:
        x = torch.randn(shape)
        with torch.no_grad():
            features = extractor(x)
            model(x)
        for ours, theirs in (("early", "layer1"), ("late", "layer4"), ("logits", "fc")):
            torch.testing.assert_close(features[ours], seen[theirs])
    for hook in hooks:
        hook.remove()


# ---------------------------------------------------------------------------------------------------------
# BatchNorm fusion


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fuse_conv_bn_eval_of_every_class(cls, groups, bias, device, dtype):
    conv = cls(4, 6, 3, padding=1, groups=groups, bias=bias, with_r=True, device=device, dtype=dtype).eval()
    bn = BATCHNORM[cls._rank](6, device=device, dtype=dtype).eval()
    with torch.no_grad():
        for t in (conv.weight, bn.weight, bn.bias, bn.running_mean):
            t.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, *([5] * cls._rank), device=device, dtype=dtype)
    fused = fuse_conv_bn_eval(conv, bn)
    assert type(fused) is cls and fused.bias is not None
    with torch.no_grad():
        torch.testing.assert_close(fused(x), bn(conv(x)), **tolerance(dtype))


@pytest.mark.parametrize("cls", [nn.Conv2d, nn.ConvTranspose3d])
def test_fuse_conv_bn_eval_of_plain_layers_matches_torch(cls):
    conv = cls(4, 6, 3, padding=1).eval()
    bn = BATCHNORM[conv.weight.dim() - 2](6).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 4, *([5] * (conv.weight.dim() - 2)))
    transpose = cls is nn.ConvTranspose3d
    with torch.no_grad():
        ours, theirs = fuse_conv_bn_eval(conv, bn)(x), torch_fuse_conv_bn_eval(conv, bn, transpose=transpose)(x)
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(ours, bn(conv(x)))


def test_torch_fusion_helpers_on_coordconv():
    """torch's own fusion helpers on CoordConv layers: exact (the coordinate filters are part of weight), or refuse."""
    model = nn.Sequential(CoordConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)).eval()
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.fill_(4.0)
    x = torch.randn(2, 3, 6, 6)
    with pytest.raises(AssertionError, match="did not find fuser method"):
        torch.ao.quantization.fuse_modules(copy.deepcopy(model), [["0", "1"]])
    from torch.fx.experimental.optimization import fuse

    with torch.no_grad():
        torch.testing.assert_close(fuse(copy.deepcopy(model))(x), model(x))
        torch.testing.assert_close(torch_fuse_conv_bn_eval(model[0], model[1])(x), model(x))
        torch.testing.assert_close(fuse_conv_bn_eval(model[0], model[1])(x), model(x))


def test_fuse_conv_bn_eval_errors():
    conv, bn = CoordConv2d(3, 8, 3), nn.BatchNorm2d(8)
    with pytest.raises(ValueError, match=r"eval mode.*conv\.training=True"):
        fuse_conv_bn_eval(conv, bn.eval())
    with pytest.raises(ValueError, match="bn has 4 features but conv has 8"):
        fuse_conv_bn_eval(conv.eval(), nn.BatchNorm2d(4).eval())
    with pytest.raises(ValueError, match="running statistics"):
        fuse_conv_bn_eval(conv.eval(), nn.BatchNorm2d(8, track_running_stats=False).eval())
    with pytest.raises(TypeError, match="expects a BatchNorm as bn, got Linear"):
        fuse_conv_bn_eval(conv.eval(), nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expects a convolution as conv, got Linear"):
        fuse_conv_bn_eval(nn.Linear(2, 2), bn.eval())


# ---------------------------------------------------------------------------------------------------------
# TorchScript and torch.export


@jit_deprecated
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_jit_trace_passes_its_check_and_equals_eager(cls):
    layer = cls(3, 4, 3, stride=2, padding=1, with_r=True)
    x = torch.randn(2, 3, *([6] * cls._rank))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(layer, x)  # check_trace=True: torch reruns the trace and compares the graphs
    # no "the trace might not generalize" warning from our code: what it reads as constants changes no value
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)], [str(w.message) for w in caught]
    other = torch.randn_like(x)
    torch.testing.assert_close(traced(other), layer(other))
    # the trace generalises to other sizes, size-1 axes included (the legacy ONNX exporter traces the same way;
    # a divisor frozen at the traced size once gave NaN coordinates on a size-1 axis)
    for sizes in [(1,) * cls._rank, (9, 1, 4)[: cls._rank], (2, 5, 1)[: cls._rank]]:
        other = torch.randn(3, 3, *sizes)
        torch.testing.assert_close(traced(other), layer(other))


@jit_deprecated
def test_jit_script_refuses_with_a_clear_message():
    with pytest.raises(TypeError, match=r"torch.jit.script does not support CoordConv2d.*torch.jit.trace"):
        torch.jit.script(nn.Sequential(nn.Conv2d(3, 3, 1), CoordConv2d(3, 4, 3)))


@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d, CoordConv3d], ids=lambda c: c.__name__)
def test_torch_export_with_dynamic_sizes(cls):
    from torch.export import Dim, export

    layer = cls(3, 4, 3, padding=1, with_r=True).eval()
    rank = cls._rank
    x = torch.randn(2, 3, *([8] * rank))
    dims = {0: Dim("batch"), **{2 + k: Dim(f"s{k}", min=2, max=64) for k in range(rank)}}
    program = export(layer, (x,), dynamic_shapes={"input": dims})
    for shape in [(1, 3, *([5] * rank)), (3, 3, *range(7, 7 + rank))]:
        y = torch.randn(shape)
        torch.testing.assert_close(program.module()(y), layer(y), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# old-style weight norm


@pytest.mark.parametrize("hook", ["weight_norm", "spectral_norm"])
def test_coordconvify_refuses_old_style_weight_hooks_naming_the_module(hook):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in torch 2.14: the point of this test
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), getattr(nn.utils, hook)(nn.Conv2d(4, 4, 3)))
    with pytest.raises(ValueError, match=r"cannot convert 2: the weight of Conv2d is computed by .*remove"):
        coordconvify(model)
    converted = coordconvify(model, where="0")  # the others still convert
    assert isinstance(converted[0], CoordConv2d)


# quantization (issue 27)
quantization_deprecated = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@quantization_deprecated
@pytest.mark.parametrize("transposed", [False, True])
def test_fx_quantization_leaves_coordconv_layers_in_floating_point(transposed):
    # before: convert_fx failed with KeyError '_0_weight' (CoordConv2d) or an observer fed a list (transposed)
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(0)
    layer = CoordConvTranspose2d(4, 8, 3, padding=1) if transposed else CoordConv2d(4, 8, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), layer, nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 10, 12)
    mapping = get_default_qconfig_mapping("x86")
    if transposed:
        # the x86 mapping gives a subclass of nn.ConvTranspose2d the global per-channel qconfig, which torch's
        # own check refuses for transposed convolutions before any tracing: set it to None (left in float)
        mapping.set_object_type(CoordConvTranspose2d, None)
    prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
    for _ in range(4):
        prepared(torch.randn(2, 3, 10, 12))
    quantized = convert_fx(prepared)
    assert isinstance(quantized.get_submodule("1"), type(layer))  # the layer itself, in floating point
    assert quantized.get_submodule("0")._get_name() == "QuantizedConv2d"  # the rest quantized
    expected = model(x)
    out = quantized(x)
    assert (out - expected).abs().max() < 0.05 * expected.abs().max()
    # at another size too: the layer is called, not traced
    y = torch.randn(1, 3, 7, 9)
    assert (quantized(y) - model(y)).abs().max() < 0.05 * model(y).abs().max()


@quantization_deprecated
def test_fx_quantization_with_coordconv_set_to_none():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(0)
    model = nn.Sequential(CoordConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 10, 12)
    mapping = get_default_qconfig_mapping("x86").set_object_type(CoordConv2d, None)
    prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
    prepared(x)
    quantized = convert_fx(prepared)
    expected = model(x)
    assert (quantized(x) - expected).abs().max() < 0.05 * expected.abs().max()


@quantization_deprecated
def test_eager_quantization_error_says_how_to_fix():
    from torch.ao.quantization import QuantStub, convert, get_default_qconfig, prepare

    model = nn.Sequential(QuantStub(), CoordConv2d(3, 8, 3, padding=1)).eval()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    prepared(torch.randn(2, 3, 8, 8))
    quantized = convert(prepared)
    with pytest.raises(TypeError, match=r"got dtype torch\.quint8 .*DeQuantStub before the layer"):
        quantized(torch.randn(2, 3, 8, 8))
    # the fix the message names: dequantize before the layer
    from torch.ao.quantization import DeQuantStub

    torch.manual_seed(0)
    fixed = nn.Sequential(QuantStub(), nn.Conv2d(3, 3, 1), DeQuantStub(), CoordConv2d(3, 8, 3, padding=1)).eval()
    fixed.qconfig = get_default_qconfig("x86")
    fixed[3].qconfig = None
    prepared = prepare(copy.deepcopy(fixed))
    x = torch.randn(2, 3, 8, 8)
    prepared(x)
    out = convert(prepared)(x)
    assert (out - fixed(x)).abs().max() < 0.05 * fixed(x).abs().max()


def test_pt2e_quantization_is_not_in_torch():
    # the tools page says PT2E quantization moved to torchao; this fails once torch ships it again
    import importlib.util

    assert importlib.util.find_spec("torch.ao.quantization.quantize_pt2e") is None


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
@pytest.mark.parametrize("cls", CLASSES)
def test_optimize_for_inference_equals_eager(cls):
    # before: TypeError "CoordConv2d expects a torch.Tensor, got Proxy" (it traces again what its fuse traced)
    from torch.fx.experimental.optimization import optimize_for_inference

    torch.manual_seed(0)
    rank = cls._rank
    model = nn.Sequential(cls(3, 4, 3, padding=1), BATCHNORM[rank](4), nn.ReLU()).eval()
    optimized = optimize_for_inference(model)
    for size in (6, 9):
        x = torch.randn(2, 3, *([size] * rank))
        torch.testing.assert_close(optimized(x), model(x), atol=1e-6, rtol=1e-6)
    # a traced model traced again records the layer's calls, at any size
    layer = model[0]
    retraced = torch.fx.symbolic_trace(torch.fx.symbolic_trace(layer))
    x = torch.randn(3, *([7] * rank))  # unbatched
    torch.testing.assert_close(retraced(x), layer(x))


@pytest.mark.parametrize("name", ["weight", "bias"])
def test_coordconvify_refuses_a_pruned_conv_naming_prune_remove(name):
    # before: refused, blaming weight_norm / spectral_norm
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    prune.l1_unstructured(model[2], name, 0.5)
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    match = rf"cannot convert 2: Conv2d is pruned \(torch.nn.utils.prune, L1Unstructured\).*remove\(module, '{name}'\)"
    with pytest.raises(ValueError, match=match):
        coordconvify(model)
    assert type(model[0]) is nn.Conv2d  # refused before anything was converted
    # the way out the message names: the pruned zeros stay, the output is preserved
    prune.remove(model[2], name)
    pruned = getattr(model[2], name).detach().clone()
    assert (pruned == 0).sum() == pruned.numel() // 2
    converted = coordconvify(model)
    layer = converted[2]
    assert isinstance(layer, CoordConv2d)
    assert torch.equal(layer._split(layer.weight)[0] if name == "weight" else layer.bias, pruned)
    torch.testing.assert_close(converted(x), expected)


@pytest.mark.parametrize("use_reentrant", [True, False])
@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d])
def test_activation_checkpointing_gradients_equal(cls, use_reentrant):
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    model = nn.Sequential(cls(3, 4, 3, padding=1), nn.ReLU(), cls(4, 2, 3, padding=1))
    x = torch.randn(2, 3, 9, 7)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    outs, grads = [], []
    for xi, run in zip(xs, [model, lambda t: checkpoint(model, t, use_reentrant=use_reentrant)], strict=True):
        model.zero_grad(set_to_none=True)
        out = run(xi)
        out.square().sum().backward()  # reentrant checkpointing does not support autograd.grad
        outs.append(out.detach())
        grads.append([xi.grad, *(p.grad for p in model.parameters())])
    assert torch.equal(outs[0], outs[1])
    for a, b in zip(grads[0], grads[1], strict=True):
        assert torch.equal(a, b)
