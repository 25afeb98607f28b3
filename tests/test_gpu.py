"""The CUDA paths of the layers: `pytest -m gpu` on a machine with a GPU (skipped elsewhere).

The device-parametrised layer tests run there too with `pytest --device cpu,cuda --dtype float32,float64,bfloat16`.
"""

import copy

import pytest
import torch

from coordconv import CoordConv2d, CoordConv3d, CoordConvTranspose2d, coordconvify
from reference import reference_forward

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _full_float32():
    """Full float32 convolutions and matrix products: exactness is the question here, not TF32's 10-bit mantissa.

    cuDNN runs float32 convolutions in TF32 by default on Ampere and later GPUs, which puts ~1e-3 relative
    error into the layer and into the reference, differently (an H200 run: 5.8e-4 apart on a channels_last case).
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d])
def test_autocast(cls, dtype):
    layer = cls(16, 16, 3, padding=1, device=CUDA)
    x = torch.randn(4, 16, 20, 24, device=CUDA)
    with torch.autocast("cuda", dtype=dtype):
        out = layer(x)
        out.float().square().mean().backward()
    assert out.dtype == dtype and layer.weight.grad is not None
    torch.testing.assert_close(out.float(), reference_forward(layer, x), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(("cls", "fmt"), [(CoordConv2d, torch.channels_last), (CoordConv3d, torch.channels_last_3d)])
def test_channels_last(cls, fmt):
    layer = cls(8, 8, 3, padding=1, device=CUDA)
    x = torch.randn(3, 8, *([12] * cls._rank), device=CUDA)
    ref = reference_forward(layer, x)
    layer_cl = copy.deepcopy(layer).to(memory_format=fmt)
    x_cl = x.contiguous(memory_format=fmt).requires_grad_(True)
    out = layer_cl(x_cl)
    assert out.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    out.square().sum().backward()
    assert x_cl.grad is not None and layer_cl.weight.grad is not None


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_fused_optimizer_steps_then_inference(optimizer):
    layer = CoordConv2d(8, 8, 3, padding=1, device=CUDA)
    x = torch.randn(4, 8, 16, 16, device=CUDA)
    opt = optimizer(layer.parameters(), lr=0.1, fused=True)
    for _ in range(3):
        with torch.no_grad():
            layer(x)
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
        with torch.no_grad():
            torch.testing.assert_close(layer(x), reference_forward(layer, x), rtol=1e-4, atol=1e-4)


def test_converted_model_on_cuda_equals_the_plain_model():
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).to(CUDA)
    converted = coordconvify(copy.deepcopy(plain))
    x = torch.randn(2, 3, 32, 40, device=CUDA)
    with torch.inference_mode():
        torch.testing.assert_close(converted(x), plain(x))


@pytest.mark.parametrize("channels_last", [False, True])
def test_separable_term_on_cuda_equals_the_definition(monkeypatch, channels_last):
    # the rule keeps the convolution on GPUs; benchmarks/gpu.py times the separable term there: it must be exact
    from coordconv import _term

    monkeypatch.setattr(_term, "SEPARABLE", "separable")
    for layer in (
        CoordConv2d(4, 8, 3, padding=1, device=CUDA, dtype=torch.float64),
        CoordConvTranspose2d(4, 8, 4, stride=2, padding=1, device=CUDA, dtype=torch.float64),
    ):
        x = torch.randn(2, 4, 12, 10, device=CUDA, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(layer(x), reference_forward(layer, x), rtol=1e-10, atol=1e-10)
    layer = CoordConv3d(2, 3, 3, padding=1, device=CUDA, dtype=torch.float64)
    x = torch.randn(2, 2, 5, 6, 7, device=CUDA, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_forward(layer, x), rtol=1e-10, atol=1e-10)
