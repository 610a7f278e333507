"""How well a box frames a string of the string map: the map's evidence inside it and its fit.

A region head reads a box's vector and says whether a string is in it; its IoU regressor guesses how
tightly. Trained on one world, both carry over poorly to another (box AUROC 0.69 on ``hard`` frames
for a head trained on ``clean``). The string map, learned from the same labels, reads the box's pixels
instead, and a string shows in it as an object: connected pixels above a level. Two figures
per box, in the map's (canonical) pixels:

- ``strength``: the mean of the box's strongest ``top_fraction`` of map pixels (how sure the map is
  that a string is there);
- ``fit``: how well the box frames the map's string, at two levels of the map, the lower of the two.
  At one level, the fit is the IoU of the box with the bounding box of the map objects (connected
  pixels above the level) it touches, those objects clipped to the box grown by ``context`` of its
  width and height on each side: a box around one piece of a longer string, or a box much larger than
  its string, fits poorly; a box that frames the string fits near 1; 0 when no object touches the box.
  A string is one line: of the objects the box touches, only those along the line of its anchor (the
  object with the most map evidence inside the box) count, each by the share of its pixels within a
  cone about the anchor's axis (``line_cone``), so a box much larger than its string that takes in
  scattered objects (pieces of the lit rim, surface cell boundaries) no longer fits as if their joint
  extent were one string, while the pieces of one broken string still join (where the anchor is a
  piece with a direction: a round bead's axis says little). ``line_cone=0`` counts every touched object.
  The levels are the sure one, ``threshold``, and a fainter one, ``join_fraction`` of the box's own
  strength (on a grid of :data:`LEVEL_STEP`, between :data:`LOWEST_LEVEL` and ``threshold``). A faint
  string breaks into beads at the sure level, and a box around one bead fits that bead; at the
  fainter level the beads join into the string, and only a box around the whole of it fits there too.
  The fainter level follows the box's strength: the map's evidence between the beads is a share of
  its evidence on them, and a level fixed low enough for a string the map is unsure of can join a
  string the map is sure of to a faint glow around it (a fixed 0.3 cost AP in the training world's own
  frames; README, "Ranking boxes").

With a string map at hand (the store's proposals include the learned ``strings`` source), boxes are
ranked by ``p = sqrt(head p * strength)`` (the geometric mean of the two learned string
probabilities) and IoU ``fit`` in place of the head's regressed IoU: :func:`framed_p`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cs_features.errors import ConfigError

__all__ = ["MapFraming", "box_framing", "framed_p"]

LEVEL_STEP = 0.1
"""The fainter level of a box's fit is rounded to this grid (the map's objects are found once per level)."""
LOWEST_LEVEL = 0.2
"""The fainter level is at least this (the lowest level at which the choice of ``join_fraction`` was measured)."""
LINE_SHARE = 0.6
"""An object the box touches lies along its anchor's line when this share of its pixels (in the context window)
lies within the cone about the anchor's axis."""
LINE_MARGIN = 2.0
"""Pixels added to the cone's half-width everywhere (the map's objects are a few pixels wide and ragged)."""


