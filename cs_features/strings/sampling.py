"""Pixel labels from string boxes: which pixels of a frame the string map is trained on.

A string box is mostly background (a string is 1-6 px wide), so a box is not a pixel label. Inside each
ground-truth box the positives are the pixels whose line response
(:func:`~cs_features.strings.features.line_response`) is in the top ``positive_fraction`` of the box.
Negatives come from CS-free frames and from outside the (dilated) boxes of CS frames; a share
``hard_fraction`` of them is drawn from the pixels with a high line response (cell edges, fibres, the
zona: what a string map must learn to ignore), the rest uniformly. Each frame gives at most
``max_pixels_per_frame`` pixels, half of them positives in a CS frame, drawn with the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.config import check_fields, coerce_number
from cs_features.ids import short_hash


@dataclass(frozen=True)
class PixelSampling:
    """How pixels are drawn from one frame (see the module docstring)."""

    max_pixels_per_frame: int = 1500
    positive_fraction: float = 0.06
    hard_fraction: float = 0.5
    hard_quantile: float = 0.97
    box_margin: int = 4

    def __post_init__(self) -> None:
        for name, kind in (("max_pixels_per_frame", int), ("positive_fraction", float), ("hard_fraction", float),
                           ("hard_quantile", float), ("box_margin", int)):
            object.__setattr__(self, name, coerce_number(self, name, kind))
        check_fields(self, [
            ("max_pixels_per_frame", self.max_pixels_per_frame >= 2, "an integer >= 2"),
            ("positive_fraction", 0 < self.positive_fraction <= 1, "a fraction in (0, 1]"),
            ("hard_fraction", 0 <= self.hard_fraction <= 1, "a fraction in [0, 1]"),
            ("hard_quantile", 0 <= self.hard_quantile < 1, "a quantile in [0, 1)"),
            ("box_margin", self.box_margin >= 0, "an integer >= 0"),
        ])


@dataclass
class PixelSample:
    """Flat pixel indices of one frame: ``index`` (N,) int64 into ``H * W``, ``y`` (N,) int8, ``hard`` (N,) bool."""

    index: np.ndarray
    y: np.ndarray
    hard: np.ndarray


def frame_rng(seed: int, frame_id: str) -> np.random.Generator:
    """The generator of one frame's pixel draw: from the run's seed and the frame id (order-independent)."""
    return np.random.default_rng([int(seed), int(short_hash(frame_id), 16)])


def _clip(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, shape[1])
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, shape[0])
    return boxes


def string_pixels(response: np.ndarray, boxes: np.ndarray, fraction: float) -> np.ndarray:
    """(H, W) bool: inside each box, the pixels whose line response is in the box's top ``fraction`` (at least one).

    Args:
        response: (H, W) float line response; boxes: (N, 4) int x1, y1, x2, y2 (exclusive end).
    """
    mask = np.zeros(response.shape, bool)
    for x1, y1, x2, y2 in _clip(boxes, response.shape):
        if x2 <= x1 or y2 <= y1:
            continue
        inside = response[y1:y2, x1:x2]
        cut = np.quantile(inside, 1.0 - fraction)
        mask[y1:y2, x1:x2] |= (inside >= cut) & (inside > 0)
    return mask


def _outside(shape: tuple[int, int], boxes: np.ndarray, margin: int) -> np.ndarray:
    allowed = np.ones(shape, bool)
    for x1, y1, x2, y2 in _clip(boxes + np.array([-margin, -margin, margin, margin]), shape):
        allowed[y1:y2, x1:x2] = False
    return allowed


def _draw(rng: np.random.Generator, candidates: np.ndarray, n: int) -> np.ndarray:
    if n <= 0 or candidates.size == 0:
        return np.empty(0, np.int64)
    return rng.choice(candidates, size=min(n, candidates.size), replace=False).astype(np.int64)


def sample_frame_pixels(response: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                        sampling: PixelSampling = PixelSampling()) -> PixelSample:
    """Draw labelled pixels of one frame.

    Args:
        response: (H, W) float32 line response of the frame.
        boxes: (N, 4) int string boxes; empty for a CS-free frame (negatives only).
        rng: the generator the draw uses (the caller seeds it).

    Returns:
        the drawn pixels; positives first, then hard, then uniform negatives.
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    positives = np.flatnonzero(string_pixels(response, boxes, sampling.positive_fraction)) if len(boxes) else \
        np.empty(0, np.int64)
    pos = _draw(rng, positives, sampling.max_pixels_per_frame // 2)
    n_neg = sampling.max_pixels_per_frame - len(pos)
    allowed = np.flatnonzero(_outside(response.shape, boxes, sampling.box_margin))
    if allowed.size == 0:
        return PixelSample(pos, np.ones(len(pos), np.int8), np.zeros(len(pos), bool))
    values = response.ravel()[allowed]
    strong = allowed[values >= np.quantile(values, sampling.hard_quantile)]
    hard = _draw(rng, strong, int(round(n_neg * sampling.hard_fraction)))
    easy = _draw(rng, np.setdiff1d(allowed, hard, assume_unique=True), n_neg - len(hard))
    index = np.concatenate([pos, hard, easy])
    y = np.concatenate([np.ones(len(pos), np.int8), np.zeros(len(hard) + len(easy), np.int8)])
    is_hard = np.concatenate([np.zeros(len(pos), bool), np.ones(len(hard), bool), np.zeros(len(easy), bool)])
    return PixelSample(index, y, is_hard)
