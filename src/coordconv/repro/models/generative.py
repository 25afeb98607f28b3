"""The paper's generative models on 64x64 RGB images: DCGAN-like and CoordConv GANs, conv and CoordConv VAEs.

From the official code (``model_builders.CoordConvGAN``, ``train_gan.py``; Liu et al. 2018, Sec. 5.1):

* :class:`ConvDecoder` (the generator): z -> linear to 4x4x512 -> BN, ReLU -> 5x5 stride-2 transposed convolutions
  to 256, 128, 64 (BN, ReLU) and 3 channels -> tanh.
* :class:`Discriminator`: 5x5 stride-2 convolutions to 64 (leaky ReLU 0.2), 128, 256, 512 (BN, leaky ReLU) ->
  linear to one logit. ``coord=True`` is the CoordConv GAN's discriminator: coordinates on its input image, that
  is, its first convolution is a :class:`~coordconv.CoordConv2d`.
* :class:`CoordConvDecoder` (the generator, ``clevr_coordconv_in_gd``): z tiled over the 64x64 canvas with the (i, j)
  channels -> 1x1 convolutions to 512, 256, 256, 128, 64 -> two 3x3 convolutions of 64 -> 1x1 to 3 -> tanh, ReLU
  after every hidden layer, no upsampling. Its first layer is computed as ``W z`` broadcast over the canvas
  plus a 1x1 convolution of the coordinate grid: equal to a 1x1 CoordConv of the tiled z (tested), without
  convolving 256 constant channels at every pixel.

The VAEs (the paper shows them qualitatively and released no code) use the same bodies: the conv VAE encodes
with four 4x4 stride-2 convolutions and decodes with the DCGAN generator's layout; the CoordConv VAE's encoder
gets coordinates on its input and its decoder is the CoordConv generator's layout (1x1 convolutions to 512, 512,
256, 256, 128, 3x3 to 128 and 64). The conv decoder runs at half width so that the two VAEs have about the same
number of parameters (tested within 25%).

``width`` multiplies every hidden channel count (1: the official sizes), so that CPU presets are possible.

:func:`official_init` gives a GAN the official code's initialisation (PyTorch's defaults differ): He-normal
weights in the CoordConv generator, Glorot-uniform weights everywhere else (TensorFlow's default), zero biases.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coordconv import AddCoords, CoordConv2d, coord_grid

__all__ = [
    "STANDING_BATCHES",
    "VAE",
    "ConvDecoder",
    "CoordConvDecoder",
    "Discriminator",
    "Encoder",
    "GANTrainer",
    "Trainer",
    "VAETrainer",
    "build_gan",
    "build_trainer",
    "build_vae",
    "official_init",
]

SIZE = 64


def _w(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class ConvDecoder(nn.Module):
    """Latent -> image through a 4x4 map and four stride-2 transposed convolutions (the DCGAN generator)."""

    def __init__(self, latent: int, width: float = 1.0, *, kernel: int = 5, out: str = "tanh") -> None:
        super().__init__()
        chans = [_w(c, width) for c in (512, 256, 128, 64)]
        self.start = chans[0]
        self.fc = nn.Linear(latent, 4 * 4 * chans[0])
        self.bn0 = nn.BatchNorm2d(chans[0])
        layers: list[nn.Module] = []
        pad = (kernel - 1) // 2
        for cin, cout in itertools.pairwise(chans):
            layers += [
                nn.ConvTranspose2d(cin, cout, kernel, 2, pad, output_padding=kernel % 2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        layers.append(nn.ConvTranspose2d(chans[-1], 3, kernel, 2, pad, output_padding=kernel % 2))
        self.deconvs = nn.Sequential(*layers)
        self.out = nn.Tanh() if out == "tanh" else nn.Identity()

    def forward(self, z: Tensor) -> Tensor:
        h = torch.relu(self.bn0(self.fc(z).view(-1, self.start, 4, 4)))
        return self.out(self.deconvs(h))  # type: ignore[no-any-return]


class CoordConvDecoder(nn.Module):
    """Latent tiled over the canvas with coordinates -> 1x1 convolutions -> two 3x3 convolutions -> 1x1 to RGB."""

    def __init__(
        self,
        latent: int,
        width: float = 1.0,
        *,
        pointwise: tuple[int, ...] = (512, 256, 256, 128, 64),
        spatial: tuple[int, ...] = (64, 64),
        out: str = "tanh",
    ) -> None:
        super().__init__()
        point = [_w(c, width) for c in pointwise]
        # first layer: a 1x1 conv of [tiled z, i, j] = W_z z (per image) + W_ij [i, j] (per pixel) + b
        self.z_in = nn.Linear(latent, point[0])
        self.coord_in = nn.Conv2d(2, point[0], 1, bias=False)
        self.register_buffer("grid", coord_grid((SIZE, SIZE)).unsqueeze(0), persistent=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for cin, cout in itertools.pairwise(point):
            layers += [nn.Conv2d(cin, cout, 1), nn.ReLU()]
        chans = [point[-1], *(_w(c, width) for c in spatial)]
        for cin, cout in itertools.pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(chans[-1], 3, 1))
        self.body = nn.Sequential(*layers)
        self.out = nn.Tanh() if out == "tanh" else nn.Identity()

    def forward(self, z: Tensor) -> Tensor:
        grid = cast(Tensor, self.grid)
        h = self.z_in(z)[:, :, None, None] + self.coord_in(grid.to(z.dtype))
        return self.out(self.body(h))  # type: ignore[no-any-return]


class Discriminator(nn.Module):
    """Four 5x5 stride-2 convolutions and a linear logit; ``coord=True`` gives the first one coordinates.

    ``batchnorm=False`` leaves out the BatchNorm layers (and gives those convolutions a bias).
    ``minibatch_std=True`` appends one feature to the flattened features before the logit: the standard deviation
    of each feature over the batch, averaged (Karras et al. 2018), so that the discriminator sees how varied a
    batch is and a generator that maps every latent to one image is caught (a stabiliser; not in the official code).
    ``spectral_norm=True`` divides every layer's weight by its largest singular value (Miyato et al. 2018, torch's
    ``parametrizations.spectral_norm``; a stabiliser, not in the official code). The coordinate filters belong to
    the first layer's matrix too, so with ``coord`` that layer is then :class:`~coordconv.AddCoords` and a
    convolution of five channels: the same layer as a :class:`~coordconv.CoordConv2d`, with one weight to normalise.
    """

    def __init__(
        self,
        width: float = 1.0,
        *,
        coord: bool = False,
        batchnorm: bool = True,
        minibatch_std: bool = False,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.minibatch_std = minibatch_std
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        chans = [_w(c, width) for c in (64, 128, 256, 512)]
        first: list[nn.Module]
        if not coord:
            first = [sn(nn.Conv2d(3, chans[0], 5, 2, 2))]
        elif spectral_norm:
            first = [AddCoords(2), sn(nn.Conv2d(5, chans[0], 5, 2, 2))]
        else:
            first = [CoordConv2d(3, chans[0], 5, 2, 2)]
        layers: list[nn.Module] = [*first, nn.LeakyReLU(0.2)]
        for cin, cout in itertools.pairwise(chans):
            norm: nn.Module = nn.BatchNorm2d(cout) if batchnorm else nn.Identity()
            layers += [sn(nn.Conv2d(cin, cout, 5, 2, 2, bias=not batchnorm)), norm, nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = sn(nn.Linear(4 * 4 * chans[-1] + minibatch_std, 1))

    def features(self, x: Tensor) -> Tensor:
        """The flattened features that the final linear layer turns into the logit, ``(batch, features)``."""
        h = self.convs(x)
        if self.minibatch_std:
            spread = h.std(dim=0, correction=0).mean() if len(h) > 1 else h.new_zeros(())
            h = torch.cat([h, spread.expand(len(h), 1)], dim=1)
        return h  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x)).squeeze(1)  # type: ignore[no-any-return]


def build_gan(
    model: str,
    z_dim: int = 256,
    width: float = 1.0,
    *,
    d_width: float | None = None,
    batchnorm: bool = True,
    minibatch_std: bool = False,
    spectral_norm: bool = False,
    out: str = "tanh",
) -> tuple[nn.Module, Discriminator]:
    """``(generator, discriminator)`` of the baseline (``"conv"``) or the CoordConv GAN (``"coordconv"``).

    ``d_width`` is the discriminator's width (``None``: ``width``); ``batchnorm``, ``minibatch_std`` and
    ``spectral_norm`` are the discriminator's (see :class:`Discriminator`); ``out="linear"`` leaves out the
    generator's final tanh (the caller applies it).
    """
    if model not in ("conv", "coordconv"):
        raise ValueError(f"model must be 'conv' or 'coordconv', got {model!r}")
    coord = model == "coordconv"
    generator = (CoordConvDecoder if coord else ConvDecoder)(z_dim, width, out=out)
    dw = width if d_width is None else d_width
    options = {"batchnorm": batchnorm, "minibatch_std": minibatch_std, "spectral_norm": spectral_norm}
    return generator, Discriminator(dw, coord=coord, **options)


@torch.no_grad()
def official_init(generator: nn.Module, discriminator: nn.Module) -> None:
    """Initialise a GAN as the official code does (``model_builders.CoordConvGAN``), in place.

    The CoordConv generator's layers get He-normal weights (Keras' ``he_normal``: a normal of standard deviation
    ``sqrt(2 / fan_in)`` truncated at two standard deviations); every other layer (the conv generator, both
    discriminators) TensorFlow's default Glorot-uniform; every bias is zero, BatchNorm starts at identity. The
    CoordConv generator's first layer is one 1x1 convolution of ``[z, i, j]`` in the official code, so its two
    parts here share that layer's fan-in.
    """
    for net in (generator, discriminator):
        he = isinstance(net, CoordConvDecoder)
        # each layer's weight as (out, in, *kernel) views (linear: (out, in)), in parts along the input channels
        # where the layer is split; the parts share the layer's fans
        layers: list[list[Tensor]] = []
        if isinstance(net, CoordConvDecoder):
            layers.append([net.z_in.weight, net.coord_in.weight[:, :, 0, 0]])
        for name, module in net.named_modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, Tensor) and not isinstance(module, nn.BatchNorm2d):
                bias.zero_()
            if he and name in ("z_in", "coord_in"):
                continue
            if isinstance(module, CoordConv2d):  # the input filters and the coordinate filters (views of weight)
                layers.append(list(module._split(module.weight)))
            elif isinstance(module, nn.ConvTranspose2d):  # (in, out, *kernel): the axes swapped
                layers.append([module.weight.transpose(0, 1)])
            elif nn.utils.parametrize.is_parametrized(module, "weight"):
                # a spectrally normalised layer's weight is computed; its parameter is the original
                layers.append([cast(Tensor, cast(nn.ModuleDict, module.parametrizations)["weight"].original)])
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                layers.append([module.weight])
        for layer in layers:
            field = layer[0][0, 0].numel()
            fan_in, fan_out = sum(w.shape[1] for w in layer) * field, layer[0].shape[0] * field
            for w in layer:
                if he:
                    std = math.sqrt(2 / fan_in) / 0.87962566103423978  # the truncated normal's std correction
                    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
                else:
                    bound = math.sqrt(6 / (fan_in + fan_out))
                    nn.init.uniform_(w, -bound, bound)


class Encoder(nn.Module):
    """Image -> (mean, log-variance) through four 4x4 stride-2 convolutions (the first a CoordConv if ``coord``)."""

    def __init__(self, latent: int, width: float = 1.0, *, coord: bool = False) -> None:
        super().__init__()
        chans = [3, *(_w(c, width) for c in (64, 128, 256, 512))]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(chans)):
            conv = CoordConv2d if coord and i == 0 else nn.Conv2d
            layers += [conv(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Linear(4 * 4 * chans[-1], 2 * latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.fc(self.convs(x)).chunk(2, dim=1)
        return mean, logvar


class VAE(nn.Module):
    """A VAE with a Bernoulli decoder: ``decoder(z)`` gives pixel logits of images in ``[0, 1]``."""

    def __init__(self, encoder: Encoder, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(logits, mean, logvar)`` of images ``x`` in ``[0, 1]``: one reparameterised sample (``noise`` or drawn)."""
        mean, logvar = self.encoder(x)
        noise = torch.randn_like(mean) if noise is None else noise
        return self.decoder(mean + noise * (0.5 * logvar).exp()), mean, logvar


