"""``classic``: a weights-free, deterministic region descriptor (D = 104) from the field's own tools.

Frame-wide responses are computed once per frame (ridge filters, structure tensor, LBP codes) and
pooled per box with integral images; only percentiles, GLCM and HOG use the box crop, resized to
64 x 64 with ``cv2.INTER_AREA``. The context ring of a box is the box grown by
``max(4, (w + h) // 4)`` px on each side (clipped to the frame), minus the box; a box that fills
the frame uses itself as its ring. Blocks, in vector order:

==========  ====  ===========================================================================
block       size  features
==========  ====  ===========================================================================
geometry       4  log width, log height, log(width / height), sqrt(box area / frame area)
intensity      9  mean, std, skewness, excess kurtosis (exact, from integral images);
                  5th, 25th, 50th, 75th, 95th percentiles (of the 64 x 64 crop)
context        7  ring mean, std, skewness, excess kurtosis; box mean - ring mean; that
                  difference / ring std; box std / ring std
glcm          15  contrast, dissimilarity, homogeneity, energy, correlation at distances 1, 2
                  and 4 px, of the symmetric GLCM summed over 0/45/90/135 degrees (rotation
                  invariant), crop quantised to 16 levels between its 1st and 99th percentile
lbp           20  uniform LBP (P = 8, R = 1) histogram, 10 bins, normalised: box, then ring
ridge         12  for bright, then dark ridges (Sato tubeness, sigmas 1 and 2 px, from zero-sum
                  Gaussian second derivatives; strings may be either): box mean, 95th
                  percentile (crop), max, box mean / frame mean, fraction of pixels above the
                  frame's 95th percentile, ring mean
orientation    5  coherence of the box-summed structure tensor, coherence * cos 2theta,
                  coherence * sin 2theta, log mean squared gradient, ring coherence
hog           32  HOG of the crop: 8 unsigned orientations (bin floor(8 theta / pi) mod 8),
                  2 x 2 cells of 32 px, one L2-Hys block (the layout of ``skimage.feature.hog``)
==========  ====  ===========================================================================

All boxes of a frame are described together: summed-area tables give every box and ring sum in
O(1), one ``cv2.resize`` per box makes its three crops, and the crop blocks run over the stack of
crops, 48 boxes at a time (one sort, one OpenCV histogram of 16-bit (crop index, pair) codes per
GLCM distance, one ``bincount`` for HOG). LBP codes equal scikit-image's exactly and the orientation block's
Gaussian derivatives scipy's float64 ones within 1e-15; the ridge maps are float32 OpenCV filters
(within 2e-6 of the same filters in float64).
:mod:`cs_features.encoders.classic_reference` computes the same descriptor one box at a time from the
definitions above; the tests hold the two within 1e-5.

Version 2 (``settings()["version"]``) changed the method where it bought speed: the Sato Hessian
from zero-sum Gaussian second derivatives at each sigma (version 1 chained first derivatives at
sigma / sqrt(2) in float64) and the HOG bin as ``floor(8 theta / pi) mod 8`` in float32 (version 1:
``rad2deg(theta) % 180`` divided by 22.5). Stores and heads of version 1 vectors are refused.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from cs_features.encoders.base import ENCODERS, Encoder
from cs_features.encoders.lbp import uniform_lbp
from cs_features.errors import ConfigError, WeightsError
from cs_features.ridges import gaussian_derivative_float64, sato_ridges_float32

logger = logging.getLogger(__name__)

__all__ = ["ClassicEncoder", "BLOCKS", "BLOCK_SLICES", "DIM", "describe_boxes", "frame_percentile",
           "glcm_features", "hog_features"]

BLOCKS: tuple[tuple[str, int], ...] = (
    ("geometry", 4), ("intensity", 9), ("context", 7), ("glcm", 15),
    ("lbp", 20), ("ridge", 12), ("orientation", 5), ("hog", 32),
)
DIM = sum(size for _, size in BLOCKS)
BLOCK_SLICES: dict[str, slice] = {
    name: slice(start, start + size)
    for (name, size), start in zip(BLOCKS, np.cumsum([0] + [size for _, size in BLOCKS[:-1]]).tolist())
}
VERSION = 2  # of the method: recorded in the encoder's settings, so vectors of two versions never mix
CROP = 64
CROP_CHUNK = 48  # boxes whose crops are processed together (measured: 32-64 alike, 25 % faster than all at once)
RIDGE_SIGMAS = (1.0, 2.0)
GLCM_LEVELS = 16
GLCM_DISTANCES = (1, 2, 4)
LBP_BINS = 10  # uniform LBP with P = 8 has P + 2 codes
HOG_ORIENTATIONS = 8
HOG_CELL = 32
_EPS = 1e-12
_PERCENTILES = (5, 25, 50, 75, 95)


def _box_sums(table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Sums of every plane inside every box: (C, H + 1, W + 1), (N, 4) -> (C, N) of the table's dtype."""
    x1, y1, x2, y2 = boxes.T
    return table[:, y2, x2] - table[:, y1, x2] - table[:, y2, x1] + table[:, y1, x1]


