"""Box arithmetic shared by proposals, weak labels, heads and detection.

Boxes are ``(N, 4)`` int32 ``x1, y1, x2, y2`` in frame pixels with an exclusive end, so a box's width
is ``x2 - x1`` and its area ``(x2 - x1) * (y2 - y1)``.
"""

from __future__ import annotations

import numpy as np

from cs_features.errors import InputError


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a ``(N, 4)`` int32 array; raise ValueError for any other shape."""
    array = np.asarray(boxes)
    if array.size == 0:
        return np.zeros((0, 4), np.int32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"{name} must have shape (N, 4) as x1, y1, x2, y2; got shape {array.shape}")
    return array.astype(np.int32)


def parse_box(text: str, name: str = "box") -> list[int]:
    """``"x1,y1,x2,y2"`` as four ints.

    Raises:
        InputError: not four comma-separated integers (the message names ``name`` and quotes the text).
    """
    try:
        box = [int(v) for v in str(text).split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise InputError(f"{name} must be four integers x1,y1,x2,y2, got {str(text)[:64]!r}")
    return box


def validate_boxes(boxes: np.ndarray, width: int, height: int, name: str = "boxes") -> np.ndarray:
    """Check that every box is non-empty and inside a ``width`` x ``height`` frame.

    Returns:
        the boxes as ``(N, 4)`` int32.

    Raises:
        ValueError: naming the first offending box and the frame size.
    """
    boxes = as_boxes(boxes, name)
    bad = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
    bad |= (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}[{index}] = {boxes[index].tolist()} is empty or outside the {width}x{height} frame "
            "(expected 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height)"
        )
    return boxes


def clamp_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the frame; boxes may become empty (drop them with :func:`box_areas`)."""
    boxes = as_boxes(boxes).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 areas; negative extents count as 0."""
    boxes = as_boxes(boxes).astype(np.int64)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, M)`` int64 pairwise intersection areas of int64 boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)``, and both
    sets as int64 boxes."""
    a = as_boxes(a).astype(np.int64)
    b = as_boxes(b).astype(np.int64)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return ix * iy, a, b


def _iou(inter: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` float32 IoU from the intersections and both int64 box sets of :func:`_intersections`."""
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


def _inside(inter: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(N, M)`` float32 share of each box of ``a`` inside each of the other set, from :func:`_intersections`."""
    area = box_areas(a)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, inter / np.maximum(area, 1), 0.0).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union.

    Args:
        a: ``(N, 4)`` boxes; b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` float32 IoU; 0 where a union is empty.
    """
    return _iou(*_intersections(a, b))


def inside_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise share of each box of ``a`` that lies inside each box of ``b``.

    Args:
        a: ``(N, 4)`` boxes; b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` float32 intersection area over the area of ``a``'s box; 0 where that box is empty.
    """
    inter, a, _ = _intersections(a, b)
    return _inside(inter, a)


def sort_boxes(boxes: np.ndarray) -> np.ndarray:
    """Sort boxes lexicographically by (x1, y1, x2, y2) and drop exact duplicates (a canonical order)."""
    boxes = as_boxes(boxes)
    if len(boxes) == 0:
        return boxes
    return np.unique(boxes, axis=0).astype(np.int32)


NMS_BLOCK = 512


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, inside: float | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)``; scores: ``(N,)``; iou_threshold: a box is dropped when its IoU with a
            higher-scoring kept box exceeds this.
        inside: a box is also dropped when at least this share of its area lies inside a higher-scoring
            kept box (a piece of a box already kept); None drops by IoU alone.

    Returns:
        ``(K,)`` int64 indices of kept boxes, highest score first (ties broken by index, so stable).
    """
    boxes = as_boxes(boxes)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(boxes):
        raise ValueError(f"nms got {len(boxes)} boxes but {len(scores)} scores")
    if inside is not None and not 0.0 < inside <= 1.0:
        raise ValueError(f"nms inside must be in (0, 1] or None, got {inside!r}")
    order = np.lexsort((np.arange(len(scores)), -scores))
    keep: list[int] = []
    for start in range(0, len(order), NMS_BLOCK):  # blocks in score order: memory O(block x kept), not O(N^2)
        block = order[start:start + NMS_BLOCK]
        suppressed = np.zeros(len(block), bool)
        if keep:
            suppressed = _suppresses(boxes[np.asarray(keep)], boxes[block], iou_threshold, inside).any(axis=0)
        drop = _suppresses(boxes[block], boxes[block], iou_threshold, inside)
        for rank in range(len(block)):
            if suppressed[rank]:
                continue
            keep.append(int(block[rank]))
            suppressed |= drop[rank]
    return np.asarray(keep, dtype=np.int64)


def reported_boxes(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, inside: float | None = None,
                   min_score: float = 0.0, top_k: int | None = None) -> list[int]:
    """The boxes a frame reports: :func:`nms`, then those scoring at least ``min_score``, the first ``top_k``
    (None: all). Indices into ``boxes``, highest score first."""
    if not len(boxes):
        return []
    kept = [int(k) for k in nms(boxes, scores, iou_threshold, inside) if scores[k] >= min_score]
    return kept if top_k is None else kept[:top_k]


def _suppresses(kept: np.ndarray, boxes: np.ndarray, iou_threshold: float, inside: float | None) -> np.ndarray:
    """``(K, N)`` bool: whether each of the ``kept`` boxes drops each of ``boxes`` in :func:`nms` (both read from
    one intersection matrix)."""
    inter, kept, boxes = _intersections(kept, boxes)
    drop = _iou(inter, kept, boxes) > iou_threshold
    if inside is not None:
        drop |= _inside(inter.T, boxes).T >= inside
    return drop


def yolo_to_boxes(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert normalised YOLO ``(N, 4)`` cx, cy, w, h to pixel boxes (rounded outward, clamped)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    x1 = np.floor((rows[:, 0] - rows[:, 2] / 2) * width + 1e-3)
    y1 = np.floor((rows[:, 1] - rows[:, 3] / 2) * height + 1e-3)
    x2 = np.ceil((rows[:, 0] + rows[:, 2] / 2) * width - 1e-3)
    y2 = np.ceil((rows[:, 1] + rows[:, 3] / 2) * height - 1e-3)
    return clamp_boxes(np.stack([x1, y1, x2, y2], axis=1).astype(np.int32), width, height)


def boxes_to_yolo(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert pixel boxes to normalised YOLO ``(N, 4)`` float64 cx, cy, w, h."""
    boxes = as_boxes(boxes).astype(np.float64)
    return np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2 / width,
            (boxes[:, 1] + boxes[:, 3]) / 2 / height,
            (boxes[:, 2] - boxes[:, 0]) / width,
            (boxes[:, 3] - boxes[:, 1]) / height,
        ],
        axis=1,
    )
