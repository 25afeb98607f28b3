"""Code written for ``nn.ConvNd`` that rescales or copies ``weight`` and ``bias``: exact on CoordConv layers, or loud.

The coordinate filters are part of ``weight``, so whatever rescales ``weight`` per output channel (BatchNorm
folding in detection frameworks and in torch) rescales them too, and whatever copies ``weight`` into a plain
convolution of ``in_channels`` inputs fails on the shape. The patterns are written out here as the frameworks
write them (mmcv's ``_fuse_conv_bn`` and ``efficient_conv_bn_eval_forward``, ultralytics' ``fuse_conv_and_bn`` /
``fuse_deconv_and_bn``, yolov5's copy into a new ``nn.Conv2d``), so that these tests need only torch; a test at the
end runs the real ultralytics where it is installed.
"""

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval as torch_fuse_conv_bn_eval
from torch.nn.utils.fusion import fuse_conv_bn_weights

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    coord_grid,
)

F64 = {"dtype": torch.float64}
FORWARD = [CoordConv1d, CoordConv2d, CoordConv3d]
TRANSPOSED = [CoordConvTranspose1d, CoordConvTranspose2d, CoordConvTranspose3d]
BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
PLAIN = {CoordConv1d: nn.Conv1d, CoordConv2d: nn.Conv2d, CoordConv3d: nn.Conv3d}
PLAIN_T = {CoordConvTranspose1d: nn.ConvTranspose1d, CoordConvTranspose2d: nn.ConvTranspose2d}
PLAIN_T[CoordConvTranspose3d] = nn.ConvTranspose3d
name = lambda c: c.__name__  # noqa: E731


def _conv_and_bn(cls, groups, bias=True):
    torch.manual_seed(0)
    conv = cls(4, 6, 3, padding=1, groups=groups, bias=bias, with_r=True, **F64).eval()
    bn = BATCHNORM[cls._rank](6, **F64).eval()
    with torch.no_grad():
        conv.weight.normal_()  # coordinate filters of unit scale, as after training
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.25, 4.0)
    x = torch.randn(2, 4, *([6] * cls._rank), **F64)
    with torch.no_grad():
        expected = bn(conv(x))
    return conv, bn, x, expected


# ---------------------------------------------------------------------------------------------------------
# per-output-channel rescaling of weight and bias: exact


def _mmcv_fuse_conv_bn(conv, bn):
    """mmcv.cnn.utils.fuse_conv_bn._fuse_conv_bn (mmcv 2.2), for any rank: rescales ``conv`` in place."""
    conv_w = conv.weight
    conv_b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight = nn.Parameter(conv_w * factor.reshape([conv.out_channels] + [1] * (conv_w.dim() - 1)))
    conv.bias = nn.Parameter((conv_b - bn.running_mean) * factor + bn.bias)
    return conv


def _ultralytics_fuse_conv_and_bn(conv, bn):
    """ultralytics.utils.torch_utils.fuse_conv_and_bn (8.4): torch's fuse_conv_bn_weights, assigned in place."""
    conv.weight, conv.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return conv.requires_grad_(False)


