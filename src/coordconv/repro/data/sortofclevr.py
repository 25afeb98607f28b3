"""Two-object Sort-of-Clevr: one red and one blue object on a white 64x64 canvas (Liu et al. 2018, Sec. 5.1).

Each image holds exactly one red and one blue object; each object is a filled 21x21 square or a filled circle
of radius 10, its shape drawn at random. Centres are integer pixels ``(x, y)`` (``x`` the column, ``y`` the row)
uniform in ``[10, 54)`` on both axes, and the two centres are at least 20 px apart (Euclidean), so objects lie
fully inside the canvas and overlap by at most one pixel row or column (squares exactly 20 px apart on one
axis), where blue is drawn over red. Everything is generated vectorised and deterministically for a seed.

:func:`find_objects` is the colour-based object finder of the paper's mode-collapse measurement: it finds the
red and the blue objects in images (data or generated) as connected regions of red or blue pixels, and
:func:`position_entropy` is the entropy of their centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from coordconv.repro.runtime.config import check_seed
from coordconv.repro.runtime.files import atomic_path, npz_outputs

__all__ = [
    "CANVAS",
    "FIRST",
    "HALF",
    "LAST",
    "MIN_AREA",
    "MIN_DISTANCE",
    "Found",
    "Options",
    "Scenes",
    "find_objects",
    "generate",
    "position_entropy",
    "render",
    "sample_scenes",
    "write",
]

CANVAS = 64
HALF = 10  # squares are 2 * HALF + 1 = 21 px wide, circles have radius HALF
FIRST, LAST = 10, 53  # centres are uniform on FIRST..LAST (inclusive) on each axis
MIN_DISTANCE = 20.0
MIN_AREA = 20  # smallest region (pixels) the finder counts as an object; real objects have 317 (circle) or 441
RED = (255, 0, 0)
BLUE = (0, 0, 255)


@dataclass(frozen=True)
class Scenes:
    """What is in each image.

    ``centers`` is ``(N, 2, 2)`` int64 (object red/blue, ``(x, y)``); ``circle`` is ``(N, 2)`` bool (the object is a
    circle rather than a square).
    """

    centers: Tensor
    circle: Tensor

    def __len__(self) -> int:
        return len(self.centers)


def sample_scenes(count: int, seed: int = 0) -> Scenes:
    """Draw ``count`` scenes: two centres at least ``MIN_DISTANCE`` apart, and two shapes.

    Raises:
        ValueError: ``count`` is negative.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randint(FIRST, LAST + 1, (count, 2, 2), generator=gen)
    # Rejection sampling of the blue centre, vectorised: redraw the pairs that are too close until none is.
    while (close := (centers[:, 0] - centers[:, 1]).float().norm(dim=1) < MIN_DISTANCE).any():
        centers[close, 1] = torch.randint(FIRST, LAST + 1, (int(close.sum()), 2), generator=gen)
    circle = torch.rand(count, 2, generator=gen) < 0.5
    return Scenes(centers, circle)


def _masks(centers: Tensor, circle: Tensor) -> Tensor:
    """``(N, 64, 64)`` bool: the pixels of one object per scene."""
    axis = torch.arange(CANVAS)
    dx = axis.view(1, 1, -1) - centers[:, 0].view(-1, 1, 1)
    dy = axis.view(1, -1, 1) - centers[:, 1].view(-1, 1, 1)
    square = (dx.abs() <= HALF) & (dy.abs() <= HALF)
    disc = dx * dx + dy * dy <= HALF * HALF
    return torch.where(circle.view(-1, 1, 1), disc, square)


def render(scenes: Scenes, *, chunk: int = 4096) -> Tensor:
    """The images of ``scenes``: ``(N, 3, 64, 64)`` uint8 RGB, white background, red then blue drawn on top."""
    out = torch.full((len(scenes), 3, CANVAS, CANVAS), 255, dtype=torch.uint8)
    for start in range(0, len(scenes), chunk):
        part = slice(start, start + chunk)
        for k, colour in enumerate((RED, BLUE)):
            mask = _masks(scenes.centers[part, k], scenes.circle[part, k])
            for c, value in enumerate(colour):
                out[part, c][mask] = value
    return out


def generate(count: int, seed: int = 0) -> tuple[Tensor, Scenes]:
    """``count`` images (``(N, 3, 64, 64)`` uint8) and their scenes, deterministic for ``seed``."""
    scenes = sample_scenes(count, seed)
    return render(scenes), scenes


# ---------------------------------------------------------------------------------------------------------
# measuring: find the objects by colour, entropy of their positions


@dataclass(frozen=True)
class Found:
    """The objects :func:`find_objects` found in each image.

    ``red`` and ``blue`` are ``(N, 2)`` float ``(x, y)`` centroids of the largest region of each colour (NaN where
    there is none); ``red_count`` and ``blue_count`` are ``(N,)`` numbers of regions of at least ``min_area``
    pixels; ``object_count`` counts regions of any colour that is not white (see :func:`colour_masks`), so a model
    that draws two objects in the wrong colours still has two.
    """

    red: Tensor
    blue: Tensor
    red_count: Tensor
    blue_count: Tensor
    object_count: Tensor

    @property
    def one_each(self) -> Tensor:
        """``(N,)`` bool: exactly one red and exactly one blue object."""
        return (self.red_count == 1) & (self.blue_count == 1)

    @property
    def two_objects(self) -> Tensor:
        """``(N,)`` bool: exactly two objects of any colour (objects that touch count as one)."""
        return self.object_count == 2

    @property
    def two_separate(self) -> Tensor:
        """``(N,)`` bool: one red and one blue object that do not touch (exactly two regions of any colour).

        The colour finder alone accepts a red and a blue region fused into one blob; this does not.
        """
        return self.one_each & self.two_objects


