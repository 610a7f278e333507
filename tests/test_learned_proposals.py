"""Learned proposals: boxes from a string map, padded as the annotators box strings."""

from __future__ import annotations

import cv2
import numpy as np

from cs_features.boxes import iou_matrix
from cs_features.proposals.learned import BoxStyle, learn_box_style, map_proposals


def _map_with_strings(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (300, 300) string map with two beaded strings (broken into pieces) and specks; their true boxes."""
    rng = np.random.default_rng(seed)
    prob = (rng.random((300, 300)) * 0.2).astype(np.float32)
    truth = []
    for (x1, y1, x2, y2) in ((40, 60, 200, 110), (220, 80, 250, 260)):
        line = np.zeros_like(prob)
        cv2.line(line, (x1 + 6, y1 + 6), (x2 - 6, y2 - 6), 1.0, 3)
        beads = np.zeros_like(line)
        for t in np.linspace(0, 1, 9)[::2]:  # every other stretch visible: a string broken into beads
            cx, cy = int(x1 + 6 + t * (x2 - x1 - 12)), int(y1 + 6 + t * (y2 - y1 - 12))
            cv2.circle(beads, (cx, cy), 12, 1.0, -1)
        prob = np.maximum(prob, line * beads * 0.9)
        truth.append([x1, y1, x2, y2])
    for _ in range(5):
        x, y = rng.integers(10, 290, 2)
        prob[y:y + 2, x:x + 2] = 0.95  # specks: fewer pixels than a piece of string
    return prob, np.array(truth, np.int32)


def test_broken_strings_get_one_whole_box_each():
    prob, truth = _map_with_strings()
    boxes = map_proposals(prob, BoxStyle(pad_fraction=0.0, min_pad=6))
    best = iou_matrix(truth, boxes).max(axis=1)
    assert (best >= 0.7).all(), best
    assert len(np.unique(boxes, axis=0)) < 40  # specks make no boxes; a few thresholds x pieces and chains
    # best first: a whole string (a chain of its beads) outranks each of its beads
    assert iou_matrix(boxes[:1], truth).max() >= 0.7


def test_boxes_come_strongest_first():
    prob = np.zeros((200, 200), np.float32)
    prob[20:24, 20:180] = 0.9   # a long, sure string
    prob[120:123, 60:80] = 0.35  # a short, faint piece
    boxes = map_proposals(prob, BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1))
    long_first = iou_matrix(boxes, np.array([[20, 20, 180, 24]])).ravel() > 0.5
    assert long_first[0] and np.flatnonzero(~long_first).min() > np.flatnonzero(long_first).max()


def test_the_box_style_is_learned_from_the_training_boxes():
    prob, truth = _map_with_strings(1)
    tight = map_proposals(prob, BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1), thresholds=(0.5,))
    style = learn_box_style([prob], [truth])
    assert style.min_pad == BoxStyle().min_pad and 0.0 <= style.pad_fraction <= 0.2
    padded = map_proposals(prob, style, thresholds=(0.5,))
    assert iou_matrix(truth, padded).max(axis=1).mean() >= iou_matrix(truth, tight).max(axis=1).mean()
    # no map pixel in the box: the default margin, and the largest box annotators draw (1.5 x 15 px)
    assert learn_box_style([np.zeros((50, 50), np.float32)], [np.array([[5, 5, 20, 20]])]) == \
        BoxStyle(max_side=23)
    assert style.max_side == int(np.ceil(1.5 * 180))  # the longest training box: the second string, 180 px tall


def test_an_empty_map_proposes_nothing():
    assert map_proposals(np.zeros((64, 64), np.float32)).shape == (0, 4)


def test_extra_styles_box_every_piece_once_more():
    prob = np.zeros((120, 120), np.float32)
    prob[20:80, 60:63] = 0.9  # a narrow vertical string
    wide = BoxStyle(pad_fraction=0.0, min_pad=2, min_side=60)
    only_wide = map_proposals(prob, wide, thresholds=(0.5,))
    both = map_proposals(prob, wide, thresholds=(0.5,), extra_styles=(BoxStyle(),))
    assert len(only_wide) == 1 and len(both) == 2
    assert (both[0] == only_wide[0]).all() and both[1].tolist() != only_wide[0].tolist()
    assert both[1][2] - both[1][0] < 20 <= only_wide[0][2] - only_wide[0][0]  # the plain box stays narrow


def test_pieces_larger_than_any_training_box_rank_last():
    prob = np.zeros((300, 300), np.float32)
    cv2.circle(prob, (150, 150), 120, 0.95, 3)  # a lit rim all round the cavity: one big, sure piece
    prob[100:103, 120:170] = 0.6                 # a string-sized piece
    unlimited = map_proposals(prob, BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1), thresholds=(0.5,))
    limited = map_proposals(prob, BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1, max_side=100), thresholds=(0.5,))
    rim = np.array([[27, 27, 274, 274]])
    assert iou_matrix(unlimited[:1], rim).max() > 0.9  # by evidence alone the rim comes first
    assert iou_matrix(limited[:1], np.array([[120, 100, 170, 103]])).max() > 0.9
    assert iou_matrix(limited[-1:], rim).max() > 0.9  # ranked last, not dropped


def _beads_along(prob: np.ndarray, start, end, pieces: int, visible: float, value: float = 0.8) -> None:
    """Draw ``pieces`` visible stretches (``visible`` of each step) of the line ``start`` -> ``end``."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    for k in range(pieces):
        a = start + (end - start) * k / pieces
        b = start + (end - start) * (k + visible) / pieces
        cv2.line(prob, tuple(int(v) for v in a), tuple(int(v) for v in b), value, 3)


def test_collinear_pieces_far_apart_make_one_box():
    # a faint string: four 20-px stretches with 40-px gaps, further apart than link_distance
    prob = np.zeros((300, 300), np.float32)
    _beads_along(prob, (30, 150), (270, 150), 4, 0.34)
    rows, cols = np.nonzero(prob)
    whole = np.array([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]])  # all four stretches
    style = BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1)
    linked = map_proposals(prob, style, thresholds=(0.5,))
    alone = map_proposals(prob, style, thresholds=(0.5,), collinear_gap=0)
    assert iou_matrix(whole, linked).max() > 0.9
    assert iou_matrix(whole, alone).max() < 0.5
    assert len(alone) == 4  # each stretch boxed on its own, and no chain of them without collinear links


