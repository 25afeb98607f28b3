"""Faster R-CNN for MNIST canvases on torchvision's detection stack, plain or with CoordConv (Liu et al. 2018).

The parts follow the official region-proposal code (``train_faster_rcnn.py``, ``rpn_sampler`` against
``coord_rpn_sampler``):

* backbone: 5x5 convolution to 32, ReLU, 2x2 max-pool, 5x5 convolution to 64, ReLU, 2x2 max-pool, no padding
  (a 64x64 canvas gives a 13x13 map);
* the official nine anchors, (height, width) in {15, 20, 25}^2, at every cell (:data:`OFFICIAL_ANCHORS`),
  centred as the official code centres them (``make_anchors_mnist``: on each cell's receptive field, 8 px to 56 px
  in steps of 4: :data:`OFFICIAL_ANCHOR_START`); with ``clip_boxes=True``, the project's earlier variant, on
  torchvision's grid instead (0 px to 48 px, so no anchor centres in the right and bottom 16 px);
* RPN head (:class:`CoordRPNHead`): a shared 3x3 convolution to 32 and ReLU; objectness from a 1x1 convolution;
  box deltas from a 3x3 convolution to 32, ReLU and a zero-initialised 1x1 convolution ("the box mover");
* CoordConv variant: coordinates before the first backbone convolution, before the RPN's 3x3 convolution and
  before the box mover's final 1x1 convolution, where the official code puts AddCoords (``"coordconv"``); for the
  placement ablation, ``"coordconv-backbone"`` keeps only the first and ``"coordconv-rpn"`` only the two in the
  RPN (:data:`DETECTORS`);
* the detector's second stage, which the official code did not release: torchvision's RoIAlign (7x7), a
  two-layer MLP head of 128 units and a box predictor over 10 digit classes plus background.

Boxes past the border: the official targets reach past the canvas (:mod:`..data.mnist_canvas`), so by default
neither the RPN's proposals nor the detections are clipped to the image (torchvision clips both: with
``clip_boxes=True`` they are, the project's earlier variant). torchvision has no switch for it; the unclipped
detector's RPN and box heads (:class:`UnclippedRPN`, :class:`UnclippedRoIHeads`) shift the boxes by
``UNCLIPPED_MARGIN`` px and widen the image by twice that before torchvision's filtering, then shift back, so only
boxes that reach more than ``UNCLIPPED_MARGIN`` (1,024) px past the canvas are cut there. Everything else about
the filtering is torchvision's (sizes, scores and NMS do not change under a shift).

Sizes are set for 64 px canvases (torchvision's defaults are for 800 px photographs): no resizing, 300 / 100
proposals before / after NMS in training and 150 / 50 in evaluation, RPN IoU thresholds 0.5 / 0.1 (the official
sampler's), RPN NMS at 0.8 (official), 64 sampled RoIs per image.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from coordconv import CoordConv2d

__all__ = [
    "DETECTORS",
    "OFFICIAL_ANCHORS",
    "OFFICIAL_ANCHOR_START",
    "UNCLIPPED_MARGIN",
    "Backbone",
    "CoordRPNHead",
    "UnclippedRPN",
    "UnclippedRoIHeads",
    "build_detector",
    "proposals",
]

#: the official anchors, (height, width) in pixels
OFFICIAL_ANCHORS = ((15, 15), (20, 20), (25, 25), (15, 20), (20, 25), (20, 15), (25, 20), (15, 25), (25, 15))
#: the official code's first anchor centre, in pixels of the canvas: the receptive field of a backbone cell is
#: 16 px (two 5x5 convolutions and two 2x2 pools), so cell ``k`` is centred at ``8 + 4 k`` (torchvision: ``4 k``)
OFFICIAL_ANCHOR_START = 8.0
#: each detector's coordinates: (in the backbone's first convolution, in the RPN head)
DETECTORS = {
    "conv": (False, False),
    "coordconv": (True, True),
    "coordconv-backbone": (True, False),
    "coordconv-rpn": (False, True),
}


def _conv(coord: bool, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> nn.Conv2d:
    cls = CoordConv2d if coord else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, padding=padding)


class Backbone(nn.Module):
    """The official two-convolution backbone; ``out_channels`` is what torchvision's detector reads."""

    out_channels = 64

    def __init__(self, coord: bool = False, in_channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(coord, in_channels, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)  # type: ignore[no-any-return]


class CoordRPNHead(nn.Module):
    """RPN head with the official layout; ``coord`` gives its 3x3 and its final box convolution coordinates.

    Called as torchvision's ``RPNHead``: a list of feature maps in, lists of objectness logits and box deltas out.
    """

    def __init__(self, in_channels: int, num_anchors: int, *, coord: bool = False, hidden: int = 32) -> None:
        super().__init__()
        self.shared = nn.Sequential(_conv(coord, in_channels, hidden, 3, padding=1), nn.ReLU())
        self.cls_logits = nn.Conv2d(hidden, num_anchors, 1)
        self.mover = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU())
        self.bbox_pred = _conv(coord, hidden, 4 * num_anchors, 1)
        for p in self.bbox_pred.parameters():
            nn.init.zeros_(p)  # the official box mover starts at zero deltas (and zero coordinate filters)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.zeros_(cast(Tensor, self.cls_logits.bias))

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for x in features:
            h = self.shared(x)
            logits.append(self.cls_logits(h))
            deltas.append(self.bbox_pred(self.mover(h)))
        return logits, deltas


