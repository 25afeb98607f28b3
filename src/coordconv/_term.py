"""The speed machinery behind the CoordConv layers (private; :mod:`coordconv.layers` is the public face).

A CoordConv computes ``conv(x, W) + conv(grid, W_c) + b``. The second term has batch size 1; it is computed on
every call from the parameters as they are at that moment, in the layout of the convolution's output, and
added to that output. Nothing here keeps state that depends on a parameter, so no way of changing one
(optimizer steps fused or not, ``.data`` edits, ``load_state_dict``, parametrizations, ``to()``/``half()``,
weight swaps, EMA) can leave a stale result. The one cache holds coordinate *grids*, which depend only on the
grid's size, the encoding, dtype, device and layout.

The functions the layers call (``batched``, ``transposed_output_padding``, ``add_coord_term``, ``like_input``)
are wrapped for ``torch.fx``: symbolic tracing records them as single calls instead of tracing into their
Python control flow, so a traced model runs them at its own input sizes.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from coordconv.coords import CoordEncoding, Frame, Order, coord_grid

__all__ = ["add_coord_term", "batched", "grid_for", "like_input", "transposed_output_padding"]

# 2D grids with more pixels than this are laid out channels_last on CPU, whatever the kernel (see ``_grid_layout``).
_SMALL_GRID = 10240
# The grid cache: at most this many grids, each of at most this many elements.
_GRID_CACHE_ENTRIES = 32
_GRID_CACHE_MAX_NUMEL = 1 << 22

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_grids: OrderedDict[tuple[Any, ...], Tensor] = OrderedDict()
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
    cacheable = _plain_context(x) and _immutable(encoding)
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
    if torch.jit.is_tracing() or _transformed(x):  # type: ignore[attr-defined,no-untyped-call,unused-ignore]
        return False
    if type(x) is not Tensor and type(x) is not nn.Parameter:  # FakeTensor, FunctionalTensor, other subclasses
        return False
    return _current_dispatch_mode() is None


def _current_dispatch_mode() -> Any:
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return _get_current_dispatch_mode()


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
    if not torch.jit.is_tracing():  # type: ignore[attr-defined,no-untyped-call,unused-ignore]
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


def add_coord_term(
    out: Tensor,
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
) -> Tensor:
    """``out`` plus the batch-1 coordinate term (coordinate filters and bias) of ``x``'s grid, in place.

    ``output_padding`` set means a transposed convolution. ``pad`` is the layer's
    ``_reversed_padding_repeated_twice``, used for padding modes other than ``"zeros"``. ``frame``: ``x`` is a
    window of a larger grid (see :func:`coordconv.linear_coords`).
    """
    if _is_proxy(x):
        args = (out, x, coord_weight, bias, encoding, order, stride, padding, dilation, padding_mode)
        return _record(add_coord_term, *args, pad=pad, output_padding=output_padding, frame=frame)  # type: ignore[no-any-return]
    rank = x.dim() - 2
    transposed = output_padding is not None
    grid = grid_for(x, encoding, order, _grid_layout(x, static_sizes(coord_weight)[2:], transposed), frame)
    if output_padding is not None:
        assert not isinstance(padding, str)
        term = _CONV_TRANSPOSE[rank](grid, coord_weight, bias, stride, padding, tuple(output_padding), 1, dilation)
    else:
        if padding_mode != "zeros":
            assert pad is not None
            grid, padding = F.pad(grid, pad, mode=padding_mode), (0,) * rank
        # groups=1: the coordinate filters reach every output channel whatever the layer's groups.
        term = _CONV[rank](grid, coord_weight, bias, stride, padding, dilation, 1)
    if _func_wrapped(out) or _func_wrapped(term):
        # torch.func (vmap, grad, jvp, stack_module_state ensembles): vmap cannot answer layout queries of
        # channels_last tensors, and either side may carry a batch dimension the other lacks: a plain add
        return out + term
    return _add(out, term.contiguous(memory_format=_memory_format(out)))


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
    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(is_wrapped is not None and is_wrapped(x))


def _forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level`` is open."""
    from torch.autograd import forward_ad

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
