"""Uniform local binary patterns (P = 8, R = 1) of a whole frame, as ``skimage.feature.local_binary_pattern``.

The same codes as ``local_binary_pattern(image, 8, 1, method="uniform")``, computed with whole-array
numpy operations instead of a per-pixel loop: the diagonal neighbours are bilinear interpolations with
skimage's own arithmetic (offsets rounded to 5 decimals, float64, zero outside the frame), so a
neighbour equal to its centre compares exactly as skimage compares it. skimage counts 0/1 changes
between consecutive neighbours without closing the circle; a pattern with at most two changes gets
its number of set bits (0 .. 8), any other 9.
"""

from __future__ import annotations

import numpy as np

__all__ = ["uniform_lbp", "LBP_POINTS"]

LBP_POINTS = 8


def _uniform_codes(points: int = LBP_POINTS) -> np.ndarray:
    """Lookup table: bit pattern (neighbour i at bit i) -> uniform code, (2 ** points,) uint8."""
    table = np.empty(2 ** points, np.uint8)
    for pattern in range(2 ** points):
        bits = [(pattern >> i) & 1 for i in range(points)]
        changes = sum(bits[i] != bits[i + 1] for i in range(points - 1))
        table[pattern] = sum(bits) if changes <= 2 else points + 1
    return table


_CODES = _uniform_codes()


def uniform_lbp(image: np.ndarray) -> np.ndarray:
    """Uniform LBP codes of a grayscale frame.

    A diagonal neighbour is first interpolated in float32 by one OpenCV 2 x 2 filter; only where it
    lies within :data:`_NEAR_TIE` of its centre (about 1 % of pixels on a frame, the float32 error is
    below 1e-4) is it recomputed with skimage's float64 arithmetic, so every comparison is skimage's.

    Args:
        image: (H, W) uint8.

    Returns:
        (H, W) uint8 codes in [0, 9].
    """
    import cv2

    height, width = image.shape
    padded = np.zeros((height + 2, width + 2), np.uint8)
    padded[1:-1, 1:-1] = image
    as_float = padded.astype(np.float32)
    as_double = padded.astype(np.float64)
    centre = image
    angles = 2 * np.pi * np.arange(LBP_POINTS) / LBP_POINTS
    row_offsets, col_offsets = np.round(-np.sin(angles), 5), np.round(np.cos(angles), 5)
    pattern = np.zeros((height, width), np.uint8)
    for bit, (dr, dc) in enumerate(zip(row_offsets, col_offsets)):
        r0, r1, c0, c1 = int(np.floor(dr)), int(np.ceil(dr)), int(np.floor(dc)), int(np.ceil(dc))
        if r0 == r1 and c0 == c1:  # a neighbour on the grid: compare the integers themselves
            above = padded[1 + r0:1 + r0 + height, 1 + c0:1 + c0 + width] >= centre
        else:
            fr, fc = dr - r0, dc - c0
            kernel = np.array([[(1 - fr) * (1 - fc), (1 - fr) * fc], [fr * (1 - fc), fr * fc]], np.float32)
            window = as_float[1 + r0:2 + r1 + height - 1, 1 + c0:2 + c1 + width - 1]
            difference = cv2.filter2D(window, cv2.CV_32F, kernel, anchor=(0, 0),
                                      borderType=cv2.BORDER_CONSTANT)[:height, :width]
            difference -= as_float[1:-1, 1:-1]
            above = difference >= 0
            near = np.flatnonzero(np.abs(difference) < _NEAR_TIE)
            above.ravel()[near] = _exact_above(padded, as_double, near, width, dr, dc, (r0, r1, c0, c1))
        pattern |= above.view(np.uint8) << np.uint8(bit)
    return _CODES[pattern]


_NEAR_TIE = 1e-3


def _exact_above(padded: np.ndarray, values: np.ndarray, flat: np.ndarray, width: int, dr: float, dc: float,
                 corners: tuple[int, int, int, int]) -> np.ndarray:
    """skimage's comparison of an interpolated neighbour with its centre at the flat pixel indices given.

    skimage's fractions are taken per pixel ((r + dr) - floor(r + dr)), so they carry its rounding;
    ``(1 - f) * a + f * b`` rounds each product before the sum, as skimage computes it.
    """
    r0, r1, c0, c1 = corners
    rows, cols = np.divmod(flat, width)
    frac_r = (rows + dr) - np.floor(rows + dr)
    frac_c = (cols + dc) - np.floor(cols + dc)
    top = values[1 + rows + r0, 1 + cols + c0] * (1 - frac_c) + values[1 + rows + r0, 1 + cols + c1] * frac_c
    bottom = values[1 + rows + r1, 1 + cols + c0] * (1 - frac_c) + values[1 + rows + r1, 1 + cols + c1] * frac_c
    return top * (1 - frac_r) + bottom * frac_r >= padded[1 + rows, 1 + cols]
