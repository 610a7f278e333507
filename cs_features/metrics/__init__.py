"""Evaluation: frame- and embryo-level binary metrics (``binary``), region and detection metrics
(``detection``), proposal recall (``recall``), intervals by resampling embryos (``bootstrap``).
"""

from cs_features.metrics.binary import (  # noqa: F401
    auroc,
    average_precision,
    binary_report,
    confusion_at,
    embryo_report,
    embryo_scores,
    labels_to_binary,
    sensitivity_threshold,
    threshold_metrics,
    undefined_reason,
    youden_threshold,
)
from cs_features.metrics.bootstrap import embryo_bootstrap  # noqa: F401
from cs_features.metrics.detection import (  # noqa: F401
    RECALL_POINTS,
    best_box_hit_rate,
    coco_average_precision,
    detection_ap,
    group_by_frame,
    iou_mae,
    nms_detections,
    region_metrics,
)
from cs_features.metrics.recall import (  # noqa: F401
    RECALL_IOUS,
    add_counts,
    proposal_recall,
    recall_by_source,
    recall_summary,
    string_best_iou,
)
