"""Binary classification metrics shared by the anomaly filter and the region heads.

Conventions: ``y_true`` is ``(N,)`` with 1 = positive (abnormal, CS) and 0 = negative; ``scores`` is
``(N,)`` float, higher = more likely positive; a sample is predicted positive when ``score >= threshold``.

Ranking metrics (AUROC, average precision) are undefined when ``y_true`` holds one class only: the
functions then return ``None`` and :func:`undefined_reason` says why, instead of raising or returning
a made-up 0.5. Threshold metrics are always defined (precision of no positive prediction is 0, as in
scikit-learn with ``zero_division=0``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


def _as_binary(y_true: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be a 1-D array, got shape {y.shape}")
    if y.dtype.kind in "US":
        raise TypeError("y_true must be 0/1 or bool, got strings: convert with labels_to_binary(labels)")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold only 0 and 1, got values {sorted(set(y.tolist()))[:6]}")
    return y.astype(np.int8)


def _checked(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores must have the shape of y_true {y.shape}, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite, got {int((~np.isfinite(s)).sum())} NaN/inf values")
    return y, s


def labels_to_binary(labels: Sequence[str], positive: str = "abnormal") -> np.ndarray:
    """``(N,)`` label strings -> ``(N,)`` int8, 1 where the label equals ``positive``."""
    return (np.asarray(labels, dtype=str) == positive).astype(np.int8)


def undefined_reason(y_true: Any) -> str | None:
    """Why AUROC/AP are undefined for these labels (``None`` when both classes are present)."""
    y = _as_binary(y_true)
    n_pos = int(y.sum())
    if y.size == 0:
        return "no samples"
    if n_pos == 0:
        return f"no positive (abnormal) samples among {y.size}: AUROC is undefined"
    if n_pos == y.size:
        return f"no negative (normal) samples among {y.size}: AUROC is undefined"
    return None


def auroc(y_true: Any, scores: Any) -> float | None:
    """Area under the ROC curve, or ``None`` when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _checked(y_true, scores)
    return None if undefined_reason(y) else float(roc_auc_score(y, s))


def average_precision(y_true: Any, scores: Any) -> float | None:
    """Average precision (area under the precision-recall curve), or ``None`` with one class only."""
    from sklearn.metrics import average_precision_score

    y, s = _checked(y_true, scores)
    return None if undefined_reason(y) else float(average_precision_score(y, s))


def confusion_at(y_true: Any, scores: Any, threshold: float) -> dict[str, int]:
    """Counts ``tp, fp, tn, fn`` when predicting positive for ``score >= threshold``."""
    y, s = _checked(y_true, scores)
    pred = s >= threshold
    pos = y == 1
    return {"tp": int((pred & pos).sum()), "fp": int((pred & ~pos).sum()),
            "tn": int((~pred & ~pos).sum()), "fn": int((~pred & pos).sum())}


def threshold_metrics(y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, accuracy and the confusion counts at ``threshold``."""
    c = confusion_at(y_true, scores, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = tp + fp + tn + fn
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
            "accuracy": (tp + tn) / total if total else 0.0, "confusion": c}


def youden_threshold(y_true: Any, scores: Any) -> float:
    """The score threshold that maximises Youden's J = TPR - FPR on the ROC of ``scores``.

    The threshold is one of the observed scores (predict positive for ``score >= threshold``); among
    equal J the highest threshold (fewest positives) wins.

    Raises:
        ValueError: only one class present (the ROC is undefined).
    """
    from sklearn.metrics import roc_curve

    y, s = _checked(y_true, scores)
    reason = undefined_reason(y)
    if reason:
        raise ValueError(f"cannot choose a Youden threshold: {reason}")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    j = (tpr - fpr)[1:]  # thresholds[0] is +inf (nothing predicted positive)
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0]) + 1  # ties (up to rounding): the highest threshold
    return float(thresholds[best])


def sensitivity_threshold(y_true: Any, scores: Any, target: float, midgap: bool = False) -> float:
    """The highest score threshold that keeps at least ``target`` of the positives (``score >= threshold``).

    A screening gate is chosen for recall: it may pass negatives on to later stages, but every positive
    it drops is lost. Ties at the threshold are kept, so the share kept can exceed ``target``.

    ``midgap``: the threshold moves halfway down to the next lower score (of either class; none: it stays).
    Every threshold in that gap splits these frames the same way; the highest one sits on the lowest kept
    positive, so an unseen positive scoring a little lower is lost, while the middle leaves room on both
    sides. On the transfer protocol the frame screen's threshold chosen this way kept 0.90 of the test CS
    frames of its own world (0.82 on the edge, for a 0.97 target) and 0.42 of another's (0.20).

    Raises:
        ValueError: ``target`` outside (0, 1], or no positive to keep.
    """
    y, s = _checked(y_true, scores)
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target!r}")
    positives = np.sort(s[y == 1])
    if positives.size == 0:
        raise ValueError("cannot choose a threshold for a target sensitivity: no positive frame")
    may_miss = int(np.floor((1.0 - target) * positives.size + 1e-9))
    edge = float(positives[may_miss])
    lower = s[s < edge] if midgap else s[:0]
    return float((edge + lower.max()) / 2) if lower.size else edge


def binary_report(y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """AUROC, average precision and :func:`threshold_metrics`, plus counts and the undefined reason."""
    y, s = _checked(y_true, scores)
    report = {"n": int(y.size), "n_positive": int(y.sum()), "n_negative": int(y.size - y.sum()),
              "auroc": auroc(y, s), "average_precision": average_precision(y, s),
              "auroc_undefined_reason": undefined_reason(y)}
    report.update(threshold_metrics(y, s, threshold))
    return report


def embryo_scores(embryo_ids: Sequence[str], y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate frames to embryos: score = max over its frames, label = positive if any frame is.

    Returns:
        ``(E,)`` sorted embryo ids, ``(E,)`` int8 labels, ``(E,)`` float64 scores.
    """
    y, s = _checked(y_true, scores)
    ids = np.asarray(embryo_ids, dtype=str)
    if ids.shape != y.shape:
        raise ValueError(f"embryo_ids must have the shape of y_true {y.shape}, got {ids.shape}")
    unique, inverse = np.unique(ids, return_inverse=True)
    emb_scores = np.full(len(unique), -np.inf)
    np.maximum.at(emb_scores, inverse, s)
    emb_labels = np.zeros(len(unique), np.int8)
    np.maximum.at(emb_labels, inverse, y)
    return unique, emb_labels, emb_scores


def embryo_report(embryo_ids: Sequence[str], y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """:func:`binary_report` at embryo level (see :func:`embryo_scores`)."""
    _, labels, emb = embryo_scores(embryo_ids, y_true, scores)
    return binary_report(labels, emb, threshold)
