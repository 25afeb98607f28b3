"""Deployment: ONNX (legacy and dynamo exporters, opsets 11-18, dynamic sizes) checked in onnxruntime, OpenVINO,
and the fixed-size form of :func:`coordconv.freeze_coordinates`.

Every exported graph is run at several input sizes (non-square, size-1 axes) and compared with eager PyTorch.
The fast tier keeps a representative subset; the full sweep over opsets, exporters and layer kinds is ``slow``.
Tests that need onnx / onnxscript / onnxruntime / openvino skip, naming the package, where it is not installed.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from coordconv import (
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    FrozenCoordConv,
    coordconvify,
    export_onnx,
    freeze_coordinates,
)

# every shape list starts with the export example (sizes >= 2), then non-square and size-1 axes
_2D = [(2, 3, 8, 10), (1, 3, 5, 7), (1, 3, 1, 6), (3, 3, 6, 1), (1, 3, 1, 1)]


def _converted() -> nn.Module:
    """A plain network retrofitted by coordconvify, with non-zero coordinate filters (radius channel too)."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
    )
    net = coordconvify(net, with_r=True)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, CoordConv2d | CoordConvTranspose2d):
                layer.weight.normal_(std=0.3)
    return net


CASES = {
    "conv1d": (lambda: CoordConv1d(3, 4, 3, padding=1), [(2, 3, 9), (1, 3, 1), (3, 3, 4)]),
    "conv2d_r": (lambda: CoordConv2d(3, 4, 3, padding=1, with_r=True), _2D),
    "conv3d": (lambda: CoordConv3d(3, 4, 3, padding=1), [(2, 3, 4, 5, 6), (1, 3, 1, 3, 1), (1, 3, 2, 1, 4)]),
    "transpose1d": (lambda: CoordConvTranspose1d(3, 4, 4, stride=2, padding=1), [(2, 3, 9), (1, 3, 1)]),
    "transpose2d": (lambda: CoordConvTranspose2d(3, 4, 4, stride=2, padding=1, with_r=True), _2D),
    "transpose3d": (lambda: CoordConvTranspose3d(3, 4, 3, stride=2, padding=1), [(2, 3, 4, 5, 6), (1, 3, 1, 3, 1)]),
    "reflect2d": (
        lambda: CoordConv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        [(2, 3, 8, 10), (1, 3, 5, 7), (1, 3, 2, 3)],  # reflect padding needs sizes above the padding
    ),
    "circular2d": (lambda: CoordConv2d(3, 4, 3, padding=1, padding_mode="circular"), _2D),
    "fourier1d": (lambda: CoordConv1d(3, 4, 3, padding=1, encoding="fourier"), [(2, 3, 9), (1, 3, 1)]),
    "groups2d": (lambda: CoordConv2d(4, 4, 3, padding=1, groups=2), [(2, 4, 8, 10), (1, 4, 1, 6)]),
    "converted": (_converted, _2D),
}
_PADDED = {"reflect2d", "circular2d"}  # Pad with a mode: ONNX's version converter cannot take it below opset 18


def _model(case: str) -> tuple[nn.Module, list[tuple[int, ...]]]:
    torch.manual_seed(0)
    make, shapes = CASES[case]
    return make().eval(), shapes


def _needs(*packages: str) -> None:
    for package in packages:
        pytest.importorskip(package, reason=f"{package} is not installed (pip install 'torch-coordconv[deploy]')")


