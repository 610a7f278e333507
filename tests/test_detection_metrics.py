"""Region, frame and detection metrics against hand-worked cases and pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from cs_features.metrics import (
    best_box_hit_rate,
    coco_average_precision,
    detection_ap,
    group_by_frame,
    iou_mae,
    nms_detections,
    proposal_recall,
    region_metrics,
)

GT = np.array([[10, 10, 30, 30]], np.int32)  # area 400


def test_region_metrics_hand_worked():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    out = region_metrics(y, p, np.array([0.6, 0.0, np.nan, 0.1]), np.array([0.5, 0.2, 0.9, 1.4]))
    assert out["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["auroc"] == pytest.approx(0.75)
    assert out["iou_mae"] == pytest.approx((0.1 + 0.2 + 0.9) / 3)  # NaN row skipped, 1.4 clamped to 1


def test_region_metrics_single_class_is_undefined_as_in_binary_metrics_and_length_mismatch_raises():
    from cs_features.metrics import auroc

    out = region_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    assert out["average_precision"] is None and out["auroc"] is None
    assert auroc(np.zeros(3), np.array([0.1, 0.2, 0.3])) is None  # one convention for "undefined"
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        region_metrics(np.zeros(3), np.zeros(2))
    assert iou_mae(np.array([np.nan]), np.array([0.3])) is None


def test_best_box_hit_rate_hand_worked():
    frames = [
        # best box (score 0.9) is [10,10,30,20]: IoU 200/400 = 0.5 -> hit at 0.25 and 0.5
        (np.array([[10, 10, 30, 20], [0, 0, 5, 5]]), np.array([0.9, 0.1]), GT),
        # best box [10,10,20,20]: IoU 100/400 = 0.25 -> hit at 0.25 only (>= is inclusive)
        (np.array([[60, 60, 70, 70], [10, 10, 20, 20]]), np.array([0.2, 0.8]), GT),
        # best box misses although a worse one would hit
        (np.array([[10, 10, 30, 30], [50, 50, 60, 60]]), np.array([0.3, 0.4]), GT),
        (np.zeros((0, 4), np.int32), np.zeros(0), GT),  # no proposals: a miss
    ]
    out = best_box_hit_rate(frames, (0.25, 0.5))
    assert out == {"hit@0.25": 0.5, "hit@0.5": 0.25, "frames": 4}
    assert np.isnan(best_box_hit_rate([], (0.25,))["hit@0.25"])


def test_proposal_recall_hand_worked():
    frames = [
        (np.array([[10, 10, 30, 20], [0, 0, 4, 4]]), np.array([[10, 10, 30, 30], [40, 40, 50, 50]])),
        (np.array([[0, 0, 8, 8]]), np.zeros((0, 4), np.int32)),  # CS-free frame: counts for proposals only
        (np.array([[40, 40, 60, 60], [10, 10, 20, 20], [0, 0, 1, 1]]), np.array([[10, 10, 30, 30]])),
    ]
    out = proposal_recall(frames, (0.25, 0.5))
    # strings: IoU 0.5, 0 (none near [40,40,50,50]), 0.25
    assert out["strings"] == 3
    assert out["recall@0.25"] == pytest.approx(2 / 3) and out["recall@0.5"] == pytest.approx(1 / 3)
    assert out["proposals_per_frame"] == pytest.approx(2.0)


def test_coco_ap_hand_worked():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])
    # ranked: TP, FP, TP -> recall .5 .5 1, precision 1 .5 .667 -> envelope 1 .667 .667
    ap = coco_average_precision([(boxes, np.array([0.9, 0.8, 0.7]))], [gt], 0.5)
    assert ap == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101, abs=1e-9)
    assert coco_average_precision([(boxes, np.array([0.9, 0.8, 0.95]))], [gt], 0.5) == pytest.approx(1.0)
    # a second image without strings only adds false positives
    ap2 = coco_average_precision([(gt, np.array([0.5, 0.4])), (gt, np.array([0.9, 0.8]))], [gt, np.zeros((0, 4))], 0.5)
    # ranked: FP FP TP TP -> precision at recall .5 = 1/3, at 1 = 2/4 -> envelope .5 .5
    assert ap2 == pytest.approx(0.5, abs=1e-9)
    assert np.isnan(coco_average_precision([(boxes, np.ones(3))], [np.zeros((0, 4))], 0.5))
    assert coco_average_precision([(np.zeros((0, 4)), np.zeros(0))], [gt], 0.5) == 0.0


def test_one_detection_matches_one_string_only():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]])
    ap = coco_average_precision([(boxes, np.array([0.9, 0.8]))], [np.array([[0, 0, 10, 10]])], 0.5)
    assert ap == pytest.approx(1.0)  # the duplicate is a FP ranked after the only TP
    with pytest.raises(ValueError, match="detections for 1 images but ground truth for 2"):
        coco_average_precision([(boxes, np.ones(2))], [GT, GT], 0.5)


def test_nms_then_detection_ap():
    boxes = np.array([[10, 10, 30, 30], [11, 11, 31, 31], [60, 60, 80, 80]])
    kept_boxes, kept_scores = nms_detections(boxes, np.array([0.9, 0.8, 0.7]), 0.3)
    np.testing.assert_array_equal(kept_boxes, boxes[[0, 2]])
    np.testing.assert_allclose(kept_scores, [0.9, 0.7])
    out = detection_ap([(boxes, np.array([0.9, 0.8, 0.7]), GT)], (0.25, 0.5), nms_iou=0.3)
    assert out == {"ap25": pytest.approx(1.0), "ap50": pytest.approx(1.0)}
    # the far box ranked first: FP, TP (IoU 361/439), FP -> precision 1/2 at recall 1
    assert detection_ap([(boxes, np.array([0.7, 0.8, 0.9]), GT)], (0.5,), nms_iou=1.0)["ap50"] == pytest.approx(0.5)


def test_group_by_frame():
    groups = group_by_frame(np.array(["b", "a", "b", "c", "a"]))
    assert {k: v.tolist() for k, v in groups.items()} == {"a": [1, 4], "b": [0, 2], "c": [3]}
    assert group_by_frame(np.array([])) == {}


def _random_detection_problem(seed: int, n_images: int = 12):
    rng = np.random.default_rng(seed)
    detections, ground_truth = [], []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 4))
        xy = rng.integers(0, 150, (n_gt, 2))
        wh = rng.integers(5, 60, (n_gt, 2))
        gt = np.concatenate([xy, xy + wh], axis=1).astype(np.int32)
        jitter = [g + rng.integers(-8, 9, 4) for g in gt for _ in range(int(rng.integers(0, 3)))]
        xy = rng.integers(0, 150, (int(rng.integers(0, 6)), 2))
        noise = [np.concatenate([p, p + rng.integers(5, 60, 2)]) for p in xy]
        boxes = np.array(jitter + noise, np.int64).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        boxes = np.clip(boxes, 0, None).astype(np.int32)
        scores = np.round(rng.random(len(boxes)), 2)  # rounded: ties across images are exercised too
        detections.append((boxes, scores))
        ground_truth.append(gt)
    return detections, ground_truth


def _pycocotools_ap(detections, ground_truth, thresholds):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, ((boxes, scores), gt) in enumerate(zip(detections, ground_truth), start=1):
        images.append({"id": image_id, "width": 256, "height": 256})
        for g in gt:
            w, h = int(g[2] - g[0]), int(g[3] - g[1])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "bbox": [int(g[0]), int(g[1]), w, h], "area": w * h})
        for b, s in zip(boxes, scores):
            results.append({"image_id": image_id, "category_id": 1, "score": float(s),
                            "bbox": [int(b[0]), int(b[1]), int(b[2] - b[0]), int(b[3] - b[1])]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cs"}]}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.params.iouThrs = np.array(thresholds, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"]  # (T, R, K, A, M); area "all" = 0, maxDets 100 = last
    return [float(np.mean(precision[t, :, 0, 0, -1])) for t in range(len(thresholds))]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_ap_matches_pycocotools(seed):
    detections, ground_truth = _random_detection_problem(seed)
    assert sum(len(d[0]) for d in detections) > 5 and sum(len(g) for g in ground_truth) > 3
    expected = _pycocotools_ap(detections, ground_truth, [0.25, 0.5, 0.75])
    ours = [coco_average_precision(detections, ground_truth, t) for t in (0.25, 0.5, 0.75)]
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    assert len(set(np.round(ours, 6))) > 1  # the thresholds really differ on this problem
