"""The per-frame overlay of `csf detect`: what was detected, beside what the autoencoder score was taken on.

Left: the preprocessed frame with the reported boxes whose string probability p reaches ``min_p`` (red,
numbered by p, highest first; number tags placed so they never overlap) and the ground truth (green,
drawn just outside its boxes). Right: the scored residual. A header says what was detected, the truth
when labels exist, the gate, and a legend of the drawn boxes with their p, the number the decision uses.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

RED = (40, 40, 230)
GREEN = (60, 200, 60)
WHITE = (235, 235, 235)
LINE_HEIGHT = 20
DISPLAY_WIDTH = 384  # small frames are enlarged (integer factor) so boxes and tags stay readable


def overlay(detection, picture: dict, threshold: float, positive_p: float, min_p: float, path: Path,
            labelled_run: bool = False) -> Path:
    """Write the overlay PNG of one read frame; returns its path."""
    import cv2

    from cs_features.viz import draw_boxes, save_png, to_bgr

    image = picture["image"]
    zoom = max(1, -(-DISPLAY_WIDTH // image.shape[1]))
    height, width = image.shape[0] * zoom, image.shape[1] * zoom
    left = to_bgr(cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST))
    if detection.truth_boxes:
        left = draw_boxes(left, _display_boxes(detection.truth_boxes, picture, zoom), color=GREEN, thickness=1,
                          pad=3)
    drawn = sorted((b for b in detection.boxes if b["p"] >= min_p), key=lambda b: -b["p"])
    boxes = _display_boxes([b["box"] for b in drawn], picture, zoom)
    left = draw_boxes(left, boxes, color=RED, thickness=2)
    place_tags(left, boxes, [f"#{rank}" for rank in range(1, len(drawn) + 1)], RED)
    lines = header_lines(detection, threshold, positive_p, min_p, drawn, labelled_run)
    top = LINE_HEIGHT * len(lines) + 8
    canvas = np.full((height + top, 2 * width + 8, 3), 24, np.uint8)
    canvas[top:, :width] = left
    canvas[top:, width + 8:] = _heat(picture, threshold, (height, width))
    for row, (text, color) in enumerate(lines):
        cv2.putText(canvas, text, (6, 16 + LINE_HEIGHT * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    # one per frame, written by the parent: zlib level 1 encodes a 588 x 1008 overlay in 0.040 s against level 3's
    # 0.063 s, for files 7 % larger (620 against 578 KB, 20 quickstart overlays on 2 cores)
    return save_png(path, canvas, compression=1)


def _display_boxes(boxes: list, picture: dict, zoom: int) -> np.ndarray:
    """Frame-pixel boxes -> boxes on the enlarged canonical picture."""
    return picture["scale"].to_canonical(np.array(boxes, np.int32).reshape(-1, 4)).astype(np.int64) * zoom


def header_lines(detection, threshold: float, positive_p: float, min_p: float, drawn: list,
                 labelled_run: bool) -> list[tuple[str, tuple]]:
    """The header: detected verdict, truth (when the run has labels), the gate, and the box legend."""
    places = decimals_for(positive_p)
    if detection.cs_positive:
        verdict = "detected: CS (best p {} >= {})".format(*shown_pair(detection.frame_score, positive_p, places))
    elif detection.localized:
        verdict = "detected: no CS (best p {} < {})".format(*shown_pair(detection.frame_score, positive_p, places))
    else:
        verdict = "detected: no CS (below the AE gate, localizer skipped)"
    lines = [(f"{detection.stem}  {verdict}", RED if detection.cs_positive else WHITE)]
    if labelled_run:
        lines.append((_truth_text(detection), GREEN))
    gate = "flagged" if detection.flagged else "below threshold"
    gate += ", localizer ran" if detection.localized else ", localizer skipped"
    lines.append((f"AE score {detection.ae_score:.4f} vs threshold {threshold:.4f} ({gate})", WHITE))
    places = max(places, decimals_for(min_p))
    if drawn:
        places = pair_places(min(b["p"] for b in drawn), min_p, places)
        legend = "  ".join(f"#{rank} p {shown_p(b['p'], places)}" for rank, b in enumerate(drawn, start=1))
        lines.append((f"red, boxes with p >= {min_p:.{places}f}: {legend}", RED))
    elif detection.localized:
        lines.append((f"no box with p >= {min_p:.{places}f} ({len(detection.boxes)} reported below it)", WHITE))
    return lines


def decimals_for(threshold: float) -> int:
    """Two decimals for a threshold such as 0.50, three for one chosen on val (0.391)."""
    return 2 if abs(threshold * 100 - round(threshold * 100)) < 1e-6 else 3


def shown_p(p: float, places: int = 2) -> str:
    """p with ``places`` decimals, rounded down: a box under a threshold of 0.50 never reads as reaching it
    (0.4996 -> 0.49)."""
    return f"{math.floor(p * 10 ** places + 1e-9) / 10 ** places:.{places}f}"


def pair_places(p: float, threshold: float, places: int) -> int:
    """The fewest decimals from ``places`` on at which ``p`` (rounded down) and ``threshold`` (rounded, as the
    timeline and the terminal print it) read the way they compare: 0.4996 < 0.50, 0.2417 >= 0.2416 (0.242 at
    three); at most 6."""
    for digits in range(places, 6):
        if (float(shown_p(p, digits)) >= round(threshold, digits)) == (p >= threshold):
            return digits
    return 6


def shown_pair(p: float, threshold: float, places: int) -> tuple[str, str]:
    """``p`` and ``threshold`` printed with :func:`pair_places` decimals."""
    digits = pair_places(p, threshold, places)
    return shown_p(p, digits), f"{threshold:.{digits}f}"


def _truth_text(detection) -> str:
    if detection.truth is None:
        return "truth: unknown (" + ("label file unreadable" if detection.label_error else "no label file") + ")"
    if detection.truth:
        count = len(detection.truth_boxes)
        return f"truth: CS ({count} string{'s' if count > 1 else ''}, green)"
    return "truth: no CS"


def place_tags(canvas: np.ndarray, boxes: np.ndarray, tags: list[str], color: tuple, scale: float = 0.45) -> list:
    """Draw each tag next to its box, outside it where there is room, never over an earlier tag.

    Returns the ``(x1, y1, x2, y2)`` rectangles the tags took.
    """
    import cv2

    taken: list[tuple[int, int, int, int]] = []
    for (x1, y1, x2, y2), tag in zip(np.asarray(boxes).reshape(-1, 4).tolist(), tags):
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        w, h = tw + 4, th + base + 4
        spot = _free_spot(canvas.shape, taken, w, h,
                          [(x1, y1 - h - 1), (x2 + 1, y1), (x1, y2 + 1), (x1 - w - 1, y1), (x2 - w, y1 - h - 1)])
        taken.append(spot)
        cv2.rectangle(canvas, spot[:2], (spot[2] - 1, spot[3] - 1), (0, 0, 0), -1)
        cv2.putText(canvas, tag, (spot[0] + 2, spot[1] + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1,
                    cv2.LINE_AA)
    return taken


def _free_spot(shape: tuple, taken: list, w: int, h: int, candidates: list) -> tuple[int, int, int, int]:
    """The first candidate top-left corner (clipped into the canvas) whose rectangle overlaps no taken one;
    failing all, the first free place scanning from the first candidate across and down (wrapping)."""
    height, width = shape[:2]

    def rect(x, y):
        x, y = min(max(x, 0), max(width - w, 0)), min(max(y, 0), max(height - h, 0))
        return (x, y, x + w, y + h)

    def free(r):
        return all(r[2] <= t[0] or t[2] <= r[0] or r[3] <= t[1] or t[3] <= r[1] for t in taken)

    for x, y in candidates:
        if free(rect(x, y)):
            return rect(x, y)
    x0, y0 = candidates[0]
    for dy in range(0, height, h):
        for dx in range(0, width, w):
            spot = rect((x0 + dx) % width, (y0 + dy) % height)
            if free(spot):
                return spot
    return rect(x0, y0)


def _heat(picture: dict, threshold: float, shape: tuple[int, int]) -> np.ndarray:
    """The scored residual inside the scored region as a heat map on a fixed scale, 0 .. 2 x the threshold,
    so frames compare: the AE score is a high percentile of this map and a frame is flagged when it reaches
    the threshold (mid-scale colour). Outside the region it is dimmed."""
    import cv2

    height, width = shape
    scored = cv2.resize(picture["scored"], (width, height), interpolation=cv2.INTER_LINEAR)
    region = cv2.resize(picture["region"].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    heat = cv2.applyColorMap(np.clip(scored / (2 * threshold) * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    heat[~region] = (heat[~region] * 0.3).astype(np.uint8)
    cv2.putText(heat, f"scored residual, 0 .. {2 * threshold:.3f} (2x threshold)", (6, height - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
    return heat
