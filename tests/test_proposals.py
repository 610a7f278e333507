import numpy as np
import pytest

from cs_features.proposals import ProposalConfig, finalize_boxes, propose, union_proposals, weak_labels
from cs_features.proposals.union import _share_cap


@pytest.fixture(scope="module")
def frame():
    import cv2

    rng = np.random.default_rng(1)
    image = np.full((160, 200), 120, np.uint8)
    cv2.circle(image, (100, 80), 50, 170, -1)
    cv2.rectangle(image, (10, 10), (40, 60), 60, -1)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["ss-grey", "ss-fast", "ss-single"])
def test_selective_search_sorted_deterministic(frame, method):
    config = ProposalConfig(method=method, max_proposals=50, min_area=16)
    result = propose(frame, config)
    boxes = result.boxes
    again = propose(frame, config).boxes
    assert set(result.sources.tolist()) == {method}
    assert boxes.dtype == np.int32 and boxes.shape[1] == 4 and 0 < len(boxes) <= 50
    np.testing.assert_array_equal(boxes, again)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 160).all()
    keys = [tuple(b) for b in boxes]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_ss_grey_boxes_in_frame_pixels_at_any_size():
    """ss-grey segments a shrunk frame; its boxes come back in the frame's pixels, at any frame size."""
    import cv2

    def planted(size):
        image = np.full((size, size), 90, np.uint8)
        x1, y1, x2, y2 = (int(size * f) for f in (0.30, 0.40, 0.55, 0.70))
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), 200, -1)
        return image, np.array([[x1, y1, x2, y2]])

    from cs_features.boxes import iou_matrix

    for size, max_side in ((250, 300), (600, 300), (1500, 300), (600, 0)):
        image, truth = planted(size)
        config = ProposalConfig(method="ss-grey", grey_max_side=max_side, min_area=16)
        boxes = propose(image, config).boxes
        assert len(boxes) and (boxes[:, 2] <= size).all() and (boxes[:, 3] <= size).all()
        # The planted block is found to within the rounding of the shrink (1 px of the shrunk frame).
        factor = min(1.0, max_side / size) if max_side else 1.0
        best = boxes[iou_matrix(truth, boxes)[0].argmax()]
        assert np.abs(best - truth[0]).max() <= np.ceil(1 / factor), (size, best, truth)


def test_ss_grey_bad_settings_named():
    from cs_features.errors import ConfigError

    image = np.full((64, 64), 100, np.uint8)
    with pytest.raises(ConfigError, match="grey_ks"):
        propose(image, ProposalConfig(method="ss-grey", grey_ks=()))
    assert ProposalConfig.from_dict(ProposalConfig(grey_ks=(10, 20)).to_dict() | {"grey_ks": [10, 20]}) == \
        ProposalConfig(grey_ks=(10, 20))


def test_finalize_clamps_drops_dedupes_caps():
    raw = np.array([[-10, -10, 20, 20], [0, 0, 20, 20], [5, 5, 7, 7], [30, 30, 90, 35], [10, 10, 60, 60]])
    out = finalize_boxes(raw, 50, 50, ProposalConfig(min_area=10, min_side=4, max_proposals=10))
    np.testing.assert_array_equal(out, [[0, 0, 20, 20], [10, 10, 50, 50], [30, 30, 50, 35]])
    many = np.array([[x, y, x + 10, y + 10] for x in range(0, 40, 2) for y in range(0, 40, 2)])
    capped = finalize_boxes(many, 50, 50, ProposalConfig(min_area=10, max_proposals=7))
    assert len(capped) == 7
    np.testing.assert_array_equal(capped,
                                  finalize_boxes(many[::-1], 50, 50, ProposalConfig(min_area=10, max_proposals=7)))


def test_a_ranked_source_keeps_its_first_boxes():
    ranked = np.array([[30, 30, 45, 45], [0, 0, 20, 20], [30, 30, 45, 45], [5, 5, 25, 25], [10, 10, 30, 30]])
    out = finalize_boxes(ranked, 50, 50, ProposalConfig(min_area=10, max_proposals=3), ranked=True)
    np.testing.assert_array_equal(out, [[30, 30, 45, 45], [0, 0, 20, 20], [5, 5, 25, 25]])  # order kept, dup dropped
    many = np.array([[x, 0, x + 10, 10] for x in range(0, 400, 2)], np.int32)
    best_first = (many + np.array([0, 100, 0, 100], np.int32))[::-1]  # other boxes, rightmost first
    union = union_proposals([many, best_first], ["ss-fast", "strings"], ProposalConfig(max_proposals=20, nms_iou=0.99),
                            ranked=[False, True])
    picked = union.boxes[union.sources == "strings"]
    # the ranked source's share of the cap holds its first (here: rightmost) boxes
    assert len(picked) == 10 and picked[:, 0].min() >= 300
    hashed = union_proposals([many, best_first], ["ss-fast", "strings"], ProposalConfig(max_proposals=20, nms_iou=0.99))
    assert hashed.boxes[hashed.sources == "strings"][:, 0].min() < 300


def test_unknown_method_lists_known(frame):
    with pytest.raises(KeyError, match="ss-fast"):
        propose(frame, ProposalConfig(method="magic"))


def test_weak_labels_thresholds():
    proposals = np.array([[0, 0, 10, 10], [0, 0, 10, 30], [0, 0, 10, 60], [50, 50, 60, 60]])
    gt = np.array([[0, 0, 10, 20]])
    max_iou, label = weak_labels(proposals, gt, 0.2, 0.1)
    np.testing.assert_allclose(max_iou, [0.5, 2 / 3, 1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(label, [1, 1, 1, 0])
    _, label = weak_labels(proposals, gt, 0.5, 0.34)
    np.testing.assert_array_equal(label, [-1, 1, 0, 0])


def test_weak_labels_cs_free_and_unknown():
    proposals = np.array([[0, 0, 10, 10]])
    assert weak_labels(proposals, np.zeros((0, 4)))[1].tolist() == [0]
    iou, label = weak_labels(proposals, None)
    assert label.tolist() == [-1] and np.isnan(iou).all()


def test_union_drops_cross_source_duplicates_and_records_sources():
    a = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.int32)
    b = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 60, 70]], np.int32)
    union = union_proposals([a, b], ["ss-fast", "filament"], ProposalConfig(nms_iou=0.85, max_proposals=10))
    # [1, 0, 10, 10] overlaps the ss-fast box [0, 0, 10, 10] at IoU 0.9 > 0.85: a duplicate.
    np.testing.assert_array_equal(union.boxes, [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]])
    assert union.sources.tolist() == ["ss-fast", "ss-fast", "filament"]


def test_share_cap():
    assert _share_cap([100, 100], 300) == [100, 100]
    assert _share_cap([500, 40], 300) == [260, 40]
    assert _share_cap([500, 500, 1], 301) == [150, 150, 1]
    assert _share_cap([0, 7], 5) == [0, 5]


def test_union_respects_cap():
    many = np.array([[x, 0, x + 10, 10] for x in range(0, 400, 2)], np.int32)
    few = np.array([[0, 100, 5, 200], [100, 100, 105, 200]], np.int32)
    union = union_proposals([many, few], ["ss-fast", "filament"], ProposalConfig(max_proposals=20, nms_iou=0.99))
    assert len(union) == 20 and (union.sources == "filament").sum() == 2
