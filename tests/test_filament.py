"""Filament proposals: ridge stage, path linking, boxes."""

from __future__ import annotations

import cv2
import numpy as np

from cs_features.boxes import iou_matrix
from cs_features.embryo import embryo_interior
from cs_features.proposals.filament import (
    FilamentConfig,
    filament_proposals,
    filament_skeleton,
    link_branches,
    path_boxes,
    skeleton_branches,
)
from cs_features.ridges import line_strength


def _noisy_line_frame(contrast=10.0, thickness=1, seed=0, gap=False):
    rng = np.random.default_rng(seed)
    image = np.full((200, 240), 120.0)
    line = np.zeros_like(image, np.uint8)
    cv2.line(line, (30, 60), (210, 150), 1, thickness, lineType=cv2.LINE_8)
    if gap:
        cv2.circle(line, (120, 105), 9, 0, -1)  # break the line in the middle
    image += contrast * line + rng.normal(0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), line.astype(bool)


def test_ridge_finds_faint_thin_line_in_noise():
    image, line = _noisy_line_frame(contrast=10, thickness=1)
    ridges = line_strength(image, (1.0, 1.5, 2.0))
    on_line = np.median(ridges[line])
    background = np.percentile(ridges[~cv2.dilate(line.astype(np.uint8), np.ones((9, 9))).astype(bool)], 99)
    assert on_line > 1.2 * background  # above 99% of the noise response


def test_skeleton_traces_planted_line_at_low_contrast():
    image, line = _noisy_line_frame(contrast=8, thickness=2, seed=1)
    skeleton = filament_skeleton(image, None, FilamentConfig())
    near_line = cv2.dilate(line.astype(np.uint8), np.ones((5, 5))).astype(bool)
    assert skeleton[near_line].sum() >= 0.8 * np.hypot(180, 90)  # most of the line's length found
    assert skeleton[~near_line].sum() < 0.2 * skeleton[near_line].sum()  # little else


def test_linking_joins_a_broken_line():
    image, _ = _noisy_line_frame(contrast=12, thickness=2, seed=2, gap=True)
    branches = skeleton_branches(filament_skeleton(image, None, FilamentConfig()), min_length=5)
    long_branches = [b for b in branches if len(b) > 40]
    assert len(long_branches) == 2  # the gap splits the line
    paths = link_branches(long_branches, max_distance=30, max_angle_deg=35)
    assert len(paths) == 1
    (r1, c1), (r2, c2) = paths[0].min(axis=0), paths[0].max(axis=0)
    assert abs(c1 - 30) <= 3 and abs(c2 - 210) <= 3 and abs(r1 - 60) <= 3 and abs(r2 - 150) <= 3


def test_linking_refuses_a_sharp_turn():
    a = np.array([[10, c] for c in range(10, 50)])
    b = np.array([[r, 55] for r in range(15, 60)])  # starts 5 px away, but at a right angle
    assert len(link_branches([a, b], max_distance=24, max_angle_deg=35)) == 2


def test_path_boxes_whole_and_sub_paths():
    path = np.array([[20, c] for c in range(10, 110)])  # horizontal, 100 px
    config = FilamentConfig(sub_fractions=(0.5,), pads=(2,), min_length=10)
    boxes = path_boxes([path], 200, 200, config)
    assert [8, 18, 112, 23] in boxes.tolist()  # whole path, padded by 2
    assert [8, 18, 62, 23] in boxes.tolist()  # first half
    assert len(boxes) == 1 + 3  # whole + halves starting at 0, 25, 50


def test_filament_proposals_cover_a_planted_string():
    image, line = _noisy_line_frame(contrast=10, thickness=2, seed=3)
    boxes = filament_proposals(image, None, FilamentConfig())
    ys, xs = np.nonzero(line)
    truth = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])
    assert iou_matrix(truth, boxes).max() >= 0.7


def test_embryo_interior_excludes_medium_and_ring():
    mask = np.ones((200, 200), bool)
    cv2.circle(mask.view(np.uint8), (100, 100), 75, 0, 40)  # a thick textured ring (zona + TE)
    interior = embryo_interior(mask, mask.shape)
    assert interior[100, 100] and not interior[5, 5] and not interior[100, 20]
    assert embryo_interior(None, (10, 10)).all()


def test_embryo_interior_keeps_a_string_whose_textured_band_survives_the_opening():
    """A wide or strongly textured string leaves a band in the low-texture mask thicker than the opening
    disk; the interior must still hold it (the cavity closes across the band), not cut the string out."""
    size = 500
    mask = np.ones((size, size), bool)
    cv2.circle(mask.view(np.uint8), (250, 250), 200, 0, 50)  # zona + trophectoderm ring
    cv2.circle(mask.view(np.uint8), (150, 250), 60, 0, -1)  # the inner cell mass
    mask[235:276, 210:420] = False  # the string's textured band, 41 px wide, from the ICM to the TE
    interior = embryo_interior(mask, mask.shape)
    assert interior[255, 230:400].all()  # the string's whole length
    assert not interior[250, 150] and not interior[5, 5] and not interior[250, 35]  # ICM, medium, ring


def test_embryo_interior_keeps_a_string_band_that_notches_the_cavity_of_a_small_crop():
    """On a crop of 280 px, a string's textured band (one GLCM window + the erosion wide, whatever the
    frame's size) from the trophectoderm into the cavity is wider than 10 % of the side; the interior's
    closing is sized by the band, not the frame, so the string stays while the ICM stays out."""
    size = 280
    mask = np.ones((size, size), bool)
    cv2.circle(mask.view(np.uint8), (140, 140), 115, 0, 30)  # zona + trophectoderm ring
    cv2.circle(mask.view(np.uint8), (80, 140), 45, 0, -1)  # the inner cell mass
    mask[150:260, 170:210] = False  # a 40-px band from the ring's bottom towards the centre
    interior = embryo_interior(mask, mask.shape)
    assert interior[160:215, 190].all()  # the string's free end and most of its length
    assert not interior[140, 60] and not interior[3, 3]  # the ICM's middle, the medium
