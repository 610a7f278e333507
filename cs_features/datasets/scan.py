"""Find a dataset's frames with split, label, embryo and ground-truth boxes, whatever its layout.

Layouts (one module each): ``folders`` (ours, :mod:`~cs_features.datasets.folders`), ``yolo``
(Ultralytics, :mod:`~cs_features.datasets.yolo_dataset`) and ``flat`` (a folder of frames with a label
CSV and/or YOLO label files, split automatically when none is given, :mod:`~cs_features.datasets.flat`).
Embryo ids and frame indices come from the names (:mod:`~cs_features.datasets.names`) unless a manifest
or label CSV gives them. Every layout gives the same :class:`DatasetScan` of :class:`FrameSource`.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from cs_features.datasets.flat import flat_images, scan_flat
from cs_features.datasets.folders import is_folders_layout, scan_folders
from cs_features.datasets.labels_csv import LabelTable
from cs_features.datasets.names import DEFAULT_EMBRYO_REGEX, compile_embryo_regex
from cs_features.datasets.sources import DatasetScan, FrameSource, Problem
from cs_features.datasets.split import DEFAULT_SPLIT_FRACTIONS
from cs_features.datasets.yolo_dataset import is_yolo_layout, scan_yolo
from cs_features.errors import DataLeakageError, DatasetError

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "folders", "yolo", "flat")
DEFAULT_LABELS_CSV = "labels.csv"
__all__ = ["DEFAULT_EMBRYO_REGEX", "LAYOUTS", "DatasetScan", "FrameSource", "Problem", "check_no_leakage",
           "detect_layout", "scan_dataset"]


def scan_dataset(
    root: str | Path,
    labels_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    embryo_regex: str | None = None,
    layout: str = "auto",
    labels_csv: str | Path | None = None,
    split_seed: int = 0,
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
) -> DatasetScan:
    """List the frames of a dataset folder with split, label, embryo id, frame index and label file.

    Args:
        layout: ``"auto"`` (detected: :func:`detect_layout`), ``"folders"``, ``"yolo"`` or ``"flat"``.
        labels_csv: label CSV for the yolo and flat layouts (default ``DATASET/labels.csv`` when present).
        embryo_regex: embryo id from a stem (first group or whole match); None: the name rules of
            :mod:`~cs_features.datasets.names`.
        split_seed, split_fractions: the automatic split of a flat folder without splits.

    Returns:
        the scan; ``info`` holds the layout, where the splits came from and counts per split and label.

    Raises:
        DatasetError: the folder is missing, holds no frames, a layout does not fit it, or a label CSV is bad.
        DataLeakageError: one embryo in two splits, or one stem in two splits (named in the message).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {str(root)!r} does not exist or is not a folder")
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    labels_dir = Path(labels_dir) if labels_dir is not None else None
    table = _label_table(root, layout, labels_csv)
    pattern = compile_embryo_regex(embryo_regex)
    scan = DatasetScan(root=root, frames=[], info={"layout": layout})
    if layout == "folders":
        scan_folders(root, scan, labels_dir, manifest, pattern)
    elif layout == "yolo":
        scan_yolo(root, scan, labels_dir, table, pattern)
    else:
        scan_flat(root, scan, labels_dir, table, pattern, split_seed, split_fractions)
    if not scan.frames:
        raise DatasetError(f"no frames found in {str(root)!r} read as the {layout!r} layout: {_LAYOUT_HINTS[layout]}")
    if table is not None:
        scan.info["labels_csv"] = str(table.path)
        scan.problems.extend(Problem(str(table.path), "labels", f"line {row.line}: {row.key!r} has no matching image")
                             for row in table.unused())
    check_no_leakage(scan.frames)
    _summarise(scan)
    return scan


_LAYOUT_HINTS = {
    "folders": "expected images under {train,val,test}/{normal,abnormal}/ (the layout `csf synth` writes)",
    "yolo": "expected images under images/{train,val,test}/ (or named by data.yaml)",
    "flat": "expected image files in the folder",
}


def detect_layout(root: Path) -> str:
    """``"folders"`` when ``root`` has ``<split>/<label>/`` folders, ``"yolo"`` when it has a data yaml or
    ``images/<split>/`` folders, ``"flat"`` when it holds image files at all.

    Raises:
        DatasetError: none of these (the message says what each layout looks like).
    """
    if is_folders_layout(root):
        return "folders"
    if is_yolo_layout(root):
        return "yolo"
    if flat_images(root, root / "labels"):
        return "flat"
    raise DatasetError(f"no frames found in {str(root)!r}: " + "; or ".join(_LAYOUT_HINTS.values()))


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise DatasetError(f"layout {layout!r} is not known; known: {', '.join(LAYOUTS)}")
    return layout


def _label_table(root: Path, layout: str, labels_csv: str | Path | None) -> LabelTable | None:
    if layout == "folders":
        if labels_csv is not None:
            raise DatasetError(f"a labels CSV ({str(labels_csv)!r}) is for the yolo and flat layouts; in the folders "
                               "layout labels are the normal/abnormal folders (embryo ids: --manifest)")
        return None
    if labels_csv is None:
        default = root / DEFAULT_LABELS_CSV
        return LabelTable(default, root) if default.is_file() else None
    if not Path(labels_csv).is_file():
        raise DatasetError(f"labels CSV {str(labels_csv)!r} does not exist")
    return LabelTable(labels_csv, root)


def _summarise(scan: DatasetScan) -> None:
    """Counts per split and label into ``info``; a warning when there is no train split."""
    counts: dict[str, Counter] = defaultdict(Counter)
    embryos: dict[str, set] = defaultdict(set)
    for frame in scan.frames:
        counts[frame.split][frame.label] += 1
        embryos[frame.split].add(frame.embryo_id)
    scan.info["counts"] = {split: dict(sorted(c.items())) for split, c in sorted(counts.items())}
    scan.info["embryos"] = {split: len(e) for split, e in sorted(embryos.items())}
    if "train" not in counts:
        scan.warnings.append(
            f"no train split in {str(scan.root)!r} (splits: {', '.join(sorted(counts))}): a store without a train "
            "split gets no search space (test vectors are never used to fit it; searches use raw vectors) and no "
            "model can train on it; ingest a training set into this store first, or give the dataset a train split")
    log.info("dataset %s (%s): %s", scan.root, scan.info["layout"], scan.info["counts"])


def check_no_leakage(frames: list[FrameSource]) -> None:
    """Refuse datasets where an embryo or a stem sits in more than one split.

    Raises:
        DataLeakageError: naming up to 10 embryos/stems and their splits.
    """
    for key, what in (("embryo_id", "embryo"), ("stem", "frame stem")):
        splits: dict[str, set[str]] = defaultdict(set)
        for frame in frames:
            splits[getattr(frame, key)].add(frame.split)
        leaked = {name: sorted(found) for name, found in splits.items() if len(found) > 1}
        if leaked:
            shown = "; ".join(f"{name} in {'+'.join(found)}" for name, found in sorted(leaked.items())[:10])
            more = f" (and {len(leaked) - 10} more)" if len(leaked) > 10 else ""
            raise DataLeakageError(
                f"data leakage: {len(leaked)} {what}(s) appear in more than one split: {shown}{more}. "
                "Each embryo must sit in exactly one split; nothing was written."
            )
