"""Datasets on disk: the folder layout (``layout``), finding frames with split, label and embryo
(``scan``), manifest CSVs (``manifest``) and YOLO label files (``yolo``).
"""

from cs_features.datasets.layout import LABELS, MANIFEST_FIELDS, SPLITS
from cs_features.datasets.manifest import read_manifest, write_manifest
from cs_features.datasets.scan import (
    DEFAULT_EMBRYO_REGEX,
    DatasetScan,
    FrameSource,
    Problem,
    check_no_leakage,
    scan_dataset,
)
from cs_features.datasets.yolo import read_yolo_labels, yolo_lines

__all__ = ["DEFAULT_EMBRYO_REGEX", "LABELS", "MANIFEST_FIELDS", "SPLITS", "DatasetScan", "FrameSource", "Problem",
           "check_no_leakage", "read_manifest", "read_yolo_labels", "scan_dataset", "write_manifest", "yolo_lines"]
