"""YOLO label files: one line ``class cx cy w h`` (normalised to [0, 1]) per string box."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cs_features.boxes import boxes_to_yolo, yolo_to_boxes
from cs_features.errors import LabelError


def yolo_lines(boxes: np.ndarray, width: int, height: int, scores: np.ndarray | None = None) -> list[str]:
    """YOLO lines ``0 cx cy w h`` (6 decimals) for ``(N, 4)`` pixel boxes of a ``width`` x ``height`` frame.

    With ``scores`` ``(N,)`` each line ends with the box's score (4 decimals), as detectors write them.
    """
    rows = boxes_to_yolo(np.asarray(boxes).reshape(-1, 4), width, height)
    lines = [f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for cx, cy, w, h in rows]
    if scores is not None:
        lines = [f"{line} {float(score):.4f}" for line, score in zip(lines, scores)]
    return lines


def read_yolo_labels(path: str | Path, width: int, height: int) -> np.ndarray:
    """Parse a YOLO label file into pixel boxes.

    Args:
        path: text file of lines ``class cx cy w h`` (normalised to [0, 1]); blank lines ignored.
        width, height: the frame size in pixels.

    Returns:
        ``(N, 4)`` int32 boxes ``x1, y1, x2, y2`` (exclusive end), in file order.

    Raises:
        LabelError: a malformed line, or a box outside the image; names the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(path, f"unreadable ({exc})") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows.append(_parse_yolo_line(path, number, line))
    if not rows:
        return np.zeros((0, 4), np.int32)
    boxes = yolo_to_boxes(np.asarray(rows), width, height)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        raise LabelError(path, f"box {int(np.flatnonzero(empty)[0]) + 1} is empty in a {width}x{height} frame")
    return boxes


def _parse_yolo_line(path: Path, number: int, line: str) -> list[float]:
    parts = line.split()
    if len(parts) != 5:
        raise LabelError(path, f"line {number} {line.strip()!r}: expected 5 fields 'class cx cy w h', got {len(parts)}")
    try:
        values = [float(v) for v in parts[1:]]
        float(parts[0])
    except ValueError:
        raise LabelError(path, f"line {number} {line.strip()!r}: fields must be numbers") from None
    cx, cy, w, h = values
    tol = 1e-3
    if not all(np.isfinite(values)) or w <= 0 or h <= 0:
        raise LabelError(path, f"line {number} {line.strip()!r}: width and height must be positive numbers")
    if cx - w / 2 < -tol or cy - h / 2 < -tol or cx + w / 2 > 1 + tol or cy + h / 2 > 1 + tol:
        raise LabelError(path, f"line {number} {line.strip()!r}: box lies outside the image "
                               "(coordinates must be in [0, 1])")
    return values


def count_yolo_boxes(path: str | Path) -> int:
    """Non-blank lines of a YOLO label file (its boxes, unvalidated: ingest's label stage checks them);
    0 for an unreadable file, which that stage then reports."""
    try:
        return sum(1 for line in Path(path).read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError):
        return 0
