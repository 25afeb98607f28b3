"""The framework drop-ins: ultralytics' YAML block and OpenMMLab's conv type, with the real frameworks.

Each part is skipped where its framework is not installed (the ``frameworks`` extra, part of ``dev``, brings them).
"""

import copy
import importlib
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from torch import nn

from coordconv import CoordConv2d, coordconvify

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _randomize_bn(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 2.0)
                module.bias.normal_()
            if isinstance(module, CoordConv2d):
                module.weight.normal_(0, 0.3)  # coordinate filters of real scale


@pytest.mark.parametrize("integration,package", [("ultralytics", "ultralytics"), ("mmcv", "mmengine")])
def test_missing_framework_is_one_line_naming_the_extra(integration, package):
    code = f"import sys; sys.modules[{package!r}] = None\nimport coordconv.integrations.{integration}\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: coordconv.integrations.{integration} needs {package}, "
        'which is not installed: pip install "torch-coordconv[frameworks]"'
    ), last


def test_the_core_package_does_not_import_the_frameworks():
    code = "import coordconv, sys; print(sorted(m for m in ('ultralytics', 'mmengine', 'mmcv') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# --- ultralytics -------------------------------------------------------------------------------------------------


@pytest.fixture
def ultra(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # ultralytics writes exports and run folders under the working directory
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics-config"))
    pytest.importorskip("ultralytics")
    module = importlib.import_module("coordconv.integrations.ultralytics")
    module.register()
    yield module
    module.unregister()


def _yolov8n_yaml():
    import ultralytics
    from ultralytics.nn.tasks import yaml_model_load

    return yaml_model_load(pathlib.Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8n.yaml")


def test_ultralytics_block_follows_conv(ultra):
    from ultralytics.nn.modules.conv import Conv

    torch.manual_seed(0)
    plain = Conv(3, 16, 3, 2).eval()
    block = ultra.CoordConv(3, 16, 3, 2).eval()
    assert isinstance(block, Conv)
    assert block.conv.padding == plain.conv.padding == (1, 1)
    assert block.conv.bias is None
    assert block.conv.weight.shape == (16, 5, 3, 3)
    # the same filters and zero coordinate filters compute Conv's result
    state = plain.state_dict()
    state["conv.weight"] = torch.cat([state["conv.weight"], torch.zeros(16, 2, 3, 3)], 1)
    block.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(block(x), plain(x))
    assert ultra.CoordConv(3, 8, 1, act=False, with_r=True).conv.weight.shape == (8, 6, 1, 1)


def test_ultralytics_yaml_channels_fuse_and_predict(ultra):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    cfg = _yolov8n_yaml()
    assert cfg["backbone"][0][2:] == ["Conv", [64, 3, 2]]
    plain = DetectionModel(copy.deepcopy(cfg), verbose=False)
    cfg["backbone"][0][2] = "CoordConv"
    cfg["backbone"][1] = [-1, 1, "CoordConv", [128, 3, 2, None, 1, 1, True, True]]  # with_r after Conv's args
    model = DetectionModel(cfg, verbose=False).eval()
    first, second = model.model[0], model.model[1]
    assert type(first) is ultra.CoordConv and type(second) is ultra.CoordConv
    # the nano width multiple scaled c2 as for Conv; c1 came from the previous layer
    assert (first.conv.in_channels, first.conv.out_channels) == (3, 16) == (plain.model[0].conv.in_channels, 16)
    assert (second.conv.in_channels, second.conv.out_channels, second.conv.with_r) == (16, 32, True)
    assert first.type.endswith("ultralytics.CoordConv") and (first.i, first.f) == (0, -1)
    plain_params = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in model.parameters()) == plain_params + 16 * 2 * 9 + 32 * 3 * 9
    assert model.yaml["backbone"][0][2] == "CoordConv"  # rebuilding from model.yaml (as the trainer does) works

    _randomize_bn(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)[0]
        model.fuse(verbose=False)
        assert not hasattr(first, "bn") and first.forward == first.forward_fuse
        assert isinstance(first.conv, CoordConv2d)
        torch.testing.assert_close(model(x)[0], expected, rtol=1e-4, atol=1e-4)

    np = pytest.importorskip("numpy")
    yolo = YOLO(_write_yaml(cfg))
    assert type(yolo.model.model[0]) is ultra.CoordConv and yolo.model.model[0].conv.out_channels == 16
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    results = yolo.predict(image, imgsz=64, verbose=False, device="cpu")
    assert len(results) == 1 and results[0].boxes is not None


def _write_yaml(cfg):
    import yaml

    cfg = {k: v for k, v in cfg.items() if k != "yaml_file"}
    # the name carries the scale, as ultralytics reads it from file names ("yolov8n" -> n)
    path = pathlib.Path.cwd() / "coordconv-yolov8n.yaml"  # the fixture's temporary directory
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_ultralytics_unregistered_yaml_fails_and_register_is_idempotent(ultra):
    from ultralytics.nn import tasks

    wrapped = tasks.parse_model
    ultra.register()
    assert tasks.parse_model is wrapped
    ultra.unregister()
    cfg = _yolov8n_yaml()
    cfg["backbone"][0][2] = "CoordConv"
    with pytest.raises(KeyError, match="CoordConv"):
        tasks.DetectionModel(cfg, verbose=False)
    ultra.register()


def test_ultralytics_coordconvify_first_conv_survives_fuse_and_predict(ultra):
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(_yolov8n_yaml(), verbose=False).eval()
    coordconvify(model.model, first_only=True)
    assert isinstance(model.model[0].conv, CoordConv2d)
    assert sum(isinstance(m, CoordConv2d) for m in model.modules()) == 1
    _randomize_bn(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)[0]
        model.fuse(verbose=False)
        torch.testing.assert_close(model(x)[0], expected, rtol=1e-4, atol=1e-4)


# ultralytics exports through torch's legacy TorchScript exporter, which warns about itself (deprecations)
# and its tracer warns where the layer compares weight shapes (as in tests/test_model_tools.py)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_ultralytics_onnx_export(ultra, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from ultralytics import YOLO

    cfg = _yolov8n_yaml()
    cfg["backbone"][0][2] = "CoordConv"
    yolo = YOLO(_write_yaml(cfg))
    _randomize_bn(yolo.model)
    try:
        path = yolo.export(format="onnx", imgsz=64, simplify=False, dynamic=False, device="cpu", opset=17)
    except ImportError as error:  # ultralytics may want to install an exporter dependency, offline here
        pytest.skip(f"ultralytics' ONNX export did not run offline: {type(error).__name__}: {error}")
    x = torch.randn(1, 3, 64, 64)
    model = yolo.model.eval()
    with torch.no_grad():
        expected = model(x)[0].numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})[:1]
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(expected), rtol=1e-3, atol=1e-3)


