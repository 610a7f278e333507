"""Reading datasets: folder layouts, manifests and YOLO label files (``scan``).
"""

from cs_features.datasets.scan import (  # noqa: F401
    SPLITS, LABELS, DEFAULT_EMBRYO_REGEX, FrameSource, Problem, DatasetScan, scan_dataset, read_manifest,
    check_no_leakage, read_yolo_labels,
)
