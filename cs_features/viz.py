"""Small drawing helpers for overlays and contact sheets (ground truth, detections, similarity results).

Everything returns BGR uint8 images ready for :func:`save_png`. Boxes follow the project convention:
(N, 4) int x1, y1, x2, y2 in frame pixels with exclusive end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from cs_features.errors import CSFeaturesError

CAPTION_HEIGHT = 20  # px of caption band under each contact-sheet tile
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1|3) uint8, or float in [0, 1] -> (H, W, 3) BGR uint8 (a copy)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise TypeError(f"image dtype {image.dtype} is not supported: expected uint8 or float in [0, 1]")
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.copy()
    raise ValueError(f"image shape {image.shape} is not supported: expected (H, W), (H, W, 1) or (H, W, 3)")


def _put_label(canvas: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Text with a dark backing box whose top-left corner is at (x, y), clipped to the canvas."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = int(min(max(x, 0), max(canvas.shape[1] - tw - 2, 0)))
    y = int(min(max(y, 0), max(canvas.shape[0] - th - base - 2, 0)))
    cv2.rectangle(canvas, (x, y), (x + tw + 2, y + th + base + 2), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x + 1, y + th + 1), _FONT, scale, color, 1, cv2.LINE_AA)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    captions: Sequence[str] | None = None,
    color: tuple[int, int, int] = (0, 0, 255),
    thickness: int = 1,
    pad: int = 0,
    font_scale: float = 0.4,
) -> np.ndarray:
    """Draw boxes (and optional captions above them) on a frame.

    Args:
        image: (H, W) grayscale or (H, W, 3) BGR frame, uint8 or float in [0, 1].
        boxes: (N, 4) x1, y1, x2, y2, exclusive end; the outline is drawn ``pad`` px outside the box so
            the boxed object stays visible.
        captions: N strings or None.
    Returns:
        (H, W, 3) BGR uint8.
    """
    canvas = to_bgr(image)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if captions is not None and len(captions) != len(boxes):
        raise ValueError(f"got {len(captions)} captions for {len(boxes)} boxes: expected one caption per box")
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        cv2.rectangle(canvas, (x1 - pad, y1 - pad), (x2 - 1 + pad, y2 - 1 + pad), color, thickness)
        if captions is not None:
            _put_label(canvas, captions[i], x1 - pad, y1 - pad - 14, color, font_scale)
    return canvas


def _fit_tile(tile: np.ndarray, tile_size: int) -> np.ndarray:
    """Resize keeping aspect ratio and centre on a black (tile_size, tile_size, 3) square."""
    tile = to_bgr(tile)
    h, w = tile.shape[:2]
    f = tile_size / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    out = np.zeros((tile_size, tile_size, 3), np.uint8)
    y0, x0 = (tile_size - nh) // 2, (tile_size - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(tile, (nw, nh), interpolation=interp)
    return out


def contact_sheet(
    tiles: list[np.ndarray], captions: list[str], columns: int, tile_size: int, gap: int = 4
) -> np.ndarray:
    """Grid of tiles, each fitted into a ``tile_size`` square with a caption band underneath.

    Args:
        tiles: images of any size, (H, W) grayscale or (H, W, 3) BGR, uint8 or float in [0, 1].
        captions: one string per tile.
    Returns:
        BGR uint8 of shape (rows * (tile_size + CAPTION_HEIGHT) + (rows - 1) * gap,
        columns * tile_size + (columns - 1) * gap, 3) with rows = ceil(len(tiles) / columns).
    """
    if len(tiles) != len(captions):
        raise ValueError(f"got {len(tiles)} tiles and {len(captions)} captions: expected one caption per tile")
    if not tiles or columns < 1 or tile_size < 16:
        raise ValueError(
            f"contact sheet needs at least one tile, columns >= 1 and tile_size >= 16; "
            f"got {len(tiles)} tiles, columns={columns}, tile_size={tile_size}"
        )
    rows = math.ceil(len(tiles) / columns)
    cell_h = tile_size + CAPTION_HEIGHT
    sheet = np.full((rows * cell_h + (rows - 1) * gap, columns * tile_size + (columns - 1) * gap, 3), 40, np.uint8)
    scale = 0.4 if tile_size >= 200 else 0.3
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        y, x = (i // columns) * (cell_h + gap), (i % columns) * (tile_size + gap)
        sheet[y : y + tile_size, x : x + tile_size] = _fit_tile(tile, tile_size)
        band = sheet[y + tile_size : y + cell_h, x : x + tile_size]
        band[:] = 0
        cv2.putText(band, caption, (3, CAPTION_HEIGHT - 6), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return sheet


def zoom_crop(image: np.ndarray, box: Sequence[int], scale: int = 2, margin: int = 16) -> np.ndarray:
    """Crop ``box`` (x1, y1, x2, y2, exclusive end) plus ``margin`` px, clipped, and enlarge by ``scale``.

    Nearest-neighbour enlargement keeps single-pixel structures (thin strings) as they are.
    """
    h, w = np.asarray(image).shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = max(x1 - margin, 0), max(y1 - margin, 0)
    x2, y2 = min(x2 + margin, w), min(y2 + margin, h)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {tuple(box)} lies outside the {w}x{h} image: expected a box that overlaps it")
    crop = np.ascontiguousarray(np.asarray(image)[y1:y2, x1:x2])
    return cv2.resize(crop, ((x2 - x1) * scale, (y2 - y1) * scale), interpolation=cv2.INTER_NEAREST)


def save_png(path: str | Path, image: np.ndarray, compression: int = 3) -> Path:
    """Write ``image`` (grayscale or BGR uint8) as PNG, creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.asarray(image), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]):
        raise CSFeaturesError(f"cannot write PNG {str(path)!r}: check the folder is writable and the image is uint8")
    return path
