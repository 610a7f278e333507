"""Region and detection metrics for the string localizer.

- region level: :func:`region_metrics` (average precision, AUROC, IoU MAE on labelled proposals);
- frame level: :func:`best_box_hit_rate` (does a frame's best-scoring box hit a string?);
- detection: :func:`coco_average_precision` (COCO's AP: per-image greedy matching in score order,
  101-point interpolated precision; checked against pycocotools in the tests);

Boxes are ``(N, 4)`` int32 ``x1, y1, x2, y2`` with an exclusive end (COCO's ``w * h`` areas).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cs_features.boxes import as_boxes, iou_matrix, nms
from cs_features.metrics.binary import auroc, average_precision

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def region_metrics(y: np.ndarray, p: np.ndarray, iou_true: np.ndarray | None = None,
                   iou_pred: np.ndarray | None = None) -> dict[str, float]:
    """Average precision and AUROC of ``p`` for ``(N,)`` 0/1 labels ``y``; IoU MAE where both IoUs are given.

    An undefined metric is None, as in :mod:`cs_features.metrics.binary` (a single class; no known IoU).
    """
    y = np.asarray(y).reshape(-1)
    p = np.asarray(p, np.float64).reshape(-1)
    if len(y) != len(p):
        raise ValueError(f"region_metrics got {len(y)} labels but {len(p)} scores")
    out = {"average_precision": average_precision(y, p), "auroc": auroc(y, p)}
    if iou_true is not None and iou_pred is not None:
        out["iou_mae"] = iou_mae(iou_true, iou_pred)
    return out


def iou_mae(iou_true: np.ndarray, iou_pred: np.ndarray) -> float | None:
    """Mean absolute error of predicted IoU (clamped to [0, 1]) over rows whose true IoU is known (None: none is)."""
    iou_true = np.asarray(iou_true, np.float64).reshape(-1)
    iou_pred = np.clip(np.asarray(iou_pred, np.float64).reshape(-1), 0.0, 1.0)
    known = np.isfinite(iou_true)
    return float(np.abs(iou_true[known] - iou_pred[known]).mean()) if known.any() else None


def group_by_frame(frame_ids: np.ndarray) -> dict[str, np.ndarray]:
    """``(N,)`` frame ids -> ``{frame id: (n,) int64 row indices}`` (one sort, no per-row Python)."""
    frame_ids = np.asarray(frame_ids)
    if len(frame_ids) == 0:
        return {}
    order = np.argsort(frame_ids, kind="stable")
    keys, starts = np.unique(frame_ids[order], return_index=True)
    return {str(key): part for key, part in zip(keys, np.split(order, starts[1:]))}


def best_box_hit_rate(frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      thresholds: Sequence[float] = (0.25, 0.5)) -> dict[str, float]:
    """Share of frames whose highest-scoring box overlaps a ground-truth string at IoU >= t.

    Args:
        frames: one ``(boxes (N, 4), scores (N,), gt_boxes (G, 4))`` per frame with strings; a frame
            without proposals counts as a miss.
        thresholds: IoU thresholds.

    Returns:
        ``{"hit@0.25": rate, ...}`` (NaN when ``frames`` is empty) and ``"frames"``: their number.
    """
    hits = np.zeros((len(frames), len(thresholds)), bool)
    for i, (boxes, scores, gt) in enumerate(frames):
        boxes, gt = as_boxes(boxes), as_boxes(gt)
        if len(boxes) == 0 or len(gt) == 0:
            continue
        best = int(np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))[0])
        overlap = float(iou_matrix(boxes[best:best + 1], gt).max())
        hits[i] = [overlap >= t for t in thresholds]
    rates = hits.mean(axis=0) if len(frames) else np.full(len(thresholds), np.nan)
    out = {f"hit@{t:g}": float(r) for t, r in zip(thresholds, rates)}
    out["frames"] = len(frames)
    return out


def nms_detections(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3,
                   max_detections: int = 100, inside: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's ``(N, 4)`` boxes and ``(N,)`` scores -> kept ``(K, 4)`` boxes and ``(K,)`` scores
    (:func:`cs_features.boxes.nms`, ``inside`` as there)."""
    keep = nms(boxes, scores, iou_threshold, inside)[:max_detections]
    return as_boxes(boxes)[keep], np.asarray(scores, np.float64)[keep]