def _check_onnxruntime(path, model, shapes) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for shape in shapes:
        x = torch.randn(shape)
        (got,) = session.run(None, {name: x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape, (shape, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"input shape {shape}")


def _opset(path) -> int:
    import onnx

    (version,) = [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")]
    return version


def _op_types(path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _export_and_check(case: str, opset: int, dynamo: bool, tmp_path) -> None:
    model, shapes = _model(case)
    path = tmp_path / f"{case}.onnx"
    export_onnx(model, torch.randn(shapes[0]), path, opset_version=opset, dynamo=dynamo)
    assert _opset(path) == opset
    assert "Range" in _op_types(path)  # the grid is computed in the graph, from the input's shape
    _check_onnxruntime(path, model, shapes)


# --------------------------------------------------------------------------------------------------------------
# ONNX: the legacy (TorchScript) exporter


@pytest.mark.parametrize(
    ("case", "opset"), [("conv2d_r", 11), ("transpose2d", 13), ("conv1d", 17), ("conv3d", 18), ("converted", 11)]
)
def test_legacy_exporter_dynamic_sizes_equal_eager(case, opset, tmp_path):
    _needs("onnx", "onnxruntime")
    _export_and_check(case, opset, False, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("opset", range(11, 19))
@pytest.mark.parametrize("case", sorted(CASES))
def test_legacy_exporter_every_opset_and_layer_kind(case, opset, tmp_path):
    _needs("onnx", "onnxruntime")
    _export_and_check(case, opset, False, tmp_path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_legacy_exporter_called_directly_keeps_size_one_axes(tmp_path):
    """torch.onnx.export as users call it; a traced size used to put ``max(n - 1, 1)`` in as a constant (NaN at 1)."""
    _needs("onnx", "onnxruntime")
    model, shapes = _model("conv2d_r")
    path = tmp_path / "direct.onnx"
    dims = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(model, (torch.randn(shapes[0]),), str(path), dynamo=False, opset_version=11,
                      input_names=["x"], dynamic_axes={"x": dims})  # fmt: skip
    _check_onnxruntime(path, model, shapes)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_jit_trace_at_one_size_runs_at_size_one_axes():
    """The grid's divisor ``max(n - 1, 1)`` stays in the traced graph (clamped), not the traced size's branch."""
    layer = CoordConv2d(3, 4, 3, padding=1, with_r=True).eval()
    traced = torch.jit.trace(layer, torch.randn(2, 3, 8, 10))
    for shape in [(1, 3, 1, 6), (2, 3, 6, 1), (1, 3, 1, 1), (1, 3, 5, 7)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(traced(x), layer(x), rtol=1e-6, atol=1e-6)


def test_legacy_exporter_below_opset_9_fails_naming_the_op(tmp_path):
    _needs("onnx")
    model, shapes = _model("conv2d_r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception, match="arange, which is not implemented for opset 8"):
            export_onnx(model, torch.randn(shapes[0]), tmp_path / "m.onnx", opset_version=8, dynamo=False)


# --------------------------------------------------------------------------------------------------------------
# ONNX: the dynamo (torch.export) exporter


def test_dynamo_exporter_dynamic_sizes_equal_eager(tmp_path):
    _needs("onnx", "onnxscript", "onnxruntime")
    _export_and_check("converted", 16, True, tmp_path)


def test_dynamo_exporter_refuses_an_opset_it_cannot_write(tmp_path):
    """torch keeps opset 18 (and only logs it) when the version converter fails: export_onnx says so, no file."""
    _needs("onnx", "onnxscript")
    model, shapes = _model("reflect2d")
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"asked for opset 17, but torch's dynamo exporter wrote opset 18") as info:
        export_onnx(model, torch.randn(shapes[0]), path, opset_version=17)
    assert "dynamo=False" in str(info.value)
    assert not path.exists()


@pytest.mark.slow
@pytest.mark.parametrize("opset", [11, 15, 16, 17, 18])
@pytest.mark.parametrize("case", sorted(CASES))
def test_dynamo_exporter_every_opset_and_layer_kind(case, opset, tmp_path):
    """Opsets 16-18 always (18 only for padding modes, with Pad); lower ones where ONNX's converter takes the
    graph there (some do reach 15), else the refusal names the opset it wrote. Below 15 only the lowest, 11: the
    dynamo exporter writes opset 18 and ONNX's converter steps it down one version at a time, so a graph that
    reaches 11 went through 12-14 and one that cannot reach 15 cannot reach them (the legacy exporter, which has
    rules per opset, is tested at every one)."""
    _needs("onnx", "onnxscript", "onnxruntime")
    must_work = opset == 18 or (opset >= 16 and case not in _PADDED)
    try:
        _export_and_check(case, opset, True, tmp_path)
    except ValueError as error:
        assert not must_work, error
        assert f"asked for opset {opset}, but torch's dynamo exporter wrote opset 18" in str(error)
        assert not (tmp_path / f"{case}.onnx").exists()


@pytest.mark.slow
def test_dynamo_exporter_refuses_opset_11_for_a_2d_layer(tmp_path):
    _needs("onnx", "onnxscript")
    model, shapes = _model("conv2d_r")
    with pytest.raises(ValueError, match="asked for opset 11, but torch's dynamo exporter wrote opset 18"):
        export_onnx(model, torch.randn(shapes[0]), tmp_path / "m.onnx", opset_version=11)


def test_export_onnx_refuses_size_one_dynamic_axes_and_non_tensors(tmp_path):
    layer = CoordConv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"size 1 on dynamic axes \[0, 2\]"):
        export_onnx(layer, torch.randn(1, 3, 1, 5), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="expects a tensor as example_input, got list"):
        export_onnx(layer, [torch.randn(2, 3, 5, 5)], tmp_path / "m.onnx")


# --------------------------------------------------------------------------------------------------------------
# freeze_coordinates: the coordinate term as a constant for one input size

_FREEZE = [
    ("conv2d_r", (2, 3, 8, 10)),
    ("reflect2d", (2, 3, 9, 10)),
    ("circular2d", (2, 3, 6, 1)),
    ("groups2d", (2, 4, 8, 10)),
    ("fourier1d", (2, 3, 9)),
    ("conv3d", (2, 3, 4, 5, 6)),
    ("transpose1d", (2, 3, 9)),
    ("transpose2d", (2, 3, 8, 10)),
    ("transpose3d", (2, 3, 4, 5, 6)),
    ("converted", (2, 3, 32, 48)),
]


@pytest.mark.parametrize(("case", "shape"), _FREEZE)
def test_freeze_coordinates_is_bitwise_exact_at_its_size(case, shape):
    model, _ = _model(case)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(shape)
    frozen = freeze_coordinates(model, x)
    assert not any(isinstance(m, CoordConv2d) for m in frozen.modules())
    assert any(isinstance(m, FrozenCoordConv) for m in frozen.modules())
    with torch.no_grad():
        assert torch.equal(frozen(x), model(x))
        if case != "converted":  # (its BatchNorm takes batched inputs only)
            assert torch.equal(frozen(x[0]), model(x[0]))  # unbatched, as the layers accept
    for key, value in model.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key]), key


def test_freeze_coordinates_refuses_another_size():
    model, _ = _model("converted")
    frozen = freeze_coordinates(model, torch.randn(2, 3, 32, 48))
    x = torch.randn(5, 3, 32, 48)  # the batch size is free
    with torch.no_grad():
        assert torch.equal(frozen(x), model(x))
    with pytest.raises(
        ValueError, match=r"frozen for spatial size \(32, 48\) .* got an input of shape \(2, 3, 32, 40\)"
    ):
        frozen(torch.randn(2, 3, 32, 40))


def test_freeze_coordinates_transposed_output_size():
    layer = CoordConvTranspose2d(3, 4, 3, stride=2, padding=1).eval()
    x = torch.randn(2, 3, 8, 10)
    frozen = freeze_coordinates(layer, x, output_size=[16, 20])
    assert isinstance(frozen, FrozenCoordConv)
    with torch.no_grad():
        assert torch.equal(frozen(x), layer(x, output_size=[16, 20]))


def test_freeze_coordinates_refusals():
    with pytest.raises(ValueError, match="Sequential has no CoordConv layer"):
        freeze_coordinates(nn.Sequential(nn.Conv2d(3, 3, 1)), torch.randn(1, 3, 4, 4))

    class TwoSizes(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = CoordConv2d(3, 3, 3, padding=1)
            self.unused = CoordConv2d(3, 3, 1)

        def forward(self, x, twice=True):
            y = self.shared(x)
            return self.unused(self.shared(y[..., ::2, ::2])) if twice else y

    with pytest.raises(ValueError, match=r"'shared' is called at several sizes .*\(8, 8\).*\(16, 16\)"):
        freeze_coordinates(TwoSizes(), torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"does not reach the CoordConv layers \['unused'\]"):
        freeze_coordinates(TwoSizes(), torch.randn(1, 3, 16, 16), twice=False)


def test_freeze_coordinates_shared_layer_at_one_size_is_frozen_once():
    layer = CoordConv2d(3, 3, 3, padding=1)
    net = nn.Sequential(layer, nn.ReLU(), layer).eval()
    x = torch.randn(2, 3, 6, 7)
    frozen = freeze_coordinates(net, x)
    assert frozen[0] is frozen[2]
    with torch.no_grad():
        assert torch.equal(frozen(x), net(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_frozen_onnx_graph_has_no_shape_or_range_ops(dynamo, tmp_path):
    _needs("onnx", "onnxruntime", *(["onnxscript"] if dynamo else []))
    import onnxruntime

    model, _ = _model("converted")
    x = torch.randn(2, 3, 32, 48)
    path = tmp_path / "frozen.onnx"
    torch.onnx.export(freeze_coordinates(model, x), (x,), str(path), dynamo=dynamo, opset_version=18 if dynamo else 11)
    ops = _op_types(path)
    assert ops <= {"Conv", "ConvTranspose", "Add", "BatchNormalization", "Relu", "Identity", "Constant"}, ops
    _check_onnxruntime(path, model, [(2, 3, 32, 48)])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="invalid dimensions"):  # the runtime refuses another size too
        session.run(None, {session.get_inputs()[0].name: torch.randn(2, 3, 32, 40).numpy()})


# --------------------------------------------------------------------------------------------------------------
# OpenVINO (CPU): from the ONNX file and from the torch model

_F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # OpenVINO's CPU default is bf16 where the CPU has it


def _check_openvino(compiled, model, shapes) -> None:
    for shape in shapes:
        x = torch.randn(shape)
        got = compiled(x.numpy())[0]
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape, (shape, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"input shape {shape}")


def _openvino_both_ways(case, tmp_path) -> None:
    import openvino

    model, shapes = _model(case)
    x = torch.randn(shapes[0])
    core = openvino.Core()
    path = tmp_path / f"{case}.onnx"
    export_onnx(model, x, path, opset_version=13, dynamo=False)
    _check_openvino(core.compile_model(openvino.convert_model(str(path)), "CPU", _F32), model, shapes)
    dynamic = openvino.PartialShape([-1, x.shape[1], *([-1] * (x.dim() - 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the layers' shape checks
        converted = openvino.convert_model(model, example_input=(x,), input=[dynamic])
    _check_openvino(core.compile_model(converted, "CPU", _F32), model, shapes)


def test_openvino_from_onnx_and_from_torch_equal_eager(tmp_path):
    _needs("onnx", "openvino")
    _openvino_both_ways("transpose2d", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_openvino_every_layer_kind(case, tmp_path):
    _needs("onnx", "openvino")
    _openvino_both_ways(case, tmp_path)


@pytest.mark.slow
def test_openvino_runs_the_frozen_model(tmp_path):
    _needs("openvino")
    import openvino

    model, _ = _model("converted")
    x = torch.randn(2, 3, 32, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = openvino.convert_model(freeze_coordinates(model, x), example_input=(x,))
    _check_openvino(openvino.Core().compile_model(converted, "CPU", _F32), model, [(2, 3, 32, 48)])
