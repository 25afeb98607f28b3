"""The speed machinery behind the CoordConv layers (private; :mod:`coordconv.layers` is the public face).

A CoordConv computes ``conv(x, W) + conv(grid, W_c) + b``. The second term has batch size 1; it is computed on
every call from the parameters as they are at that moment, in the layout of the convolution's output, and
added to that output. For the linear encoding it is computed axis by axis where that is measured faster
(``_separable_term``: the coordinate channels are products of 1D ramps and ones, so the convolution is a few
small matrix products); otherwise as a batch-1 convolution of the grid. Nothing here keeps state that depends
on a parameter, so no way of changing one (optimizer steps fused or not, ``.data`` edits, ``load_state_dict``,
parametrizations, ``to()``/``half()``, weight swaps, EMA) can leave a stale result. The caches hold coordinate
*grids* and the separable term's per-axis matrices, which depend only on sizes, the layer's arguments, the
encoding, dtype, device and layout.

The functions the layers call (``batched``, ``transposed_output_padding``, ``coord_term``, ``add_coord_term``,
``like_input``)
are wrapped for ``torch.fx``: symbolic tracing records them as single calls instead of tracing into their
Python control flow, so a traced model runs them at its own input sizes.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import forward_ad
from torch.utils._python_dispatch import _get_current_dispatch_mode

from coordconv.coords import CoordEncoding, Frame, LinearEncoding, Order, coord_grid, linear_coords

__all__ = [
    "add_coord_term",
    "batched",
    "coord_term",
    "fused_forward",
    "grid_for",
    "like_input",
    "transposed_output_padding",
]

# 2D grids with more pixels than this are laid out channels_last on CPU, whatever the kernel (see ``_grid_layout``).
_SMALL_GRID = 10240
# 3x3 convolutions of 2D grids with fewer pixels than this keep the batch-1 convolution on CPU (``_separable``).
_SEPARABLE_MIN_PIXELS = 1024
# The grid cache: at most this many grids, each of at most this many elements.
_GRID_CACHE_ENTRIES = 32
_GRID_CACHE_MAX_NUMEL = 1 << 22

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_grids: OrderedDict[tuple[Any, ...], Tensor] = OrderedDict()
# the separable term's per-axis matrices (``_factors``), kept on the same terms as the grids, under the same lock
_factor_cache: OrderedDict[tuple[Any, ...], tuple[Tensor, ...]] = OrderedDict()
_grids_lock = threading.Lock()


def grid_for(
    x: Tensor, encoding: CoordEncoding, order: Order, channels_last: bool = False, frame: Frame | None = None
) -> Tensor:
    """The batch-1 coordinate input ``(1, channels, *spatial)`` for ``x``'s grid, in ``x``'s dtype and device.

    ``frame``: ``x`` is a window of a larger grid (see :func:`coordconv.linear_coords`).

    Grids are kept (up to ``_GRID_CACHE_ENTRIES`` of them, shared by all layers) and keyed by everything they
    depend on, including inference mode (a tensor made in inference mode cannot enter autograd later). They are
    never written to. ``channels_last`` (2D only) chooses the layout, not the values.
    """
    spatial = tuple(x.shape[2:])
    # torch.jit.trace records the operations that build a grid, so it gets them every call; under a fake,
    # functional or other dispatch mode (FakeTensorMode, FX shape propagation, AOT tracing) or for a tensor
    # subclass the grid would not be a plain tensor: never cached, never read from the cache
    cacheable = _plain_context(x) and _known_immutable(encoding)
    if cacheable:
        try:
            framing = None if frame is None else tuple(tuple(pair) for pair in frame)
            inference = torch.is_inference_mode_enabled()
            key = (spatial, encoding, order, x.dtype, x.device, inference, channels_last, framing)
            hash(key)
        except TypeError:  # an encoding that cannot be hashed is rebuilt each call
            cacheable = False
    if cacheable:
        with _grids_lock:
            grid = _grids.get(key)
            if grid is not None:
                _grids.move_to_end(key)
                return grid
    grid = coord_grid(spatial, encoding=encoding, order=order, dtype=x.dtype, device=x.device, frame=frame)
    grid = grid.unsqueeze(0)
    if channels_last or (torch.compiler.is_compiling() and grid.dim() == 4):
        # Under torch.compile a 2D grid is always materialised channels_last: inductor lays out a tensor that
        # feeds a convolution channels_last, and for the contiguous grid (a view of the stacked axes) saved for
        # backward it sorts symbolic strides without the shape environment, which fails once sizes are dynamic
        # ("cannot determine truth value of Relational", torch 2.14). Layout only: eager calls are unchanged.
        grid = grid.contiguous(memory_format=torch.channels_last)
    if cacheable and grid.numel() <= _GRID_CACHE_MAX_NUMEL:
        with _grids_lock:
            _grids[key] = grid
            while len(_grids) > _GRID_CACHE_ENTRIES:
                _grids.popitem(last=False)
    return grid


def _plain_context(x: Tensor) -> bool:
    """Whether a grid built for ``x`` now is a plain tensor that may be kept and reused by later calls."""
    if type(x) is not Tensor and type(x) is not nn.Parameter:  # FakeTensor, FunctionalTensor, other subclasses
        return False
    if _transformed(x) or torch._C._is_tracing():  # _transformed first: dynamo cannot trace _is_tracing
        return False
    return _get_current_dispatch_mode() is None


_IMMUTABLE_LEAVES = (int, float, complex, str, bytes, bool, type(None))


def _immutable(value: Any) -> bool:
    """Whether an encoding (or one of its fields) cannot change: the grid cache keys on it only then.

    Frozen dataclasses of numbers, strings, tuples of them and other such dataclasses qualify (the built-in
    encodings do); any other encoding is rebuilt on every call, so a changing one (an annealed scale) is
    never served a stale grid.
    """
    if isinstance(value, _IMMUTABLE_LEAVES):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        if params is None or not params.frozen:
            return False
        return all(_immutable(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


# encodings already judged by ``_immutable`` (equal encodings are judged alike; a few distinct ones are in use)
_immutable_seen: dict[Any, bool] = {}


def _known_immutable(encoding: Any) -> bool:
    """``_immutable(encoding)``, remembered: the test walks the dataclass's fields, a few microseconds a call."""
    try:
        return _immutable_seen[encoding]
    except KeyError:
        judged = _immutable(encoding)
        if len(_immutable_seen) < _GRID_CACHE_ENTRIES:
            _immutable_seen[encoding] = judged
        return judged
    except TypeError:  # unhashable: cannot be a cache key either
        return False


