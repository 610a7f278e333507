"""Embryo scores from frame scores, using the time-lapse: a string persists over consecutive frames.

A cytoplasmic string in a blastocyst is seen in several consecutive frames of its time-lapse; a
spurious frame score (a fibre, a defocused rim) usually is not. The **persistence score** of an embryo
orders its frames by ``frame_index`` and takes, over every window of ``k`` consecutive frames, the
``min`` (or ``mean``) of the frame scores in the window, then the maximum over windows. With ``min``
and ``k = 2`` an embryo scores high only when two neighbouring frames both do, so one isolated high
frame counts less than a string seen twice in a row. An embryo with fewer than ``k`` frames uses all
of them as its one window. Consecutive means neighbours in the ordered frames the store holds; a
missing frame index does not break a window.

The plain **max** over frames (:func:`cs_features.metrics.embryo_scores`) is kept for comparison.
An embryo is positive when any of its frames is (as in :mod:`cs_features.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from cs_features.errors import ConfigError

WINDOW_REDUCERS = ("min", "mean")


def persistence_score(ordered_scores: Sequence[float], k: int = 2, reduce: str = "min") -> float:
    """Max over windows of ``k`` consecutive frames of the window's ``min``/``mean`` score.

    Args:
        ordered_scores: ``(T,)`` frame scores of one embryo in time order (T >= 1).
        k: window length in frames (>= 1; ``k = 1`` is the plain max).
        reduce: ``min`` or ``mean`` within a window.

    Raises:
        ConfigError: ``k < 1`` or an unknown ``reduce``. ValueError: no scores.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"window length k must be an int >= 1, got {k!r}")
    if reduce not in WINDOW_REDUCERS:
        raise ConfigError(f"unknown window reducer {reduce!r}; accepted: {', '.join(WINDOW_REDUCERS)}")
    scores = np.asarray(ordered_scores, np.float64).ravel()
    if scores.size == 0:
        raise ValueError("an embryo needs at least one frame score")
    k = min(int(k), scores.size)
    windows = np.lib.stride_tricks.sliding_window_view(scores, k)
    per_window = windows.min(axis=1) if reduce == "min" else windows.mean(axis=1)
    return float(per_window.max())


@dataclass
class EmbryoScores:
    """Per-embryo results: ``embryo_ids`` (E,) str sorted, ``labels`` (E,) int8, ``frames`` (E,) int,
    ``max_score`` (E,) and ``persistence`` (E,) float64."""

    embryo_ids: np.ndarray
    labels: np.ndarray
    frames: np.ndarray
    max_score: np.ndarray
    persistence: np.ndarray

    def __len__(self) -> int:
        return len(self.embryo_ids)


def embryo_scores_over_time(embryo_ids: Sequence[str], frame_index: Sequence[Any], y_true: Any, scores: Any,
                            k: int = 2, reduce: str = "min") -> EmbryoScores:
    """Group frames by embryo, order them by ``frame_index`` and score each embryo both ways.

    Args:
        embryo_ids, frame_index, y_true, scores: ``(N,)`` per frame (``frame_index`` None sorts first;
            ties keep the given order); ``y_true`` 0/1.
        k, reduce: see :func:`persistence_score`.

    Raises:
        ValueError: arrays of different lengths.
    """
    ids = np.asarray(embryo_ids, dtype=str)
    y, s = np.asarray(y_true).astype(np.int8), np.asarray(scores, np.float64)
    order_key = np.array([-1 if v is None else int(v) for v in frame_index], np.int64)
    if not (ids.shape == y.shape == s.shape == order_key.shape) or ids.ndim != 1:
        raise ValueError(f"embryo_ids, frame_index, y_true and scores must be (N,) alike, got {ids.shape}, "
                         f"{order_key.shape}, {y.shape}, {s.shape}")
    unique = np.unique(ids)
    labels, frames = np.zeros(len(unique), np.int8), np.zeros(len(unique), np.int64)
    max_score, persistence = np.zeros(len(unique)), np.zeros(len(unique))
    for i, embryo in enumerate(unique):
        members = np.flatnonzero(ids == embryo)
        members = members[np.argsort(order_key[members], kind="stable")]
        labels[i], frames[i] = y[members].max(), len(members)
        max_score[i] = s[members].max()
        persistence[i] = persistence_score(s[members], k, reduce)
    return EmbryoScores(unique, labels, frames, max_score, persistence)
