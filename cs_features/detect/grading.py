"""Grading a detection run against ground truth: what ``metrics.json`` holds.

Only labelled frames are graded (a frame without a label file is unlabelled and left out). Every figure
comes from :mod:`cs_features.metrics`: frame- and embryo-level AUROC/AP/F1 of the frame score
(:data:`~cs_features.detect.chain.FRAME_SCORE`), COCO AP of the reported boxes ranked by their region
score ``p * IoU`` (``p`` with the attachment and transience factors, and ``p`` and ``IoU`` read with the string
map where it ranks boxes; the ``score`` in detections_coco.json),
and the confusion tables at the decision rule.
"""

from __future__ import annotations

import math

import numpy as np

from cs_features.detect.chain import FRAME_SCORE

IOU_THRESHOLDS = (0.25, 0.5)


def grade(detections: list, positive_p: float) -> dict | None:
    """Figures of the labelled frames among ``detections`` (read frames only); None when none is labelled."""
    from cs_features.metrics import binary_report, embryo_report

    labelled = [d for d in detections if d.truth is not None]
    if not labelled:
        return None
    truth = np.array([d.truth for d in labelled], np.int8)
    scores = np.array([d.frame_score for d in labelled], np.float64)
    embryos = [d.embryo_id for d in labelled]
    frame = binary_report(truth, scores, positive_p)
    embryo = embryo_report(embryos, truth, scores, positive_p)
    unlabelled = [d for d in detections if d.truth is None]
    return {
        "frame_score": FRAME_SCORE,
        "decision_rule": f"a frame is detected CS when its frame score >= positive_p = {positive_p:g}; "
                         "an embryo is CS when any of its frames is (detected and in truth)",
        "positive_p": positive_p,
        "frames": {"labelled": len(labelled), "unlabelled": len(unlabelled),
                   "unlabelled_stems": [d.stem for d in unlabelled],
                   "label_errors": {d.stem: d.label_error for d in unlabelled if d.label_error}},
        "frame_level": frame,
        "embryo_level": {**embryo, "embryo_score": "the highest frame score among its labelled frames"},
        "boxes": box_figures(labelled),
        "confusion": {"frames": confusion_table(frame["confusion"]),
                      "embryos": confusion_table(embryo["confusion"])},
    }


def box_figures(labelled: list) -> dict:
    """COCO AP25/AP50 of the reported boxes of labelled frames, in the order of detections_coco.json."""
    from cs_features.metrics import coco_average_precision

    detections = [(np.array([b["box"] for b in d.boxes], np.int32).reshape(-1, 4),
                   np.array([b["score"] for b in d.boxes], np.float64)) for d in labelled]
    truth = [np.array(d.truth_boxes, np.int32).reshape(-1, 4) for d in labelled]
    out: dict = {"ranked_by": "rank score p x IoU, p with the attachment and transience factors, p and IoU read "
                              "with the string map where the head's store proposes with the learned 'strings' "
                              "source (the 'score' of detections_coco.json)",
                 "matching": "COCO: per frame, boxes in score order each take the unmatched ground-truth box "
                             "of highest IoU >= the threshold; 101-point interpolated precision "
                             "(pycocotools-compatible; ground truth in ground_truth_coco.json)",
                 "strings": int(sum(len(t) for t in truth)), "boxes": int(sum(len(b) for b, _ in detections))}
    for threshold in IOU_THRESHOLDS:
        ap = coco_average_precision(detections, truth, threshold)
        out[f"ap{round(threshold * 100)}"] = None if math.isnan(ap) else ap
    if not out["strings"]:
        out["ap_undefined_reason"] = "no ground-truth string among the labelled frames"
    return out


def confusion_table(counts: dict) -> dict:
    """``tp/fp/tn/fn`` counts as a table: truth rows, detected columns."""
    return {"truth CS": {"detected CS": counts["tp"], "detected no CS": counts["fn"]},
            "truth no CS": {"detected CS": counts["fp"], "detected no CS": counts["tn"]}}


def graded_summary(metrics: dict) -> dict:
    """The few figures the terminal shows."""
    frame, embryo, boxes = metrics["frame_level"], metrics["embryo_level"], metrics["boxes"]
    return {"labelled_frames": metrics["frames"]["labelled"], "unlabelled_frames": metrics["frames"]["unlabelled"],
            "frame": {k: frame[k] for k in ("auroc", "average_precision", "f1", "confusion")},
            "embryo": {"n": embryo["n"], **{k: embryo[k] for k in ("auroc", "average_precision", "f1", "confusion")}},
            "ap25": boxes["ap25"], "ap50": boxes["ap50"], "strings": boxes["strings"],
            "positive_p": metrics["positive_p"]}