def _ring_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes grown by max(4, (w + h) // 4) px per side, clipped: (N, 4) -> (N, 4) int64."""
    boxes = boxes.astype(np.int64)
    margin = np.maximum(4, ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) // 4)
    grown = boxes + np.stack([-margin, -margin, margin, margin], axis=1)
    return np.clip(grown, 0, [width, height, width, height])


def _moments(count: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Mean, std, skewness, excess kurtosis from raw power sums: (N,), (4, N) -> (4, N) float64."""
    count = np.maximum(count, 1)
    m1, m2, m3, m4 = (sums[k] / count for k in range(4))
    var = np.maximum(m2 - m1 ** 2, 0.0)
    mu3 = m3 - 3 * m1 * m2 + 2 * m1 ** 3
    mu4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
    flat = var < 1e-10  # a constant region has no shape; report 0 rather than noise / 0
    safe = np.where(flat, 1.0, var)
    skew = np.where(flat, 0.0, mu3 / safe ** 1.5)
    kurt = np.where(flat, 0.0, mu4 / safe ** 2 - 3.0)
    return np.stack([m1, np.sqrt(var), skew, kurt])


def _offsets(distance: int) -> list[tuple[int, int]]:
    """skimage.feature.graycomatrix's (row, col) steps at 0/45/90/135 degrees: (round(d sin a), round(d cos a)).

    A diagonal step at distance d is therefore about d px long, e.g. (3, 3) for d = 4.
    """
    return [(int(round(np.sin(a) * distance)), int(round(np.cos(a) * distance)))
            for a in (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)]


def _pair_counts(quantised: np.ndarray, distances: Sequence[int], levels: int) -> np.ndarray:
    """Co-occurrence counts of every crop at each distance, summed over the four angles (not yet symmetric).

    Each pair is one 16-bit code, ``crop index * levels ** 2 + first level * levels + second level``,
    for 256 crops at a time; the codes of the four angles go into one buffer and one OpenCV 1-D
    histogram per distance counts them all. Counts are integers, so the result is exact.

    Args:
        quantised: (N, S, S) uint8 in [0, levels) with levels ** 2 <= 256.

    Returns:
        (len(distances), N, levels * levels) float64, pair ``(i, j)`` in column ``i * levels + j``.
    """
    import cv2

    count, size = quantised.shape[0], quantised.shape[1]
    codes_per_crop = levels * levels
    counts = np.empty((len(distances), count, codes_per_crop), np.float64)
    for start in range(0, count, 256):
        part = quantised[start:start + 256]
        crops = len(part)
        second = part.astype(np.uint16)
        # The first pixel of a pair with its crop index, in the code's high digits.
        first = second * np.uint16(levels)
        first += (np.arange(crops, dtype=np.uint16) * np.uint16(codes_per_crop))[:, None, None]
        for k, distance in enumerate(distances):
            steps = _offsets(distance)
            codes = np.empty(crops * sum((size - abs(dr)) * (size - abs(dc)) for dr, dc in steps), np.uint16)
            filled = 0
            for dr, dc in steps:
                r0, r1, c0, c1 = max(0, -dr), size - max(0, dr), max(0, -dc), size - max(0, dc)
                block = codes[filled:filled + crops * (r1 - r0) * (c1 - c0)].reshape(crops, r1 - r0, c1 - c0)
                np.add(first[:, r0:r1, c0:c1], second[:, r0 + dr:r1 + dr, c0 + dc:c1 + dc], out=block)
                filled += block.size
            bins = crops * codes_per_crop
            hist = cv2.calcHist([codes.reshape(1, -1)], [0], None, [bins], [0, bins])
            counts[k, start:start + crops] = hist.reshape(crops, codes_per_crop)
    return counts


def _glcm_weights(levels: int) -> np.ndarray:
    """(levels ** 2, 6) weights turning a normalised GLCM into its sums: contrast, dissimilarity,
    homogeneity, E[i], E[i ** 2], E[i * j]."""
    i, j = (grid.ravel().astype(np.float64) for grid in np.meshgrid(np.arange(levels), np.arange(levels),
                                                                      indexing="ij"))
    return np.stack([(i - j) ** 2, np.abs(i - j), 1.0 / (1.0 + (i - j) ** 2), i, i * i, i * j], axis=1)


def glcm_features(quantised: np.ndarray, levels: int = GLCM_LEVELS,
                  distances: tuple[int, ...] = GLCM_DISTANCES) -> np.ndarray:
    """Texture of many crops at once from symmetric GLCMs summed over 0/45/90/135 degrees.

    Args:
        quantised: (N, S, S) integer crops with values in [0, levels), levels <= 16.

    Returns:
        (N, 5 * len(distances)) float64: contrast, dissimilarity, homogeneity, energy, correlation
        per distance (the ``skimage.feature.graycoprops`` definitions).
    """
    if levels * levels > 256:
        raise ValueError(f"glcm_features counts pair codes in one byte: levels must be <= 16, got {levels}")
    quantised = np.ascontiguousarray(quantised, np.uint8)
    weights = _glcm_weights(levels)
    out = []
    for counts in _pair_counts(quantised, distances, levels):
        p = counts.reshape(-1, levels, levels)
        p = (p + p.transpose(0, 2, 1)).reshape(len(p), -1)
        p /= np.maximum(p.sum(axis=1, keepdims=True), _EPS)
        contrast, dissimilarity, homogeneity, mean, square, product = (p @ weights).T
        # p is symmetric: both marginals have this mean and variance, and cov = E[ij] - mean ** 2.
        var = np.maximum(square - mean * mean, 0.0)
        cov = product - mean * mean
        correlation = np.where(var < 1e-12, 1.0, cov / np.maximum(var, 1e-12))  # skimage: std < 1e-15 -> 1
        out += [contrast, dissimilarity, homogeneity, np.sqrt((p * p).sum(axis=1)), correlation]
    return np.stack(out, axis=1)


def hog_features(crops: np.ndarray, orientations: int = HOG_ORIENTATIONS, cell: int = HOG_CELL) -> np.ndarray:
    """HOG of many square crops at once, one L2-Hys block over all cells.

    The layout of ``skimage.feature.hog(crop, orientations, (cell, cell), cells_per_block=(S // cell,) * 2,
    block_norm="L2-Hys")`` for each crop, with float32 gradients (centred differences, 0 on the
    crop's border): the magnitude is ``sqrt(g_col * g_col + g_row * g_row)`` in float32, the
    unsigned bin ``floor(orientations * theta / pi) mod orientations`` with ``theta`` numpy's float32
    ``arctan2(g_row, g_col)`` scaled by the float32 ``orientations / pi`` in one product (a gradient
    and its opposite share a bin; +-180 degrees is bin 0).

    Args:
        crops: (N, S, S) float with S divisible by ``cell``.

    Returns:
        (N, orientations * (S // cell) ** 2) float64.
    """
    crops = np.asarray(crops, np.float32)
    count, size = crops.shape[0], crops.shape[1]
    cells = size // cell
    # C order: _orientation_slots writes into g_row through its flat view
    g_row, g_col = np.empty(crops.shape, np.float32), np.empty(crops.shape, np.float32)
    g_row[:, 0], g_row[:, -1], g_col[:, :, 0], g_col[:, :, -1] = 0, 0, 0, 0
    np.subtract(crops[:, 2:, :], crops[:, :-2, :], out=g_row[:, 1:-1, :])
    np.subtract(crops[:, :, 2:], crops[:, :, :-2], out=g_col[:, :, 1:-1])
    # numpy's float32 arithmetic, not cv2.magnitude: OpenCV's vector and scalar paths round differently,
    # so its result at a pixel depends on the array's alignment. float64 weights are np.bincount's own.
    magnitude = g_col * g_col
    magnitude += g_row * g_row
    magnitude = np.sqrt(magnitude, out=magnitude).astype(np.float64)
    # floor(orientations * theta / pi) lies in [-orientations, orientations]: each (crop, cell) gets
    # 2 * orientations + 1 slots, folded onto the unsigned bins after counting (no modulo per pixel).
    angle = _orientation_slots(g_row, g_col, orientations)
    width = 2 * orientations + 1
    first_slot = orientations + width * np.arange(count * cells * cells, dtype=np.float32)  # exact below 2 ** 24
    angle.reshape(count, cells, cell, cells, cell)[...] += first_slot.reshape(count, cells, 1, cells, 1)
    hist = np.bincount(angle.astype(np.intp).ravel(), weights=magnitude.ravel(), minlength=first_slot.size * width)
    hist = hist.reshape(-1, width)
    folded = hist[:, :orientations] + hist[:, orientations:2 * orientations]
    folded[:, 0] += hist[:, 2 * orientations]
    block = folded.reshape(count, -1) / (cell * cell)
    eps = 1e-5
    block = block / np.sqrt((block ** 2).sum(axis=1, keepdims=True) + eps ** 2)
    block = np.minimum(block, 0.2)
    return block / np.sqrt((block ** 2).sum(axis=1, keepdims=True) + eps ** 2)


# How close (in bins) cv2.phase's angle may come to a bin's edge before the pixel's bin is taken from numpy's
# arctan2 instead: 0.03 bins is 0.68 degrees, over twice the 0.3 degrees OpenCV documents for phase (measured on
# 4 million gradients of 1e-4 to 1: at most 0.0004 bins).
PHASE_MARGIN = 0.03


def _orientation_slots(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """``floor(float32(orientations / pi) * arctan2(g_row, g_col))`` of float32 gradients, numpy's float32
    arctan2 exactly, as float32 (``g_row`` is overwritten with it).

    numpy's arctan2 is a third of the classic encoder's time. OpenCV's ``phase`` is 40x faster and within
    1e-4 rad of it; its bin is the exact one wherever its angle lies more than :data:`PHASE_MARGIN` of a
    bin from a bin's edge. The pixels nearer an edge (a few %, and every gradient along an axis or a
    diagonal) get numpy's arctan2.
    """
    import cv2

    scale = np.float32(orientations / np.pi)
    size = g_row.shape[-1]
    fast = cv2.phase(g_col.reshape(-1, size), g_row.reshape(-1, size)).reshape(g_row.shape)  # [0, 2 pi)
    fast *= scale  # [0, 2 orientations): past orientations, arctan2's angle is this one less 2 pi
    edge = np.flatnonzero(np.abs(fast - np.rint(fast)) < PHASE_MARGIN)
    exact = np.arctan2(g_row.ravel()[edge], g_col.ravel()[edge])
    exact *= scale
    np.floor(fast, out=g_row)
    np.subtract(g_row, np.float32(2 * orientations), out=g_row, where=g_row >= orientations)
    g_row.ravel()[edge] = np.floor(exact)
    return g_row


def frame_percentile(values: np.ndarray, q: int) -> np.floating:
    """``np.percentile(values, q)`` (linear) of a float array, the same value, from one partition.

    numpy partitions around four positions (first, last and the two neighbours of the percentile);
    one partition and the minimum above it give the same two order statistics, and they are
    interpolated with numpy's own arithmetic (float64 position, the array's dtype for the values).
    """
    flat = values.ravel()
    position = (flat.size - 1) * (q / 100)
    below = int(np.floor(position))
    if below >= flat.size - 1:
        return flat.max()
    parted = np.partition(flat, below)
    low, high = parted[below], parted[below + 1:].min()
    gamma = position - below
    step = high - low
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma


def _integral_tables(planes: Sequence[np.ndarray], depth: int) -> np.ndarray:
    """Summed-area tables of C planes, each (H, W) -> (C, H + 1, W + 1) with a zero first row and column.

    ``depth`` is ``cv2.CV_64F`` (float64 sums, float32 planes widened exactly) or ``cv2.CV_32S`` (counts).
    """
    import cv2

    height, width = planes[0].shape
    tables = np.empty((len(planes), height + 1, width + 1), np.float64 if depth == cv2.CV_64F else np.int32)
    for plane, table in zip(planes, tables):
        cv2.integral(plane, table, depth)
    return tables


def _frame_tables(image: np.ndarray) -> dict[str, Any]:
    """Per-frame responses, computed once: summed-area tables and the maps crops are cut from.

    Args:
        image: (H, W) float32 in [0, 1].

    Returns:
        dict with ``sums`` ((9, H + 1, W + 1) float64 summed-area tables of the centred intensity
        powers 1-4, bright, dark, Jxx, Jyy, Jxy), ``counts`` ((12, H + 1, W + 1) int32 tables of
        bright > p95, dark > p95 and the 10 LBP codes), ``maps`` ((H, W, 3) float32 intensity,
        bright, dark), ``centre`` (frame mean) and ``ridge_means`` ((2,) frame means).
    """
    import cv2

    centre = float(image.mean())
    # Powers of the centred frame keep the moment arithmetic far from cancellation.
    centred = (image - centre).astype(np.float64)
    bright, dark = sato_ridges_float32(image, RIDGE_SIGMAS)
    # float64 gradients: the angle of a small box's summed tensor is a ratio of small sums, which
    # float32 filter sums (a few 1e-8 off) would move by 1e-5.
    g_row, g_col = gaussian_derivative_float64(image, 1.0, (1, 0)), gaussian_derivative_float64(image, 1.0, (0, 1))
    squared = centred * centred
    planes = [centred, squared, squared * centred, squared * squared, bright, dark,
              g_col * g_col, g_row * g_row, g_col * g_row]
    codes = uniform_lbp(np.round(image * 255).astype(np.uint8))
    flags = np.empty((2 + LBP_BINS,) + image.shape, np.uint8)
    flags[0] = bright > frame_percentile(bright, 95)
    flags[1] = dark > frame_percentile(dark, 95)
    np.equal(codes[None], np.arange(LBP_BINS, dtype=np.uint8)[:, None, None], out=flags[2:].view(bool))
    return {"sums": _integral_tables(planes, cv2.CV_64F), "counts": _integral_tables(flags, cv2.CV_32S),
            "maps": np.ascontiguousarray(np.stack([image, bright, dark], axis=-1)), "centre": centre,
            "ridge_means": np.array([bright.mean(), dark.mean()], np.float64), "ridges": (bright, dark)}


def _crops(frame: dict[str, Any], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resize each box of the frame and its bright / dark ridge maps to 64 x 64 (INTER_AREA).

    One ``cv2.resize`` per box on the (H, W, 3) stack, written in place: OpenCV resizes each channel
    as it would alone.

    Returns:
        ``(crops, maxima)``: (N, 64, 64, 3) float32 (intensity, bright, dark in the last axis) and
        (2, N) float64 box maxima of bright / dark.
    """
    import cv2

    maps = frame["maps"]
    bright, dark = frame["ridges"]
    stacked = np.empty((len(boxes), CROP, CROP, 3), np.float32)
    maxima = np.empty((2, len(boxes)), np.float64)
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        cv2.resize(maps[y1:y2, x1:x2], (CROP, CROP), dst=stacked[k], interpolation=cv2.INTER_AREA)
        maxima[0, k], maxima[1, k] = cv2.minMaxLoc(bright[y1:y2, x1:x2])[1], cv2.minMaxLoc(dark[y1:y2, x1:x2])[1]
    return stacked, maxima


def _sorted_quantile(sorted_rows: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated q-th percentile of each already sorted row: (N, M) -> (N,) (as np.percentile)."""
    position = q / 100.0 * (sorted_rows.shape[1] - 1)
    lo = int(np.floor(position))
    hi = min(lo + 1, sorted_rows.shape[1] - 1)
    frac = position - lo
    return sorted_rows[:, lo] * (1 - frac) + sorted_rows[:, hi] * frac


def _row_percentile(crops: np.ndarray, q: float) -> np.ndarray:
    """One linear-interpolated percentile of each crop, (N, S, S) -> (N,), by partition instead of a sort.

    The two order statistics around the position are exact (the partition's k-th value and the
    minimum above it), so this equals :func:`_sorted_quantile` of the sorted rows. ``crops`` may be
    a strided view (one channel of the crop stack); it is copied once and partitioned in place.
    """
    rows = np.empty((len(crops), crops[0].size), crops.dtype)
    rows.reshape(crops.shape)[...] = crops
    position = q / 100.0 * (rows.shape[1] - 1)
    lo = int(np.floor(position))
    frac = position - lo
    rows.partition(lo, axis=1)
    above = rows[:, lo + 1:].min(axis=1) if lo + 1 < rows.shape[1] else rows[:, lo]
    return rows[:, lo] * (1 - frac) + above * frac


def _quantise(crops: np.ndarray, lo: np.ndarray, hi: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """(N, S, S) float -> (N, S, S) uint8 in [0, levels), each crop stretched between its lo and hi.

    ``int((crop - lo) / span * levels)`` clipped to [0, levels - 1]; clipping the float first gives
    the same integer (truncation maps [levels - 1, levels) to levels - 1 and (-1, 0) to 0).
    """
    span = np.maximum(hi - lo, 1e-6)[:, None, None]
    scaled = np.subtract(crops, lo[:, None, None], dtype=np.result_type(crops, lo))
    scaled /= span
    scaled *= levels
    np.clip(scaled, 0, levels - 1, out=scaled)
    return scaled.astype(np.uint8)


def _coherence(s_xx: np.ndarray, s_yy: np.ndarray, s_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coherence in [0, 1] and doubled angle of summed structure tensors, each (N,)."""
    coherence = np.sqrt((s_xx - s_yy) ** 2 + 4 * s_xy ** 2) / (s_xx + s_yy + _EPS)
    return coherence, np.arctan2(2 * s_xy, s_xx - s_yy)


def _region_sums(frame: dict[str, Any], boxes: np.ndarray, grown: np.ndarray) -> tuple[np.ndarray, ...]:
    """Ring and box sums of every table channel: ``(ring, inner, n_in, n_ring)``, (21, N) and (N,) float64.

    Channels: 9 float sums (powers, ridges, structure tensor) then 12 counts (ridge flags, LBP codes).
    A box that fills the frame uses itself as its ring.
    """
    inner = np.concatenate([_box_sums(frame["sums"], boxes), _box_sums(frame["counts"], boxes)])
    outer = np.concatenate([_box_sums(frame["sums"], grown), _box_sums(frame["counts"], grown)])
    n_in = _box_area(boxes)
    n_ring = _box_area(grown) - n_in
    no_ring = n_ring <= 0
    return np.where(no_ring, inner, outer - inner), inner, n_in, np.where(no_ring, n_in, n_ring)


def _pooled_blocks(frame: dict[str, Any], boxes: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The integral-image blocks: geometry, intensity moments, context, lbp, ridge sums, orientation."""
    height, width = shape
    ring, inner, n_in, n_ring = _region_sums(frame, boxes, _ring_boxes(boxes, height, width))
    w, h = (boxes[:, 2] - boxes[:, 0]).astype(np.float64), (boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    box_m, ring_m = _moments(n_in, inner[0:4]), _moments(n_ring, ring[0:4])
    box_m[0] += frame["centre"]
    ring_m[0] += frame["centre"]
    diff = box_m[0] - ring_m[0]
    coherence, angle = _coherence(inner[6], inner[7], inner[8])
    ring_coherence, _ = _coherence(ring[6], ring[7], ring[8])
    ridge_mean = inner[4:6] / n_in
    return {
        "geometry": np.stack([np.log(w), np.log(h), np.log(w / h), np.sqrt(n_in / (height * width))], 1),
        "moments": box_m.T,
        "context": np.column_stack([ring_m.T, diff, diff / (ring_m[1] + 1e-6), box_m[1] / (ring_m[1] + 1e-6)]),
        "lbp": np.concatenate([(inner[11:] / n_in).T, (ring[11:] / n_ring).T], axis=1),
        "ridge_mean": ridge_mean.T,
        "ridge_ratio": (ridge_mean / (frame["ridge_means"][:, None] + 1e-9)).T,
        "ridge_fraction": (inner[9:11] / n_in).T,
        "ridge_ring": (ring[4:6] / n_ring).T,
        "orientation": np.column_stack([coherence, coherence * np.cos(angle), coherence * np.sin(angle),
                                        np.log((inner[6] + inner[7]) / n_in + 1e-12), ring_coherence]),
    }


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).astype(np.float64)


def _crop_blocks(frame: dict[str, Any], boxes: np.ndarray) -> dict[str, np.ndarray]:
    """The blocks cut from 64 x 64 crops: intensity percentiles, ridge p95 and maxima, GLCM, HOG.

    Returns:
        dict of (N, k) float64 arrays: ``percentiles`` (k = 5), ``ridge_p95`` (2), ``ridge_max``
        (2), ``glcm`` (15), ``hog`` (32).
    """
    stack, maxima = _crops(frame, boxes)
    intensity = np.ascontiguousarray(stack[..., 0])
    # One sort per intensity crop serves its seven percentiles (faster than np.percentile's partitions).
    ordered = np.sort(intensity.reshape(len(boxes), -1), axis=1)
    lo, hi = _sorted_quantile(ordered, 1), _sorted_quantile(ordered, 99)
    return {"percentiles": np.stack([_sorted_quantile(ordered, q) for q in _PERCENTILES], 1),
            "ridge_p95": np.stack([_row_percentile(stack[..., k + 1], 95) for k in range(2)], 1),
            "ridge_max": maxima.T, "glcm": glcm_features(_quantise(intensity, lo, hi)),
            "hog": hog_features(intensity)}


def describe_boxes(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The classic descriptor of every box (blocks in :data:`BLOCKS` order).

    The crop blocks run :data:`CROP_CHUNK` boxes at a time, so their buffers (a few MB) stay in the
    CPU cache and are reused instead of mapped afresh; each box's values do not depend on the chunk.

    Args:
        image: validated (H, W) float32 in [0, 1].
        boxes: validated, non-empty (N, 4) int32.

    Returns:
        (N, DIM) float32, finite.
    """
    frame = _frame_tables(image)
    pooled = _pooled_blocks(frame, boxes, image.shape)
    chunks = [_crop_blocks(frame, boxes[start:start + CROP_CHUNK]) for start in range(0, len(boxes), CROP_CHUNK)]
    cropped = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}
    ridge = np.concatenate([np.stack([pooled["ridge_mean"][:, k], cropped["ridge_p95"][:, k],
                                      cropped["ridge_max"][:, k], pooled["ridge_ratio"][:, k],
                                      pooled["ridge_fraction"][:, k], pooled["ridge_ring"][:, k]], 1)
                            for k in range(2)], axis=1)
    blocks = [pooled["geometry"], np.concatenate([pooled["moments"], cropped["percentiles"]], 1), pooled["context"],
              cropped["glcm"], pooled["lbp"], ridge, pooled["orientation"], cropped["hog"]]
    vectors = np.concatenate(blocks, axis=1)
    return np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


@ENCODERS.register("classic")
class ClassicEncoder(Encoder):
    """Weights-free handcrafted region descriptor, D = 104 (blocks in the module docstring).

    Args:
        weights: must be None (or ``""`` / ``"none"``): the descriptor has no weights.
        pooling: ``"roi"`` only (frame-wide responses pooled per box).
        device: ignored beyond a log line; the descriptor runs in numpy on the CPU.
        batch_size: unused; accepted so every encoder takes the same arguments.

    Raises:
        ConfigError: another pooling. WeightsError: a weights file was given.
    """

    name = "classic"
    dim = DIM
    weights_hash = "none"

    def __init__(self, weights: Any = None, pooling: str = "roi", device: str = "cpu", batch_size: int = 32) -> None:
        if weights is not None and str(weights) not in ("", "none"):
            raise WeightsError(f"encoder 'classic' takes no weights, got weights={str(weights)!r}; "
                               "leave --weights unset")
        if pooling != "roi":
            raise ConfigError(f"encoder 'classic' supports pooling 'roi' only, got {pooling!r}")
        if str(device) not in ("cpu", "auto"):
            logger.info("encoder 'classic' runs on the CPU; device %r is ignored", device)
        self.pooling = pooling

    def settings(self) -> dict[str, Any]:
        # Version 2: Sato from Gaussian second derivatives in float32, HOG bins floor(8 theta / pi) mod 8.
        # Stores and heads holding version 1 vectors (no "version" key) are refused by the encoder check.
        return {"version": VERSION, "blocks": dict(BLOCKS), "crop": CROP, "ridge_sigmas": list(RIDGE_SIGMAS),
                "glcm_levels": GLCM_LEVELS, "glcm_distances": list(GLCM_DISTANCES), "l2_normalised": False}

    def _encode(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return describe_boxes(image, boxes)
