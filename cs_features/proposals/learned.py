"""Learned proposals: boxes around what the string map (:mod:`cs_features.strings`) calls string.

The map is thresholded at several levels; at each, its connected pieces are linked into strings when
they come close (a faint string breaks into beads) or lie end to end along one line further apart
(:func:`collinear_links`: a faded string), and every piece and every linked chain gets a box, padded
the way the user's annotators box strings. The padding is learned from the training boxes
(:func:`learn_box_style`): annotators box the whole string with a margin, which a tight box around
map pixels lacks. Every piece is also boxed with the plain default margin (:class:`BoxStyle`): a style
learned from a few dozen boxes, or from annotators who boxed other frames differently, can be far off
(trained on the ``clean`` preset, whose boxes are at least 63 px on a side, the learned style blew the
narrow boxes of ``hard`` strings up to 63 px), and a second box per piece costs little; the ``strings``
source adds a third, tight one.

The ``strings`` source boxes the map twice: inside the embryo, and inside the cavity's core (the blastocoel
eroded by :data:`CORE_DISK` px, :func:`cavity_core`), and takes the two lists' boxes in turn. A string that
reaches the trophectoderm often joins, in the map, the lit rim along it, and its piece's box is then the
rim's; in the core it stands alone. On the transfer protocol's twelve cross worlds (seeds 2-5), the recall
@0.5 of the ingest sources with the learned source added rose on six and stayed the same on the other six
(README, "Proposal sources"). The second list costs about 0.06 s per 500 px frame.

The boxes come best first (the source is ranked, :func:`~cs_features.proposals.union.ranked_source`):
by the map's evidence for their piece or chain, the sum of its probabilities over the square root of
its pixel count (the mean probability times the square root of the size: long and sure strings first),
except that pieces longer than any box the annotators drew (1.5 times the longest training box) come
last, so where the frame's shared cap leaves the source fewer boxes than it found, it keeps its strongest.
A box overlapping a stronger one by IoU > :data:`OVERLAP` (the same piece at the next threshold, a
chain and its longest piece) is dropped, so the share goes to distinct boxes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from cs_features.boxes import clamp_boxes, nms
from cs_features.errors import ConfigError
from cs_features.proposals.config import ProposalConfig
from cs_features.proposals.union import PROPOSAL_SOURCES, ranked_source

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.7)
COLLINEAR_GAP = 60.0
"""Pieces of one string lie end to end with gaps of up to this many (canonical) pixels."""
COLLINEAR_ANGLE = 25.0
"""Collinear pieces point the same way within this many degrees."""
MIN_SEGMENT = 8.0
"""Pieces shorter than this many pixels along their axis are specks, not segments, and link to nothing."""
OVERLAP = 0.7
"""A box overlapping a stronger one by more IoU than this adds little: the slot goes to the next box."""
CORE_DISK = 13
"""The cavity's core, where the ``strings`` source boxes the map a second time: the blastocoel eroded by a disk
this many (canonical) pixels across, off the lit rim of the trophectoderm that a string's piece runs on into."""