def coco_average_precision(detections: Sequence[tuple[np.ndarray, np.ndarray]], ground_truth: Sequence[np.ndarray],
                           iou_threshold: float = 0.5, max_detections: int = 100) -> float:
    """Single-class average precision computed the COCO way.

    Per image the top ``max_detections`` detections by score are matched greedily in score order, each
    to the unmatched ground-truth box of highest IoU with IoU >= ``iou_threshold``. Over all images
    (frames without strings included: their detections are false positives) detections are ranked by
    score, precision is made monotone and read at the 101 recall points 0, 0.01, ..., 1.

    Args:
        detections: per image ``(boxes (N, 4), scores (N,))``.
        ground_truth: per image ``(G, 4)`` boxes (same order and length as ``detections``).

    Returns:
        AP in [0, 1]; NaN when there is no ground-truth box at all (COCO's -1).
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"got detections for {len(detections)} images but ground truth for {len(ground_truth)}")
    scores, matched, n_gt = [], [], 0
    for (boxes, det_scores), gt in zip(detections, ground_truth):
        s, m = _match_image(as_boxes(boxes), np.asarray(det_scores, np.float64).reshape(-1), as_boxes(gt),
                            iou_threshold, max_detections)
        scores.append(s)
        matched.append(m)
        n_gt += len(as_boxes(gt))
    if n_gt == 0:
        return float("nan")
    scores, matched = np.concatenate(scores), np.concatenate(matched)
    order = np.argsort(-scores, kind="mergesort")  # COCO's stable order among equal scores
    tp = np.cumsum(matched[order]).astype(np.float64)
    fp = np.cumsum(~matched[order]).astype(np.float64)
    return _interpolated_ap(tp / n_gt, tp / (tp + fp + np.spacing(1)))


def _match_image(boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, iou_threshold: float,
                 max_detections: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-scoring detections of one image and whether each matched a ground-truth box."""
    order = np.argsort(-scores, kind="mergesort")[:max_detections]
    boxes, scores = boxes[order], scores[order]
    matched = np.zeros(len(boxes), bool)
    if len(gt) and len(boxes):
        overlap = iou_matrix(boxes, gt).astype(np.float64)
        taken = np.zeros(len(gt), bool)
        threshold = min(iou_threshold, 1 - 1e-10)
        for d in range(len(boxes)):
            candidates = np.where(taken, -1.0, overlap[d])
            g = len(gt) - 1 - int(np.argmax(candidates[::-1]))  # COCO keeps the last of equal best IoUs
            if candidates[g] >= threshold:
                taken[g], matched[d] = True, True
    return scores, matched


def _interpolated_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    if len(recall) == 0:
        return 0.0
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # precision envelope, as COCO
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def detection_ap(frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], iou_thresholds=(0.25, 0.5),
                 nms_iou: float = 0.3, max_detections: int = 100, nms_inside: float | None = None) -> dict[str, float]:
    """AP at each IoU threshold over all frames after per-frame NMS.

    Args:
        frames: one ``(boxes (N, 4), scores (N,), gt_boxes (G, 4))`` per frame, CS-free frames included.

    Returns:
        ``{"ap25": ..., "ap50": ...}`` (keys ``ap`` + the threshold in percent).
    """
    detections = [nms_detections(boxes, scores, nms_iou, max_detections, nms_inside) for boxes, scores, _ in frames]
    ground_truth = [gt for _, _, gt in frames]
    return {f"ap{round(t * 100)}": coco_average_precision(detections, ground_truth, t, max_detections)
            for t in iou_thresholds}