def build_vae(model: str, latent: int = 16, width: float = 1.0) -> VAE:
    """The conv (``"conv"``) or the CoordConv (``"coordconv"``) VAE, of about the same size."""
    if model == "conv":
        # half-width decoder: the transposed convolutions would otherwise hold four times the CoordConv decoder's
        # parameters
        return VAE(Encoder(latent, width), ConvDecoder(latent, width / 2, kernel=4, out="logits"))
    if model == "coordconv":
        decoder = CoordConvDecoder(latent, width, pointwise=(512, 512, 256, 256, 128), spatial=(128, 64), out="logits")
        return VAE(Encoder(latent, width, coord=True), decoder)
    raise ValueError(f"model must be 'conv' or 'coordconv', got {model!r}")


# ---------------------------------------------------------------------------------------------------------
# the trainers: one training step each, and how they sample. ``cfg`` is the generative experiment's Config
# (:mod:`coordconv.repro.experiments.generative`; models do not import experiments).

#: batches of latents that set the averaged generator's BatchNorm statistics
STANDING_BATCHES = 16

_M = TypeVar("_M", bound=nn.Module)
_T = TypeVar("_T")


def _channels_last(module: _M) -> _M:
    """The module with its 4D weights in channels-last layout (faster convolutions on CPU)."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return,unused-ignore]


def _evaluating(module: nn.Module, fn: Callable[[Tensor], _T], x: Tensor) -> list[_T]:
    """``fn`` of each 256-row part of ``x``, ``module`` in eval mode without gradients (in training mode after)."""
    module.eval()
    with torch.no_grad():
        out = [fn(part) for part in x.split(256)]
    module.train()
    return out


class GANTrainer:
    """A GAN of a config's fields: generator and discriminator, their optimizers, the official step."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        # the generator ends without its tanh: _fake applies it, or leaves it out for a pre-tanh discriminator
        g, d = build_gan(
            cfg.model,
            cfg.z_dim,
            cfg.width,
            d_width=cfg.d_width,
            batchnorm=cfg.d_batchnorm,
            minibatch_std=cfg.d_minibatch_std,
            spectral_norm=cfg.d_spectral_norm,
            out="linear",
        )
        if cfg.init == "official":
            official_init(g, d)
        self.g, self.d = _channels_last(g), _channels_last(d)
        self.modules = {"generator": self.g, "discriminator": self.d}
        # samples come from an exponential moving average of the generator's weights when g_ema is set
        self.g_sample = self.g
        if cfg.g_ema:
            self.g_sample = copy.deepcopy(self.g).requires_grad_(False)
            self.modules["generator_ema"] = self.g_sample
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=betas),
            "discriminator": torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=betas),
        }

    def latents(self, n: int, gen: torch.Generator) -> Tensor:
        return torch.rand(n, self.cfg.z_dim, generator=gen) * 2 - 1

    def _fake(self, z: Tensor) -> Tensor:
        """What the discriminator sees of the generated images for ``z``."""
        out = self.g(z)
        return out if self.cfg.d_input == "pre_tanh" else torch.tanh(out)

    def step(self, images: Tensor, gen: torch.Generator) -> dict[str, float]:
        """One discriminator step and ``g_steps`` generator steps: the losses and D's accuracy (logit sign)."""
        real = (images.float() / 127.5 - 1).contiguous(memory_format=torch.channels_last)
        n = len(real)
        ones, zeros = torch.ones(n), torch.zeros(n)
        with torch.no_grad():
            fake = self._fake(self.latents(n, gen))
        real.requires_grad_(self.cfg.r1 > 0)
        logits_real, logits_fake = self.d(real), self.d(fake)
        loss_d = F.binary_cross_entropy_with_logits(logits_real, ones)
        loss_d = loss_d + F.binary_cross_entropy_with_logits(logits_fake, zeros)
        penalty = torch.zeros(())
        if self.cfg.r1 > 0:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            penalty = self.cfg.r1 / 2 * grad.square().flatten(1).sum(1).mean()
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        (loss_d + penalty).backward()
        self.optimizers["discriminator"].step()
        for _ in range(self.cfg.g_steps):
            if self.cfg.feature_match:
                with torch.no_grad():
                    target = self.d.features(real.detach())
            # the non-saturating loss: the generator maximises log D(G(z))
            features = self.d.features(self._fake(self.latents(n, gen)))
            loss_g = F.binary_cross_entropy_with_logits(self.d.fc(features).squeeze(1), ones)
            if self.cfg.feature_match:
                loss_g = loss_g + self.cfg.feature_match * (features - target).abs().mean()
            self.optimizers["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            self.optimizers["generator"].step()
        if self.cfg.g_ema:
            with torch.no_grad():
                for avg, p in zip(self.g_sample.parameters(), self.g.parameters(), strict=True):
                    avg.lerp_(p, 1 - self.cfg.g_ema)
        out = {
            "d_loss": loss_d.item(),
            "g_loss": loss_g.item(),
            "d_real_acc": (logits_real > 0).float().mean().item(),
            "d_fake_acc": (logits_fake < 0).float().mean().item(),
        }
        return out | ({"r1_penalty": penalty.item()} if self.cfg.r1 > 0 else {})

    def sample(self, z: Tensor) -> Tensor:
        """Images in ``[0, 1]`` for latents ``z`` (eval mode, no gradients).

        An averaged generator's BatchNorm statistics are recomputed first, from its own activations: the current
        generator's running statistics do not fit averaged weights (with them the conv GAN's averaged generator drew
        one image for every latent, measured), so they are re-estimated from ``STANDING_BATCHES`` batches of fixed
        latents in training mode, as BigGAN's "standing statistics" (torch's ``update_bn``: a cumulative average).
        """
        if self.g_sample is not self.g:
            gen = torch.Generator().manual_seed(self.cfg.seed)
            latents = (self.latents(self.cfg.batch_size, gen) for _ in range(STANDING_BATCHES))
            torch.optim.swa_utils.update_bn(latents, self.g_sample)
        return torch.cat(_evaluating(self.g_sample, lambda part: torch.tanh(self.g_sample(part)), z)) * 0.5 + 0.5


class VAETrainer:
    """A VAE of a config's fields, its optimizer and step, and its test ELBO."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.vae = _channels_last(build_vae(cfg.model, cfg.z_dim, cfg.width))
        self.modules = {"vae": self.vae}
        self.optimizers = {"vae": torch.optim.Adam(self.vae.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))}

    def latents(self, n: int, gen: torch.Generator) -> Tensor:
        return torch.randn(n, self.cfg.z_dim, generator=gen)

    def losses(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image reconstruction (Bernoulli negative log-likelihood, nats) and KL, with the given noise."""
        logits, mean, logvar = self.vae(x, noise)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum(1)
        return recon, kl

    def step(self, images: Tensor, gen: torch.Generator) -> dict[str, float]:
        x = (images.float() / 255).contiguous(memory_format=torch.channels_last)
        recon, kl = self.losses(x, self.latents(len(x), gen))
        loss = (recon + self.cfg.kl_weight * kl).mean()
        self.optimizers["vae"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["vae"].step()
        return {"recon": recon.mean().item(), "kl": kl.mean().item()}

    def sample(self, z: Tensor) -> Tensor:
        """Images in ``[0, 1]`` (the decoder's mean) for latents ``z`` (eval mode, no gradients)."""
        return torch.cat(_evaluating(self.vae, lambda part: torch.sigmoid(self.vae.decoder(part)), z))

    def encode(self, images: Tensor) -> Tensor:
        """The encoder's means of ``images`` (uint8)."""
        return torch.cat(_evaluating(self.vae, lambda x: self.vae.encoder(x.float() / 255)[0], images))

    def test_elbo(self, images: Tensor, gen: torch.Generator) -> dict[str, float]:
        """Mean reconstruction and KL terms of ``images`` (uint8; one posterior sample each), and their ELBO."""
        parts = _evaluating(self.vae, lambda x: self.losses(x.float() / 255, self.latents(len(x), gen)), images)
        recon, kl = (torch.cat(terms).mean().item() for terms in zip(*parts, strict=True))
        return {"test_recon": recon, "test_kl": kl, "test_elbo": -(recon + kl)}


#: what a run needs from a GAN or a VAE: its modules, optimizers, one training step and sampling
Trainer = GANTrainer | VAETrainer


def build_trainer(cfg: Any) -> Trainer:
    """The trainer of a generative experiment's config (its ``task``: ``"gan"`` or ``"vae"``)."""
    return GANTrainer(cfg) if cfg.task == "gan" else VAETrainer(cfg)
