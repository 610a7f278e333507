import numpy as np
import pytest

from cs_features.boxes import (
    as_boxes,
    box_areas,
    boxes_to_yolo,
    clamp_boxes,
    inside_matrix,
    iou_matrix,
    nms,
    sort_boxes,
    validate_boxes,
    yolo_to_boxes,
)


def test_iou_hand_worked():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 10]])
    iou = iou_matrix(a, b)
    assert iou.shape == (1, 4) and iou.dtype == np.float32
    np.testing.assert_allclose(iou[0], [25 / 175, 1.0, 0.0, 0.5], rtol=1e-6)


def test_iou_empty_inputs():
    assert iou_matrix(np.zeros((0, 4)), np.array([[0, 0, 1, 1]])).shape == (0, 1)


def test_inside_hand_worked():
    a = np.array([[0, 0, 10, 10], [2, 2, 4, 4], [3, 3, 3, 9]])
    b = np.array([[5, 0, 15, 10], [0, 0, 20, 20]])
    share = inside_matrix(a, b)
    assert share.shape == (3, 2) and share.dtype == np.float32
    np.testing.assert_allclose(share, [[0.5, 1.0], [0.0, 1.0], [0.0, 0.0]], rtol=1e-6)  # an empty box: 0
    assert inside_matrix(np.zeros((0, 4)), b).shape == (0, 2)


def test_areas_and_clamp():
    boxes = clamp_boxes(np.array([[-5, -5, 10, 10], [95, 95, 120, 130]]), 100, 100)
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 10], [95, 95, 100, 100]])
    np.testing.assert_array_equal(box_areas(boxes), [100, 25])


def test_sort_is_canonical_and_dedupes():
    boxes = np.array([[5, 1, 9, 9], [0, 0, 3, 3], [5, 1, 9, 9], [0, 0, 2, 8]])
    np.testing.assert_array_equal(sort_boxes(boxes), [[0, 0, 2, 8], [0, 0, 3, 3], [5, 1, 9, 9]])
    rng = np.random.default_rng(0)
    shuffled = boxes[rng.permutation(len(boxes))]
    np.testing.assert_array_equal(sort_boxes(shuffled), sort_boxes(boxes))


def test_nms_keeps_best_and_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 9]])
    scores = np.array([0.5, 0.9, 0.3, 0.1])
    keep = nms(boxes, scores, iou_threshold=0.5)
    np.testing.assert_array_equal(keep, [1, 2])


def test_nms_inside_drops_a_piece_of_a_kept_box_and_only_that():
    whole = [10, 10, 30, 200]                       # a long string's box
    piece = [12, 20, 28, 60]                        # a quarter of it: IoU 0.17, all of it inside
    bigger = [0, 0, 60, 220]                        # holds the kept box: not a piece of it
    beside = [50, 100, 90, 140]                     # a quarter of it inside the bigger one
    boxes = np.array([whole, piece, bigger, beside])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(nms(boxes, scores, 0.3), [0, 1, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.3, inside=0.9), [0, 2, 3])
    np.testing.assert_array_equal(nms(boxes[[1, 0]], scores[:2], 0.3, inside=0.9), [0, 1])  # the piece ranks first
    with pytest.raises(ValueError, match="inside"):
        nms(boxes, scores, 0.3, inside=0.0)


def test_nms_length_mismatch():
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        nms(np.zeros((2, 4)), np.zeros(1), 0.5)


def test_validate_boxes_names_offender():
    with pytest.raises(ValueError, match=r"boxes\[1\] = \[0, 0, 120, 5\].*100x50"):
        validate_boxes(np.array([[0, 0, 5, 5], [0, 0, 120, 5]]), 100, 50)
    with pytest.raises(ValueError, match="empty"):
        validate_boxes(np.array([[3, 3, 3, 5]]), 100, 50)
    with pytest.raises(ValueError, match="shape"):
        as_boxes(np.zeros((3, 3)))


def test_yolo_round_trip():
    boxes = np.array([[10, 20, 50, 41], [0, 0, 500, 500]], np.int32)
    back = yolo_to_boxes(boxes_to_yolo(boxes, 500, 400), 500, 400)
    np.testing.assert_array_equal(back, [[10, 20, 50, 41], [0, 0, 500, 400]])


def test_nms_in_blocks_keeps_what_one_pass_keeps(monkeypatch):
    import cs_features.boxes as boxes_module

    rng = np.random.default_rng(0)
    corner = rng.integers(0, 200, (700, 2))
    boxes = np.concatenate([corner, corner + rng.integers(5, 60, (700, 2))], axis=1)
    scores = rng.random(700).round(2)  # ties: broken by index either way
    one_pass, one_pass_inside = nms(boxes, scores, 0.5), nms(boxes, scores, 0.5, inside=0.8)
    monkeypatch.setattr(boxes_module, "NMS_BLOCK", 64)
    blocks, blocks_inside = nms(boxes, scores, 0.5), nms(boxes, scores, 0.5, inside=0.8)
    assert 100 < len(one_pass) < 700 and len(one_pass_inside) < len(one_pass)
    np.testing.assert_array_equal(blocks, one_pass)
    np.testing.assert_array_equal(blocks_inside, one_pass_inside)
