"""Whether a box's line was there in the embryo's other frames: the transience prior of region ranking.

A cytoplasmic string appears, persists for a while and snaps; the structures that look like one stay:
a fibre of the medium seen through the cavity, a membrane ridge along the trophectoderm, a cell
boundary on the embryo's surface move with the embryo and are there in every frame of its time-lapse.
So the rank score of a box (:func:`cs_features.heads.region_score`, already times the attachment prior
of :mod:`cs_features.attachment`) is multiplied by a factor in ``[floor, 1]`` read from the embryo's
other frames:

- every frame's line strength (:func:`cs_features.ridges.line_strength`) is dilated by ``tolerance``
  (a fraction of the embryo's diameter, for the embryo's drift, turn and change of shape between frames)
  and aligned on the embryo's circle (found at ingest, :mod:`cs_features.scale`);
- a frame's *background* is, per pixel, the lowest of its embryo's other frames there: high only where
  something line-like sits in every other frame;
- a box's line pixels are its own strongest ``1 - line_quantile`` of line strength; the factor is
  ``1 - median(background) / median(own strength)`` over them, clipped to ``[floor, 1]``: 1 for a line
  that no other frame shows at that place, ``floor`` for one that every other frame shows as strongly.

A frame alone in its embryo (no embryo id, or one frame), or whose embryo was not found, gets 1 for
every box: the prior has no evidence either way. Frames whose embryo was not found do not count in
their embryo's background.

The rule was chosen on the transfer protocol's seed-2 test worlds and measured unchanged on fresh
seed-3 ones with the same trained models (``benchmarks/bench_transfer.py --rescore --test-seed 3``;
figures in the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.config import check_fields
from cs_features.ridges import LinePixels, median

__all__ = ["EmbryoLines", "TransiencePrior", "transient_part", "transience_factors"]


@dataclass(frozen=True)
class TransiencePrior:
    """Settings of the transience prior (module docstring); ``enabled=False`` gives every box 1.

    Attributes:
        enabled: apply the prior when ranking boxes.
        line_quantile: a box's line pixels are those at or above this quantile of its line strength.
        tolerance: dilation radius of the other frames' line strength, fraction of the embryo diameter.
        floor: the smallest factor (a line every other frame shows as strongly).
    """

    enabled: bool = True
    line_quantile: float = 0.97
    tolerance: float = 0.02
    floor: float = 0.05

    def __post_init__(self) -> None:
        check_fields(self, [
            ("line_quantile", 0.0 < self.line_quantile < 1.0, "a number in (0, 1)"),
            ("tolerance", self.tolerance >= 0.0, "a number >= 0"),
            ("floor", 0.0 < self.floor <= 1.0, "a number in (0, 1]"),
        ])


def transience_factors(background: np.ndarray | None, lines: LinePixels, prior: TransiencePrior) -> np.ndarray:
    """``(N,)`` float32 factors in ``[floor, 1]`` of a frame's boxes from its ``background`` (``(H, W)``,
    :meth:`EmbryoLines.background`; None: all 1) and the boxes' :func:`cs_features.ridges.line_pixels`."""
    out = np.ones(len(lines.own), np.float32)
    if background is None or not prior.enabled:
        return out
    flat = background.reshape(-1)
    for k, (own, pixels) in enumerate(zip(lines.own, lines.pixels)):
        if own > 0 and len(pixels):
            out[k] = np.clip(1.0 - float(median(flat[pixels])) / own, prior.floor, 1.0)
    return out


def transient_part(values: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """``(H, W)`` float32 what a frame's map shows above its ``background`` (:meth:`EmbryoLines.background`
    of the same kind of map): ``max(values - background, 0)``; ``values`` itself where there is no background
    (a frame alone in its embryo, or whose embryo was not found)."""
    values = np.asarray(values, np.float32)
    if background is None:
        return values
    return np.maximum(values - np.asarray(background, np.float32), np.float32(0.0))


class EmbryoLines:
    """One embryo's frames' dilated line strength, aligned on the embryo's circle in the coordinates of the
    first frame added, kept as the lowest and second-lowest value per pixel (memory of three maps,
    whatever the number of frames)."""

    def __init__(self, prior: TransiencePrior | None = None) -> None:
        self.prior = prior or TransiencePrior()
        self._index: dict[str, tuple[int, tuple[float, float, float], tuple[int, int]]] = {}
        self._reference: tuple[tuple[float, float, float], tuple[int, int]] | None = None
        self._lowest = self._second = self._argmin = None

    def __len__(self) -> int:
        return len(self._index)

    def add(self, key: str, strength: np.ndarray, circle: tuple[float, float, float] | None) -> None:
        """Add a frame's ``(H, W)`` line strength with its embryo circle ``(cx, cy, radius)`` in the same
        pixels (None or a radius <= 0: not aligned, not added).

        Raises:
            ValueError: ``key`` was added before.
        """
        import cv2

        if key in self._index:
            raise ValueError(f"frame {key!r} was added to its embryo's lines twice")
        if circle is None or not circle[2] > 0:
            return
        shape = strength.shape[:2]
        if self._reference is None:
            self._reference = (tuple(map(float, circle)), shape)
            self._lowest = np.full(shape, np.inf, np.float32)
            self._second = np.full(shape, np.inf, np.float32)
            self._argmin = np.full(shape, -1, np.int32)
        radius = int(round(self.prior.tolerance * 2.0 * circle[2]))
        dilated = np.asarray(strength, np.float32)
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            dilated = cv2.dilate(dilated, kernel)
        (ref_circle, ref_shape) = self._reference
        aligned = cv2.warpAffine(dilated, _similarity(circle, ref_circle), (ref_shape[1], ref_shape[0]),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        index = len(self._index)
        self._index[key] = (index, tuple(map(float, circle)), shape)
        lower = aligned < self._lowest
        self._second = np.where(lower, self._lowest, np.minimum(self._second, aligned))
        self._lowest = np.where(lower, aligned, self._lowest)
        self._argmin = np.where(lower, index, self._argmin)

    def background(self, key: str) -> np.ndarray | None:
        """``(H, W)`` float32 background of frame ``key`` in its own pixels: per pixel the lowest of the other
        frames' aligned, dilated line strength; None when ``key`` was not added or is alone."""
        import cv2

        if key not in self._index or len(self._index) < 2:
            return None
        index, circle, shape = self._index[key]
        others = np.where(self._argmin == index, self._second, self._lowest)
        ref_circle, _ = self._reference
        return cv2.warpAffine(others, _similarity(ref_circle, circle), (shape[1], shape[0]),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _similarity(source: tuple[float, float, float], target: tuple[float, float, float]) -> np.ndarray:
    """The 2 x 3 map taking circle ``source`` onto circle ``target`` (shift and scale, no turn)."""
    s = target[2] / source[2]
    return np.float32([[s, 0.0, target[0] - s * source[0]], [0.0, s, target[1] - s * source[1]]])
