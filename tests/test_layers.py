import copy
import inspect
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given
from hypothesis import strategies as st
from torch import nn

from coordconv import (
    AddCoords,
    CoordConv1d,
    CoordConv2d,
    CoordConv3d,
    CoordConvTranspose1d,
    CoordConvTranspose2d,
    CoordConvTranspose3d,
    FourierEncoding,
    _term,
    add_coords,
    coord_grid,
)
from reference import reference_forward, reference_grid

CONV = {1: CoordConv1d, 2: CoordConv2d, 3: CoordConv3d}
CONV_T = {1: CoordConvTranspose1d, 2: CoordConvTranspose2d, 3: CoordConvTranspose3d}
TWINS = [
    (CoordConv1d, nn.Conv1d),
    (CoordConv2d, nn.Conv2d),
    (CoordConv3d, nn.Conv3d),
    (CoordConvTranspose1d, nn.ConvTranspose1d),
    (CoordConvTranspose2d, nn.ConvTranspose2d),
    (CoordConvTranspose3d, nn.ConvTranspose3d),
]
F64 = {"dtype": torch.float64}


# ---------------------------------------------------------------------------------------------------------
# the fast layer equals the concatenating reference, over randomised cases


@st.composite
def layer_cases(draw):
    rank = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(rank))  # noqa: E731
    kernel, stride, dilation = ints(1, 3), ints(1, 2), ints(1, 2)
    max_size = {1: 12, 2: 8, 3: 5}[rank]
    spatial = ints(1, max_size)
    kwargs = {"stride": stride, "dilation": dilation, "groups": groups, "bias": draw(st.booleans())}
    if transposed:
        kwargs["padding"] = ints(0, 2)
        kwargs["output_padding"] = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
        )
    else:
        padding_choices = [ints(0, 2), "valid"] + (["same"] if stride == (1,) * rank else [])
        kwargs["padding"] = draw(st.sampled_from(padding_choices))
        kwargs["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    encoding = draw(
        st.sampled_from(["linear", "linear", "radius", FourierEncoding((1.0, 3.0)), FourierEncoding((2.0,), False)])
    )
    with_r = encoding != "radius" and draw(st.booleans())
    coord_kwargs = {"with_r": with_r, "encoding": encoding, "order": draw(st.sampled_from(["ij", "xy"]))}
    channels = (groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3)))
    batch = draw(st.integers(1, 3))
    return rank, transposed, channels, kernel, kwargs, coord_kwargs, spatial, batch


def _build(case):
    rank, transposed, (cin, cout), kernel, kwargs, coord_kwargs, spatial, batch = case
    cls = (CONV_T if transposed else CONV)[rank]
    layer = cls(cin, cout, kernel, **kwargs, **coord_kwargs, **F64)
    with torch.no_grad():  # non-zero bias, so that a bias added twice or lost shows up
        for p in layer.parameters():
            p.normal_()
    x = torch.randn(batch, cin, *spatial, **F64, requires_grad=True)
    return layer, x


@given(layer_cases())
def test_equals_concatenated_reference(case):
    layer, x = _build(case)
    try:
        expected = reference_forward(layer, x)
    except RuntimeError:
        event("geometry refused by torch")
        # torch refuses this geometry (output smaller than one pixel, reflect padding wider than the input):
        # the layer must refuse it too, not return something.
        with pytest.raises((RuntimeError, ValueError)):
            layer(x)
        return
    event(f"compared: rank {layer._rank}, {'transposed' if layer.transposed else 'conv'}, groups {layer.groups > 1}")
    out = layer(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn_like(expected)
    params = [x, *layer.parameters()]
    ours = torch.autograd.grad(out, params, grad_out)
    theirs = torch.autograd.grad(expected, params, grad_out)
    for name, a, b in zip(["input", *(n for n, _ in layer.named_parameters())], ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d])
def test_output_size_argument_of_transposed_and_plain(cls):
    layer = cls(2, 3, 3, stride=2, padding=1, **F64)
    x = torch.randn(2, 2, 5, 4, **F64)
    if cls is CoordConvTranspose2d:
        out = layer(x, output_size=[10, 8])
        assert out.shape == (2, 3, 10, 8)
        torch.testing.assert_close(out, reference_forward(layer, x, output_size=[10, 8]))
        with pytest.raises(ValueError, match="requested an output size"):
            layer(x, output_size=[20, 20])
    else:
        assert "output_size" not in inspect.signature(layer.forward).parameters


