"""Embryo geometry from the low-texture mask: the outline, the smooth interior, the cavity with its strings.

- **outline**: the convex hull of the large textured components (zona + trophectoderm + ICM); it bridges
  gaps in the ring and leaves specks in the medium out. Where the GLCM threshold called most of the
  embryo low-texture, the frame pipeline first marks the embryo circle's ring into the mask
  (:func:`mark_outline`), so the hull covers the embryo.
- **interior**: inside the outline, minus thick textured structures (a morphological opening, which a
  1-3 px string does not survive), plus the cavity (a wide or strongly textured string's band can
  survive the opening; the cavity closes across it), dilated so string ends touching the ICM or TE
  are kept. Where proposals look for strings.
- **cavity**: inside the outline, the large low-texture pieces, closed across string bands: a string's
  texture cuts a band about one GLCM window wide out of the mask that splits or notches the cavity, and a
  closing with a disk wider than that band puts the band, and so the string, back. The ICM and the
  trophectoderm ring are not gaps between cavity pieces and stay out. What the autoencoder scores.
- **circle** (:func:`find_embryo`): the outer outline as a circle, from the raw frame at any pixel scale,
  whole well or crop; what scale normalisation resamples by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.texture import TextureConfig

# A string's textured band in the GLCM mask is about one GLCM window (31 px) + the mask erosion wide,
# 7-8 % of a 500-px frame; a closing disk of 10 % of the side bridges it, while the ICM and the ring,
# which are not gaps between cavity pieces, stay out.
BRIDGE_FRACTION = 0.10
MIN_PIECE_FRACTION = 0.01  # low-texture pieces smaller than this share of the embryo are specks, not cavity
# The band's width is fixed in pixels (the default texture settings'), the frame's side is not: on a crop of
# 250-430 px, 10 % of the side (25-43 px) is narrower than the band (36 px), and a string whose band notched
# the cavity from the trophectoderm was cut out of the interior. The interior's closing is at least twice
# the band wide (73 px, where a 500-px frame's was 51).
STRING_BAND = TextureConfig.window + TextureConfig.erosion
INTERIOR_BRIDGE = 2 * STRING_BAND + 1


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


# The zona's ring marked into a mask where the circle runs this share of its radius (at least 2 px) outside
# the mask's own outline, and the ring's width in pixels (:func:`mark_outline`).
OUTLINE_TOLERANCE = 0.1
RING_WIDTH = 5


def mark_outline(low_texture_mask: np.ndarray, circle: tuple[float, float, float] | None) -> np.ndarray:
    """The ``(H, W)`` bool low-texture mask with the embryo circle's ring marked textured, where the circle
    runs outside the mask's :func:`embryo_outline`.

    The outline is the hull of the mask's textured parts. On a faint, noisy frame the GLCM threshold can
    leave only the brightest stretch of trophectoderm textured and call the zona, the inner cell mass and
    the rest of the trophectoderm low-texture, and the outline, and with it every stage that reads the
    interior or the cavity, then covers a sliver of the embryo (on the transfer protocol's ``hard`` test
    world of seed 5, 25 of 144 frames' outlines covered less than 60 % of their embryo circle).
    ``circle`` ``(cx, cy, radius)`` in the mask's pixels is the embryo found on the frame itself
    (:func:`find_embryo`), which reads the frame's gradient, not the GLCM. Where some of the circle lies
    more than :data:`OUTLINE_TOLERANCE` of its radius outside the outline, the whole ring
    (:data:`RING_WIDTH` px wide, just inside the circle) is marked textured, so the outline covers the
    circle; the ring crosses the zona, whose textured pieces it joins. Otherwise, or without a circle,
    the mask is returned as it is (the same array).
    """
    import cv2

    if circle is None:
        return low_texture_mask
    mask = np.asarray(low_texture_mask, bool)
    cx, cy, radius = (float(v) for v in circle)
    if not (np.isfinite([cx, cy, radius]).all() and radius > RING_WIDTH):
        return low_texture_mask
    ring = np.zeros(mask.shape, np.uint8)
    centre = (int(round(cx)), int(round(cy)))
    cv2.circle(ring, centre, int(round(radius - (RING_WIDTH + 1) / 2)), 1, RING_WIDTH)
    if not ring.any():
        return low_texture_mask
    hull = embryo_outline(mask)
    if hull is not None:
        reach = max(2, int(round(OUTLINE_TOLERANCE * radius)))
        near = cv2.dilate(hull.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
        if not (ring.astype(bool) & (near == 0)).any():
            return low_texture_mask
    return mask & (ring == 0)


def embryo_interior(low_texture_mask: np.ndarray | None, shape: tuple[int, int], reach: int = 7) -> np.ndarray:
    """The embryo's smooth interior (blastocoel), where strings live.

    The embryo outline is :func:`embryo_outline`. Inside it, thick textured structures (found by a
    morphological opening, which a 1-3 px string does not survive) are excluded, and the :func:`cavity`
    is added back: a string 3-6 px wide, or one whose texture is strong, leaves a band in the mask that
    survives the opening, and without the cavity the string itself was cut out (on the transfer
    protocol's ``hard`` test frames the filament source found 13 % of the strings at IoU 0.5 that way,
    58 % with the cavity). That cavity is closed by a disk of at least :data:`INTERIOR_BRIDGE` px, so a
    band that notches it from the trophectoderm on a small crop is put back too. The rest is dilated by
    ``reach`` px so string ends that touch the ICM or TE are kept. Falls back to the whole frame when no
    embryo is found.
    """
    import cv2

    everything = np.ones(shape, bool)
    hull = None if low_texture_mask is None else embryo_outline(np.asarray(low_texture_mask, bool))
    if hull is None:
        return everything
    textured = (~low_texture_mask).astype(np.uint8)
    side = STRING_BAND + 1  # one pixel wider than a string's textured band, which the opening removes
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    thick = cv2.morphologyEx(textured, cv2.MORPH_OPEN, disk)
    interior = hull & ((thick == 0) | cavity(low_texture_mask, outline=hull, min_bridge=INTERIOR_BRIDGE))
    if interior.sum() < 0.02 * interior.size:
        return everything
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(interior.astype(np.uint8), kernel).astype(bool) & hull


def cavity(mask: np.ndarray, outline: np.ndarray | None = None, min_bridge: int = 3) -> np.ndarray:
    """``(H, W)`` bool blastocoel with its strings, from an ``(H, W)`` bool low-texture mask (module docstring).

    ``outline``: the mask's :func:`embryo_outline` where the caller already has it. ``min_bridge``: the
    closing disk's least side in pixels (it is otherwise :data:`BRIDGE_FRACTION` of the frame's side).
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    outline = embryo_outline(mask) if outline is None else outline
    if outline is None:
        return mask
    inside = (mask & outline).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=4)
    large = 1 + np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_PIECE_FRACTION * outline.sum())
    pieces = np.isin(labels, large).astype(np.uint8)
    side = max(3, min_bridge, int(round(BRIDGE_FRACTION * max(mask.shape)))) | 1
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return (cv2.morphologyEx(pieces, cv2.MORPH_CLOSE, disk) > 0) & outline