def _ultralytics_fuse_deconv_and_bn(deconv, bn):
    """ultralytics.utils.torch_utils.fuse_deconv_and_bn (8.4): each group's rows viewed in the Conv layout."""
    g, (ci, co, *k) = deconv.groups, deconv.weight.shape
    weight = deconv.weight.view(g, ci // g, co, *k).transpose(1, 2).reshape(g * co, ci // g, *k)
    weight, deconv.bias = fuse_conv_bn_weights(
        weight, deconv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    deconv.weight = nn.Parameter(weight.view(g, co, ci // g, *k).transpose(1, 2).reshape(ci, co, *k))
    return deconv.requires_grad_(False)


def _inplace_data_rescale(conv, bn):
    """Rescaling through ``.data`` and ``mul_``, as hand-written fusion scripts do."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.data.mul_(scale.view(-1, *[1] * (conv.weight.dim() - 1)))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return conv


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("fuse", [_mmcv_fuse_conv_bn, _ultralytics_fuse_conv_and_bn, _inplace_data_rescale])
@pytest.mark.parametrize("cls", FORWARD, ids=name)
def test_per_channel_rescaling_in_place_is_exact(cls, fuse, groups, bias):
    conv, bn, x, expected = _conv_and_bn(cls, groups, bias)
    with torch.no_grad():
        fused = fuse(conv, bn)
        torch.testing.assert_close(fused(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", TRANSPOSED, ids=name)
def test_per_channel_rescaling_of_transposed_layers_is_exact(cls, groups):
    conv, bn, x, expected = _conv_and_bn(cls, groups)
    with torch.no_grad():
        torch.testing.assert_close(_ultralytics_fuse_deconv_and_bn(copy.deepcopy(conv), bn)(x), expected)
        if groups == 1:  # torch's transpose=True scales dim 1 by all output channels: groups == 1 only, as for torch
            fused = torch_fuse_conv_bn_eval(conv, bn, transpose=True)
            torch.testing.assert_close(fused(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", FORWARD, ids=name)
def test_torch_fuse_conv_bn_eval_is_exact(cls, groups):
    conv, bn, x, expected = _conv_and_bn(cls, groups)
    with torch.no_grad():
        fused = torch_fuse_conv_bn_eval(conv, bn)
        assert type(fused) is cls
        torch.testing.assert_close(fused(x), expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# _conv_forward(x, weight, bias): the layer with those parameters


def _efficient_conv_bn_eval_forward(bn, conv, x):
    """mmengine.model.efficient_conv_bn_eval.efficient_conv_bn_eval_forward (mmcv 2.0.1's), verbatim in substance."""
    bias_on_the_fly = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_var)
    weight_coeff = torch.rsqrt(bn.running_var + bn.eps).reshape([-1] + [1] * (len(conv.weight.shape) - 1))
    coefff_on_the_fly = bn.weight.view_as(weight_coeff) * weight_coeff
    weight_on_the_fly = conv.weight * coefff_on_the_fly
    bias_on_the_fly = bn.bias + coefff_on_the_fly.flatten() * (bias_on_the_fly - bn.running_mean)
    return conv._conv_forward(x, weight_on_the_fly, bias_on_the_fly)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", FORWARD, ids=name)
def test_conv_forward_with_other_parameters(cls, groups, bias):
    conv, bn, x, expected = _conv_and_bn(cls, groups, bias)
    torch.testing.assert_close(_efficient_conv_bn_eval_forward(bn, conv, x).detach(), expected)
    # and with gradients, as mmcv uses it in training (the coordinate filters get theirs)
    conv.weight.grad = None
    _efficient_conv_bn_eval_forward(bn, conv, x).square().sum().backward()
    assert conv.weight.grad[:, 4 // groups :].abs().sum() > 0  # the coordinate filters


@pytest.mark.parametrize("cls", FORWARD, ids=name)
def test_conv_forward_refuses_a_weight_without_coordinate_filters(cls):
    conv = cls(4, 6, 3, **F64)
    plain = PLAIN[cls](4, 6, 3, **F64)
    x = torch.randn(2, 4, *([5] * cls._rank), **F64)
    with pytest.raises(ValueError, match=r"plain convolution's shape.*coordconv\.fuse_conv_bn_eval"):
        conv._conv_forward(x, plain.weight, plain.bias)


# ---------------------------------------------------------------------------------------------------------
# copies into a plain convolution of in_channels inputs: they fail on the shape


def _yolov5_fuse_conv_and_bn(conv, bn):
    """yolov5 / ultralytics 8.0-8.3: a new nn.Conv2d built from the layer's attributes, weight copied into it."""
    fusedconv = (
        nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=True,
            dtype=conv.weight.dtype,
        )
        .requires_grad_(False)
        .to(conv.weight.device)
    )
    w_conv = conv.weight.view(conv.out_channels, -1)
    w_bn = torch.diag(bn.weight.div(torch.sqrt(bn.eps + bn.running_var)))
    fusedconv.weight.copy_(torch.mm(w_bn, w_conv).view(fusedconv.weight.shape))
    return fusedconv


def _plain_copy(conv, plain_cls):
    """A plain twin built from the layer's attributes, its state dict or weight copied in."""
    kwargs = {"groups": conv.groups, "dtype": conv.weight.dtype}
    twin = plain_cls(conv.in_channels, conv.out_channels, conv.kernel_size, **kwargs)
    twin.load_state_dict(conv.state_dict())
    return twin


@pytest.mark.parametrize("groups", [1, 2])
def test_copy_into_a_new_conv2d_fails_on_the_shape(groups):
    conv, bn, _, _ = _conv_and_bn(CoordConv2d, groups)
    with torch.no_grad(), pytest.raises(RuntimeError, match="is invalid for input of size"):
        _yolov5_fuse_conv_and_bn(conv, bn)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", FORWARD + TRANSPOSED, ids=name)
def test_plain_twin_from_attributes_refuses_the_weight(cls, groups):
    conv = cls(4, 6, 3, groups=groups, **F64)
    plain_cls = PLAIN.get(cls) or PLAIN_T[cls]
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        _plain_copy(conv, plain_cls)
    with pytest.raises(RuntimeError, match="must match the size"), torch.no_grad():
        plain_cls(conv.in_channels, conv.out_channels, conv.kernel_size, groups=groups, **F64).weight.copy_(conv.weight)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.utils.mkldnn is built on deprecated TorchScript
@pytest.mark.parametrize("cls", FORWARD, ids=name)
def test_to_mkldnn_fails_at_the_first_call(cls):
    """torch.utils.mkldnn.to_mkldnn copies weight into its own convolution of the plain layer: wrong channels."""
    from torch.utils.mkldnn import to_mkldnn

    model = to_mkldnn(nn.Sequential(cls(3, 4, 3, padding=1)).eval())
    x = torch.randn(2, 3, *([6] * cls._rank))
    with pytest.raises(RuntimeError, match=r"expected input.*to have \d+ channels, but got 3"):
        model(x.to_mkldnn())


# ---------------------------------------------------------------------------------------------------------
# checkpoints: this version's, earlier development versions' (coord_weight apart), plain and concatenated ones


def _old_format_output(cls, state, x, groups, with_r):
    """The layer of an earlier version: conv(x, W, groups) + conv(grid, W_c) + b, W_c dense over groups."""
    rank = cls._rank
    grid = coord_grid(x.shape[2:], with_r=with_r, **F64).unsqueeze(0)
    if cls in TRANSPOSED:
        conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
        plain = conv(x, state["weight"], None, 2, 1, 1, groups)
        return plain + conv(grid, state["coord_weight"], state["bias"], 2, 1, 1, 1)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    return conv(x, state["weight"], None, 2, 1, 1, groups) + conv(grid, state["coord_weight"], state["bias"], 2, 1)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", FORWARD + TRANSPOSED, ids=name)
def test_checkpoints_with_coord_weight_apart_load(cls, groups):
    rank, d = cls._rank, cls._rank + 1
    kwargs = {"stride": 2, "padding": 1, "groups": groups, "with_r": True, **F64}
    if cls in TRANSPOSED:
        kwargs["output_padding"] = 1
        shapes = {"weight": (4, 6 // groups, *[3] * rank), "coord_weight": (d, 6, *[3] * rank)}
    else:
        shapes = {"weight": (6, 4 // groups, *[3] * rank), "coord_weight": (6, d, *[3] * rank)}
    old = {key: torch.randn(shape, **F64) for key, shape in shapes.items()} | {"bias": torch.randn(6, **F64)}
    layer = cls(4, 6, 3, **kwargs)
    layer.load_state_dict(old)  # strict
    x = torch.randn(2, 4, *([5] * rank), **F64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _old_format_output(cls, old, x, groups, True))
    if groups == 1 or cls in FORWARD:
        torch.testing.assert_close(layer.coord_weight, old["coord_weight"], rtol=0, atol=0)


@pytest.mark.parametrize("cls", FORWARD + TRANSPOSED, ids=name)
def test_concatenated_checkpoints_of_other_implementations_load(cls):
    """A plain conv over cat([x, coords]) (how other CoordConv code stores it) loads as it is, strictly."""
    rank = cls._rank
    plain_cls = PLAIN.get(cls) or PLAIN_T[cls]
    theirs = plain_cls(4 + rank, 6, 3, padding=1, **F64)
    layer = cls(4, 6, 3, padding=1, **F64)
    layer.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, *([5] * rank), **F64)
    coords = coord_grid(x.shape[2:], **F64).expand(2, *[-1] * (rank + 1))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), theirs(torch.cat([x, coords], 1)))


def test_old_pickled_layer_is_converted_on_load():
    """A layer pickled whole by an earlier version has coord_weight as a Parameter of its own: joined on load."""
    layer = CoordConv2d(3, 4, 3, padding=1, **F64)
    old = copy.deepcopy(layer)
    input_weight, coord_weight = (t.detach().clone() for t in layer._split(layer.weight))
    state = old.__getstate__()
    state["_parameters"] = {
        "weight": nn.Parameter(input_weight),
        "bias": old.bias,
        "coord_weight": nn.Parameter(coord_weight),
    }
    restored = CoordConv2d.__new__(CoordConv2d)
    restored.__setstate__(state)
    x = torch.randn(2, 3, 5, 6, **F64)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), layer(x), rtol=0, atol=0)
    assert [n for n, _ in restored.named_parameters()] == ["weight", "bias"]


# ---------------------------------------------------------------------------------------------------------
# the real packages, where installed


def test_ultralytics_detection_model_fuse_is_exact():
    """In a subprocess: importing ultralytics patches PIL, cv2 and torch functions for the whole process."""
    pytest.importorskip("ultralytics")
    code = textwrap.dedent("""
        import torch
        from torch import nn
        from ultralytics.nn.tasks import DetectionModel

        from coordconv import CoordConv2d, coordconvify

        torch.manual_seed(0)
        model = DetectionModel("yolov8n.yaml", nc=3, verbose=False)  # the packaged yaml: nothing is downloaded
        coordconvify(model, where=lambda name, m: name.endswith(".conv"))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, CoordConv2d):
                    m.coord_weight.normal_(std=0.05)
                elif isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(std=0.1)
                    m.running_var.uniform_(0.5, 2.0)
        model.eval()
        x = torch.randn(1, 3, 64, 96)
        with torch.no_grad():
            before = model(x)[0]
            fused = model.fuse(verbose=False)
            assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
            assert any(isinstance(m, CoordConv2d) for m in fused.modules())
            torch.testing.assert_close(fused(x)[0], before, rtol=1e-4, atol=1e-4)
        print("fused exactly")
    """)
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0 and "fused exactly" in result.stdout, result.stderr[-3000:]


# ---------------------------------------------------------------------------------------------------------
# training only the coordinate filters


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("cls", FORWARD + TRANSPOSED, ids=name)
def test_freeze_input_filters_trains_only_the_coordinate_filters(cls, groups):
    from torch.nn.utils import parametrize

    from coordconv import freeze_input_filters

    layer = cls(4, 6, 3, padding=1, groups=groups, with_r=True, **F64)
    x = torch.randn(2, 4, *([5] * cls._rank), **F64)
    input_before, coord_before = (t.detach().clone() for t in layer._split(layer.weight))
    with torch.no_grad():
        expected = layer(x)
    layer.bias.requires_grad_(False)
    (coords,) = freeze_input_filters(layer)
    assert coords.shape == coord_before.shape and coords.requires_grad
    torch.testing.assert_close(coords, coord_before, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    optimizer = torch.optim.AdamW([coords], lr=0.1, weight_decay=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        layer(x).square().mean().backward()
        optimizer.step()
    input_after, coord_after = layer._split(layer.weight.detach())
    assert torch.equal(input_after, input_before) and not torch.equal(coord_after, coord_before)
    parametrize.remove_parametrizations(layer, "weight")  # undo: the trained filters in a plain weight again
    assert isinstance(layer.weight, nn.Parameter) and torch.equal(layer._split(layer.weight.detach())[1], coord_after)


def test_freeze_input_filters_errors():
    from coordconv import freeze_input_filters

    with pytest.raises(ValueError, match="Sequential has no CoordConv layer"):
        freeze_input_filters(nn.Sequential(nn.Conv2d(3, 3, 1)))
    net = nn.Sequential(CoordConv2d(3, 3, 1))
    freeze_input_filters(net)
    with pytest.raises(ValueError, match="weight of 0 is already parametrized"):
        freeze_input_filters(net)