@dataclass(frozen=True)
class MapFraming:
    """Settings of the map framing (module docstring); ``enabled=False`` ranks by the head alone."""

    enabled: bool = True
    threshold: float = 0.5
    join_fraction: float = 0.4
    context: float = 0.5
    top_fraction: float = 0.03
    line_cone: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"map framing threshold must be in (0, 1), got {self.threshold!r}")
        if not 0.0 <= self.join_fraction <= 1.0:
            raise ConfigError(f"map framing join_fraction must be in [0, 1] (0: the sure level only), "
                              f"got {self.join_fraction!r}")
        if not 0.0 <= self.context <= 4.0:
            raise ConfigError(f"map framing context must be in [0, 4], got {self.context!r}")
        if not 0.0 <= self.line_cone <= 10.0:
            raise ConfigError(f"map framing line_cone must be in [0, 10] (0: every object the box touches counts), "
                              f"got {self.line_cone!r}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ConfigError(f"map framing top_fraction must be in (0, 1], got {self.top_fraction!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def box_framing(string_map: np.ndarray, boxes: np.ndarray,
                framing: MapFraming = MapFraming()) -> tuple[np.ndarray, np.ndarray]:
    """``(strength, fit)`` of each box (module docstring), each ``(N,)`` float32 in [0, 1].

    Args:
        string_map: ``(H, W)`` float probabilities in [0, 1].
        boxes: ``(N, 4)`` ``[x1, y1, x2, y2]`` in the map's pixels (clipped to it; an empty box gets 0, 0).
    """
    prob = np.asarray(string_map, np.float32)
    if prob.ndim != 2:
        raise ValueError(f"a string map must be (H, W), got shape {prob.shape}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    strength, fit = np.zeros(len(boxes), np.float32), np.zeros(len(boxes), np.float32)
    if not len(boxes):
        return strength, fit
    height, width = prob.shape
    limits = np.array([width, height, width, height], np.float64)
    inner = np.clip(np.rint(boxes), 0, limits).astype(np.int64)
    for k, (x1, y1, x2, y2) in enumerate(inner):
        if x2 <= x1 or y2 <= y1:
            continue
        pixels = prob[y1:y2, x1:x2].ravel()
        top = max(1, int(np.ceil(framing.top_fraction * pixels.size)))
        strength[k] = float(np.partition(pixels, pixels.size - top)[pixels.size - top:].mean())
    fit = _level_fit(prob, prob > framing.threshold, inner, framing, limits)
    if framing.join_fraction > 0:
        levels = np.clip(np.round(framing.join_fraction * strength / LEVEL_STEP) * LEVEL_STEP, LOWEST_LEVEL,
                         framing.threshold)
        levels[fit == 0] = framing.threshold  # fits nothing at the sure level: the lower of the two is 0 already
        for level in np.unique(levels[levels < framing.threshold]):
            mine = levels == level
            fit[mine] = np.minimum(fit[mine], _level_fit(prob, prob > level, inner[mine], framing, limits))
    return strength, fit


def _level_fit(prob: np.ndarray, above: np.ndarray, boxes: np.ndarray, framing: MapFraming,
               limits: np.ndarray) -> np.ndarray:
    """``(N,)`` float32: each box's fit to the objects of one map level (``above``, (H, W) bool, of the map
    ``prob``), boxes ``(N, 4)`` int clipped to the map; an empty box fits 0."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(above.astype(np.uint8), connectivity=8)
    extent = np.column_stack([stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]])
    fit = np.zeros(len(boxes), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        if x2 <= x1 or y2 <= y1:
            continue
        inside = labels[y1:y2, x1:x2].ravel()
        pixels = np.bincount(inside, minlength=count)  # each object's pixels in the box (0: the background)
        pixels[0] = 0
        touched = np.flatnonzero(pixels)
        if not len(touched):
            continue
        grow_x, grow_y = framing.context * (x2 - x1), framing.context * (y2 - y1)
        window = np.clip([x1 - grow_x, y1 - grow_y, x2 + grow_x, y2 + grow_y], 0, limits)
        obj = _joint_extent(extent[touched], window)
        if framing.line_cone > 0 and len(touched) > 1:
            mass = np.bincount(inside, weights=prob[y1:y2, x1:x2].ravel(), minlength=count)
            touched = _along_anchor(labels, count, touched, touched[int(np.argmax(mass[touched]))], obj,
                                    framing.line_cone)
            obj = _joint_extent(extent[touched], window)
        overlap = max(0.0, min(obj[2], x2) - max(obj[0], x1)) * max(0.0, min(obj[3], y2) - max(obj[1], y1))
        union = (x2 - x1) * (y2 - y1) + (obj[2] - obj[0]) * (obj[3] - obj[1]) - overlap
        fit[k] = overlap / union if union > 0 else 0.0
    return fit


def _joint_extent(spans: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]``: the bounding box of the objects' extents ``spans`` ``(K, 4)``, clipped to ``window``."""
    return np.array([max(spans[:, 0].min(), window[0]), max(spans[:, 1].min(), window[1]),
                     min(spans[:, 2].max(), window[2]), min(spans[:, 3].max(), window[3])])


def _along_anchor(labels: np.ndarray, count: int, touched: np.ndarray, anchor: int, window: np.ndarray,
                  cone: float) -> np.ndarray:
    """The labels of ``touched`` (of ``count`` labels in all) that lie along ``anchor``'s line, ``anchor``
    first: those with at least :data:`LINE_SHARE` of their pixels in ``window`` (``[x1, y1, x2, y2]``
    float: the context window, or any part of it that holds all of the touched objects' pixels in it) within
    ``half_width + cone * |distance along the axis| + LINE_MARGIN`` of the anchor's axis (its principal
    axis through its centre, both read from its pixels in the window; ``half_width`` twice the spread
    across the axis plus 1.5 px)."""
    x0, y0 = int(np.ceil(window[0])), int(np.ceil(window[1]))
    crop = labels[y0:int(np.ceil(window[3])), x0:int(np.ceil(window[2]))]
    others = touched[touched != anchor]
    slot = np.full(count, -1, np.int64)  # 0: the anchor, 1..: the others
    slot[anchor] = 0
    slot[others] = np.arange(1, len(others) + 1)
    ys, xs = np.nonzero(crop)  # the window's object pixels, then those of the touched objects (row-major order)
    owner = slot[crop[ys, xs]]
    touching = owner >= 0
    ys, xs, owner = ys[touching], xs[touching], owner[touching]
    mine = owner == 0
    ax, ay = xs[mine].astype(np.float64), ys[mine].astype(np.float64)
    cx, cy = ax.sum() / len(ax), ay.sum() / len(ay)
    if len(ax) >= 3:  # the principal axes of the pixels' covariance (2 x 2, in closed form)
        ax, ay = ax - cx, ay - cy
        sxx, syy, sxy = ax @ ax / (len(ax) - 1), ay @ ay / (len(ax) - 1), ax @ ay / (len(ax) - 1)
        angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
        minor = 0.5 * (sxx + syy) - np.hypot(0.5 * (sxx - syy), sxy)
        axis, half_width = np.array([np.cos(angle), np.sin(angle)]), 2.0 * np.sqrt(max(minor, 0.0)) + 1.5
    else:
        axis, half_width = np.array([1.0, 0.0]), 1.5
    dx, dy = xs[~mine] - cx, ys[~mine] - cy
    along = np.abs(dx * axis[0] + dy * axis[1])
    across = np.abs(dy * axis[0] - dx * axis[1])
    near = across <= half_width + cone * along + LINE_MARGIN
    owner = owner[~mine] - 1
    share = np.bincount(owner, weights=near, minlength=len(others)) / np.maximum(
        np.bincount(owner, minlength=len(others)), 1)
    return np.concatenate([[anchor], others[share >= LINE_SHARE]])


def framed_p(head_p: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """``(N,)`` float32 ``sqrt(head_p * strength)``: the box's string probability by both learned models."""
    product = np.clip(np.asarray(head_p, np.float64), 0, 1) * np.clip(np.asarray(strength, np.float64), 0, 1)
    return np.sqrt(product).astype(np.float32)


def ranking_string_model(proposals) -> str | None:
    """The string-map model folder whose map ranks boxes proposed under ``proposals`` (a
    :class:`~cs_features.proposals.ProposalConfig`, or None): its ``strings_model`` when the sources include
    ``strings``, else None."""
    if proposals is None or "strings" not in proposals.sources:
        return None
    return proposals.strings_model or None


def store_framing(store, frame_ids: np.ndarray, boxes: np.ndarray, directory: str,
                  framing: MapFraming = MapFraming()) -> tuple[np.ndarray, np.ndarray]:
    """``(strength, fit)`` of stored proposals under the string map of the model in ``directory``, the map
    computed from each stored preprocessed frame as the ``strings`` source computes it.

    Args:
        store: a :class:`cs_features.store.FeatureStore`.
        frame_ids: ``(N,)`` the frame id of each proposal; boxes: ``(N, 4)`` in frame pixels (as stored).

    Raises:
        ConfigError: ``directory`` holds no string-map model (the message names it).
        ValueError: a frame id the store does not hold.
    """
    from pathlib import Path

    from cs_features.metrics import group_by_frame
    from cs_features.proposals.learned import interior_string_map
    from cs_features.strings.data import iter_frames, rows_by_id

    if not (Path(directory) / "config.json").is_file():
        raise ConfigError(f"the string-map model {str(directory)!r} that ranks this store's boxes is not there "
                          "(the store proposes with the 'strings' source of that folder); put the folder back, "
                          "or rank without the map (--no-framing)")
    frame_ids = np.asarray(frame_ids).astype(str)
    strength, fit = np.zeros(len(frame_ids), np.float32), np.zeros(len(frame_ids), np.float32)
    if not len(frame_ids):
        return strength, fit
    members = group_by_frame(frame_ids)
    rows = rows_by_id(store, frame_ids, "the map framing")
    for frame in iter_frames(store, [rows[frame_id] for frame_id in members]):
        mine = members[frame.frame_id]
        scale = rows[frame.frame_id]["scale"] or 1.0
        image = np.rint(frame.image * 255.0).astype(np.uint8)
        prob = interior_string_map(image, frame.mask, directory)
        canonical = np.rint(np.asarray(boxes, np.float64)[mine] * scale)
        strength[mine], fit[mine] = box_framing(prob, canonical, framing)
    return strength, fit
