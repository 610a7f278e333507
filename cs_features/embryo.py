"""Embryo geometry from the low-texture mask: the outline, the smooth interior, the cavity with its strings.

- **outline**: the convex hull of the large textured components (zona + trophectoderm + ICM); it bridges
  gaps in the ring and leaves specks in the medium out.
- **interior**: inside the outline, minus thick textured structures (a morphological opening, which a
  1-3 px string does not survive), dilated so string ends touching the ICM or TE are kept. Where
  proposals look for strings.
- **cavity**: inside the outline, the large low-texture pieces, closed across string bands: a string's
  texture cuts a band about one GLCM window wide out of the mask that splits or notches the cavity, and a
  closing with a disk wider than that band puts the band, and so the string, back. The ICM and the
  trophectoderm ring are not gaps between cavity pieces and stay out. What the autoencoder scores.
"""

from __future__ import annotations

import numpy as np

# A string's textured band in the GLCM mask is about one GLCM window (31 px) + the mask erosion wide,
# 7-8 % of a 500-px frame; a closing disk of 10 % of the side bridges it, while the ICM and the ring,
# which are not gaps between cavity pieces, stay out.
BRIDGE_FRACTION = 0.10
MIN_PIECE_FRACTION = 0.01  # low-texture pieces smaller than this share of the embryo are specks, not cavity


def embryo_outline(low_texture_mask: np.ndarray) -> np.ndarray | None:
    """``(H, W)`` bool convex hull of the large textured components (zona + trophectoderm + ICM).

    The hull bridges gaps in the ring; small specks in the medium are left out. None when the
    ``(H, W)`` bool low-texture mask has no textured pixels, or only textured ones.
    """
    import cv2

    if low_texture_mask.all() or not low_texture_mask.any():
        return None
    textured = (~low_texture_mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(textured, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = 1 + np.flatnonzero(areas >= max(0.005 * labels.size, 0.2 * areas.max()))
    points = cv2.findNonZero(np.isin(labels, big).astype(np.uint8))
    hull = np.zeros(low_texture_mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull > 0


def embryo_interior(low_texture_mask: np.ndarray | None, shape: tuple[int, int], reach: int = 7) -> np.ndarray:
    """The embryo's smooth interior (blastocoel), where strings live.

    The embryo outline is :func:`embryo_outline`. Inside it, thick textured structures (found by a
    morphological opening, which a 1-3 px string does not survive) are excluded; the rest is dilated by
    ``reach`` px so string ends that touch the ICM or TE are kept. Falls back to the whole frame when no
    embryo is found.
    """
    import cv2

    everything = np.ones(shape, bool)
    hull = None if low_texture_mask is None else embryo_outline(np.asarray(low_texture_mask, bool))
    if hull is None:
        return everything
    textured = (~low_texture_mask).astype(np.uint8)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (37, 37))
    thick = cv2.morphologyEx(textured, cv2.MORPH_OPEN, disk)
    interior = hull & (thick == 0)
    if interior.sum() < 0.02 * interior.size:
        return everything
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(interior.astype(np.uint8), kernel).astype(bool) & hull


def cavity(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool blastocoel with its strings, from an ``(H, W)`` bool low-texture mask (module docstring)."""
    import cv2


    mask = np.asarray(mask, dtype=bool)
    outline = embryo_outline(mask)
    if outline is None:
        return mask
    inside = (mask & outline).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=4)
    large = 1 + np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_PIECE_FRACTION * outline.sum())
    pieces = np.isin(labels, large).astype(np.uint8)
    side = max(3, int(round(BRIDGE_FRACTION * max(mask.shape))) | 1)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return (cv2.morphologyEx(pieces, cv2.MORPH_CLOSE, disk) > 0) & outline