def _grid_layout(x: Tensor, kernel_size: tuple[int, ...], transposed: bool) -> bool:
    """Whether the batch-1 grid should be channels_last: layout only, for speed.

    torch's CPU convolution of a batch-1, two- or three-channel input is fastest contiguous for 3x3 kernels on
    small grids and channels_last otherwise; a large contiguous grid takes a path about 15x slower (128x128,
    torch 2.13 and 2.14). Measured in ``benchmarks/layer_special_cases.py``.
    """
    if x.dim() != 4 or x.device.type != "cpu":
        return False
    sizes = static_sizes(x)
    large = sizes[2] * sizes[3] > _SMALL_GRID
    return large or (not transposed and tuple(kernel_size) != (3, 3))


def static_sizes(x: Tensor) -> tuple[int, ...]:
    """``x``'s sizes as Python ints, for checks and layout choices.

    Under ``torch.jit.trace`` (and so the legacy ONNX exporter) sizes are traced values and reading them as
    Python numbers makes the tracer warn that the trace may not generalise. The checks and layout choices that
    read them here change no computed value (a channel count is fixed by the weight; a layout choice is for
    speed), so that warning is silenced for these reads only; the coordinate values themselves are computed
    from traced sizes (tested at other sizes than the traced one).
    """
    # torch.jit.is_tracing without its wrapper (this runs many times a call); dynamo traces only the wrapper
    if torch.compiler.is_compiling() or not torch._C._is_tracing():
        return tuple(x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined,unused-ignore]
        return tuple(int(n) for n in x.shape)


def batched(input: Tensor, who: str, rank: int | None = None, in_channels: int | None = None) -> Tensor:
    """Check an input and return it with a batch axis: ``(N, C, *spatial)``.

    ``rank`` set: ``rank`` spatial axes (any of 1 to 3 otherwise). ``in_channels`` set (a layer's input): exactly
    that many channels, and an unbatched ``(C, *spatial)`` input is accepted and given a batch axis. Raises
    ``TypeError`` / ``ValueError`` naming ``who``, the value and what was expected.
    """
    if not isinstance(input, Tensor):
        if _is_proxy(input):  # type: ignore[unreachable]
            return _record(batched, input, who, rank, in_channels)
        raise TypeError(f"{who} expects a torch.Tensor, got {type(input).__name__}")
    if not input.dtype.is_floating_point:
        hint = (
            " (eager-mode quantization: CoordConv layers run in floating point; put a "
            "torch.ao.quantization.DeQuantStub before the layer and a QuantStub after it)"
            if input.is_quantized
            else ""
        )
        raise TypeError(f"{who} expects a floating-point input, got dtype {input.dtype}{hint}")
    shape = static_sizes(input)
    if rank is None:
        if input.dim() not in (3, 4, 5):
            raise ValueError(f"{who} expects an (N, C, *spatial) input with 1 to 3 spatial axes, got shape {shape}")
        x = input
    elif in_channels is None:
        if input.dim() != rank + 2:
            raise ValueError(
                f"{who} expects a {rank + 2}D (N, C, *spatial) input with {rank} spatial axes, got shape {shape}"
            )
        x = input
    else:
        if input.dim() not in (rank + 1, rank + 2):
            raise ValueError(
                f"{who} expects a {rank + 2}D (N, C, *spatial) or {rank + 1}D (C, *spatial) input, got shape {shape}"
            )
        x = input if input.dim() == rank + 2 else input.unsqueeze(0)
        if shape[-rank - 1] != in_channels:
            raise ValueError(
                f"{who} expects {in_channels} input channels (in_channels), got {shape[-rank - 1]} in an input of "
                f"shape {shape}"
            )
    if any(n == 0 for n in (shape[2:] if rank is None else shape[-rank:])):
        raise ValueError(f"{who} expects non-empty spatial axes, got an input of shape {shape}")
    return x


def like_input(out: Tensor, input: Tensor, rank: int) -> Tensor:
    """Drop the batch axis that :func:`batched` added to an unbatched input."""
    if _is_proxy(input):
        return _record(like_input, out, input, rank)  # type: ignore[no-any-return]
    return out if input.dim() == rank + 2 else out.squeeze(0)