def test_grouped_and_depthwise_layers():
    for groups in (2, 8):
        layer = CoordConv2d(8, 8, 3, padding=1, groups=groups, with_r=True, **F64)
        # each group's input filters and the three coordinate filters: dense over groups
        assert layer.weight.shape == (8, 8 // groups + 3, 3, 3)
        assert layer.coord_weight.shape == (8, 3, 3, 3)
        x = torch.randn(2, 8, 6, 7, **F64)
        torch.testing.assert_close(layer(x), reference_forward(layer, x))


# ---------------------------------------------------------------------------------------------------------
# known values, equivalences


def test_known_answer_coordinate_filters_read_the_grid():
    layer = CoordConv2d(1, 3, 1, with_r=True, bias=False, **F64)
    with torch.no_grad():
        layer.weight.zero_()
        layer.coord_weight.copy_(torch.eye(3, **F64).view(3, 3, 1, 1))
    out = layer(torch.randn(2, 1, 2, 3, **F64))
    assert torch.equal(out, coord_grid((2, 3), with_r=True, **F64).expand(2, -1, -1, -1))


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_zero_coordinate_filters_give_the_plain_layer(coord_cls, plain_cls):
    rank = coord_cls._rank
    plain = plain_cls(4, 6, 3, stride=2, padding=1, **F64)
    layer = coord_cls.from_conv(plain, with_r=True)
    x = torch.randn(3, 4, *([7] * rank), **F64)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-13, atol=1e-13)
    assert layer.bias is plain.bias
    input_weight, coord_weight = layer._split(layer.weight)
    assert torch.equal(input_weight, plain.weight) and not coord_weight.any()


def test_unbatched_input():
    for layer, x in [
        (CoordConv2d(3, 4, 3, padding=1), torch.randn(3, 5, 6)),
        (CoordConvTranspose1d(3, 4, 3, stride=2), torch.randn(3, 5)),
    ]:
        out = layer(x)
        torch.testing.assert_close(out, layer(x.unsqueeze(0)).squeeze(0))


def test_add_coords_module_equals_function():
    x = torch.randn(2, 3, 4, 5)
    for kwargs in ({}, {"with_r": True}, {"encoding": "fourier", "order": "xy"}):
        torch.testing.assert_close(AddCoords(**kwargs)(x), add_coords(x, **kwargs))
    out = add_coords(x, with_r=True)
    assert torch.equal(out[:, :3], x)
    torch.testing.assert_close(out[:, 3:], reference_grid((4, 5), with_r=True, dtype=x.dtype).expand(2, -1, -1, -1))
    assert AddCoords(with_r=True).channels(3) == 4


def test_add_coords_ranks():
    for rank in (1, 2, 3):
        x = torch.randn(2, 1, *([3] * rank))
        assert AddCoords(rank)(x).shape == (2, 1 + rank, *([3] * rank))
    with pytest.raises(ValueError, match=r"3D .* input with 1 spatial axes, got shape"):
        AddCoords(1)(torch.randn(2, 1, 3, 3))


