"""The transience prior: a line the embryo's other frames show at the same place loses its score; a line
that comes and goes with the time-lapse keeps it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.errors import ConfigError
from cs_features.ranking import store_transience_factors
from cs_features.ridges import line_pixels, line_strength
from cs_features.transience import EmbryoLines, TransiencePrior, transience_factors


def _time_lapse(size: int = 400, frames: int = 3):
    """An embryo drifting (6 px a frame) and growing (1 % a frame) over ``frames`` frames: a textured ring,
    a fibre that moves with it in every frame, a string in frame 1 only. Returns the images (float32),
    their embryo circles ``(cx, cy, r)`` and, for frame 1, ``{name: box}``."""
    s = size / 400
    rng = np.random.default_rng(0)
    images, circles, boxes = [], [], {}
    for t in range(frames):
        cx, cy, zoom = size / 2 + 6 * s * t, size / 2 - 4 * s * t, 1 + 0.01 * t

        def at(x, y, cx=cx, cy=cy, zoom=zoom):
            return round(cx + x * s * zoom), round(cy + y * s * zoom)

        image = np.full((size, size), 0.5, np.float32)
        ring = np.zeros((size, size), np.uint8)
        cv2.circle(ring, at(0, 0), round(170 * s * zoom), 1, -1)
        cv2.circle(ring, at(0, 0), round(145 * s * zoom), 0, -1)
        image[ring > 0] += rng.normal(0, 0.08, int(ring.sum())).astype(np.float32)
        lines = np.zeros((size, size), np.float32)
        width = max(1, round(2 * s))
        fibre, string = (at(-80, -60), at(-20, 40)), (at(100, 10), at(20, 70))
        cv2.line(lines, *fibre, 1.0, width)
        if t == 1:
            cv2.line(lines, *string, 1.0, width)
            pad = round(5 * s)
            boxes = {name: np.array([[min(a[0], b[0]) - pad, min(a[1], b[1]) - pad,
                                      max(a[0], b[0]) + pad, max(a[1], b[1]) + pad]], np.int32)
                     for name, (a, b) in (("fibre", fibre), ("string", string))}
        image += 0.3 * cv2.GaussianBlur(lines, (0, 0), 0.8 * s)
        images.append(np.clip(image, 0, 1))
        circles.append((cx, cy, 170 * s * zoom))
    return images, circles, boxes


def _factors(size: int = 400, prior: TransiencePrior | None = None) -> dict[str, float]:
    prior = prior or TransiencePrior()
    images, circles, boxes = _time_lapse(size)
    lines = EmbryoLines(prior)
    strengths = [line_strength(image) for image in images]
    for t, (strength, circle) in enumerate(zip(strengths, circles)):
        lines.add(f"f{t}", strength, circle)
    names = list(boxes)
    found = line_pixels(strengths[1], np.concatenate([boxes[n] for n in names]), prior.line_quantile)
    return dict(zip(names, transience_factors(lines.background("f1"), found, prior).tolist()))


@pytest.mark.parametrize("size", [250, 400, 800])
def test_a_line_in_every_frame_loses_its_score_a_line_in_one_frame_keeps_it(size):
    factors = _factors(size)
    assert factors["string"] > 0.8, factors
    assert factors["fibre"] < 0.2, factors


def test_without_tolerance_the_embryo_drift_hides_the_fibres_transience():
    # the dilation is what lets a line that moved with the embryo (and its outline's fit) count as there
    assert _factors(prior=TransiencePrior(tolerance=0.0))["fibre"] > _factors()["fibre"]


def test_background_is_the_lowest_of_the_other_frames():
    lines = EmbryoLines(TransiencePrior(tolerance=0.0))
    maps = [np.full((20, 30), value, np.float32) for value in (3.0, 1.0, 2.0)]
    for t, strength in enumerate(maps):
        lines.add(f"f{t}", strength, (15.0, 10.0, 8.0))
    assert len(lines) == 3
    assert lines.background("f0")[10, 15] == pytest.approx(1.0)  # f1 is the lowest other frame
    assert lines.background("f1")[10, 15] == pytest.approx(2.0)  # f1 itself does not count
    assert lines.background("f2")[10, 15] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="twice"):
        lines.add("f0", maps[0], (15.0, 10.0, 8.0))


def test_a_frame_alone_unaligned_or_disabled_gets_one():
    images, circles, boxes = _time_lapse()
    strength = line_strength(images[1])
    found = line_pixels(strength, np.concatenate(list(boxes.values())), 0.97)
    alone = EmbryoLines()
    alone.add("f1", strength, circles[1])
    assert alone.background("f1") is None
    assert (transience_factors(None, found, TransiencePrior()) == 1).all()
    unaligned = EmbryoLines()
    unaligned.add("f0", line_strength(images[0]), None)  # embryo not found: not in the background
    unaligned.add("f1", strength, circles[1])
    assert len(unaligned) == 1 and unaligned.background("f0") is None and unaligned.background("f1") is None
    lines = EmbryoLines()
    for t, image in enumerate(images):
        lines.add(f"f{t}", line_strength(image), circles[t])
    off = TransiencePrior(enabled=False)
    assert (transience_factors(lines.background("f1"), found, off) == 1).all()
    outside = line_pixels(strength, np.array([[500, 500, 520, 520]], np.int32), 0.97)
    assert transience_factors(lines.background("f1"), outside, TransiencePrior()).tolist() == [1.0]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="floor"):
        TransiencePrior(floor=0.0)
    with pytest.raises(ConfigError, match="tolerance"):
        TransiencePrior(tolerance=-0.1)


def test_stored_proposals_get_the_factors_of_their_embryos_frames(tiny_store):
    from cs_features.heads.data import load_proposals
    from cs_features.store import FeatureStore
    from cs_features.strings.data import frame_rows, iter_frames

    store = FeatureStore(str(tiny_store))
    proposals = load_proposals(store, "classic", "test")
    stored = store_transience_factors(store, proposals.frame_id, proposals.box)
    prior = TransiencePrior()
    assert stored.shape == (len(proposals),) and (stored >= prior.floor).all() and (stored <= 1).all()
    assert (stored < 1).any()
    # one embryo by hand: every stored frame of it in the background, whatever its split
    embryo = next(r["embryo_id"] for r in frame_rows(store) if r["frame_id"] == proposals.frame_id[0])
    rows = [r for r in frame_rows(store) if r["embryo_id"] == embryo]
    circles = {r["frame_id"]: r for r in store.read(
        "frames", ["frame_id", "embryo_x", "embryo_y", "embryo_radius", "embryo_found"]).to_pylist()}
    lines, strengths = EmbryoLines(prior), {}
    for frame, row in zip(iter_frames(store, rows), rows):
        scale, c = row["scale"] or 1.0, circles[frame.frame_id]
        strengths[frame.frame_id] = line_strength(frame.image)
        circle = ((c["embryo_x"] * scale, c["embryo_y"] * scale, c["embryo_radius"] * scale)
                  if c["embryo_found"] else None)
        lines.add(frame.frame_id, strengths[frame.frame_id], circle)
    assert len(lines) > 1
    for row in rows:
        mine = proposals.frame_id == row["frame_id"]
        if mine.any():
            canonical = np.rint(proposals.box[mine] * (row["scale"] or 1.0))
            found = line_pixels(strengths[row["frame_id"]], canonical, prior.line_quantile)
            by_hand = transience_factors(lines.background(row["frame_id"]), found, prior)
            np.testing.assert_allclose(stored[mine], by_hand)
    with pytest.raises(ValueError, match="no frame 'nope'"):
        store_transience_factors(store, np.array(["nope"]), np.zeros((1, 4), np.int32))
    off = store_transience_factors(store, proposals.frame_id, proposals.box, TransiencePrior(enabled=False))
    assert (off == 1).all()
