"""The string map's framing of a box: its evidence (strength) and how well the box frames the map's string (fit)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.boxes import iou_matrix
from cs_features.errors import ConfigError
from cs_features.proposals import ProposalConfig
from cs_features.strings.framing import MapFraming, box_framing, framed_p, ranking_string_model


def _planted_map() -> np.ndarray:
    """A 300 x 300 map: a string from (100, 100) to (200, 160) at 0.9, a speck at (40, 250) at 0.7, faint noise."""
    prob = np.random.default_rng(0).uniform(0.0, 0.2, (300, 300)).astype(np.float32)
    cv2.line(prob, (100, 100), (200, 160), 0.9, 3)
    cv2.circle(prob, (40, 250), 3, 0.7, -1)
    return prob


def test_a_box_that_frames_the_string_fits_and_pieces_or_loose_boxes_do_not():
    prob = _planted_map()
    tight, half, loose, empty, speck = [98, 98, 203, 163], [98, 98, 150, 132], [40, 40, 260, 220], [220, 20, 280, 80], \
        [37, 247, 44, 254]
    strength, fit = box_framing(prob, np.array([tight, half, loose, empty, speck]))
    assert fit[0] > 0.9
    assert fit[1] < 0.6  # half of the string: its object runs on past the box
    assert fit[2] < 0.35  # the string fills a sixth of the box
    assert fit[3] == 0.0 and strength[3] < 0.2  # nothing above the threshold in the box
    assert fit[4] > 0.9 and strength[4] == pytest.approx(0.7, abs=1e-6)
    assert strength[0] == pytest.approx(0.9, abs=1e-6) and strength[1] == pytest.approx(0.9, abs=1e-6)
    assert strength[2] < strength[0]  # the strongest 3 % of a large box reach into the faint background


def test_the_object_is_read_within_the_context_window_only():
    prob = np.zeros((400, 400), np.float32)
    cv2.line(prob, (20, 200), (380, 200), 1.0, 3)  # a long line: a box around a short stretch of it
    box = np.array([[180, 198, 220, 203]])  # the line's 5 rows
    _, narrow = box_framing(prob, box, MapFraming(context=0.0))
    _, wide = box_framing(prob, box, MapFraming(context=2.0))
    assert narrow[0] == pytest.approx(1.0)  # with no context the piece inside is the whole object
    assert wide[0] == pytest.approx(40 / 200)  # two box widths each side: the line fills the 200 px window


def test_empty_and_outside_boxes_give_zero_and_shapes_are_checked():
    prob = _planted_map()
    strength, fit = box_framing(prob, np.array([[50, 50, 50, 80], [400, 400, 500, 500]]))
    assert strength.tolist() == [0.0, 0.0] and fit.tolist() == [0.0, 0.0]
    assert box_framing(prob, np.zeros((0, 4)))[0].shape == (0,)
    with pytest.raises(ValueError, match="must be"):
        box_framing(np.zeros((3, 4, 5)), np.array([[0, 0, 2, 2]]))


def test_framed_p_is_the_geometric_mean_of_both_models():
    np.testing.assert_allclose(framed_p(np.array([0.81, 1.0, 0.0]), np.array([1.0, 0.25, 0.9])), [0.9, 0.5, 0.0])


def test_a_box_around_one_bead_of_a_faint_string_fits_poorly_where_the_beads_join():
    prob = np.zeros((300, 300), np.float32)
    cv2.line(prob, (50, 150), (250, 150), 0.4, 3)  # a faint string: under 0.5 along its length ...
    for x in range(50, 251, 40):
        cv2.circle(prob, (x, 150), 3, 0.8, -1)  # ... with beads above it
    bead, whole = [127, 147, 134, 154], [47, 147, 254, 154]  # the third bead (x 130)
    _, sure_only = box_framing(prob, np.array([bead, whole]), MapFraming(join_fraction=0.0))
    _, both = box_framing(prob, np.array([bead, whole]))
    assert sure_only[0] > 0.9  # at 0.5 the bead is an object of its own, and its box frames it
    # at the fainter level (0.4 x the bead's 0.8, 0.3) the beads join: the object runs on past the bead's box
    # and fills the context window (half the box's width on each side), of which the box is half
    assert both[0] == pytest.approx(0.5)
    assert both[1] > 0.9 and sure_only[1] > 0.9  # the whole string's box touches every bead: it fits at both


def test_the_fainter_level_follows_the_box_strength_so_a_sure_string_keeps_apart_from_faint_clutter():
    prob = np.zeros((300, 300), np.float32)
    cv2.line(prob, (100, 150), (200, 150), 0.95, 3)  # a string the map is sure of ...
    cv2.rectangle(prob, (200, 100), (260, 200), 0.35, -1)  # ... touching a faint patch (a cell edge's glow)
    ys, xs = np.nonzero(prob > 0.5)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])  # the string's own extent
    strength, fit = box_framing(prob, box)
    assert strength[0] == pytest.approx(0.95) and fit[0] == pytest.approx(1.0)  # level 0.4: the patch stays out
    _, joined = box_framing(prob, box, MapFraming(join_fraction=0.3))  # level 0.285, 0.3 on the grid: it joins
    assert joined[0] < 0.5


def _iou(a, b) -> float:
    return float(iou_matrix(np.array([a]), np.array([b]))[0, 0])


def _extent(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def test_a_box_over_a_string_and_scattered_objects_fits_only_the_objects_along_the_string():
    prob = np.zeros((300, 300), np.float32)
    cv2.line(prob, (100, 150), (200, 150), 0.9, 3)  # a string: the box's anchor, most evidence inside the box
    string = _extent(prob > 0.5)
    cv2.circle(prob, (150, 105), 4, 0.8, -1)  # a speck well off the string's line (a piece of the lit rim)
    cv2.line(prob, (110, 115), (120, 135), 0.8, 2)  # a short stroke across it (a surface cell boundary)
    everything = _extent(prob > 0.5)
    box = [95, 98, 206, 156]  # framing all three: their joint extent fills most of it
    _, every = box_framing(prob, np.array([box]), MapFraming(line_cone=0.0))
    _, along = box_framing(prob, np.array([box]))
    assert every[0] == pytest.approx(_iou(box, everything), abs=1e-6) and every[0] > 0.8
    assert along[0] == pytest.approx(_iou(box, string), abs=1e-6) and along[0] < 0.1  # the string alone
    assert box_framing(prob, np.array([string]))[1][0] == pytest.approx(1.0)  # its own box still frames it


def test_the_pieces_of_a_broken_string_join_along_its_line_even_where_it_bends():
    prob = np.zeros((300, 300), np.float32)
    arc = [(x, 150 + 0.0015 * (x - 150) ** 2) for x in range(30, 271)]  # a gentle arc, lowest at x 150
    for start in range(30, 260, 20):  # dashes 12 px long, 8 px apart: objects of their own at every level
        points = np.rint([arc[x - 30] for x in range(start, start + 12)]).astype(np.int32)
        cv2.polylines(prob, [points], False, 0.9, 3)
    broken = _extent(prob > 0.5)
    cv2.circle(prob, (150, 60), 3, 0.9, -1)  # and a speck far off the arc, inside the stretched box below
    stretched = [broken[0], 57, broken[2], broken[3]]
    _, fit = box_framing(prob, np.array([broken, stretched]))
    assert fit[0] == pytest.approx(1.0)  # every dash lies within the cone about the anchor dash's axis
    assert fit[1] == pytest.approx(_iou(stretched, broken), abs=1e-6) and fit[1] < 0.5  # the speck stays out
    _, every = box_framing(prob, np.array([stretched]), MapFraming(line_cone=0.0))
    assert every[0] == pytest.approx(1.0)  # counting every touched object, the stretched box fits as well


@pytest.mark.parametrize("field, value", [("threshold", 0.0), ("threshold", 1.0), ("join_fraction", -0.1),
                                          ("join_fraction", 1.5), ("context", -0.5), ("line_cone", -0.1),
                                          ("top_fraction", 0.0), ("top_fraction", 1.5)])
def test_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        MapFraming(**{field: value})


def test_only_a_store_proposing_with_strings_is_ranked_by_its_map():
    assert ranking_string_model(ProposalConfig(method="filament,strings", strings_model="m")) == "m"
    assert ranking_string_model(ProposalConfig(method="filament,ss-fast", strings_model="m")) is None
    assert ranking_string_model(ProposalConfig(method="strings", strings_model="")) is None
    assert ranking_string_model(None) is None
