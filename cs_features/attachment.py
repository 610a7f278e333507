"""Where a box's line lies against the blastocoel's edge: the attachment prior of region ranking.

A cytoplasmic string crosses the blastocoel between the inner cell mass and the trophectoderm, so at
least one of its ends touches the cavity's edge (a partly visible string keeps the end on the ICM or TE
and fades towards the other); annotators box the string with that end. Lines that look the same but
are something else do not: a fibre of the medium seen through the cavity floats free of its edge, a
membrane ridge runs along the edge over its whole length. Region heads see only what lies inside a box
and cannot tell them apart, so the rank score of a box (:func:`cs_features.heads.region_score`) is
multiplied by a factor in (1 - weight, 1] read from the frame's geometry:

- the box's line pixels (its own strongest 3 % of :func:`cs_features.ridges.line_strength`, so a faint
  string in a faint box counts as much as a bright one) and the distance of each to the outside of the
  :func:`cs_features.embryo.cavity`;
- ``exp(-max(d_min - reach, 0) / decay)``: 1 when the line touches the edge, falling as its nearest
  point moves into the cavity's middle;
- times ``hug_factor`` when even the line's far pixels (90th percentile of the distances) stay within
  ``hug`` of the edge: a ridge along the edge;
- the box's factor is ``1 - weight * (1 - that rule's factor)``: with the default ``weight`` 0.5 the prior
  can at most halve a box's score. The rule misreads many strings' own boxes (a string whose visible part
  fades out before either edge; a string ending on the inner cell mass where the cavity found takes the mass
  in), and on the transfer protocol's ``hard`` worlds a quarter of the ground-truth boxes got a factor under
  0.1 from the rule alone.

Lengths are fractions of the embryo's diameter (the outline's equal-area circle), so the rule does not
depend on the frame's pixel scale. A frame without an embryo outline or cavity in its mask gives every
box the factor 1: the prior has no evidence either way.

The rule was chosen on the transfer protocol's seed-2 test worlds and then measured unchanged on fresh
seed-3 ones with the same trained models (``benchmarks/bench_transfer.py --rescore --test-seed 3``;
figures in the README): box AP25 rises on every pair there. The weight 0.5 came later, read against the
ranking of 2026-12-05 on seed families 10-14 and checked on a fresh seed family 15 (README, "Ranking boxes:
the attachment prior").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cs_features.config import check_fields
from cs_features.ridges import LinePixels, line_pixels, line_strength, linear_quantile

__all__ = ["AttachmentPrior", "attachment_factors"]


@dataclass(frozen=True)
class AttachmentPrior:
    """Settings of the attachment prior (module docstring); ``enabled=False`` gives every box 1.

    Attributes:
        enabled: apply the prior when ranking boxes.
        line_quantile: a box's line pixels are those at or above this quantile of its line strength.
        reach: distance (fraction of the embryo diameter) within which a line touches the edge.
        decay: how fast the factor falls beyond ``reach`` (fraction of the embryo diameter).
        hug: a line whose 90th-percentile distance is under this (fraction of the diameter) hugs the edge.
        hug_factor: the factor of a line that hugs the edge.
        weight: how far the rule may lower a box: its factor is ``1 - weight * (1 - the rule's factor)``
            (1: the rule alone, as before 2026-12-05; 0.5: at most halved).
    """

    enabled: bool = True
    line_quantile: float = 0.97
    reach: float = 0.0075
    decay: float = 0.02
    hug: float = 0.02
    hug_factor: float = 0.3
    weight: float = 0.5

    def __post_init__(self) -> None:
        check_fields(self, [
            ("line_quantile", 0.0 < self.line_quantile < 1.0, "a number in (0, 1)"),
            ("reach", self.reach >= 0.0, "a number >= 0"),
            ("decay", self.decay > 0.0, "a number > 0"),
            ("hug", self.hug >= 0.0, "a number >= 0"),
            ("hug_factor", 0.0 < self.hug_factor <= 1.0, "a number in (0, 1]"),
            ("weight", 0.0 <= self.weight <= 1.0, "a number in [0, 1]"),
        ])


def attachment_factors(image: np.ndarray, low_texture_mask: np.ndarray | None, boxes: np.ndarray,
                       prior: AttachmentPrior | None = None, strength: np.ndarray | None = None,
                       lines: LinePixels | None = None) -> np.ndarray:
    """The attachment factor of each box in one frame.

    Args:
        image: ``(H, W)`` preprocessed frame (float32 in [0, 1] or uint8).
        low_texture_mask: ``(H, W)`` bool GLCM low-texture mask of the same frame, or None.
        boxes: ``(N, 4)`` int boxes in the image's pixels (``x1, y1, x2, y2``, exclusive end).
        prior: the settings; None uses the defaults.
        strength: the image's :func:`cs_features.ridges.line_strength` when already computed.
        lines: the boxes' :func:`cs_features.ridges.line_pixels` at ``prior.line_quantile`` when already
            computed (from ``strength``).

    Returns:
        ``(N,)`` float32 in ``(1 - weight, 1]`` (the rule's factor is never 0); all 1 when the prior is disabled or
        the frame shows no embryo cavity.
    """
    import cv2

    from cs_features.embryo import cavity, embryo_outline

    prior = prior or AttachmentPrior()
    boxes = np.asarray(boxes).reshape(-1, 4)
    ones = np.ones(len(boxes), np.float32)
    if not prior.enabled or prior.weight == 0.0 or not len(boxes) or low_texture_mask is None:
        return ones
    mask = np.asarray(low_texture_mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"low-texture mask {mask.shape} and image {image.shape[:2]} differ in shape")
    outline = embryo_outline(mask)
    if outline is None:
        return ones
    hole = cavity(mask, outline=outline)
    if not hole.any():
        return ones
    diameter = 2.0 * math.sqrt(float(outline.sum()) / math.pi)
    distance = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    if lines is None:
        strength = line_strength(image) if strength is None else strength
        if strength.shape != image.shape[:2]:
            raise ValueError(f"line strength {strength.shape} and image {image.shape[:2]} differ in shape")
        lines = line_pixels(strength, boxes, prior.line_quantile)
    elif len(lines.pixels) != len(boxes):
        raise ValueError(f"{len(lines.pixels)} boxes' line pixels for {len(boxes)} boxes")
    d_min, d_far = _box_distances(lines, distance)
    reach, decay, hug = prior.reach * diameter, prior.decay * diameter, prior.hug * diameter
    factor = np.exp(-np.maximum(d_min - reach, 0.0) / decay)
    factor = np.where(d_far < hug, factor * prior.hug_factor, factor)
    factor = 1.0 - prior.weight * (1.0 - factor)
    return np.where(np.isfinite(d_min), factor, 1.0).astype(np.float32)


def _box_distances(lines: LinePixels, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box, the nearest and the 90th-percentile distance of its line pixels to the cavity's outside
    (``inf`` for a box with no pixel inside the frame)."""
    flat = distance.reshape(-1)
    near = np.full(len(lines.pixels), np.inf)
    far = np.full(len(lines.pixels), np.inf)
    for k, pixels in enumerate(lines.pixels):
        if len(pixels):
            values = flat[pixels]
            near[k], far[k] = values.min(), linear_quantile(values, 0.9)
    return near, far