def test_add_coords_gradient_reaches_input_only():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    add_coords(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


# ---------------------------------------------------------------------------------------------------------
# construction, signatures, initialisation, repr


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_signature_mirrors_torch(coord_cls, plain_cls):
    ours = inspect.signature(coord_cls.__init__).parameters
    theirs = inspect.signature(plain_cls.__init__).parameters
    positional = [n for n, p in ours.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == list(theirs)
    for name in theirs:
        assert ours[name].default == theirs[name].default, name
    keyword_only = [n for n, p in ours.items() if p.kind == p.KEYWORD_ONLY]
    assert keyword_only == ["with_r", "encoding", "order"]


def test_positional_kernel_size_is_not_swallowed():
    # mkocabas' CoordConv(in, out, with_r, **kw) binds a positional kernel size to with_r; ours cannot.
    layer = CoordConv2d(3, 16, 5, 2, 1, 1, 1, False, "reflect")
    assert layer.kernel_size == (5, 5) and layer.stride == (2, 2) and layer.bias is None
    assert layer.padding_mode == "reflect" and layer.with_r is False


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_weight_is_the_concatenated_layers(coord_cls, plain_cls):
    """weight has the shape of the plain layer over the input and one copy of the coordinates per group."""
    ours = coord_cls(4, 6, 3, groups=2, with_r=True)
    d = coord_cls._rank + 1
    theirs = plain_cls(4 + 2 * d, 6, 3, groups=2)
    assert ours.weight.shape == theirs.weight.shape
    assert ours.bias.shape == theirs.bias.shape
    assert ours.in_channels == 4 and ours.coord_channels == d


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_init_equals_the_concatenated_layer(coord_cls, plain_cls):
    rank = coord_cls._rank
    torch.manual_seed(1)
    ours = coord_cls(4, 6, 3, with_r=True)
    torch.manual_seed(1)
    concat = plain_cls(4 + rank + 1, 6, 3)
    torch.testing.assert_close(ours.weight, concat.weight, rtol=0, atol=0)
    torch.testing.assert_close(ours.bias, concat.bias, rtol=0, atol=0)


def test_grouped_init_bound_counts_coordinate_fan_in():
    layer = CoordConv2d(64, 64, 3, groups=64)
    bound = 1 / (9 * (1 + 2)) ** 0.5
    for p in layer.parameters():
        assert p.abs().max() <= bound and p.abs().max() > 0.8 * bound
    layer.reset_parameters()
    assert layer.weight.shape == (64, 3, 3, 3) and layer.coord_weight.abs().max() <= bound


def test_extra_repr_shows_non_defaults_only():
    assert repr(CoordConv2d(3, 8, 3)) == "CoordConv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))"
    text = repr(CoordConv2d(3, 8, 3, with_r=True, encoding="fourier", order="xy", padding_mode="circular"))
    assert "with_r=True" in text and "encoding='fourier'" in text and "order='xy'" in text
    assert "padding_mode=circular" in text
    custom = repr(CoordConv1d(1, 1, 1, encoding=FourierEncoding((5.0,))))
    assert "encoding=FourierEncoding(frequencies=(5.0,), include_linear=True)" in custom
    assert repr(AddCoords(2, with_r=True)) == "AddCoords(rank=2, with_r=True)"


@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose3d])
def test_factory_kwargs(cls):
    layer = cls(2, 4, 3, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    meta = cls(2, 4, 3, device="meta")
    assert all(p.is_meta for p in meta.parameters())
    real = meta.to_empty(device="cpu")
    real.reset_parameters()
    x = torch.randn(1, 2, *([5] * cls._rank))
    assert torch.isfinite(real(x)).all()


def test_meta_forward_gives_shapes():
    layer = CoordConv2d(3, 8, 3, stride=2, device="meta")
    assert layer(torch.empty(4, 3, 17, 9, device="meta")).shape == (4, 8, 8, 4)


# ---------------------------------------------------------------------------------------------------------
# bad input and bad options: errors at our boundary that name the value


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (torch.randn(3, 8), ValueError, r"4D \(N, C, \*spatial\) or 3D \(C, \*spatial\) input, got shape \(3, 8\)"),
        (torch.randn(2, 3, 8), ValueError, r"expects 3 input channels \(in_channels\), got 2 in an input of shape"),
        (torch.randn(1, 2, 3, 8, 8), ValueError, r"got shape \(1, 2, 3, 8, 8\)"),
        (torch.randn(2, 4, 8, 8), ValueError, r"expects 3 input channels \(in_channels\), got 4"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int64), TypeError, "floating-point input, got dtype torch.int64"),
        (torch.randn(2, 3, 0, 8), ValueError, r"non-empty spatial axes, got an input of shape \(2, 3, 0, 8\)"),
        ([[1.0]], TypeError, "expects a torch.Tensor, got list"),
    ],
)
def test_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        CoordConv2d(3, 4, 3, padding=1)(x)


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "message"),
    [
        (CoordConv2d, (3, 4, 3), {"encoding": "spiral"}, "unknown coordinate encoding 'spiral'"),
        (CoordConv2d, (3, 4, 3), {"order": "ji"}, "order must be one of .* got 'ji'"),
        (CoordConv2d, (3, 4, 3), {"padding_mode": "mirror"}, "padding_mode must be one of .* got 'mirror'"),
        (CoordConv2d, (3, 4, 3), {"groups": 2}, r"groups \(=2\) must divide in_channels \(=3\)"),
        (CoordConv2d, (4, 3, 3), {"groups": 2}, r"groups \(=2\) must divide out_channels \(=3\)"),
        (CoordConv2d, (4, 4, 3), {"groups": 0}, "groups must be a positive int, got 0"),
        (CoordConv2d, (0, 4, 3), {}, "in_channels must be a positive int, got 0"),
        (CoordConv2d, (3, 4, (3, 3, 3)), {}, r"kernel_size must be an int or a tuple of 2 ints, got \(3, 3, 3\)"),
        (CoordConv2d, (3, 4, 0), {}, "kernel_size must be >= 1 in every dimension, got 0"),
        (CoordConv2d, (3, 4, 3), {"stride": 2, "padding": "same"}, "padding='same' needs stride 1, got stride=2"),
        (CoordConv2d, (3, 4, 3), {"padding": "full"}, "padding must be 'same', 'valid', .* got 'full'"),
        (CoordConv2d, (3, 4, 3), {"padding": -1}, "padding must be >= 0 in every dimension, got -1"),
        (CoordConv2d, (3, 4, 3), {"with_r": "yes"}, "with_r must be a bool, got 'yes'"),
        (CoordConvTranspose2d, (3, 4, 3), {"padding": "same"}, "padding must be an int or a tuple of ints, got 'same'"),
        (CoordConvTranspose2d, (3, 4, 3), {"padding_mode": "reflect"}, r"padding_mode must be one of \('zeros',\)"),
        (CoordConvTranspose2d, (3, 4, 3), {"stride": 2, "output_padding": 2}, r"output_padding \(=2\) must be"),
        (CoordConv3d, (3, 4, 3), {"encoding": "radius", "with_r": True}, "second radius channel"),
        (CoordConv2d, (3, 4, 3), {"dtype": torch.complex64}, "dtype must be a floating-point torch.dtype"),
        (CoordConvTranspose1d, (3, 4, 3), {"dtype": torch.int32}, "dtype must be a floating-point torch.dtype"),
    ],
)
def test_bad_options(cls, args, kwargs, message):
    error = TypeError if "must be a bool" in message or "dtype" in message else ValueError
    with pytest.raises(error, match=message):
        cls(*args, **kwargs)