@dataclass(frozen=True)
class EmbryoCircle:
    """Where the embryo is in a frame: centre ``(cx, cy)`` and outer radius in frame pixels.

    ``found`` is False when no embryo-like outline was seen; the circle then is the frame's inscribed
    circle, so a caller still gets a usable scale.
    """

    cx: float
    cy: float
    radius: float
    found: bool

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius


FIND_SIDE = 256  # frames are searched for the embryo at this long side, whatever their size
MIN_CIRCULARITY = 0.7  # 4 pi area / perimeter^2 of the outline's hull: a disk is 1, a streak near 0
MIN_CONTRAST = 2.0  # the textured part's mean local gradient over the rest's; noise alone gives ~1.3
# The local gradient is capped at this quantile before the Otsu threshold: a few strong specks or a string's
# bright/dark doublet would otherwise set the scale and leave the embryo's own texture below the threshold.
TEXTURE_CAP_QUANTILE = 0.99


def find_embryo(image: np.ndarray, cap_quantile: float = TEXTURE_CAP_QUANTILE) -> EmbryoCircle:
    """The embryo's outer outline (zona pellucida) in a ``(H, W)`` uint8 frame of any size, as a circle.

    Works on whole wells and on crops where the embryo fills the frame or is cut by its edges, and at
    any pixel scale: the frame is searched at :data:`FIND_SIDE` px, where the embryo is the textured
    (high local gradient, capped at its ``cap_quantile`` quantile, Otsu threshold) region whose convex
    hull is the largest near-circular one; the circle is a least-squares fit to the hull's outline away
    from the frame's border, so a truncated embryo still gets its full radius. ``cap_quantile`` 1.0 scales
    the gradient by its maximum instead (the reference ``benchmarks/bench_embryo_finding.py`` measures
    beside the default).
    """
    import cv2

    if not 0.5 <= cap_quantile <= 1.0:
        raise ValueError(f"cap_quantile must lie in [0.5, 1], not {cap_quantile}")
    height, width = image.shape
    factor = FIND_SIDE / max(height, width)
    small = cv2.resize(image, (max(8, round(width * factor)), max(8, round(height * factor))),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    outline = _textured_outline(small, cap_quantile)
    if outline is None:
        return EmbryoCircle(width / 2.0, height / 2.0, min(width, height) / 2.0, found=False)
    cx, cy, radius = _fit_circle(outline, small.shape)
    return EmbryoCircle(cx / factor, cy / factor, radius / factor, found=True)


def _textured_outline(small: np.ndarray, cap_quantile: float) -> np.ndarray | None:
    """``(N, 2)`` x, y points of the embryo hull's outline in the small frame; None when there is none."""
    import cv2

    blur = cv2.GaussianBlur(small, (0, 0), 1.0)
    gradient = np.hypot(cv2.Sobel(blur, cv2.CV_32F, 1, 0), cv2.Sobel(blur, cv2.CV_32F, 0, 1))
    texture = cv2.blur(gradient, (7, 7))
    cap = float(np.quantile(texture, cap_quantile))
    if cap <= 0:
        return None
    texture = np.minimum(texture, cap)
    scaled = np.clip(texture / cap * 255, 0, 255).astype(np.uint8)
    _, binary = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    textured = binary.astype(bool)
    if textured.all() or not textured.any() or texture[textured].mean() < MIN_CONTRAST * texture[~textured].mean():
        return None  # no structure stands out from the rest: noise or an empty field
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if count <= 1 or areas.max() < 0.01 * labels.size:
        return None
    big = 1 + np.flatnonzero(areas >= max(0.01 * labels.size, 0.15 * areas.max()))
    hull = cv2.convexHull(cv2.findNonZero(np.isin(labels, big).astype(np.uint8)))
    area, perimeter = cv2.contourArea(hull), cv2.arcLength(hull, True)
    if perimeter <= 0 or 4 * np.pi * area / perimeter**2 < MIN_CIRCULARITY:
        return None
    filled = np.zeros(small.shape, np.uint8)
    cv2.fillConvexPoly(filled, hull, 1)
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=len).reshape(-1, 2).astype(np.float64)


def _fit_circle(points: np.ndarray, shape: tuple[int, int], margin: int = 3) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through ``(N, 2)`` x, y points, leaving out those on the frame border."""
    height, width = shape
    x, y = points[:, 0], points[:, 1]
    inner = (x > margin) & (x < width - 1 - margin) & (y > margin) & (y < height - 1 - margin)
    if inner.sum() >= max(20, 0.25 * len(points)):
        x, y = x[inner], y[inner]
    design = np.stack([x, y, np.ones_like(x)], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, x**2 + y**2, rcond=None)
    cx, cy = a / 2, b / 2
    return float(cx), float(cy), float(np.sqrt(max(c + cx**2 + cy**2, 1.0)))