# --- OpenMMLab ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mm():
    pytest.importorskip("mmengine")
    pytest.importorskip("mmcv")
    return importlib.import_module("coordconv.integrations.mmcv")


def test_mmcv_build_conv_layer(mm):
    from mmcv.cnn import build_conv_layer

    layer = build_conv_layer({"type": "CoordConv", "with_r": True, "encoding": "linear"}, 3, 8, 3, padding=1)
    assert type(layer) is CoordConv2d and layer.with_r and layer.weight.shape == (8, 6, 3, 3)
    assert type(build_conv_layer({"type": "CoordConv3d"}, 2, 4, 1)).__name__ == "CoordConv3d"
    mm.register()  # again: no error


@pytest.mark.parametrize("with_r", [False, True])
def test_mmcv_conv_module_equals_layer_and_fuses(mm, with_r):
    from mmcv.cnn import ConvModule
    from mmcv.cnn.utils.fuse_conv_bn import fuse_conv_bn

    torch.manual_seed(0)
    module = ConvModule(
        3, 8, 3, padding=1, conv_cfg={"type": "CoordConv", "with_r": with_r}, norm_cfg={"type": "BN"},
        act_cfg={"type": "ReLU"},
    ).eval()  # fmt: skip
    assert type(module.conv) is CoordConv2d and module.conv.bias is None  # a norm follows: no bias, as for Conv2d
    _randomize_bn(module)
    x = torch.randn(2, 3, 16, 16)
    layer = CoordConv2d(3, 8, 3, padding=1, bias=False, with_r=with_r).eval()
    layer.load_state_dict(module.conv.state_dict())
    with torch.no_grad():
        expected = torch.relu(module.bn(layer(x)))
        torch.testing.assert_close(module(x), expected)
        fuse_conv_bn(module)
        assert isinstance(module.bn, nn.Identity) and type(module.conv) is CoordConv2d
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)