def test_bad_add_coords_options():
    with pytest.raises(ValueError, match="rank must be 1, 2, 3 or None, got 4"):
        AddCoords(4)
    with pytest.raises(ValueError, match="1 to 3 spatial axes, got shape"):
        add_coords(torch.randn(2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        add_coords(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------------------
# autograd, compile, export, memory formats, precision, serialisation, distributed


@pytest.mark.parametrize(
    "layer",
    [
        CoordConv1d(2, 3, 3, padding=1, padding_mode="circular", with_r=True, **F64),
        CoordConv2d(2, 3, 3, stride=2, padding=1, padding_mode="reflect", **F64),
        CoordConv3d(2, 2, 2, groups=2, encoding="fourier", **F64),
        CoordConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, with_r=True, **F64),
    ],
    ids=repr,
)
def test_gradcheck(layer):
    x = torch.randn(2, 2, *([4] * layer._rank), **F64, requires_grad=True)
    params = tuple(layer.parameters())

    names = [n for n, _ in layer.named_parameters()]

    def fn(inp, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (inp,))

    assert torch.autograd.gradcheck(fn, (x, *params))


@pytest.mark.parametrize(
    "layer_fn",
    [
        lambda: CoordConv2d(3, 8, 3, padding=1, with_r=True),
        lambda: CoordConvTranspose2d(3, 8, 4, stride=2, padding=1),
        lambda: CoordConv3d(3, 4, 3, padding="same", encoding="fourier"),
    ],
)
def test_compile_fullgraph_equals_eager(layer_fn):
    torch._dynamo.reset()
    layer = layer_fn()
    x = torch.randn(2, 3, *([6] * layer._rank), requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    eager_out, compiled_out = layer(x), compiled(x)
    torch.testing.assert_close(compiled_out, eager_out)
    params = [x, *layer.parameters()]
    for a, b in zip(
        torch.autograd.grad(eager_out.square().sum(), params),
        torch.autograd.grad(compiled_out.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
# inductor's CPU backend imports a torch module that still calls a deprecated torch.jit API (torch 2.13)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_inductor_equals_eager():
    torch._dynamo.reset()
    layer = CoordConv2d(3, 8, 3, padding=1, with_r=True)
    x = torch.randn(2, 3, 10, 12)
    torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), layer(x), rtol=1e-4, atol=1e-4)


def _changing_size_models():
    """(model, input sizes): every rank, forward and transposed, channels_last inputs, options that change paths."""
    return [
        (
            nn.Sequential(CoordConv2d(3, 8, 3, padding=1), nn.ReLU(), CoordConvTranspose2d(8, 4, 3, padding=1)),
            [(12, 10), (9, 7), (16, 16)],
            False,
        ),
        (
            nn.Sequential(
                CoordConv2d(3, 8, 5, padding=2, padding_mode="reflect", stride=2, with_r=True),
                nn.ReLU(),
                CoordConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2),
            ),
            [(12, 10), (9, 7), (16, 16)],
            True,
        ),
        (
            nn.Sequential(
                CoordConv1d(3, 8, 3, padding=1), nn.ReLU(), CoordConvTranspose1d(8, 4, 3, padding=1, stride=2)
            ),
            [(12,), (9,), (16,)],
            False,
        ),
        (
            nn.Sequential(CoordConv3d(3, 4, 3, padding=1), nn.ReLU(), CoordConvTranspose3d(4, 2, 3, padding=1)),
            [(6, 5, 4), (4, 5, 3), (5, 5, 5)],
            True,
        ),
    ]


def _as_layout(x, channels_last):
    if channels_last and x.dim() in (4, 5):
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_inductor_training_at_changing_sizes():
    # issue 27: inductor failed at the second size ("cannot determine truth value of Relational")
    torch.manual_seed(0)
    for model, sizes, channels_last in _changing_size_models():
        torch._dynamo.reset()
        model.train()
        compiled = torch.compile(model)
        for size in sizes:
            x = _as_layout(torch.randn(2, 3, *size), channels_last)
            xs = [x.clone().requires_grad_(True) for _ in range(2)]
            outs = [model(xs[0]), compiled(xs[1])]
            torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
            grads = [
                torch.autograd.grad(out.square().sum(), [xi, *model.parameters()])
                for out, xi in zip(outs, xs, strict=True)
            ]
            # gradients reach ~300 here, and sums in another order differ by float32 rounding (eager itself is
            # ~5e-5 from float64 at that scale): the tolerance is relative to each gradient's scale
            for a, b in zip(grads[1], grads[0], strict=True):
                torch.testing.assert_close(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda: CoordConv2d(4, 6, 3, padding=1),  # separable term (40x36 >= 32x32)
        lambda: CoordConv2d(4, 6, 7, stride=2, padding=3, bias=False),  # a stem
        lambda: CoordConv2d(4, 6, 1),  # the batch-1 convolution of the grid
        lambda: CoordConvTranspose2d(4, 6, 2, stride=2),
    ],
)
def test_compile_inductor_training_equals_eager_channels_last_term(make):
    # under torch.compile on the CPU the term is made channels_last and added over permuted views (inductor lays
    # the convolution's output out channels_last): values and every gradient as in eager mode
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():
        layer.coord_weight.normal_()
    torch._dynamo.reset()
    compiled = torch.compile(layer)
    x = torch.randn(3, 4, 40, 36)  # not square: a swapped axis would show
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    outs = [layer(xs[0]), compiled(xs[1])]
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    grads = [
        torch.autograd.grad(out.square().sum(), [xi, *layer.parameters()]) for out, xi in zip(outs, xs, strict=True)
    ]
    for a, b in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-5)


