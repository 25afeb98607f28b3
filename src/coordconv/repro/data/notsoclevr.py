"""Not-so-Clevr: one 9x9 square on a 64x64 canvas, at every fully visible position (Liu et al. 2018, Sec. 3).

Every square centre ``(x, y)`` with ``x`` (the column) and ``y`` (the row) in ``4..59`` gives one example:
56 x 56 = 3,136 of them. Each example has

* its centre ``(x, y)`` (integers, ``x`` is the column, as in the official code's ``locations``),
* the one-hot centre map: a 64x64 image that is 1 at row ``y``, column ``x``,
* the square image: 1 inside rows ``y-4..y+4`` and columns ``x-4..x+4`` (9x9), 0 elsewhere. The official code
  drew it in grey, 128/255 on black: ``square_value=128/255`` gives that.

Splits:

* ``uniform``: a random ``test_fraction`` of the positions is held out (0.2 by default, the paper's 80/20).
  ``official_uniform_split()`` gives the official code's 0.25 split instead.
* ``quadrant``: the bottom-right quadrant is held out, centres with ``x > 32`` and ``y > 32`` (the official
  code's ``x / 64 > 0.5`` on both axes): 2,407 train and 729 test positions.

Everything is generated in well under a second, deterministically for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from coordconv.repro.runtime.config import check_seed
from coordconv.repro.runtime.files import atomic_path, npz_outputs

__all__ = [
    "CANVAS",
    "FIRST",
    "LAST",
    "NUM_EXAMPLES",
    "SQUARE",
    "Options",
    "Split",
    "SplitKind",
    "centers",
    "make_split",
    "official_uniform_split",
    "onehot_maps",
    "square_images",
    "valid_square_value",
    "write",
]

CANVAS = 64
SQUARE = 9
FIRST, LAST = 4, 59  # first and last square centre on each axis
NUM_EXAMPLES = (LAST - FIRST + 1) ** 2
SplitKind = Literal["uniform", "quadrant"]
OFFICIAL_TEST_FRACTION = 0.25


def centers() -> Tensor:
    """All square centres, ``(3136, 2)`` int64 ``(x, y)``, ``y``-major (index ``(y - 4) * 56 + (x - 4)``)."""
    axis = torch.arange(FIRST, LAST + 1)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


def onehot_maps(xy: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot centre maps ``(N, 1, 64, 64)``: 1 at row ``y``, column ``x``."""
    maps = torch.zeros(len(xy), CANVAS * CANVAS, dtype=dtype)
    maps[torch.arange(len(xy)), xy[:, 1] * CANVAS + xy[:, 0]] = 1
    return maps.view(-1, 1, CANVAS, CANVAS)


def valid_square_value(value: float) -> bool:
    """Whether ``value`` can fill the squares: a finite number above 0 (the one check of train and dataset)."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def square_images(xy: Tensor, value: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """Square images ``(N, 1, 64, 64)``: ``value`` on the 9x9 square centred at ``(x, y)``, 0 elsewhere.

    Raises:
        ValueError: ``value`` is not a finite number above 0.
    """
    if not valid_square_value(value):
        raise ValueError(f"invalid square_value: {value!r}; expected a finite number above 0")
    index = torch.arange(CANVAS)
    half = SQUARE // 2
    rows = (index[None, :] - xy[:, 1:2]).abs() <= half
    cols = (index[None, :] - xy[:, 0:1]).abs() <= half
    return (rows[:, :, None] & cols[:, None, :]).to(dtype).mul_(value).unsqueeze(1)


@dataclass(frozen=True)
class Split:
    """Train and test example indices (into :func:`centers`), disjoint and sorted."""

    kind: str
    train: Tensor
    test: Tensor


def make_split(kind: SplitKind, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """The ``uniform`` or ``quadrant`` split of the 3,136 positions.

    Args:
        kind: ``"uniform"`` (random positions held out) or ``"quadrant"`` (bottom-right quadrant held out).
        test_fraction: fraction held out by the uniform split.
        seed: seed of the uniform split (the quadrant split does not depend on it).
    """
    if kind == "quadrant":
        xy = centers()
        held_out = (xy[:, 0] > CANVAS // 2) & (xy[:, 1] > CANVAS // 2)
        return Split(kind, held_out.logical_not().nonzero().flatten(), held_out.nonzero().flatten())
    if kind != "uniform":
        raise ValueError(f"split must be 'uniform' or 'quadrant', got {kind!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(NUM_EXAMPLES, generator=generator)
    n_test = round(NUM_EXAMPLES * test_fraction)
    if not 0 < n_test < NUM_EXAMPLES:
        raise ValueError(
            f"test_fraction {test_fraction!r} holds out {n_test} of the {NUM_EXAMPLES:,} positions, leaving an empty "
            f"{'test' if n_test == 0 else 'training'} set; expected a value that leaves both sets at least one "
            f"position (between {1 / NUM_EXAMPLES:.4f} and {1 - 1 / NUM_EXAMPLES:.4f})"
        )
    return Split(kind, order[n_test:].sort().values, order[:n_test].sort().values)


def official_uniform_split() -> Split:
    """The official code's uniform split: each position held out with probability 0.25, NumPy seed 20202.

    The official generator sweeps ``x`` in the outer loop and ``y`` in the inner loop and draws one uniform
    number per position from NumPy's legacy generator; this replays that stream (2,368 train / 768 test).
    """
    import numpy as np

    draws = np.random.RandomState(20202).random_sample(NUM_EXAMPLES)  # the official legacy stream
    side = LAST - FIRST + 1
    held_out = torch.from_numpy(draws < OFFICIAL_TEST_FRACTION).view(side, side).t().flatten()  # (x, y) -> y-major
    return Split("uniform", held_out.logical_not().nonzero().flatten(), held_out.nonzero().flatten())


def write(
    path: Path,
    *,
    split: SplitKind = "uniform",
    test_fraction: float = 0.2,
    seed: int = 0,
    square_value: float = 1.0,
    official_split: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write the data set as a compressed ``.npz`` and a picture of examples (``.png``) beside it.

    The archive holds ``centers`` (N, 2) ``(x, y)``, ``onehots`` (N, 64, 64) uint8, ``squares`` (N, 64, 64)
    float32, ``train_index`` and ``test_index``. Both files are written atomically.

    Raises:
        FileExistsError: a file is already there and ``overwrite`` is false.
        IsADirectoryError: ``path`` is a folder.
        ValueError: ``path`` is not an ``.npz`` file path, or a setting is invalid (the message names it and what
            is allowed).
        RunError: a file cannot be written (the message names it).
    """
    import numpy as np

    for name, value in (("test_fraction", test_fraction), ("square_value", square_value)):
        if not math.isfinite(value):
            raise ValueError(f"invalid {name}: {value!r}; expected a finite number")
    check_seed(seed, "seed")
    path, picture = npz_outputs(path, overwrite)
    chosen = official_uniform_split() if official_split else make_split(split, test_fraction=test_fraction, seed=seed)
    xy = centers()
    squares = square_images(xy, square_value)[:, 0]
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            centers=xy.numpy().astype(np.int16),
            onehots=onehot_maps(xy, torch.uint8)[:, 0].numpy(),
            squares=squares.numpy(),
            train_index=chosen.train.numpy(),
            test_index=chosen.test.numpy(),
            split=np.array(chosen.kind),
        )
    _draw_examples(picture, xy, squares, chosen)
    return [path, picture]


