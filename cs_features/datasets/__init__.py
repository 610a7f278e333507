"""Datasets on disk: the layouts read (``folders``, ours; ``yolo_dataset``, Ultralytics; ``flat``, a folder
with a label CSV), finding frames with split, label and embryo whatever the layout (``scan``), embryo ids
from file names (``names``), label CSVs (``labels_csv``), the automatic grouped split (``split``), manifest
CSVs (``manifest``) and YOLO label files (``yolo``).
"""

from cs_features.datasets.labels_csv import LABEL_VALUES, parse_label, read_labels_csv
from cs_features.datasets.layout import LABELS, MANIFEST_FIELDS, SPLITS
from cs_features.datasets.manifest import read_manifest, write_manifest
from cs_features.datasets.names import parse_frame_name
from cs_features.datasets.scan import (
    DEFAULT_EMBRYO_REGEX,
    LAYOUTS,
    DatasetScan,
    FrameSource,
    Problem,
    check_no_leakage,
    detect_layout,
    scan_dataset,
)
from cs_features.datasets.split import DEFAULT_SPLIT_FRACTIONS, grouped_stratified_split
from cs_features.datasets.yolo import read_yolo_labels, yolo_lines

__all__ = ["DEFAULT_EMBRYO_REGEX", "DEFAULT_SPLIT_FRACTIONS", "LABELS", "LABEL_VALUES", "LAYOUTS", "MANIFEST_FIELDS",
           "SPLITS", "DatasetScan", "FrameSource", "Problem", "check_no_leakage", "detect_layout",
           "grouped_stratified_split", "parse_frame_name", "parse_label", "read_labels_csv", "read_manifest",
           "read_yolo_labels", "scan_dataset", "write_manifest", "yolo_lines"]
