"""Evaluation: frame- and embryo-level binary metrics (``binary``), region and detection metrics
(``detection``), proposal recall (``recall``).
"""

from cs_features.metrics.binary import (  # noqa: F401
    labels_to_binary, undefined_reason, auroc, average_precision, confusion_at, threshold_metrics,
    youden_threshold, binary_report, embryo_scores, embryo_report,
)
from cs_features.metrics.detection import (  # noqa: F401
    RECALL_POINTS, region_metrics, iou_mae, group_by_frame, best_box_hit_rate,
    nms_detections, coco_average_precision, detection_ap,
)
from cs_features.metrics.recall import (  # noqa: F401
    RECALL_IOUS, add_counts, proposal_recall, recall_by_source, recall_summary, string_best_iou,
)