def _mirror_forward(layer, x):
    """The layer's eager computation written out with torch's functions, op for op, for a contiguous input.

    Plain convolution of the input filters, then the batch-1 coordinate term (the grid laid out as the layer lays
    it out on CPU) added in place. The layer must equal this bitwise: results committed elsewhere depend on it.
    """
    rank = layer._rank
    n = layer.in_channels // layer.groups
    w = layer.weight
    if layer.transposed:
        assert layer.groups == 1
        w_in, w_c = w[: layer.in_channels], w[layer.in_channels :]
    else:
        w_in, w_c = w[:, :n], w[:, n:]
    grid = coord_grid(tuple(x.shape[2:]), with_r=layer.with_r, dtype=x.dtype).unsqueeze(0)
    if rank == 2 and (x.shape[2] * x.shape[3] > 10240 or (not layer.transposed and tuple(layer.kernel_size) != (3, 3))):
        grid = grid.contiguous(memory_format=torch.channels_last)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    conv_t = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    if layer.transposed:
        args = (layer.stride, layer.padding, layer.output_padding)
        out = conv_t(x, w_in, None, *args, layer.groups, layer.dilation)
        term = conv_t(grid, w_c, layer.bias, *args, 1, layer.dilation)
    else:
        out = conv(x, w_in, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        term = conv(grid, w_c, layer.bias, layer.stride, layer.padding, layer.dilation, 1)
    return out.add_(term.contiguous())


def test_eager_training_bitwise_equal_to_its_ops_at_changing_sizes(monkeypatch):
    # issue 27: the compile fix changes only what runs under torch.compile; eager numerics stay bit for bit.
    # The convolution path of the coordinate term is pinned here; the separable one (issue 30) has its own tests.
    monkeypatch.setattr(_term, "SEPARABLE", "convolution")
    torch.manual_seed(0)
    layers = [
        CoordConv2d(3, 8, 3, padding=1),
        CoordConv2d(3, 8, 5, padding=2, stride=2, with_r=True),
        CoordConvTranspose2d(3, 4, 3, padding=1),
        CoordConv1d(3, 8, 3, padding=1),
        CoordConvTranspose1d(3, 4, 3, padding=1, stride=2),
        CoordConv3d(3, 4, 3, padding=1),
        CoordConvTranspose3d(3, 2, 3, padding=1),
    ]
    for layer in layers:
        for spatial in (5, 8, 104):
            if layer._rank == 3 and spatial > 8:
                continue
            x = torch.randn(2, 3, *([spatial] * (layer._rank - 1)), spatial + 1)
            xs = [x.clone().requires_grad_(True) for _ in range(2)]
            outs = [layer(xs[0]), _mirror_forward(layer, xs[1])]
            assert torch.equal(outs[0], outs[1]), (layer, tuple(x.shape))
            params = list(layer.parameters())
            for a, b in zip(
                torch.autograd.grad(outs[0].square().sum(), [xs[0], *params]),
                torch.autograd.grad(outs[1].square().sum(), [xs[1], *params]),
                strict=True,
            ):
                assert torch.equal(a, b), (layer, tuple(x.shape))


@pytest.mark.parametrize(
    "layer_fn",
    [
        lambda: CoordConv2d(3, 8, 3, padding=1, with_r=True),
        lambda: CoordConvTranspose2d(3, 8, 4, stride=2, padding=1),
        lambda: CoordConv1d(3, 4, 3, padding_mode="reflect", padding=1, encoding="fourier"),
    ],
)
def test_onnx_export_runs_in_onnxruntime(layer_fn, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    layer = layer_fn().eval()
    x = torch.randn(2, 3, *([9] * (layer._rank - 1)), 11)
    path = tmp_path / "layer.onnx"
    torch.onnx.export(layer, (x,), str(path), dynamo=True, opset_version=18, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), layer(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("cls", "fmt"),
    [
        (CoordConv2d, torch.channels_last),
        (CoordConvTranspose2d, torch.channels_last),
        (CoordConv3d, torch.channels_last_3d),
    ],
)
def test_channels_last_equals_contiguous(cls, fmt):
    layer = cls(8, 8, 3, padding=1)
    x = torch.randn(3, 8, *([6] * cls._rank))
    layer_cl = copy.deepcopy(layer).to(memory_format=fmt)
    x_cl = x.contiguous(memory_format=fmt).requires_grad_(True)
    x = x.requires_grad_(True)
    out, out_cl = layer(x), layer_cl(x_cl)
    assert out_cl.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(out_cl, out, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, [x, *layer.parameters()], grad)
    theirs = torch.autograd.grad(out_cl, [x_cl, *layer_cl.parameters()], grad.contiguous(memory_format=fmt))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d])
