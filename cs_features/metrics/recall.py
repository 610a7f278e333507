"""Proposal recall: the share of ground-truth strings that some proposal covers.

No head can find a string that no proposal covers, so this bounds every later stage. One measure,
:func:`string_best_iou`, counted three ways: per frame and source at ingest (:func:`recall_by_source`),
over a store's rows, and over a list of frames (:func:`proposal_recall`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cs_features.boxes import as_boxes, iou_matrix

RECALL_IOUS = (0.25, 0.5)


def string_best_iou(gt_boxes: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(G,)`` float32: for each ground-truth box ``(G, 4)``, its best IoU with any of ``boxes`` ``(N, 4)``."""
    gt = as_boxes(gt_boxes)
    boxes = as_boxes(boxes)
    if len(gt) == 0 or len(boxes) == 0:
        return np.zeros(len(gt), np.float32)
    return iou_matrix(gt, boxes).max(axis=1).astype(np.float32)


def recall_by_source(gt_boxes: np.ndarray, boxes: np.ndarray, sources: np.ndarray) -> dict[str, list[int]]:
    """Per source and for ``"all"`` proposals of one frame: ``[strings, hits at IoU >= 0.25, hits at >= 0.5]``.

    ``{}`` for a frame without strings. Counts add up over frames; :func:`recall_summary` turns them into shares.
    """
    gt = as_boxes(gt_boxes)
    if len(gt) == 0:
        return {}
    sources = np.asarray(sources, dtype=object)
    out = {}
    for name in ["all", *sorted(set(sources.tolist()))]:
        best = string_best_iou(gt, boxes if name == "all" else as_boxes(boxes)[sources == name])
        out[name] = [len(gt), *(int((best >= t).sum()) for t in RECALL_IOUS)]
    return out


def add_counts(totals: dict[str, list[int]], counts: dict[str, list[int]]) -> dict[str, list[int]]:
    """Add one frame's :func:`recall_by_source` counts (or any per-name count lists) into ``totals``."""
    for name, values in counts.items():
        current = totals.setdefault(name, [0] * len(values))
        for k, value in enumerate(values):
            current[k] += value
    return totals


def recall_summary(counts: dict[str, list[int]]) -> dict[str, dict]:
    """Per source: strings seen and recall at IoU >= 0.25 and >= 0.5, from summed :func:`recall_by_source` counts."""
    return {name: {"strings": n, "recall@0.25": round(h25 / n, 4), "recall@0.5": round(h50 / n, 4)}
            for name, (n, h25, h50, *_) in sorted(counts.items()) if n}


def proposal_recall(frames: Sequence[tuple[np.ndarray, np.ndarray]],
                    thresholds: Sequence[float] = (0.25, 0.5)) -> dict[str, float]:
    """Share of ground-truth strings with any proposal at IoU >= t, and proposals per frame.

    Args:
        frames: one ``(proposal boxes (N, 4), gt_boxes (G, 4))`` per frame (frames without strings
            count towards proposals per frame only).
    """
    best = [string_best_iou(gt, boxes) for boxes, gt in frames]
    best = np.concatenate(best) if best else np.zeros(0, np.float32)
    out = {f"recall@{t:g}": float((best >= t).mean()) if len(best) else float("nan") for t in thresholds}
    out["strings"] = int(len(best))
    out["proposals_per_frame"] = float(np.mean([len(as_boxes(b)) for b, _ in frames])) if frames else 0.0
    return out