def test_side_by_side_and_crossing_pieces_are_not_collinear():
    from scipy import ndimage

    from cs_features.proposals.learned import collinear_links

    prob = np.zeros((300, 300), np.float32)
    cv2.line(prob, (40, 100), (100, 100), 0.9, 3)   # a horizontal piece
    cv2.line(prob, (40, 130), (100, 130), 0.9, 3)   # parallel, beside it: not end to end
    cv2.line(prob, (130, 60), (130, 90), 0.9, 3)    # perpendicular, its end 30 px from the first one's
    cv2.line(prob, (150, 100), (210, 100), 0.9, 3)  # the first one's continuation, 50 px on
    cv2.circle(prob, (240, 100), 3, 0.9, -1)        # a speck in line (7 px): no axis, no link
    labels, count = ndimage.label(prob >= 0.5, structure=np.ones((3, 3)))
    chains = collinear_links(labels, np.arange(1, count + 1))
    linked = {tuple(sorted(int(labels[y, x]) for x, y in pair)) for pair in [((70, 100), (180, 100))]}
    found = {tuple(sorted(int(k) + 1 for k in chain)) for chain in chains}
    assert found == linked


def test_near_duplicate_boxes_give_their_slot_to_the_next():
    prob = np.zeros((200, 200), np.float32)
    prob[50:54, 20:180] = np.linspace(0.45, 0.95, 160)[None, :]  # thresholds cut it at different lengths
    style = BoxStyle(pad_fraction=0.0, min_pad=0, min_side=1)
    every = map_proposals(prob, style, overlap=1.0)
    kept = map_proposals(prob, style, overlap=0.7)
    assert len(kept) < len(every)
    ious = iou_matrix(kept, kept)
    np.fill_diagonal(ious, 0)
    assert ious.max() <= 0.7
    assert (kept[0] == every[0]).all()  # the strongest box stays first


def test_a_string_joined_to_the_lit_rim_gets_its_own_box_from_the_cavity_core():
    """In the map, a string that reaches the trophectoderm runs on into the rim the map lights along it: the
    whole map's piece is the rim's, boxed as big as the embryo; inside the cavity's core the string stands
    alone, and the source takes the two lists' boxes in turn."""
    from cs_features.proposals.learned import TIGHT, cavity_core, string_boxes

    size = 300
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    ring = (radius > 100) & (radius < 140)  # zona and trophectoderm: textured, False in the low-texture mask
    mask = ~ring
    prob = np.zeros((size, size), np.float32)
    prob[(radius >= 96) & (radius <= 101)] = 0.9  # the rim along the trophectoderm's inner side, lit all round
    prob[148:152, 50:150] = 0.8  # a string from the trophectoderm into the cavity, joined to the rim
    string = np.array([[48, 144, 152, 156]])  # as an annotator boxes it
    style = BoxStyle(pad_fraction=0.0, min_pad=2, min_side=8)

    whole = map_proposals(prob, style)
    assert iou_matrix(string, whole).max() < 0.5  # its piece is the rim's
    core = cavity_core(mask)
    assert core is not None and core[150, 150] and not core[150, 51] and cavity_core(None) is None
    boxes = string_boxes(prob, mask, style)
    assert iou_matrix(string, boxes).max() >= 0.5
    assert boxes[0].tolist() == whole[0].tolist()  # the whole map's strongest box still comes first
    unmasked = map_proposals(prob, style, extra_styles=(BoxStyle(), TIGHT))  # no mask: no cavity, the map once
    np.testing.assert_array_equal(string_boxes(prob, None, style), unmasked)


def test_alternate_takes_two_ranked_lists_in_turn_without_repeats():
    from cs_features.proposals.learned import alternate

    a = np.array([[0, 0, 10, 10], [1, 1, 9, 9], [2, 2, 8, 8]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10]])
    assert alternate(a, b).tolist() == [[0, 0, 10, 10], [5, 5, 15, 15], [1, 1, 9, 9], [2, 2, 8, 8]]
    assert alternate(a, np.zeros((0, 4))).tolist() == a.tolist()
    assert alternate(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 4)
