"""Region proposals: OpenCV Selective Search as published, made deterministic.

OpenCV returns rectangles in an order that changes between runs and threads, so boxes are clamped,
tiny ones dropped, duplicates removed and the rest SORTED before the cap is applied; the same frame and
settings always give the same boxes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cs_features.boxes import box_areas, clamp_boxes, sort_boxes
from cs_features.registry import Registry

PROPOSAL_SOURCES: Registry = Registry("proposal source")


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of the proposal stage (recorded in the store).

    Attributes:
        method: a registered proposal source (``ss-fast``, ``ss-quality``, ``ss-single``).
        max_proposals: cap per frame: a uniform sample chosen by a hash of each box (so the cap
            keeps the size and position mix of all proposals and does not depend on OpenCV's order),
            returned in canonical order.
        min_area: boxes smaller than this many pixels are dropped.
        min_side: boxes thinner than this many pixels on either side are dropped.
        ss_sigma, ss_k: the graph segmentation's Gaussian sigma and k of the single-strategy mode.
    """

    method: str = "ss-fast"
    max_proposals: int = 300
    min_area: int = 64
    min_side: int = 4
    ss_sigma: float = 0.8
    ss_k: int = 150

    def to_dict(self) -> dict:
        return asdict(self)


def propose(image: np.ndarray, config: ProposalConfig = ProposalConfig()) -> np.ndarray:
    """Region proposals for one frame.

    Args:
        image: ``(H, W)`` uint8 preprocessed frame.
        config: proposal settings.

    Returns:
        ``(N, 4)`` int32 boxes, N <= ``config.max_proposals``, in canonical (sorted) order.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        raise TypeError(f"propose expects an (H, W) uint8 frame, got {getattr(image, 'dtype', type(image))} "
                        f"{getattr(image, 'shape', '')}")
    if config.max_proposals < 1:
        raise ValueError(f"max_proposals must be >= 1, got {config.max_proposals}")
    source = PROPOSAL_SOURCES.get(config.method)
    raw = source(image, config)
    return finalize_boxes(raw, image.shape[1], image.shape[0], config)


def finalize_boxes(boxes: np.ndarray, width: int, height: int, config: ProposalConfig) -> np.ndarray:
    """Clamp, drop tiny, de-duplicate, cap at ``max_proposals`` by box hash, and sort canonically."""
    boxes = clamp_boxes(boxes, width, height)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (box_areas(boxes) >= config.min_area) & (w >= config.min_side) & (h >= config.min_side)
    boxes = sort_boxes(boxes[keep])
    if len(boxes) > config.max_proposals:
        order = np.lexsort((np.arange(len(boxes)), _box_hash(boxes)))[: config.max_proposals]
        boxes = sort_boxes(boxes[order])
    return boxes


def _box_hash(boxes: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random uint64 key per box (splitmix64 of the packed coordinates)."""
    b = boxes.astype(np.uint64)
    x = (b[:, 0] << np.uint64(48)) ^ (b[:, 1] << np.uint64(32)) ^ (b[:, 2] << np.uint64(16)) ^ b[:, 3]
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _selective_search(image: np.ndarray, mode: str, config: ProposalConfig) -> np.ndarray:
    import cv2

    # Selective Search wants 3 channels; single-threaded so the result does not depend on scheduling.
    cv2.setNumThreads(1)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    elif mode == "quality":
        search.switchToSelectiveSearchQuality()
    else:
        search.switchToSingleStrategy(config.ss_k, config.ss_sigma)
    rects = search.process()
    if rects is None or len(rects) == 0:
        return np.zeros((0, 4), np.int32)
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    return np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1).astype(np.int32)


@PROPOSAL_SOURCES.register("ss-fast")
def selective_search_fast(image: np.ndarray, config: ProposalConfig) -> np.ndarray:
    """OpenCV Selective Search, fast mode (as published)."""
    return _selective_search(image, "fast", config)


@PROPOSAL_SOURCES.register("ss-quality")
def selective_search_quality(image: np.ndarray, config: ProposalConfig) -> np.ndarray:
    """OpenCV Selective Search, quality mode."""
    return _selective_search(image, "quality", config)


@PROPOSAL_SOURCES.register("ss-single")
def selective_search_single(image: np.ndarray, config: ProposalConfig) -> np.ndarray:
    """OpenCV Selective Search, single strategy (one graph segmentation, colour+size+fill similarity)."""
    return _selective_search(image, "single", config)


def weak_labels(
    proposals: np.ndarray, gt_boxes: np.ndarray | None, positive_iou: float = 0.2, negative_iou: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Weak labels of proposals from ground-truth boxes.

    Args:
        proposals: ``(N, 4)`` boxes; gt_boxes: ``(G, 4)`` boxes, or None when the frame's boxes are
            unknown (a CS frame without a label file).
        positive_iou: label 1 when max IoU > this; negative_iou: label 0 when max IoU < this.

    Returns:
        ``max_iou`` ``(N,)`` float32 and ``label`` ``(N,)`` int8 with 1 / 0 / -1 (ignored). With
        ``gt_boxes=None`` every label is -1 and max_iou is NaN. A CS-free frame (G = 0) gives all 0.
    """
    from cs_features.boxes import iou_matrix

    if negative_iou > positive_iou:
        raise ValueError(f"negative_iou ({negative_iou}) must not exceed positive_iou ({positive_iou})")
    n = len(proposals)
    if gt_boxes is None:
        return np.full(n, np.nan, np.float32), np.full(n, -1, np.int8)
    if len(gt_boxes) == 0:
        return np.zeros(n, np.float32), np.zeros(n, np.int8)
    max_iou = iou_matrix(proposals, gt_boxes).max(axis=1).astype(np.float32)
    label = np.full(n, -1, np.int8)
    label[max_iou > positive_iou] = 1
    label[max_iou < negative_iou] = 0
    return max_iou, label
