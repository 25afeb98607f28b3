"""Export a CoordConv model to ONNX (the dynamo exporter) and run it in onnxruntime at several input sizes.

The coordinate channels are computed inside the graph from the input's shape, so one exported model serves
every batch size and image size that the dynamic axes allow.

Needs the onnx extra (`pip install "torch-coordconv[onnx]"`: onnx, onnxscript, onnxruntime).

    python examples/onnx_export.py [--out coordconv.onnx]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from coordconv import CoordConv2d, CoordConvTranspose2d


def make_model() -> nn.Module:
    """A small encoder-decoder with CoordConv layers (the radius channel in the first)."""
    return nn.Sequential(
        CoordConv2d(3, 16, 3, padding=1, with_r=True),
        nn.ReLU(),
        CoordConv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        CoordConvTranspose2d(32, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 1, 1),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where to write the .onnx file (default: a temporary folder)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = make_model()
    example = torch.randn(2, 3, 32, 48)
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.out or Path(tmp) / "coordconv.onnx")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            input_names=["image"],
            output_names=["out"],
            # even sizes: the stride-2 layer and the transposed layer must give back the input's size
            dynamic_shapes={"input": {0: batch, 2: 2 * height, 3: 2 * width}},
        )
        print(f"exported to {path}")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for shape in [(2, 3, 32, 48), (1, 3, 64, 64), (5, 3, 20, 30)]:
            x = torch.randn(shape)
            (got,) = session.run(None, {"image": x.numpy()})
            with torch.no_grad():
                want = model(x).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            print(f"input {shape}: onnxruntime equals PyTorch (max |diff| {np.abs(got - want).max():.1e})")


if __name__ == "__main__":
    main()
