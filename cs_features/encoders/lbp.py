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
    padded = np.zeros((height + 2, width + 2), np.float64)
    padded[1:-1, 1:-1] = image
    centre = padded[1:-1, 1:-1]
    angles = 2 * np.pi * np.arange(LBP_POINTS) / LBP_POINTS
    row_offsets, col_offsets = np.round(-np.sin(angles), 5), np.round(np.cos(angles), 5)
    rows, cols = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    pattern = np.zeros((height, width), np.uint8)
    for bit, (dr, dc) in enumerate(zip(row_offsets, col_offsets)):
        r0, r1, c0, c1 = int(np.floor(dr)), int(np.ceil(dr)), int(np.floor(dc)), int(np.ceil(dc))

        def shifted(r: int, c: int) -> np.ndarray:
            return padded[1 + r:1 + r + height, 1 + c:1 + c + width]

        if r0 == r1 and c0 == c1:
            neighbour = shifted(r0, c0)
        else:
            # skimage's fractions are taken per pixel ((r + dr) - floor(r + dr)), so they carry its rounding.
            frac_r = ((rows + dr) - np.floor(rows + dr))[:, None]
            frac_c = ((cols + dc) - np.floor(cols + dc))[None, :]
            top = (1 - frac_c) * shifted(r0, c0) + frac_c * shifted(r0, c1)
            bottom = (1 - frac_c) * shifted(r1, c0) + frac_c * shifted(r1, c1)
            neighbour = (1 - frac_r) * top + frac_r * bottom
        pattern |= ((neighbour - centre) >= 0).view(np.uint8) << np.uint8(bit)
    return _CODES[pattern]
