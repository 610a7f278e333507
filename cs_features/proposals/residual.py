"""Proposals from the autoencoder: boxes around high-residual regions of a frame's error map."""

from __future__ import annotations

import numpy as np

from cs_features.boxes import clamp_boxes
from cs_features.embryo import embryo_interior


def residual_boxes(residual: np.ndarray, low_texture_mask: np.ndarray | None, shape: tuple[int, int],
                   k_sigma: float = 3.0, min_pixels: int = 20, pad: int = 3) -> np.ndarray:
    """Boxes around high-residual regions of an autoencoder error map (where the AE saw something new).

    Args:
        residual: ``(S, S)`` float32 error map at the AE's input size.
        low_texture_mask: ``(H, W)`` bool frame mask; only the embryo interior counts.
        shape: the frame's ``(H, W)``.
        k_sigma: a pixel is high when it exceeds the interior's median by ``k_sigma`` robust sigmas.

    Returns:
        ``(N, 4)`` int32 boxes in frame pixels (raw: the caller clamps and de-duplicates).
    """
    import cv2

    height, width = shape
    error = cv2.resize(residual.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    interior = embryo_interior(low_texture_mask, shape)
    values = error[interior]
    if values.size == 0:
        return np.zeros((0, 4), np.int32)
    median = float(np.median(values))
    sigma = float(np.median(np.abs(values - median))) * 1.4826 + 1e-6
    high = ((error > median + k_sigma * sigma) & interior).astype(np.uint8)
    high = cv2.morphologyEx(high, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))  # join a string's pieces
    count, _, stats, _ = cv2.connectedComponentsWithStats(high, connectivity=8)
    keep = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    x, y = stats[1:, cv2.CC_STAT_LEFT][keep], stats[1:, cv2.CC_STAT_TOP][keep]
    w, h = stats[1:, cv2.CC_STAT_WIDTH][keep], stats[1:, cv2.CC_STAT_HEIGHT][keep]
    boxes = np.stack([x - pad, y - pad, x + w + pad, y + h + pad], axis=1).astype(np.int32)
    return clamp_boxes(boxes, width, height)
