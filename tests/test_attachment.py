"""The attachment prior: lines touching the cavity's edge keep their score, floating lines and edge ridges lose it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.attachment import AttachmentPrior, attachment_factors
from cs_features.errors import ConfigError
from cs_features.ranking import store_attachment_factors


def _embryo(size: int = 400):
    """A grey frame with a textured ring (zona + TE) and ICM, its low-texture mask, and three lines:
    a string from the ICM into the cavity, a fibre floating in the cavity's middle, a ridge 4 px
    inside the cavity's edge. Returns (image float32, mask bool, {name: box}) at ``size`` px."""
    s = size / 400
    c = size // 2
    image = np.full((size, size), 0.5, np.float32)
    mask = np.ones((size, size), bool)
    ring = np.zeros((size, size), np.uint8)
    cv2.circle(ring, (c, c), round(180 * s), 1, -1)
    cv2.circle(ring, (c, c), round(150 * s), 0, -1)
    cv2.circle(ring, (c + round(140 * s), c), round(45 * s), 1, -1)  # the ICM
    textured = ring.astype(bool)
    mask[textured] = False
    noise = np.random.default_rng(0).normal(0, 0.08, image.shape).astype(np.float32)
    image[textured] += noise[textured]
    lines = np.zeros((size, size), np.float32)
    width = max(1, round(2 * s))
    string = (c + round(102 * s), c + round(10 * s)), (c + round(20 * s), c + round(60 * s))  # out of the ICM
    fibre = (c - round(60 * s), c - round(40 * s)), (c - round(10 * s), c + round(20 * s))
    cv2.line(lines, *string, 1.0, width)
    cv2.line(lines, *fibre, 1.0, width)
    cv2.ellipse(lines, (c, c), (round(146 * s), round(146 * s)), 0, 150, 200, 1.0, width)
    image += 0.3 * cv2.GaussianBlur(lines, (0, 0), 0.8 * s)
    arc = np.argwhere(lines[:, : c - round(100 * s)] > 0)
    boxes = {
        "string": np.array([[string[1][0] - 4, string[0][1] - 4, string[0][0] + 4, string[1][1] + 4]]),
        "fibre": np.array([[fibre[0][0] - 4, fibre[0][1] - 4, fibre[1][0] + 4, fibre[1][1] + 4]]),
        "ridge": np.array([[arc[:, 1].min() - 3, arc[:, 0].min() - 3, arc[:, 1].max() + 4, arc[:, 0].max() + 4]]),
    }
    return np.clip(image, 0, 1), mask, {k: v.astype(np.int32) for k, v in boxes.items()}


def _factors(size: int = 400, prior: AttachmentPrior | None = None) -> dict[str, float]:
    image, mask, boxes = _embryo(size)
    names = list(boxes)
    values = attachment_factors(image, mask, np.concatenate([boxes[n] for n in names]), prior)
    return dict(zip(names, values.tolist()))


def test_a_string_touching_the_edge_keeps_its_score_a_floating_fibre_and_an_edge_ridge_lose_it():
    rule = _factors(prior=AttachmentPrior(weight=1.0))  # the rule alone
    assert rule["string"] > 0.9, rule
    assert rule["fibre"] < 0.2, rule
    assert rule["ridge"] <= AttachmentPrior().hug_factor + 1e-6, rule
    factors = _factors()  # the default weight: the same order, each box's loss halved
    assert factors["string"] > factors["ridge"] and factors["string"] > factors["fibre"], factors
    for name in rule:
        assert factors[name] == pytest.approx(1 - 0.5 * (1 - rule[name]), abs=1e-6), (name, factors, rule)
        assert factors[name] >= 0.5


def test_weight_zero_turns_the_rule_off_and_a_bad_weight_is_refused():
    assert all(v == 1.0 for v in _factors(prior=AttachmentPrior(weight=0.0)).values())
    with pytest.raises(ConfigError, match="weight"):
        AttachmentPrior(weight=1.5)


@pytest.mark.parametrize("size", [250, 800])
def test_the_factors_do_not_depend_on_the_pixel_scale(size):
    base, scaled = _factors(400), _factors(size)
    assert all(abs(base[k] - scaled[k]) < 0.1 for k in base), (base, scaled)


def test_no_embryo_or_a_disabled_prior_gives_one():
    image, mask, boxes = _embryo()
    all_boxes = np.concatenate(list(boxes.values()))
    assert (attachment_factors(image, None, all_boxes) == 1).all()
    assert (attachment_factors(image, np.ones_like(mask), all_boxes) == 1).all()  # no textured outline
    assert (attachment_factors(image, mask, all_boxes, AttachmentPrior(enabled=False)) == 1).all()
    assert attachment_factors(image, mask, np.zeros((0, 4), np.int32)).shape == (0,)
    outside = attachment_factors(image, mask, np.array([[500, 500, 520, 520]], np.int32))
    assert outside.tolist() == [1.0]


def test_bad_input_is_refused():
    image, mask, boxes = _embryo()
    with pytest.raises(ValueError, match="differ in shape"):
        attachment_factors(image, mask[:-1], boxes["string"])
    with pytest.raises(ConfigError, match="decay"):
        AttachmentPrior(decay=0.0)


def test_stored_proposals_get_the_factors_of_their_frames(tiny_store):
    from cs_features.heads.data import load_proposals
    from cs_features.store import FeatureStore
    from cs_features.strings.data import frame_rows, iter_frames

    store = FeatureStore(str(tiny_store))
    proposals = load_proposals(store, "classic", "test")
    stored = store_attachment_factors(store, proposals.frame_id, proposals.box)
    assert stored.shape == (len(proposals),) and (stored > 0).all() and (stored <= 1).all()
    assert (stored < 1).any()
    rows = [r for r in frame_rows(store) if r["split"] == "test"][:2]
    for frame, row in zip(iter_frames(store, rows), rows):
        mine = proposals.frame_id == frame.frame_id
        canonical = np.rint(proposals.box[mine] * (row["scale"] or 1.0))
        np.testing.assert_allclose(stored[mine], attachment_factors(frame.image, frame.mask, canonical))
    with pytest.raises(ValueError, match="no frame 'nope'"):
        store_attachment_factors(store, np.array(["nope"]), np.zeros((1, 4), np.int32))
