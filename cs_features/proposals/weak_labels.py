"""Weak labels of proposals from ground-truth string boxes (positive, negative or ignored by IoU)."""

from __future__ import annotations

import numpy as np

from cs_features.boxes import iou_matrix


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