#: how far past the canvas the unclipped detector's boxes may reach before torchvision's clipping cuts them (px)
UNCLIPPED_MARGIN = 1024.0


def _widened(image_shapes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pad = int(2 * UNCLIPPED_MARGIN)
    return [(int(h) + pad, int(w) + pad) for h, w in image_shapes]


try:  # the detector needs torchvision; this module imports without it (build_detector says what is missing)
    from torchvision.models.detection.roi_heads import RoIHeads
    from torchvision.models.detection.rpn import RegionProposalNetwork
except ImportError:  # pragma: no cover - exercised only without torchvision
    RegionProposalNetwork = RoIHeads = nn.Module  # type: ignore[misc,assignment,unused-ignore]


class UnclippedRPN(RegionProposalNetwork):  # type: ignore[misc]
    """torchvision's RPN whose proposals are not clipped to the image (only to ``UNCLIPPED_MARGIN`` px past it)."""

    def filter_proposals(
        self,
        proposals: Tensor,
        objectness: Tensor,
        image_shapes: list[tuple[int, int]],
        num_anchors_per_level: list[int],
    ) -> tuple[list[Tensor], list[Tensor]]:
        boxes, scores = super().filter_proposals(
            proposals + UNCLIPPED_MARGIN, objectness, _widened(image_shapes), num_anchors_per_level
        )
        return [b - UNCLIPPED_MARGIN for b in boxes], scores


class UnclippedRoIHeads(RoIHeads):  # type: ignore[misc]
    """torchvision's box heads whose detections are not clipped to the image (only ``UNCLIPPED_MARGIN`` px past it)."""

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, scores, labels = super().postprocess_detections(
            class_logits, box_regression, [p + UNCLIPPED_MARGIN for p in proposals], _widened(image_shapes)
        )
        return [b - UNCLIPPED_MARGIN for b in boxes], scores, labels


def build_detector(model: str, *, num_classes: int = 11, box_hidden: int = 128, clip_boxes: bool = False) -> nn.Module:
    """A torchvision ``FasterRCNN`` with the official backbone and RPN, plain or with CoordConv.

    ``model``: ``"conv"``, ``"coordconv"`` (the official three places), or CoordConv in one place only,
    ``"coordconv-backbone"`` or ``"coordconv-rpn"`` (:data:`DETECTORS`). ``clip_boxes``: the project's earlier
    variant: anchors on torchvision's grid, proposals and detections clipped to the image as torchvision does;
    without it (official), anchors centred as the official code centres them (:data:`OFFICIAL_ANCHOR_START`) and
    boxes that may reach past the border, as the official targets do (:class:`UnclippedRPN`,
    :class:`UnclippedRoIHeads`).

    Raises:
        ValueError: unknown ``model``.
        ImportError: torchvision is not installed.
    """
    if model not in DETECTORS:
        raise ValueError(f"model must be one of {', '.join(map(repr, DETECTORS))}, got {model!r}")
    try:
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.ops import MultiScaleRoIAlign
    except ImportError as e:
        raise ImportError("the detection experiment needs torchvision: pip install 'torch-coordconv[detection]'") from e
    coord_backbone, coord_rpn = DETECTORS[model]
    backbone = Backbone(coord_backbone)
    # the official nine (height, width) anchors as the cell anchors; torchvision puts cell k's at stride * k, so
    # every centre moves by start (the official code's 8 px; 0 keeps torchvision's own grid)
    anchors = AnchorGenerator(sizes=((15, 20, 25),), aspect_ratios=((1.0, 1.0, 1.0),))  # nine per cell
    hw = torch.tensor(OFFICIAL_ANCHORS, dtype=torch.float32)
    start = 0.0 if clip_boxes else OFFICIAL_ANCHOR_START
    anchors.cell_anchors = [torch.stack([-hw[:, 1], -hw[:, 0], hw[:, 1], hw[:, 0]], dim=1) / 2 + start]
    detector = FasterRCNN(
        backbone,
        min_size=64,
        max_size=64,
        image_mean=[0.0],
        image_std=[1.0],
        rpn_anchor_generator=anchors,
        rpn_head=CoordRPNHead(backbone.out_channels, len(OFFICIAL_ANCHORS), coord=coord_rpn),
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        rpn_nms_thresh=0.8,
        rpn_fg_iou_thresh=0.5,
        rpn_bg_iou_thresh=0.1,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, box_hidden),
        box_predictor=FastRCNNPredictor(box_hidden, num_classes),
        box_batch_size_per_image=64,
        box_detections_per_img=20,
    )
    if not clip_boxes:
        # the same modules with the filtering that does not clip: the subclasses add no state, so the weights,
        # the state dict and every other behaviour stay torchvision's
        detector.rpn.__class__ = UnclippedRPN
        detector.roi_heads.__class__ = UnclippedRoIHeads
    return cast(nn.Module, detector)


def proposals(model: Any, images: list[Tensor]) -> list[Tensor]:
    """The RPN's proposals after NMS for each image, best first, in image pixels.

    ``model`` is a torchvision ``FasterRCNN`` in eval mode.
    """
    image_list, _ = model.transform(images)
    if any(tuple(s) != tuple(im.shape[-2:]) for s, im in zip(image_list.image_sizes, images, strict=True)):
        raise ValueError("the detector resized the images; proposal IoU expects canvases at their own size")
    features = model.backbone(image_list.tensors)
    boxes, _ = model.rpn(image_list, {"0": features})
    return list(boxes)