@dataclass(frozen=True)
class BoxStyle:
    """How annotators box a string, relative to the tight box around its map pixels.

    Attributes:
        pad_fraction: margin added on each side, as a fraction of the tight box's longer side.
        min_pad: margin of at least this many (canonical) pixels.
        min_side: boxes are at least this wide and high.
        max_side: 1.5 times the longest side of the training boxes (0: unknown). Pieces and chains whose
            tight box is longer (the lit rim of the zona and trophectoderm, linked all round the
            cavity, makes boxes as big as the embryo) are ranked after every string-sized one.
    """

    pad_fraction: float = 0.08
    min_pad: int = 3
    min_side: int = 8
    max_side: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BoxStyle:
        from cs_features.config import check_keys

        check_keys(cls, data)
        return cls(**data)

    def pad(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` tight boxes padded by the style's margin and grown to ``min_side``."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        pad = np.maximum(self.pad_fraction * longer, self.min_pad)[:, None]
        out = boxes + np.concatenate([-pad, -pad, pad, pad], axis=1)
        centre = (out[:, :2] + out[:, 2:]) / 2
        half = np.maximum((out[:, 2:] - out[:, :2]) / 2, self.min_side / 2)
        return np.rint(np.concatenate([centre - half, centre + half], axis=1)).astype(np.int32)


TIGHT = BoxStyle(pad_fraction=0.0, min_pad=2, min_side=8)
"""The tight box around a piece's map pixels (2 px of margin): the hard-preset strings' learned margins
are near zero, and a margin learned on other frames or the default one can push a short string's box
below IoU 0.5."""


def learn_box_style(maps: list[np.ndarray], truth: list[np.ndarray], threshold: float = 0.5,
                    default: BoxStyle = BoxStyle()) -> BoxStyle:
    """The margin annotators leave around strings: median over the training boxes of the gap between
    each box and the tight box of the map pixels above ``threshold`` inside it; and the largest box they
    draw (``max_side``: 1.5 times the longest side of any training box).

    Args:
        maps: per frame, the ``(H, W)`` float32 string map (canonical scale).
        truth: per frame, ``(G, 4)`` ground-truth boxes at the same scale.

    Returns:
        the learned :class:`BoxStyle`; ``default`` with the learned ``max_side`` when no box holds map pixels.
    """
    fractions, minimum_sides, longest = [], [], 0
    for prob, boxes in zip(maps, truth):
        boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        if len(boxes):
            longest = max(longest, int(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).max()))
        for x1, y1, x2, y2 in boxes:
            rows, cols = np.nonzero(prob[y1:y2, x1:x2] >= threshold)
            if len(rows) < 3:
                continue
            tight = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)
            longer = max(tight[2] - tight[0], tight[3] - tight[1])
            gaps = np.array([tight[0], tight[1], (x2 - x1) - tight[2], (y2 - y1) - tight[3]])
            fractions.append(float(np.median(gaps)) / longer)
            minimum_sides.append(min(x2 - x1, y2 - y1))
    max_side = int(np.ceil(1.5 * longest))
    if not fractions:
        return replace(default, max_side=max_side)
    return BoxStyle(pad_fraction=float(np.clip(np.median(fractions), 0.0, 0.5)), min_pad=default.min_pad,
                    min_side=int(max(default.min_side, np.percentile(minimum_sides, 5))), max_side=max_side)


def map_proposals(prob: np.ndarray, style: BoxStyle = BoxStyle(), thresholds: tuple[float, ...] = THRESHOLDS,
                  link_distance: float = 24.0, min_pixels: int = 12,
                  extra_styles: tuple[BoxStyle, ...] = (), collinear_gap: float = COLLINEAR_GAP,
                  collinear_angle: float = COLLINEAR_ANGLE, overlap: float = OVERLAP) -> np.ndarray:
    """Boxes around the string map's pieces, chains of nearby pieces and chains of collinear pieces, at
    several thresholds, best first.

    Args:
        prob: ``(H, W)`` float32 string probability (canonical scale).
        style: how each piece's tight box is padded.
        link_distance: pieces whose pixels come within this many pixels are one string.
        min_pixels: pieces smaller than this are noise.
        extra_styles: further paddings; each piece gets one box per style.
        collinear_gap, collinear_angle: pieces whose ends come within ``collinear_gap`` pixels, pointing
            the same way and along the gap between them (within ``collinear_angle`` degrees), are one
            string (:func:`collinear_links`); 0 turns it off.
        overlap: a box whose IoU with a stronger one exceeds this is dropped (1 keeps all).

    Returns:
        ``(N, 4)`` int32 boxes ordered by evidence, strongest first (a piece's boxes in the order
        ``style``, ``*extra_styles``), pieces longer than ``style.max_side`` (when set) after all others;
        clamped to the frame; the caller de-duplicates and caps.
    """
    import cv2

    height, width = prob.shape
    tight_boxes, evidence = [], []
    # chains: pieces joined when the gap between them is below link_distance (a dilation by half of it)
    radius = max(1, int(round(link_distance / 2)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    for threshold in thresholds:
        binary = (prob >= threshold).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        pieces = np.array([k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_pixels], np.int64)
        if not len(pieces):
            continue
        sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=count)[pieces]
        areas = stats[pieces, cv2.CC_STAT_AREA].astype(np.float64)
        tight = np.stack([stats[pieces, 0], stats[pieces, 1], stats[pieces, 0] + stats[pieces, 2],
                          stats[pieces, 1] + stats[pieces, 3]], axis=1).astype(np.float64)
        tight_boxes.append(tight)
        evidence.append(sums / np.sqrt(areas))
        kept = np.isin(labels, pieces).astype(np.uint8)
        _, groups = cv2.connectedComponents(cv2.dilate(kept, kernel), connectivity=8)
        group_of_label = np.zeros(count, np.int64)
        inside = kept > 0
        group_of_label[labels[inside]] = groups[inside]  # a piece lies inside one dilated group
        group_of_piece = group_of_label[pieces]
        chains = [np.flatnonzero(group_of_piece == group) for group in np.unique(group_of_piece)]
        chains = [members for members in chains if len(members) > 1]
        if collinear_gap > 0:
            chains += collinear_links(labels, pieces, collinear_gap, collinear_angle)
        for members in chains:  # a chain's box spans its pieces' boxes; its evidence is theirs together
            chain = tight[members]
            tight_boxes.append(np.array([[chain[:, 0].min(), chain[:, 1].min(), chain[:, 2].max(),
                                          chain[:, 3].max()]]))
            evidence.append(np.array([sums[members].sum() / np.sqrt(areas[members].sum())]))
    if not tight_boxes:
        return np.zeros((0, 4), np.int32)
    tight, strength = np.concatenate(tight_boxes), np.concatenate(evidence)
    styles = (style, *extra_styles)
    boxes = np.stack([s.pad(tight) for s in styles], axis=1).reshape(-1, 4)  # a piece's styles side by side
    oversized = np.zeros(len(tight), bool)
    if style.max_side > 0:
        oversized = np.maximum(tight[:, 2] - tight[:, 0], tight[:, 3] - tight[:, 1]) > style.max_side
    order = np.lexsort((np.arange(len(boxes)), -np.repeat(strength, len(styles)), np.repeat(oversized, len(styles))))
    boxes = clamp_boxes(boxes[order], width, height)
    if overlap < 1 and len(boxes):
        boxes = boxes[np.sort(nms(boxes, -np.arange(len(boxes), dtype=np.float64), overlap))]
    return boxes


def collinear_links(labels: np.ndarray, pieces: np.ndarray, gap: float = COLLINEAR_GAP,
                    angle: float = COLLINEAR_ANGLE) -> list[np.ndarray]:
    """Chains of collinear pieces: a faint or beaded string breaks into pieces that lie end to end along
    one line, often further apart than :func:`map_proposals`' ``link_distance``, and linking by nearness
    alone over such gaps would join every fibre and cell boundary in the cavity.

    Each piece is a segment: its pixels' principal axis, from the lowest to the highest projection on it.
    Two pieces link when their nearest ends are within ``gap`` px, their axes are within ``angle`` degrees
    of each other, and (ends more than 3 px apart) the line between the ends is within ``angle`` degrees
    of both axes. Pieces shorter than :data:`MIN_SEGMENT` along their axis link to nothing.

    Args:
        labels: ``(H, W)`` connected-component labels; pieces: the labels taken into account.

    Returns:
        index arrays into ``pieces``: every linked pair, and every group of three or more linked pieces.
    """
    from scipy.spatial import cKDTree

    if len(pieces) < 2:
        return []
    rows, cols = np.nonzero(labels)
    index = np.full(int(labels.max()) + 1, -1, np.int64)
    index[pieces] = np.arange(len(pieces))
    owner = index[labels[rows, cols]]
    rows, cols, owner = rows[owner >= 0].astype(np.float64), cols[owner >= 0].astype(np.float64), owner[owner >= 0]
    count = np.bincount(owner, minlength=len(pieces)).astype(np.float64)
    cx = np.bincount(owner, cols, len(pieces)) / count
    cy = np.bincount(owner, rows, len(pieces)) / count
    dx, dy = cols - cx[owner], rows - cy[owner]
    sxx = np.bincount(owner, dx * dx, len(pieces))
    syy = np.bincount(owner, dy * dy, len(pieces))
    sxy = np.bincount(owner, dx * dy, len(pieces))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # principal axis of each piece
    ux, uy = np.cos(theta), np.sin(theta)
    projection = dx * ux[owner] + dy * uy[owner]
    low = np.full(len(pieces), np.inf)
    high = np.full(len(pieces), -np.inf)
    np.minimum.at(low, owner, projection)
    np.maximum.at(high, owner, projection)
    axis = np.stack([ux, uy], 1)
    cos_limit = np.cos(np.deg2rad(angle))
    # ends within reach of each other, of different pieces; per pair of pieces its nearest two ends
    ends = np.concatenate([np.stack([cx + low * ux, cy + low * uy], 1),
                           np.stack([cx + high * ux, cy + high * uy], 1)])  # piece k's ends: k and k + P
    close = cKDTree(ends).query_pairs(gap, output_type="ndarray")
    close = close[close[:, 0] % len(pieces) != close[:, 1] % len(pieces)] if len(close) else close
    if not len(close):
        return []
    vector = ends[close[:, 1]] - ends[close[:, 0]]
    length = np.hypot(vector[:, 0], vector[:, 1])
    first, second = close[:, 0] % len(pieces), close[:, 1] % len(pieces)
    swap = first > second
    first, second = np.where(swap, second, first), np.where(swap, first, second)
    order = np.lexsort((length, second, first))
    first, second, vector, length = first[order], second[order], vector[order], length[order]
    nearest = np.r_[True, (first[1:] != first[:-1]) | (second[1:] != second[:-1])]
    first, second, vector, length = first[nearest], second[nearest], vector[nearest], length[nearest]
    unit = vector / np.maximum(length, 1e-9)[:, None]
    parallel = np.abs(np.sum(axis[first] * axis[second], 1)) >= cos_limit
    along = (np.abs(np.sum(unit * axis[first], 1)) >= cos_limit) & (np.abs(np.sum(unit * axis[second], 1)) >= cos_limit)
    segment = (high - low) >= MIN_SEGMENT  # a speck has no axis to line up
    linked = parallel & ((length <= 3) | along) & segment[first] & segment[second]
    first, second = first[linked], second[linked]
    chains = [np.array([a, b]) for a, b in zip(first.tolist(), second.tolist())]
    parent = np.arange(len(pieces))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in zip(first.tolist(), second.tolist()):
        parent[root(a)] = root(b)
    groups = np.array([root(k) for k in range(len(pieces))])
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if len(members) > 2:
            chains.append(members)
    return chains


@ranked_source
@PROPOSAL_SOURCES.register("strings")
def strings_source(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """Boxes around the string map of ``config.strings_model`` inside the embryo (:func:`interior_string_map`),
    strongest first, each piece padded with the model's learned box style, with the plain default one and
    tight (:data:`TIGHT`); taken in turn with the boxes of the map inside the cavity's core (:func:`cavity_core`)."""
    if not config.strings_model:
        raise ConfigError("the 'strings' proposal source needs proposals.strings_model: a folder written by "
                          "`csf train strings`")
    _, style = _string_model(config.strings_model)
    return _styled_boxes(interior_string_map(image, low_texture_mask, config.strings_model), style, low_texture_mask)


_LAST_MAP: dict = {}


def interior_string_map(image: np.ndarray, low_texture_mask: np.ndarray | None, directory: str) -> np.ndarray:
    """``(H, W)`` float32 string map of the model in ``directory`` over a preprocessed ``(H, W)`` uint8 frame,
    inside the embryo and 0 elsewhere (the zona rim and medium light up too, and strings live in the cavity).

    Only the interior's pixels are classified: the rest would be thrown away (the same map, half the time).
    The last frame's map is kept, so the ``strings`` source and the ranking of one frame
    (:mod:`cs_features.strings.framing`) compute it once.
    """
    import hashlib

    from cs_features.embryo import embryo_interior

    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    if low_texture_mask is not None:
        digest.update(np.ascontiguousarray(low_texture_mask, bool).tobytes())
    key = (str(directory), image.shape, str(image.dtype), digest.hexdigest())
    cached = _LAST_MAP.get(key)
    if cached is not None:
        return cached
    model, _ = _string_model(directory)
    inside = embryo_interior(low_texture_mask, image.shape)
    prob = model.predict_map(image.astype(np.float32) / np.float32(255.0), where=inside)
    prob.flags.writeable = False  # shared by whoever asks for this frame's map
    _LAST_MAP.clear()
    _LAST_MAP[key] = prob
    return prob


def string_boxes(prob: np.ndarray, low_texture_mask: np.ndarray | None, style: BoxStyle) -> np.ndarray:
    """The ``strings`` source's raw boxes from a frame's string map, strongest first: the map inside the
    embryo, each piece boxed in ``style``, the default style and tight, taken in turn with those of the map
    inside the cavity's core."""
    from cs_features.embryo import embryo_interior

    inside = embryo_interior(low_texture_mask, prob.shape)
    return _styled_boxes(np.where(inside, prob, np.float32(0.0)).astype(np.float32), style, low_texture_mask)


def _styled_boxes(prob: np.ndarray, style: BoxStyle, low_texture_mask: np.ndarray | None) -> np.ndarray:
    """:func:`map_proposals` of a map already zero outside the embryo, in ``style``, the default and tight,
    taken in turn with those of the map inside the cavity's core (:func:`cavity_core`; none without a mask),
    so both lists reach the cap's share."""
    extra = tuple(s for s in (BoxStyle(), TIGHT) if s != style)
    boxes = map_proposals(prob, style, extra_styles=extra)
    core = cavity_core(low_texture_mask)
    if core is None:
        return boxes
    inner = map_proposals(np.where(core, prob, np.float32(0.0)).astype(np.float32), style, extra_styles=extra)
    return alternate(boxes, inner)


def cavity_core(low_texture_mask: np.ndarray | None) -> np.ndarray | None:
    """``(H, W)`` bool blastocoel (:func:`cs_features.embryo.cavity`) eroded by a disk :data:`CORE_DISK` pixels
    across (the blastocoel itself where that leaves nothing); None without a mask.

    A string that reaches the trophectoderm often joins, in the map, the lit rim along it: its piece is then
    the rim's, and the piece's box as big as the embryo. Inside the core the string's piece stands alone.
    """
    from cs_features.embryo import cavity
    from cs_features.strings.peak import core

    if low_texture_mask is None:
        return None
    return core(cavity(np.asarray(low_texture_mask, bool)), side=CORE_DISK)


def alternate(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(N + M, 4)`` the rows of two best-first box lists taken in turn, ``first[0], second[0], first[1], ...``,
    the longer one's rest at the end; exact repeats keep their first place only."""
    first, second = np.asarray(first).reshape(-1, 4), np.asarray(second).reshape(-1, 4)
    both = min(len(first), len(second))
    out = np.concatenate([np.stack([first[:both], second[:both]], axis=1).reshape(-1, 4), first[both:],
                          second[both:]]).astype(np.int32)
    if not len(out):
        return out
    _, keep = np.unique(out, axis=0, return_index=True)
    return out[np.sort(keep)]


_MODELS: dict[str, tuple] = {}


def _string_model(directory: str) -> tuple:
    """The string-map model in ``directory`` and its box style, loaded once per process."""
    from cs_features.strings.model import StringMapModel, read_string_map_config

    if directory not in _MODELS:
        style = BoxStyle.from_dict(read_string_map_config(directory).get("box_style") or {})
        _MODELS[directory] = (StringMapModel.load(directory), style)
    return _MODELS[directory]
