"""The embryo's outline when the GLCM mask misses most of it: the circle found on the frame marks its ring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.embryo import OUTLINE_TOLERANCE, cavity, embryo_interior, embryo_outline, mark_outline
from cs_features.frame import FramePipeline
from cs_features.settings import StoreSettings
from cs_features.texture import low_texture

SIDE, CENTRE, RADIUS = 500, (250.0, 250.0), 200.0


def _disk(circle, shape=(SIDE, SIDE), share: float = 1.0) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.circle(out, (int(round(circle[0])), int(round(circle[1]))), int(round(share * circle[2])), 1, -1)
    return out > 0


def _annulus(inner: float, outer: float, degrees: tuple[float, float] = (-180.0, 180.0)) -> np.ndarray:
    y, x = np.mgrid[:SIDE, :SIDE]
    r = np.hypot(x - CENTRE[0], y - CENTRE[1])
    angle = np.degrees(np.arctan2(y - CENTRE[1], x - CENTRE[0]))
    return (r >= inner) & (r <= outer) & (angle >= degrees[0]) & (angle <= degrees[1])


def _cover(mask: np.ndarray, circle) -> float:
    hull = embryo_outline(mask)
    disk = _disk(circle, mask.shape)
    return 0.0 if hull is None else float((hull & disk).sum() / disk.sum())


def test_a_mask_that_kept_one_stretch_of_trophectoderm_gets_the_whole_embryo_back():
    # Low texture everywhere but a 60-degree stretch of the ring: the hull is a sliver of the embryo.
    mask = ~_annulus(165, 200, (-60, 0))
    circle = (*CENTRE, RADIUS)
    assert _cover(mask, circle) < 0.2
    marked = mark_outline(mask, circle)
    assert marked is not mask and marked.dtype == bool and marked.shape == mask.shape
    assert _cover(marked, circle) > 0.97
    # Only the ring was marked: every pixel it changed lies within a few px inside the circle.
    changed = mask & ~marked
    radii = np.hypot(*(np.nonzero(changed)[::-1] - np.array(CENTRE)[:, None]))
    assert radii.min() >= RADIUS - 8 and radii.max() <= RADIUS + 1
    # The stages that read the outline now see the embryo: the interior and the cavity cover its middle.
    middle = _disk(circle, share=0.7)
    assert embryo_interior(marked, marked.shape)[middle].mean() > 0.99
    assert cavity(marked)[middle].mean() > 0.99
    assert embryo_interior(mask, mask.shape)[middle].mean() < 0.2


def test_a_mask_whose_outline_holds_the_circle_is_returned_as_it_is():
    mask = ~_annulus(180, 203)
    assert mark_outline(mask, (*CENTRE, RADIUS)) is mask
    # A circle a little larger than the outline (within the tolerance) changes nothing either.
    assert mark_outline(mask, (*CENTRE, RADIUS + 0.5 * OUTLINE_TOLERANCE * RADIUS)) is mask
    # No embryo found: nothing to mark.
    sliver = ~_annulus(165, 200, (-60, 0))
    assert mark_outline(sliver, None) is sliver


def test_an_embryo_cut_by_the_crop_edges_is_marked_inside_the_frame():
    mask = ~_annulus(165, 200, (-60, 0))
    circle = (250.0, 250.0, 240.0)  # runs out of the 500-px frame on four sides
    marked = mark_outline(mask, circle)
    inside = _disk(circle)
    hull = embryo_outline(marked)
    assert (hull & inside).sum() / inside.sum() > 0.95


def test_a_mask_without_any_texture_gets_the_circle_as_its_outline():
    mask = np.ones((SIDE, SIDE), bool)
    assert embryo_outline(mask) is None
    circle = (*CENTRE, RADIUS)
    assert _cover(mark_outline(mask, circle), circle) > 0.97


@pytest.mark.parametrize("bad", [(250.0, 250.0, 3.0), (float("nan"), 250.0, 200.0), (5000.0, 5000.0, 100.0)])
def test_a_circle_too_small_unreadable_or_outside_the_frame_changes_nothing(bad):
    mask = ~_annulus(165, 200, (-60, 0))
    assert mark_outline(mask, bad) is mask


def test_the_frame_pipeline_marks_a_faint_hard_frame_whose_glcm_mask_missed_the_embryo():
    # A `hard` preset frame (seed 5, embryo 17) whose GLCM mask keeps one stretch of trophectoderm.
    from cs_features.synth import render_embryo, synth_preset

    image = render_embryo(17, 5, True, synth_preset("hard"))[1].image
    pipeline = FramePipeline(StoreSettings())
    frame = pipeline.prepare(image, "E0017_f01")
    circle = frame.scale.canonical_circle
    assert circle is not None
    _, glcm = low_texture(frame.preprocessed, pipeline.settings.texture)
    assert _cover(glcm, circle) < 0.5
    assert _cover(frame.low_texture_mask, circle) > 0.9
    np.testing.assert_array_equal(frame.low_texture_mask, mark_outline(glcm, circle))