def test_autocast_bfloat16(cls):
    layer = cls(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert layer.weight.grad is not None and layer.weight.grad.dtype == torch.float32
    assert layer._split(layer.weight.grad)[1].abs().sum() > 0  # the coordinate filters get a gradient
    torch.testing.assert_close(out.float(), layer(x), rtol=0.05, atol=0.05)


def test_bfloat16_and_float64_layers():
    for dtype in (torch.bfloat16, torch.float64):
        layer = CoordConv2d(2, 3, 3, dtype=dtype)
        assert layer(torch.randn(1, 2, 5, 5, dtype=dtype)).dtype == dtype


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_state_dict_keys_and_plain_checkpoints(coord_cls, plain_cls):
    layer = coord_cls(4, 6, 3, **F64)
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert not list(layer.buffers())
    # a plain layer's checkpoint loads strictly, with zero coordinate filters: the plain layer's function
    plain = plain_cls(4, 6, 3, **F64)
    layer.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, *([5] * coord_cls._rank), **F64)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-12, atol=1e-12)
    assert not layer.coord_weight.any() and torch.equal(layer.bias, plain.bias)
    # and the other way round it fails on the shape, loudly
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        plain_cls(4, 6, 3).load_state_dict(coord_cls(4, 6, 3).state_dict())


