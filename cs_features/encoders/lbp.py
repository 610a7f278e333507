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

    Args:
        image: (H, W) uint8.

    Returns:
        (H, W) uint8 codes in [0, 9].
    """
    height, width = image.shape
    padded = np.zeros((height + 2, width + 2), np.uint8)
    padded[1:-1, 1:-1] = image
    as_float = padded.astype(np.float64)
    centre = image
    angles = 2 * np.pi * np.arange(LBP_POINTS) / LBP_POINTS
    row_offsets, col_offsets = np.round(-np.sin(angles), 5), np.round(np.cos(angles), 5)
    rows, cols = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    pattern = np.zeros((height, width), np.uint8)
    top, bottom = np.empty((height, width)), np.empty((height, width))
    for bit, (dr, dc) in enumerate(zip(row_offsets, col_offsets)):
        r0, r1, c0, c1 = int(np.floor(dr)), int(np.ceil(dr)), int(np.floor(dc)), int(np.ceil(dc))
        if r0 == r1 and c0 == c1:  # a neighbour on the grid: compare the integers themselves
            above = padded[1 + r0:1 + r0 + height, 1 + c0:1 + c0 + width] >= centre
        else:
            # skimage's fractions are taken per pixel ((r + dr) - floor(r + dr)), so they carry its rounding.
            frac_r = ((rows + dr) - np.floor(rows + dr))[:, None]
            frac_c = ((cols + dc) - np.floor(cols + dc))[None, :]
            _lerp(as_float[1 + r0:1 + r0 + height], c0, c1, width, frac_c, top)
            _lerp(as_float[1 + r1:1 + r1 + height], c0, c1, width, frac_c, bottom)
            # (1 - fr) * top + fr * bottom, each product rounded before the sum, as skimage computes it
            top *= 1 - frac_r
            bottom *= frac_r
            top += bottom
            # x - c >= 0 holds exactly when x >= c for finite floats (a difference is 0 only for equals).
            above = top >= centre
        pattern |= above.view(np.uint8) << np.uint8(bit)
    return _CODES[pattern]


def _lerp(rows: np.ndarray, c0: int, c1: int, width: int, frac: np.ndarray, out: np.ndarray) -> None:
    """``(1 - frac) * rows[:, c0] + frac * rows[:, c1]`` over the padded columns, written to ``out``."""
    np.multiply(rows[:, 1 + c0:1 + c0 + width], 1 - frac, out=out)
    out += rows[:, 1 + c1:1 + c1 + width] * frac
