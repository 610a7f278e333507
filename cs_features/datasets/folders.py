"""The project's own layout (what ``csf synth`` writes, the published pipeline's layout)::

    DATASET/{train,val,test}/{normal,abnormal}/<stem>.<png|jpg|bmp|tif|...>
    DATASET/labels/<stem>.txt        YOLO lines "class cx cy w h" (normalised), one per string
    DATASET/manifest.csv             optional: stem, embryo_id[, frame_index, ...]

Split and label come from the folders; the embryo id and frame index from the manifest when it names
the stem, else from the name (:mod:`cs_features.datasets.names`).
"""

from __future__ import annotations

import re
from pathlib import Path

from cs_features.datasets.layout import LABELS, SPLITS
from cs_features.datasets.manifest import read_manifest
from cs_features.datasets.names import parse_frame_name
from cs_features.datasets.sources import DatasetScan, FrameSource, Problem
from cs_features.io import is_image_path


def is_folders_layout(root: Path) -> bool:
    """True when ``root`` has at least one ``<split>/<label>/`` folder."""
    return any((root / split / label).is_dir() for split in SPLITS for label in LABELS)


def scan_folders(root: Path, scan: DatasetScan, labels_dir: Path | None, manifest: str | Path | None,
                 embryo_pattern: re.Pattern | None) -> None:
    """Append the frames of a split/label folder dataset to ``scan`` (stray files become problems)."""
    labels_dir = labels_dir if labels_dir is not None else root / "labels"
    rows = read_manifest(manifest if manifest is not None else root / "manifest.csv", required=manifest is not None,
                         columns=("stem", "embryo_id"))
    manifest_rows = {row["stem"]: row for row in rows if row.get("stem")}
    for path, split, label in _iter_frame_files(root, scan):
        stem = path.stem
        row = manifest_rows.get(stem, {})
        embryo_id, frame_index = parse_frame_name(stem, embryo_pattern)
        if row.get("frame_index") is not None:
            frame_index = row["frame_index"]
        label_path = labels_dir / f"{stem}.txt"
        scan.frames.append(FrameSource(path, stem, split, label, row.get("embryo_id") or embryo_id, frame_index,
                                       label_path if label_path.is_file() else None))
    note_orphan_labels(scan, sorted(labels_dir.glob("*.txt")) if labels_dir.is_dir() else [])
    scan.info["split_source"] = "folders"


def _iter_frame_files(root: Path, scan: DatasetScan):
    for split in SPLITS:
        for label in LABELS:
            folder = root / split / label
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and is_image_path(path):
                    yield path, split, label
                elif path.is_file():
                    scan.problems.append(Problem(str(path), "scan", f"not an image file (suffix {path.suffix!r})"))


def note_orphan_labels(scan: DatasetScan, label_files: list[Path]) -> None:
    """Record label files that belong to no frame of ``scan`` (not counted as failures by ingest)."""
    used = {frame.label_path for frame in scan.frames if frame.label_path is not None}
    stems = {frame.stem for frame in scan.frames}
    for path in label_files:
        if path not in used and path.stem not in stems:
            scan.problems.append(Problem(str(path), "labels", "label file has no matching image"))
