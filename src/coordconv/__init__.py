"""coordconv: CoordConv layers for PyTorch, and a runnable reproduction of the CoordConv paper.

The library (this package's top level) depends on torch only:

* :mod:`coordconv.coords`: coordinate grids and encodings (pure functions).
* :mod:`coordconv.layers`: ``AddCoords``, ``CoordConv{1,2,3}d``, ``CoordConvTranspose{1,2,3}d``.
* :mod:`coordconv.convert`: ``coordconvify``, which retrofits CoordConv into any network.
* :mod:`coordconv.fuse`: ``fuse_conv_bn_eval``, BatchNorm folding that knows the coordinate filters.
* :mod:`coordconv.deploy`: ``export_onnx`` with dynamic sizes, and ``freeze_coordinates`` for fixed-size runtimes.
* :mod:`coordconv.frames`: ``window``, tiles of a large image with the whole image's coordinates.
* :mod:`coordconv.ports`: ``load_concatenated``, other implementations' weights.
* :mod:`coordconv.usage`: ``inspect_model``, how much each CoordConv layer of a model uses the coordinates.

Paper: Liu et al., "An Intriguing Failing of Convolutional Neural Networks and the CoordConv Solution",
NeurIPS 2018, https://arxiv.org/abs/1807.03247.
"""

from coordconv._version import __version__ as __version__
from coordconv.convert import coordconvify as coordconvify
from coordconv.coords import CoordEncoding as CoordEncoding
from coordconv.coords import FourierEncoding as FourierEncoding
from coordconv.coords import LinearEncoding as LinearEncoding
from coordconv.coords import RadiusEncoding as RadiusEncoding
from coordconv.coords import SampledEncoding as SampledEncoding
from coordconv.coords import coord_channels as coord_channels
from coordconv.coords import coord_grid as coord_grid
from coordconv.coords import linear_coords as linear_coords
from coordconv.coords import relative_coords as relative_coords
from coordconv.coords import tile_vector as tile_vector
from coordconv.deploy import FrozenCoordConv as FrozenCoordConv
from coordconv.deploy import export_onnx as export_onnx
from coordconv.deploy import freeze_coordinates as freeze_coordinates
from coordconv.frames import window as window
from coordconv.fuse import fuse_conv_bn_eval as fuse_conv_bn_eval
from coordconv.layers import AddCoords as AddCoords
from coordconv.layers import CoordConv1d as CoordConv1d
from coordconv.layers import CoordConv2d as CoordConv2d
from coordconv.layers import CoordConv3d as CoordConv3d
from coordconv.layers import CoordConvTranspose1d as CoordConvTranspose1d
from coordconv.layers import CoordConvTranspose2d as CoordConvTranspose2d
from coordconv.layers import CoordConvTranspose3d as CoordConvTranspose3d
from coordconv.layers import add_coords as add_coords
from coordconv.layers import freeze_input_filters as freeze_input_filters
from coordconv.usage import LayerUsage as LayerUsage
from coordconv.usage import format_usage as format_usage
from coordconv.usage import inspect_model as inspect_model

__all__ = [
    "AddCoords",
    "CoordConv1d",
    "CoordConv2d",
    "CoordConv3d",
    "CoordConvTranspose1d",
    "CoordConvTranspose2d",
    "CoordConvTranspose3d",
    "CoordEncoding",
    "FourierEncoding",
    "FrozenCoordConv",
    "LayerUsage",
    "LinearEncoding",
    "RadiusEncoding",
    "SampledEncoding",
    "__version__",
    "add_coords",
    "coord_channels",
    "coord_grid",
    "coordconvify",
    "export_onnx",
    "format_usage",
    "freeze_coordinates",
    "freeze_input_filters",
    "fuse_conv_bn_eval",
    "inspect_model",
    "linear_coords",
    "relative_coords",
    "tile_vector",
    "window",
]
