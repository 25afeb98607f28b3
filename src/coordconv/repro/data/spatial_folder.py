"""An offline ImageFolder for the classification experiment: Sort-of-Clevr scenes labelled by position.

Each image is a two-object Sort-of-Clevr scene (:mod:`coordconv.repro.data.sortofclevr`); its class is the cell
of a ``grid`` x ``grid`` partition of the canvas that holds the red object's centre (16 classes by default,
named ``r<row>c<col>``), so a classifier has to know where things are: the kind of task where coordinates
should matter, small enough for a CPU. The tree is what torchvision's ``ImageFolder`` (and the ImageNet
training recipe) reads: ``ROOT/train/<class>/<n>.png`` and ``ROOT/val/<class>/<n>.png``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from coordconv.repro.data import sortofclevr
from coordconv.repro.runtime.config import check_seed
from coordconv.repro.runtime.files import RunError, remove_stale_copies, temporary_name

__all__ = ["Options", "class_names", "labels", "write"]


def class_names(grid: int = 8) -> list[str]:
    """``r<row>c<col>`` for every cell, row-major (the order ``ImageFolder`` sorts them in for ``grid <= 10``)."""
    return [f"r{r}c{c}" for r in range(grid) for c in range(grid)]


def labels(scenes: sortofclevr.Scenes, grid: int = 8) -> Tensor:
    """``(N,)`` int64: the grid cell (row-major) of each scene's red centre.

    Raises:
        ValueError: ``grid`` is not in 1..10.
    """
    if not 1 <= grid <= 10:
        raise ValueError(f"grid must be between 1 and 10, got {grid}")
    cell = (scenes.centers[:, 0].float() * grid / sortofclevr.CANVAS).long()  # (N, 2): (x, y) -> (col, row)
    return cell[:, 1] * grid + cell[:, 0]


SPLITS = ("train", "val")


def write(
    root: Path, *, train: int = 8_000, val: int = 2_000, grid: int = 8, seed: int = 0, overwrite: bool = False
) -> Path:
    """Write the ImageFolder tree under ``root`` (train images from ``seed``, val images from ``seed + 1``).

    The tree is built in a temporary folder beside ``root`` and renamed into place, so an interrupted call leaves
    no half-written data set.

    Raises:
        FileExistsError: ``root`` exists and ``overwrite`` is false, or it holds anything but ``train/`` and
            ``val/`` (a folder this function did not write is never replaced).
        NotADirectoryError: ``root`` is a file.
        ValueError: a count is below 1, ``grid`` or ``seed`` is out of range.
        RunError: writing failed (a full disk, a read-only folder); nothing is left behind.
    """
    from PIL import Image

    if train < 1 or val < 1:
        raise ValueError(f"train and val must be >= 1, got {train} and {val}")
    check_seed(seed, "seed")
    # the real target: "A/sub/.." is A, so the temporary folder sits beside it and the name checks see it
    root = Path(root).resolve()
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass --overwrite to replace it")
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is a file; expected a folder for the data set")
        foreign = sorted(p.name for p in root.iterdir() if p.name not in SPLITS)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise FileExistsError(
                f"{root} is not a data set this command wrote (it holds {shown}); --overwrite replaces only a "
                "folder of train/ and val/: choose another --out"
            )
    names = class_names(grid)
    remove_stale_copies(root)
    tmp = root.with_name(f".{root.name}.tmp{os.getpid()}")
    if len(tmp.name.encode()) > 255:
        tmp = root.with_name(temporary_name(root))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for split, count, split_seed in (("train", train, seed), ("val", val, seed + 1)):
            images, scenes = sortofclevr.generate(count, split_seed)
            classes = labels(scenes, grid)
            for name in names:
                (tmp / split / name).mkdir(parents=True, exist_ok=True)
            pixels = images.permute(0, 2, 3, 1).numpy()
            for i in range(count):
                Image.fromarray(pixels[i]).save(tmp / split / names[int(classes[i])] / f"{i:06d}.png")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not leave a half-written copy behind
        if isinstance(e, OSError):
            raise RunError(f"cannot write the data set {root}: {e.strerror or e}") from e
        raise
    return root


@dataclass(frozen=True, kw_only=True)
class Options:
    """An ImageFolder of Sort-of-Clevr scenes labelled by where the red object is (classification)."""

    out: str
    """output folder (train/ and val/ class folders inside)"""
    train: int = 8_000
    """training images"""
    val: int = 2_000
    """validation images"""
    grid: int = 8
    """grid x grid position classes"""
    seed: int = 0
    """seed"""
    overwrite: bool = False
    """replace an existing folder"""

    def write(self) -> Path:
        """:func:`write` with these options."""
        return write(Path(self.out), **{k: v for k, v in vars(self).items() if k != "out"})