def test_deepcopy_and_pickle():
    layer = CoordConv2d(3, 4, 3, encoding=FourierEncoding((1.0, 2.0)), with_r=True, order="xy")
    x = torch.randn(2, 3, 7, 5)
    expected = layer(x)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)), loaded):
        assert clone.encoding == layer.encoding and clone.order == "xy" and clone.with_r
        torch.testing.assert_close(clone(x), expected)


@pytest.mark.parametrize(("coord_cls", "plain_cls"), TWINS)
def test_every_parameter_gets_a_gradient(coord_cls, plain_cls):
    layer = coord_cls(4, 4, 3, groups=2)
    layer(torch.randn(2, 4, *([5] * coord_cls._rank))).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ddp_without_find_unused_parameters(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = nn.Sequential(CoordConv2d(3, 8, 3, padding=1), nn.ReLU(), CoordConvTranspose2d(8, 2, 2, stride=2))
        ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for _ in range(3):  # DDP reports unused parameters on the iteration after they went unused
            opt.zero_grad()
            ddp(torch.randn(2, 3, 8, 8)).square().mean().backward()
            opt.step()
    finally:
        dist.destroy_process_group()


def test_padding_modes_change_the_coordinate_border():
    """The coordinate channels are padded like the input: reflect and zeros padding give different borders."""
    torch.manual_seed(0)
    zeros = CoordConv2d(1, 1, 3, padding=1, bias=False, **F64)
    reflect = CoordConv2d(1, 1, 3, padding=1, padding_mode="reflect", bias=False, **F64)
    reflect.load_state_dict(zeros.state_dict())
    x = torch.zeros(1, 1, 5, 5, **F64)
    a, b = zeros(x), reflect(x)
    torch.testing.assert_close(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1])
    assert not torch.allclose(a[..., 0, :], b[..., 0, :])
    torch.testing.assert_close(
        b, F.conv2d(F.pad(coord_grid((5, 5), **F64)[None], (1, 1, 1, 1), mode="reflect"), reflect.coord_weight)
    )


@pytest.mark.parametrize("cls", [CoordConv2d, CoordConvTranspose2d])
def test_torch_func_per_sample_gradients(cls):
    """vmap(grad(...)) through the layer gives each sample's gradient (as Opacus-style code needs)."""
    layer = cls(2, 3, 3, padding=1, **F64)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(4, 2, 5, 6, **F64)

    def loss(p, xi):
        return torch.func.functional_call(layer, p, (xi.unsqueeze(0),)).square().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x)
    for i in range(len(x)):
        expected = torch.autograd.grad(loss(dict(layer.named_parameters()), x[i]), list(layer.parameters()))
        for name, value in zip(params, expected, strict=True):
            torch.testing.assert_close(per_sample[name][i], value)