def colour_masks(images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(N, H, W)`` bool masks of red, of blue and of non-white pixels in RGB images in ``[0, 1]`` (or uint8).

    A pixel is red when its red value is above 0.5 and its green and blue values are below 0.5; blue likewise;
    non-white when any value is below 0.5.
    """
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    ink = x.amin(dim=1) < 0.5
    return (r > 0.5) & (g < 0.5) & (b < 0.5), (b > 0.5) & (r < 0.5) & (g < 0.5), ink


def find_objects(images: Tensor, *, min_area: int = MIN_AREA) -> Found:
    """Find the red and the blue objects in ``(N, 3, H, W)`` RGB images (uint8, or float in ``[0, 1]``).

    Objects are 4-connected regions of red (or blue) pixels (see :func:`colour_masks`) of at least ``min_area``
    pixels; smaller regions are treated as noise. Uses ``scipy.ndimage.label``.

    Raises:
        ValueError: ``images`` is not ``(N, 3, H, W)``.
    """
    from scipy import ndimage  # type: ignore[import-untyped,unused-ignore]

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"find_objects expects RGB images (N, 3, H, W), got shape {tuple(images.shape)}")
    n = images.shape[0]
    centres = torch.full((2, n, 2), math.nan)
    counts = torch.zeros(3, n, dtype=torch.int64)
    for k, masks in enumerate(m.numpy() for m in colour_masks(images)):
        for i in range(n):
            labels, regions = ndimage.label(masks[i])
            areas = torch.bincount(torch.from_numpy(labels).flatten(), minlength=regions + 1)[1:]
            counts[k, i] = int((areas >= min_area).sum())
            if counts[k, i] == 0 or k == 2:
                continue
            largest = int(areas.argmax()) + 1
            ys, xs = (labels == largest).nonzero()
            centres[k, i] = torch.tensor([xs.mean(), ys.mean()])
    return Found(centres[0], centres[1], counts[0], counts[1], counts[2])


def position_entropy(points: Tensor, *, bin_size: float = 8.0, low: float = 0.0, high: float = CANVAS) -> float:
    """Entropy (nats) of the 2D histogram of ``points`` ``(N, 2)``, square bins of ``bin_size`` px on ``[low, high)``.

    The plug-in estimate ``-sum p log p`` over the bins' frequencies; rows with NaN (an object not found) are
    left out. The paper does not give its binning; this is the one this project uses for data and models alike.

    Raises:
        ValueError: no point is left, or the bins are empty.
    """
    points = points[~points.isnan().any(dim=1)]
    if len(points) == 0:
        raise ValueError("position_entropy needs at least one point without NaN")
    bins = math.ceil((high - low) / bin_size)
    if bins < 1:
        raise ValueError(f"no bins: bin_size {bin_size} on [{low}, {high})")
    index = ((points - low) / bin_size).floor().clamp(0, bins - 1).long()
    counts = torch.bincount(index[:, 1] * bins + index[:, 0], minlength=bins * bins).double()
    p = counts[counts > 0] / counts.sum()
    return max(0.0, float(-(p * p.log()).sum()))  # not -0.0 for a single bin


def entropies(found: Found) -> dict[str, float | None]:
    """The paper's three numbers: entropy of red centres, blue centres and centre differences (blue - red).

    Centres on ``[0, 64)``; differences on ``[-64, 64)``, both in 8-px bins. ``None`` where no object was found.
    """

    def safe(points: Tensor, low: float, high: float) -> float | None:
        try:
            return position_entropy(points, low=low, high=high)
        except ValueError:
            return None

    return {
        "red": safe(found.red, 0, CANVAS),
        "blue": safe(found.blue, 0, CANVAS),
        "diff": safe(found.blue - found.red, -CANVAS, CANVAS),
    }


@dataclass(frozen=True, kw_only=True)
class Options:
    """Two-object Sort-of-Clevr (a red and a blue object, 64x64 RGB): an .npz and a picture of examples."""

    out: str
    """output .npz file (a .png of examples is written beside it)"""
    count: int = 50_000
    """images (50000, as the paper)"""
    seed: int = 0
    """seed"""
    overwrite: bool = False
    """replace an existing file"""

    def write(self) -> list[Path]:
        """:func:`write` with these options."""
        return write(Path(self.out), **{k: v for k, v in vars(self).items() if k != "out"})


def write(path: Path, *, count: int = 50_000, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write ``count`` images as a compressed ``.npz`` and a picture of the first 64 (``.png``), atomically.

    The archive holds ``images`` (N, 64, 64, 3) uint8, ``centers`` (N, 2, 2) ``(x, y)`` red then blue and
    ``circle`` (N, 2).

    Raises:
        ValueError: ``path`` is not an ``.npz`` file path, ``count`` is below 1 or ``seed`` out of range.
        IsADirectoryError: ``path`` is a folder.
        FileExistsError: a file is already there and ``overwrite`` is false.
    """
    import numpy as np

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    check_seed(seed, "seed")
    path, picture = npz_outputs(path, overwrite)
    images, scenes = generate(count, seed)
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            images=images.permute(0, 2, 3, 1).numpy(),
            centers=scenes.centers.numpy().astype(np.int16),
            circle=scenes.circle.numpy(),
        )
    from coordconv.repro.runtime.plots import save_image_grid

    save_image_grid(images[:64], picture)
    return [path, picture]