@dataclass(frozen=True, kw_only=True)
class Options:
    """Not-so-Clevr (squares on a 64x64 canvas): an .npz and a picture of examples."""

    out: str
    """output .npz file (a .png of examples is written beside it)"""
    split: SplitKind = "uniform"
    """split"""
    test_fraction: float = 0.2
    """uniform split's test fraction"""
    split_seed: int = 0
    """uniform split's seed"""
    official_split: bool = False
    """the official code's uniform split"""
    square_value: float = 1.0
    """value inside squares (official: 128/255)"""
    overwrite: bool = False
    """replace an existing file"""

    def write(self) -> list[Path]:
        """:func:`write` with these options."""
        check_seed(self.split_seed, "--split-seed")  # write's own check would name its argument, seed
        options = {k: v for k, v in vars(self).items() if k not in ("out", "split_seed")}
        return write(Path(self.out), seed=self.split_seed, **options)


def _draw_examples(path: Path, xy: Tensor, squares: Tensor, split: Split) -> None:
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from coordconv.repro.runtime.plots import caption, pyplot, save_figure

    plt = pyplot()
    picks = [0, 1000, 2000, 3135]
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(3 * (len(picks) + 1), 4.6))
    membership = torch.zeros(CANVAS, CANVAS)
    membership[xy[split.train, 1], xy[split.train, 0]] = 1
    membership[xy[split.test, 1], xy[split.test, 0]] = 2
    colours = ("0.35", "0.8", "tab:orange")  # border (no centre possible), train centre, test centre
    axes[0].imshow(membership.numpy(), cmap=ListedColormap(colours), vmin=0, vmax=2, interpolation="nearest")
    axes[0].set_title(f"{split.kind} split: {len(split.train)} train,\n{len(split.test)} test centres", fontsize=10)
    for ax, i in zip(axes[1:], picks, strict=True):
        ax.imshow(squares[i].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.plot(xy[i, 0].item(), xy[i, 1].item(), "r+", markersize=8)
        ax.set_title(f"example: centre (x={xy[i, 0].item()}, y={xy[i, 1].item()})", fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        Patch(facecolor=colours[1], label="training centre"),
        Patch(facecolor=colours[2], label="test centre"),
        Patch(facecolor=colours[0], edgecolor="0.5", label="border: no centre (the square must fit)"),
        Patch(facecolor="white", edgecolor="0.5", label="the 9 x 9 square (examples)"),
        Line2D([], [], color="red", marker="+", linestyle="none", markersize=8, label="its centre"),
    ]
    caption(
        fig,
        f"Left: which of the {CANVAS} x {CANVAS} canvas's pixels are square centres of the training and of the test "
        "set. Right: four examples, each a white square on a black canvas; x grows to the right, y downwards.",
        handles=handles,
    )
    save_figure(fig, path, dpi=80)