def transposed_output_padding(
    x: Tensor,
    output_size: Sequence[int] | None,
    output_padding: tuple[int, ...],
    stride: tuple[int, ...],
    padding: str | tuple[int, ...],
    kernel_size: tuple[int, ...],
    dilation: tuple[int, ...],
) -> list[int]:
    """A transposed layer's ``output_padding`` for this call: its own, or what ``output_size`` asks for.

    ``x`` is the layer's input as given (batched or not): ``output_size`` may then name the non-spatial sizes as
    ``nn.ConvTransposeNd`` allows, ``(N, C, *S)`` / ``(C, *S)`` / ``S``.
    """
    if output_size is None:
        return list(output_padding)
    if _is_proxy(x):
        args = (x, output_size, output_padding, stride, padding, kernel_size, dilation)
        return _record(transposed_output_padding, *args)  # type: ignore[no-any-return]
    # torch's method reads only its arguments when output_size is given
    compute = nn.modules.conv._ConvTransposeNd._output_padding
    rank = len(kernel_size)
    return compute(None, x, list(output_size), stride, padding, kernel_size, rank, dilation)  # type: ignore[arg-type]


def add_coord_term(out: Tensor, term: Tensor) -> Tensor:
    """``out`` plus the batch-1 coordinate term ``term`` (:func:`coord_term`) broadcast over the batch, in place."""
    if _is_proxy(out):
        return _record(add_coord_term, out, term)  # type: ignore[no-any-return]
    if _func_wrapped(out) or _func_wrapped(term):
        # torch.func (vmap, grad, jvp, stack_module_state ensembles): vmap cannot answer layout queries of
        # channels_last tensors, and either side may carry a batch dimension the other lacks: a plain add
        return out + term
    if _compiled_channels_last(out) and term.dim() == 4:
        # inductor lays ``out`` out channels_last: the add (and the backward's sum over the batch) written over
        # (batch, *spatial, channels) views reads and writes memory in order on both sides
        return (out.permute(0, 2, 3, 1) + term.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return _add(out, term.contiguous(memory_format=_memory_format(out)))


def coord_term(
    x: Tensor,
    coord_weight: Tensor,
    bias: Tensor | None,
    encoding: CoordEncoding,
    order: Order,
    stride: tuple[int, ...],
    padding: str | tuple[int, ...],
    dilation: tuple[int, ...],
    padding_mode: str,
    pad: list[int] | None = None,
    output_padding: Sequence[int] | None = None,
    frame: Frame | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """The batch-1 coordinate term (coordinate filters and bias) of ``x``'s grid.

    ``output_padding`` set means a transposed convolution. ``pad`` is the layer's
    ``_reversed_padding_repeated_twice``, used for padding modes other than ``"zeros"``. ``frame``: ``x`` is a
    window of a larger grid (see :func:`coordconv.linear_coords`). ``out``: the output the term goes into (its
    layout is a hint for the term's).
    """
    if _is_proxy(x):
        args = (x, coord_weight, bias, encoding, order, stride, padding, dilation, padding_mode)
        return _record(coord_term, *args, pad=pad, output_padding=output_padding, frame=frame, out=out)  # type: ignore[no-any-return]
    rank = x.dim() - 2
    transposed = output_padding is not None
    if rank == 2 and not transposed and _pointwise(x, coord_weight, bias, padding, pad, out):
        return _pointwise_term(x, coord_weight, bias, encoding, order, stride, frame, out)
    # a window of a larger grid (frame) takes the grid's convolution: the separable form knows whole grids
    if frame is None and _separable(x, encoding, transposed, static_sizes(coord_weight)[2:]):
        # vmap cannot answer layout queries of channels_last tensors
        channels_last = _compiled_channels_last(x) or (
            out is not None and not _func_wrapped(out) and _memory_format(out) != torch.contiguous_format
        )
        return _separable_term(
            x, coord_weight, bias, order, stride, padding, dilation, padding_mode, pad, output_padding, channels_last
        )
    grid = grid_for(x, encoding, order, _grid_layout(x, static_sizes(coord_weight)[2:], transposed), frame)
    if output_padding is not None:
        assert not isinstance(padding, str)
        return _CONV_TRANSPOSE[rank](grid, coord_weight, bias, stride, padding, tuple(output_padding), 1, dilation)
    if padding_mode != "zeros":
        assert pad is not None
        grid, padding = F.pad(grid, pad, mode=padding_mode), (0,) * rank
    # groups=1: the coordinate filters reach every output channel whatever the layer's groups.
    return _CONV[rank](grid, coord_weight, bias, stride, padding, dilation, 1)


def _pointwise(
    x: Tensor,
    coord_weight: Tensor,
    bias: Tensor | None,
    padding: str | tuple[int, ...],
    pad: list[int] | None,
    out: Tensor | None,
) -> bool:
    """Whether a 2D forward 1x1 term is one matrix product of the filters and the grid (:func:`_pointwise_term`).

    Only outside autograd (training keeps the batch-1 convolution, whose gradients the main job's committed runs
    were made with), on CPU, for unpadded layers, in plain eager calls (no compile, tracer, transform or dispatch
    mode), and unless ``SEPARABLE == "convolution"`` asks for the convolution everywhere. There the convolution of
    the two- or three-channel grid, with the copy of its channels_last result into a contiguous output's layout,
    took 5 to 10 times the product (ResNet-50's 1x1 shapes, one thread, loaded machine); torch.profiler on
    ``benchmarks/model_overhead.py``'s ResNet-50 found those copies to be most of its eager inference over the floor.
    """
    if SEPARABLE == "convolution" or x.device.type != "cpu" or _tracking_grad(coord_weight, bias):
        return False
    if static_sizes(coord_weight)[2:] != (1, 1) or torch.compiler.is_compiling() or not _plain_context(x):
        return False
    if out is not None and (_func_wrapped(out) or not _plain_context(out)):
        return False
    if _forward_ad_active():
        return False
    pads = pad if pad is not None else ([0] if padding == "valid" else padding)
    return not isinstance(pads, str) and all(p == 0 for p in pads)


def _pointwise_term(
    x: Tensor,
    coord_weight: Tensor,
    bias: Tensor | None,
    encoding: CoordEncoding,
    order: Order,
    stride: tuple[int, ...],
    frame: Frame | None,
    out: Tensor | None,
) -> Tensor:
    """The term of an unpadded 2D 1x1 layer: per output pixel, the filters times that pixel's coordinates.

    One matrix product of the ``(out, coords)`` filters and the strided grid's ``(coords, pixels)`` matrix, the
    bias added by the product, written in the layout of ``out`` (channels_last outputs get a channels_last term).
    """
    grid = grid_for(x, encoding, order, False, frame)[0]
    if any(s != 1 for s in stride):
        grid = grid[:, :: stride[0], :: stride[1]]
    channels, rows, cols = grid.shape
    flat = grid.reshape(channels, rows * cols)
    weight = coord_weight.reshape(coord_weight.shape[0], channels)
    if out is not None and _memory_format(out) == torch.channels_last:
        term = flat.t() @ weight.t() if bias is None else torch.addmm(bias, flat.t(), weight.t())
        return term.view(1, rows, cols, -1).permute(0, 3, 1, 2)
    term = weight @ flat if bias is None else torch.addmm(bias.unsqueeze(1), weight, flat)
    return term.view(1, -1, rows, cols)


# Forward calls without autograd whose output has at least this many elements run the convolution and the add of
# the coordinate term as one oneDNN call (``fused_forward``), on CPU in float32 and the contiguous layout. Below it
# the in-place add after the convolution is as fast or faster (2D and 3D, 3x3 and 1x1 kernels, torch 2.14): the
# fused call gains only where the output no longer fits in the caches and the add is a pass through memory.
_FUSED_MIN_NUMEL = 1 << 24


def fused_forward(
    layer: Any, x: Tensor, input_weight: Tensor, coord_weight: Tensor, bias: Tensor | None
) -> Tensor | None:
    """A forward ``layer``'s output, convolution and coordinate term in one oneDNN call; ``None`` where it does not pay.

    oneDNN's convolution with a binary ``add`` post-op adds the coordinate term (batch 1, broadcast) to the
    accumulator as it writes the output, so the output is not read and written a second time; the result is bit
    for bit the convolution followed by the add (tested). Used only for 2D and 3D forward layers with zero
    padding, on CPU, in float32, for contiguous inputs, outside autograd (nothing requires a gradient, or grad
    mode is off) and outside every tracer and transform (``torch.compile``, ``torch.jit``, ``torch.func``,
    ``torch.fx``, dispatch modes, forward AD), and only for outputs of at least ``_FUSED_MIN_NUMEL`` elements.
    """
    # the cheap tests first: this runs on every call of every layer, and on a GPU a layer's time is mostly Python
    if _is_proxy(x) or x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    rank = x.dim() - 2
    if rank not in (2, 3) or layer.padding_mode != "zeros" or _tracking_grad(x, input_weight, coord_weight, bias):
        return None
    if torch.compiler.is_compiling() or not _plain_context(x):  # before reading sizes, which may be symbolic
        return None
    stride, padding, dilation = layer.stride, layer.padding, layer.dilation
    sizes = static_sizes(x)
    kernel = static_sizes(input_weight)[2:]
    pads = _numeric_padding(padding, stride, kernel, dilation)
    if pads is None:
        return None
    numel = sizes[0] * static_sizes(input_weight)[0]
    for n, p, d, k, s in zip(sizes[2:], pads, dilation, kernel, stride, strict=True):
        numel *= (n + 2 * p - d * (k - 1) - 1) // s + 1
    if numel < _FUSED_MIN_NUMEL:
        return None
    if (
        _forward_ad_active()
        or not x.is_contiguous()
        or not torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call,unused-ignore]
        or not torch.backends.mkldnn.enabled
    ):
        return None
    term = coord_term(
        x, coord_weight, bias, layer._grid_encoding, layer.order, stride, padding, dilation, "zeros", frame=layer.frame
    )
    term = term.contiguous().expand(sizes[0], *term.shape[1:])
    return torch.ops.mkldnn._convolution_pointwise.binary(  # type: ignore[no-any-return]
        x, term, input_weight, None, pads, list(stride), list(dilation), layer.groups, "add", None, None, [], None
    )


def _tracking_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _numeric_padding(
    padding: str | tuple[int, ...], stride: tuple[int, ...], kernel: Sequence[int], dilation: tuple[int, ...]
) -> list[int] | None:
    """``padding`` as per-axis numbers; ``None`` for ``"same"`` where it would pad one side more than the other."""
    if padding == "valid":
        return [0] * len(kernel)
    if padding == "same":
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        if any(s != 1 for s in stride) or any(t % 2 for t in totals):
            return None
        return [t // 2 for t in totals]
    assert not isinstance(padding, str)
    return list(padding)


# Which computation of the coordinate term ``coord_term`` uses for the linear encoding: "auto" (the measured
# rule of ``_separable``), "separable" or "convolution" (benchmarks set it to time both; not an API).
SEPARABLE = "auto"


def _compiled_channels_last(x: Tensor) -> bool:
    """Whether inductor will lay a 2D convolution's output out channels_last, whatever the traced layout says.

    On the CPU with oneDNN, inductor converts every graph with a convolution to channels_last after tracing
    (``GraphLowering.decide_layout_opt``, torch 2.14), so the traced ``out`` looks contiguous while the compiled
    one is not. The backward's sum of the output gradient over the batch (the coordinate filters' gradient) then
    read a channels-last gradient into a contiguous tensor, a transposing reduction that inductor does not
    vectorise (12.9 ms of a 1.3 s ResNet-18 training step for the 112x112 stem alone: 224x224, batch 8, one
    thread). Under compilation the term is therefore made channels_last and added over permuted views.
    """
    return x.dim() == 4 and torch.compiler.is_compiling() and x.device.type == "cpu"


def _separable(x: Tensor, encoding: CoordEncoding, transposed: bool, kernel_size: Sequence[int] = ()) -> bool:
    """Whether the coordinate term is computed axis by axis (:func:`_separable_term`) rather than convolved.

    Only the linear encoding is separable. Where it is chosen is measured (``benchmarks/separable_term.py``,
    CPU, torch 2.14): in 3D, and in 2D except for 3x3 convolutions of grids under 32x32 pixels. There torch's
    batch-1 convolution of two or three coordinate channels runs far below its usual efficiency (3 to 30 times
    slower than the few small matrix products that replace it: 3D, 7x7 and 1x1 kernels, transposed layers,
    large grids); for small 3x3 convolutions and in 1D, the convolution's lower fixed cost wins by some
    microseconds. 2D forward 1x1 layers keep the convolution too: their term is a per-pixel affine map of the
    coordinates, cheap either way (0.24 against 0.07 ms measured for 256 -> 1024 channels at 14x14, on a loaded
    machine), and the convolution keeps runs made before the separable form bit for bit reproducible (the main
    job's committed runs: its gradients sum in another order); outside autograd an unpadded one is a single matrix
    product instead (:func:`_pointwise`). Off the CPU the convolution is kept until a GPU run
    measures otherwise (``benchmarks/gpu.py``). Symbolic sizes (``torch.compile`` with dynamic shapes) keep the
    convolution, which needs no size in Python.
    """
    if type(encoding) is not LinearEncoding or SEPARABLE == "convolution":
        return False
    if SEPARABLE == "auto" and x.device.type != "cpu":
        return False
    if not all(isinstance(n, int) for n in x.shape[2:]):
        return False
    if SEPARABLE == "separable":
        return True
    rank = x.dim() - 2
    if rank != 2:
        return rank == 3
    if not transposed and all(k == 1 for k in kernel_size):
        return False
    small_3x3 = not transposed and tuple(kernel_size) == (3, 3) and x.shape[2] * x.shape[3] < _SEPARABLE_MIN_PIXELS
    return not small_3x3


def _separable_term(
    x: Tensor,
    coord_weight: Tensor,
    bias: Tensor | None,
    order: Order,
    stride: tuple[int, ...],
    padding: str | tuple[int, ...],
    dilation: tuple[int, ...],
    padding_mode: str,
    pad: list[int] | None,
    output_padding: Sequence[int] | None,
    channels_last: bool = False,
) -> Tensor:
    """The batch-1 coordinate term of the linear encoding, contracted one spatial axis at a time.

    Coordinate channel ``a`` of the (padded) grid is a product over the spatial axes of one 1D vector per axis:
    the padded coordinate ramp along its own axis, the padded ones along the others (every padding mode pads
    each axis independently). A convolution of such a product is the filter contracted with one
    ``(out_length, kernel)`` matrix per axis, the matrices of :func:`_axis_factors`; summing over the coordinate
    channels gives exactly ``conv(grid, coord_weight)``, for any stride, dilation, padding and padding mode, and
    for transposed convolutions. It costs a few small matrix products instead of a batch-1 convolution.
    """
    rank = x.dim() - 2
    sizes = tuple(x.shape[2:])
    kernel = tuple(int(k) for k in coord_weight.shape[2:])
    transposed = output_padding is not None
    if transposed:
        assert not isinstance(padding, str) and output_padding is not None
        lefts, rights = tuple(padding), tuple(padding)
        # (coords, out, *k) -> (out, coords, *k)
        weight = coord_weight.transpose(0, 1)
        extra = tuple(int(p) for p in output_padding)
    else:
        lefts, rights = _pads(padding, pad, rank)
        weight = coord_weight
        extra = None
    # a cache key only where the results may be kept (never under torch.compile, which cannot trace the mode query)
    key = None
    if _plain_context(x):
        key = (
            "factors", sizes, kernel, tuple(stride), tuple(dilation), lefts, rights, padding_mode, extra, order,
            x.dtype, x.device, torch.is_inference_mode_enabled(),
        )  # fmt: skip
    factors = _factors(x, key, sizes, kernel, stride, dilation, lefts, rights, padding_mode, extra, order)
    if rank == 2:
        return _term_2d(key, factors, weight, bias, channels_last)
    if rank == 3 and not channels_last:
        return _term_3d(key, factors, weight, bias)
    # Contract every axis but one with its matrix, then the last one in a single matrix product whose output is
    # the term in the layout asked for: the last spatial axis for contiguous terms, the first for channels-last.
    final = 0 if channels_last else rank - 1
    kernel_letters, out_letters = "ijk"[:rank], "pqr"[:rank]
    subs = ["o", "a", *kernel_letters]
    part = weight
    for b in range(rank - 1, 0, -1) if channels_last else range(rank - 1):
        new = subs.copy()
        new[2 + b] = out_letters[b]
        part = torch.einsum(f"{''.join(subs)},a{out_letters[b]}{kernel_letters[b]}->{''.join(new)}", part, factors[b])
        subs = new
    # part: (out, coords, *spatial) with the kernel axis at ``final``; factor: (coords, length, kernel)
    factor = factors[final]
    others = [2 + b for b in range(rank) if b != final]
    spatial = [factor.shape[1] if b == final else part.shape[2 + b] for b in range(rank)]
    if channels_last:
        rows = part.permute(1, 2 + final, *others, 0).reshape(factor.shape[0] * factor.shape[2], -1)
        left = factor.permute(1, 0, 2).reshape(factor.shape[1], -1)
        if bias is None:
            flat = torch.mm(left, rows)
        else:
            flat = torch.addmm(bias.repeat(rows.shape[1] // bias.shape[0]), left, rows)
        # (length, *other spatial, out) in memory, (1, out, *spatial) logically: channels-last
        term = flat.view(*spatial, -1).permute(rank, *range(rank)).unsqueeze(0)
    else:
        rows = part.permute(0, *others, 1, 2 + final).reshape(-1, factor.shape[0] * factor.shape[2])
        flat = torch.mm(rows, factor.permute(0, 2, 1).reshape(-1, factor.shape[1]))
        term = flat.view(1, -1, *spatial)
        if bias is not None:
            term = (term.view(term.shape[1], -1) + bias.unsqueeze(1)).view(term.shape)
    return term


def _term_2d(
    key: tuple[Any, ...] | None,
    factors: tuple[Tensor, ...],
    weight: Tensor,
    bias: Tensor | None,
    channels_last: bool,
) -> Tensor:
    """The 2D separable term as two matrix products (few calls: the per-call cost matters for small layers).

    ``key``: the factors' cache key (``None``: nothing is kept). ``factors``: ``F0 (coords, P, K0)``, ``F1
    (coords, Q, K1)``; ``weight (out, coords, K0, K1)``. Channels-last terms are the grid's cached patches times
    the filters (one product) while the patches stay small; otherwise the first product contracts one kernel
    axis against a cached block-diagonal matrix built from one factor, the second the other axis and the
    coordinate channels. Either way the result comes out in the layout asked for, and the bias rides along in
    the products.
    """
    f0, f1 = factors
    a, p, k0 = f0.shape
    q, k1 = f1.shape[1], f1.shape[2]
    out = weight.shape[0]
    flat_weight = weight.reshape(out, a * k0 * k1)
    extra = 0 if bias is None else 1
    if channels_last and p * q * (a * k0 * k1 + extra) <= _GRID_CACHE_MAX_NUMEL:
        # term[(p, q), o] = sum_(a, i, j) F0[a, p, i] * F1[a, q, j] * W[o, a, i, j]: the grid's patches (cached,
        # with a column of ones that reads the bias) times the filters, one well-shaped matrix product
        def build_patches() -> tuple[Tensor, ...]:
            patches = f0.permute(1, 0, 2).reshape(p, 1, a, k0, 1) * f1.permute(1, 0, 2).reshape(1, q, a, 1, k1)
            patches = patches.reshape(p * q, a * k0 * k1)
            if extra:
                patches = torch.cat([patches, torch.ones_like(patches[:, :1])], dim=1)
            return (patches,)

        (patches,) = _cached(_sub(key, "2d patches", extra), build_patches)
        if bias is not None:
            flat_weight = torch.cat([flat_weight, bias.unsqueeze(1)], dim=1)
        # (p, q, out) in memory, (1, out, p, q) logically: channels-last
        return torch.mm(patches, flat_weight.t()).view(p, q, out).permute(2, 0, 1).unsqueeze(0)
    if channels_last:
        # term[p, (q, o)] = sum_(a, i) F0[a, p, i] * inner[(a, i), (q, o)],
        # inner[(a, i, q), o] = sum_j F1[a, q, j] * W[o, a, i, j]: a block-diagonal matrix times W. The bias
        # rides along as one more row of inner (tiled over q) read by a column of ones.
        def build() -> tuple[Tensor, ...]:
            # blocks[(a, i, q), (a2, i2, j)] = F1[a, q, j] * [a == a2] * [i == i2]
            eye = torch.eye(a * k0, dtype=f1.dtype, device=f1.device).view(a, k0, 1, a, k0, 1)
            blocks = eye * f1.view(a, 1, q, 1, 1, k1)
            left = f0.permute(1, 0, 2).reshape(p, a * k0)
            if extra:
                left = torch.cat([left, torch.ones_like(left[:, :1])], dim=1)
            return blocks.reshape(a * k0 * q, a * k0 * k1), left

        blocks, left = _cached(_sub(key, "2d channels_last", extra), build)
        inner = torch.mm(blocks, flat_weight.t()).view(a * k0, q * out)
        if bias is not None:
            inner = torch.cat([inner, bias.repeat(q).unsqueeze(0)])
        # (p, q, out) in memory, (1, out, p, q) logically: channels-last
        return torch.mm(left, inner).view(p, q, out).permute(2, 0, 1).unsqueeze(0)
    # term[(o, p), q] = sum_(a, j) inner[(o, p), (a, j)] * F1[a, q, j],
    # inner[o, (p, a, j)] = sum_i W[o, a, i, j] * F0[a, p, i]: W times a block-diagonal matrix. The bias rides
    # along as one more input column of W, copied to one more column of inner per p, read by a row of ones.

    def build_contiguous() -> tuple[Tensor, ...]:
        # blocks[(a, i, j), (p, a2, j2)] = F0[a, p, i] * [a == a2] * [j == j2]
        eye = torch.eye(a * k1, dtype=f0.dtype, device=f0.device).view(a, 1, k1, 1, a, k1)
        blocks = (f0.permute(0, 2, 1).reshape(a, k0, 1, p, 1, 1) * eye).reshape(a * k0 * k1, p, a * k1)
        right = f1.permute(0, 2, 1).reshape(a * k1, q)
        if extra:
            blocks = torch.cat([blocks, torch.zeros_like(blocks[:, :, :1])], dim=2)
            ones_row = torch.zeros_like(blocks[:1])
            ones_row[..., -1] = 1
            blocks = torch.cat([blocks, ones_row])
            right = torch.cat([right, torch.ones_like(right[:1])])
        return blocks.reshape(blocks.shape[0], -1), right

    blocks, right = _cached(_sub(key, "2d", extra), build_contiguous)
    if bias is not None:
        flat_weight = torch.cat([flat_weight, bias.unsqueeze(1)], dim=1)
    inner = torch.mm(flat_weight, blocks).view(out * p, a * k1 + extra)
    return torch.mm(inner, right).view(1, out, p, q)


def _term_3d(key: tuple[Any, ...] | None, factors: tuple[Tensor, ...], weight: Tensor, bias: Tensor | None) -> Tensor:
    """The contiguous 3D separable term as one batched and one plain matrix product.

    ``factors``: ``F0 (coords, P, K0)``, ``F1 (coords, Q, K1)``, ``F2 (coords, R, K2)``; ``weight (out, coords,
    K0, K1, K2)``. Per coordinate channel ``a``, the first two axes' factors make one cached ``(K0 K1, P Q)``
    matrix; ``u[a, k, o, (p, q)]`` is the filters times it (a batched product over ``a``), and the term is
    ``u``, read as ``((o, p, q), (a, k))`` without a copy, times ``F2`` (one product that writes the term in
    place, its bias added by the product). About 4 times faster than contracting axis by axis with einsum
    (0.35 against 1.3 ms for 16 channels at 32^3, one thread), whose permuted intermediates were copied.
    """
    f0, f1, f2 = factors
    a, p, k0 = f0.shape
    q, k1 = f1.shape[1], f1.shape[2]
    r, k2 = f2.shape[1], f2.shape[2]
    out = weight.shape[0]
    if a * k0 * k1 * p * q > _GRID_CACHE_MAX_NUMEL:
        key = None

    def build() -> tuple[Tensor, ...]:
        # m[a, (i, j), (p, q)] = F0[a, p, i] * F1[a, q, j]; right[(a, k), r] = F2[a, r, k]
        m = f0.permute(0, 2, 1).reshape(a, k0, 1, p, 1) * f1.permute(0, 2, 1).reshape(a, 1, k1, 1, q)
        return m.reshape(a, k0 * k1, p * q), f2.permute(0, 2, 1).reshape(a * k2, r)

    m, right = _cached(_sub(key, "3d"), build)
    u = torch.bmm(weight.permute(1, 4, 0, 2, 3).reshape(a, k2 * out, k0 * k1), m)
    left = u.view(a * k2, out * p * q).t()
    if bias is None:
        flat = torch.mm(left, right)
    else:
        flat = torch.addmm(bias.repeat_interleave(p * q).unsqueeze(1), left, right)
    return flat.view(1, out, p, q, r)


def _sub(key: tuple[Any, ...] | None, *parts: Any) -> tuple[Any, ...] | None:
    return None if key is None else (*key, *parts)


def _pads(padding: str | tuple[int, ...], pad: list[int] | None, rank: int) -> tuple[tuple[int, ...], ...]:
    """(left pads, right pads) per spatial axis of a forward convolution, in axis order."""
    if pad is not None:  # the layer's _reversed_padding_repeated_twice: last axis first, (left, right) pairs
        lefts = tuple(pad[2 * (rank - 1 - b)] for b in range(rank))
        rights = tuple(pad[2 * (rank - 1 - b) + 1] for b in range(rank))
        return lefts, rights
    if isinstance(padding, str):
        assert padding == "valid", padding  # "same" always comes with the layer's pad list
        return (0,) * rank, (0,) * rank
    return tuple(padding), tuple(padding)


def _factors(
    x: Tensor,
    key: tuple[Any, ...] | None,
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    lefts: tuple[int, ...],
    rights: tuple[int, ...],
    padding_mode: str,
    output_padding: tuple[int, ...] | None,
    order: Order,
) -> tuple[Tensor, ...]:
    """One ``(coords, out_length, kernel)`` matrix per spatial axis (see :func:`_separable_term`), cached.

    They depend on sizes and arguments only (no parameter), so they are kept under ``key``, on the grids' terms.
    """

    def build() -> tuple[Tensor, ...]:
        rank = len(sizes)
        axes = [
            _axis_factors(
                sizes[b],
                kernel[b],
                stride[b],
                dilation[b],
                lefts[b],
                rights[b],
                padding_mode,
                None if output_padding is None else output_padding[b],
                x.dtype,
                x.device,
            )
            for b in range(rank)
        ]
        # coordinate channel a varies along axis a ("ij") or along axis rank - 1 - a ("xy")
        along = [a if order == "ij" else rank - 1 - a for a in range(rank)]
        return tuple(
            torch.stack([axes[b][0] if along[a] == b else axes[b][1] for a in range(rank)]) for b in range(rank)
        )

    return _cached(key, build)


def _cached(key: tuple[Any, ...] | None, build: Callable[[], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """``build()``, kept under ``key``; ``None``: not kept (``x`` is not a plain tensor in a plain context)."""
    if key is None:
        return build()
    with _grids_lock:
        cached = _factor_cache.get(key)
        if cached is not None:
            _factor_cache.move_to_end(key)
            return cached
    with torch.no_grad():
        value = build()
    with _grids_lock:
        _factor_cache[key] = value
        while len(_factor_cache) > _GRID_CACHE_ENTRIES:
            _factor_cache.popitem(last=False)
    return value


def _axis_factors(
    n: int,
    k: int,
    stride: int,
    dilation: int,
    left: int,
    right: int,
    padding_mode: str,
    output_padding: int | None,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """For one axis: the (ramp, ones) matrices ``(out_length, k)``.

    Entry ``[q, t]`` is the padded 1D vector's value that kernel tap ``t`` reads at output position ``q``
    (``output_padding`` set: a transposed convolution's).
    """
    with torch.no_grad():
        ramp = linear_coords((n,), dtype=dtype, device=device)[0]
        base = torch.stack([ramp, torch.ones(n, dtype=dtype, device=device)])
        taps = torch.arange(k, device=device) * dilation
        if output_padding is None:
            if left or right:
                mode = "constant" if padding_mode == "zeros" else padding_mode
                base = F.pad(base.unsqueeze(0), [left, right], mode=mode).squeeze(0)
            length = (n + left + right - dilation * (k - 1) - 1) // stride + 1
            index = torch.arange(length, device=device).unsqueeze(1) * stride + taps
            return base[0][index], base[1][index]
        # transposed: output q takes input p through tap t where q = p * stride - left + t * dilation
        length = (n - 1) * stride - 2 * left + dilation * (k - 1) + output_padding + 1
        offset = torch.arange(length, device=device).unsqueeze(1) + left - taps
        source = torch.div(offset, stride, rounding_mode="floor")
        valid = (offset - source * stride == 0) & (source >= 0) & (source < n)
        gathered = base[:, source.clamp(0, n - 1)]
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(valid, gathered[0], zero), torch.where(valid, gathered[1], zero)


def _is_proxy(value: Any) -> bool:
    return isinstance(value, torch.fx.Proxy)


def _record(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` recorded as one call by the ``torch.fx`` tracer of its first ``Proxy`` argument.

    ``torch.fx.wrap`` does this when the layers' own module calls the functions; a traced ``GraphModule`` traced
    again (``torch.fx.experimental.optimization.optimize_for_inference`` re-traces what its ``fuse`` traced)
    calls them with proxies through its own globals, which the tracer does not patch.
    """
    proxy = next(a for a in (*args, *kwargs.values()) if isinstance(a, torch.fx.Proxy))
    return proxy.tracer.create_proxy("call_function", fn, args, kwargs)


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last(_3d) when ``x`` is laid out that way (and not also plain contiguous), else contiguous."""
    if x.is_contiguous():
        return torch.contiguous_format
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _add(out: Tensor, term: Tensor) -> Tensor:
    """``out + term`` with ``term`` (batch 1, ``out``'s layout) broadcast over the batch, into ``out``'s memory.

    Autograd's own in-place broadcast add is used where its batch reduction in backward is fast: without
    gradients, under ``torch.compile`` / ``torch.func``, and for contiguous outputs. A channels_last output goes
    through ``_AddBatchTerm``, whose backward sums over the batch in the physical layout (1.1-1.6x faster than
    autograd's add for the outputs in ``benchmarks/layer_special_cases.py``; an add of permuted views, kept
    before for small outputs, no longer paid there and was dropped).
    """
    needs_grad = torch.is_grad_enabled() and (out.requires_grad or term.requires_grad)
    # forward-mode AD (torch.autograd.forward_ad) needs autograd's own add: _AddBatchTerm has no jvp
    if not needs_grad or out.is_contiguous() or _transformed(out) or _forward_ad_active():
        return out.add_(term)
    return _AddBatchTerm.apply(out, term)  # type: ignore[no-any-return,no-untyped-call,unused-ignore]


def _func_wrapped(x: Tensor) -> bool:
    """Whether ``x`` is wrapped by a ``torch.func`` transform (vmap's batched tensors, grad's and jvp's wrappers)."""
    if torch.compiler.is_compiling():  # dynamo cannot trace the query (and handles torch.func itself)
        return False
    return bool(_IS_FUNCTORCH_WRAPPED is not None and _IS_FUNCTORCH_WRAPPED(x))


_IS_FUNCTORCH_WRAPPED = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)


def _forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level`` is open."""
    return bool(forward_ad._current_level >= 0)


def _transformed(x: Tensor) -> bool:
    """Whether ``x`` is under ``torch.compile`` or a ``torch.func`` transform.

    ``torch.compile`` traces its own backward and ``torch.func`` wraps tensors: custom autograd Functions and
    cached tensors suit neither.
    """
    return torch.compiler.is_compiling() or _func_wrapped(x)


def _sum_over_batch(grad: Tensor) -> Tensor:
    """``grad.sum(0, keepdim=True)``, computed in ``grad``'s physical layout.

    torch reduces a channels_last tensor over its batch axis about ten times slower than a contiguous one
    (torch 2.13, CPU); summing the rows of the physically ordered ``(B, -1)`` view avoids that.
    """
    if grad.shape[0] == 1:
        return grad
    if grad.stride(0) == 0:  # a gradient expanded over the batch, as ``out.sum().backward()`` makes
        return grad[:1] * grad.shape[0]
    perm = [0, *sorted(range(1, grad.dim()), key=lambda d: grad.stride(d), reverse=True)]
    physical = grad.permute(perm)
    if not physical.is_contiguous():
        return grad.sum(0, keepdim=True)
    summed = physical.reshape(grad.shape[0], -1).sum(0).view(1, *physical.shape[1:])
    return summed.permute([perm.index(d) for d in range(grad.dim())])


class _AddBatchTerm(torch.autograd.Function):
    """``out += term`` in place, ``term`` of batch size 1 broadcast over ``out``'s batch."""

    @staticmethod
    def forward(ctx: Any, out: Tensor, term: Tensor) -> Tensor:
        ctx.mark_dirty(out)
        return out.add_(term)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        return grad, _sum_over_batch(grad)
