"""A flat folder of frames, labelled by a CSV and/or YOLO label files::

    DATASET/<stem>.<png|jpg|tif|...>       also in sub-folders (not in labels/)
    DATASET/labels.csv                     optional: stem or path, label[, embryo_id, split, frame_index]
    DATASET/<stem>.txt or labels/<stem>.txt   optional YOLO label files

A frame's label is the CSV's, else its label file's (boxes: CS); when the dataset has label files, a frame
without one is CS-free (YOLO's convention); a frame with no label at all is skipped and reported. Splits
come from the CSV (every row, or none), else from the automatic embryo-grouped, label-stratified split
(:mod:`cs_features.datasets.split`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from cs_features.datasets.folders import note_orphan_labels
from cs_features.datasets.labels_csv import LabelTable, labelled_frame
from cs_features.datasets.sources import DatasetScan, FrameSource, Problem
from cs_features.datasets.split import check_split_fractions, grouped_stratified_split
from cs_features.errors import DatasetError
from cs_features.io import is_image_path


def flat_images(root: Path, labels_dir: Path) -> list[Path]:
    """Image files under ``root`` (sub-folders included, the label folder and hidden folders not)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p)
                  and not p.is_relative_to(labels_dir)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def scan_flat(root: Path, scan: DatasetScan, labels_dir: Path | None, table: LabelTable | None,
              embryo_pattern: re.Pattern | None, split_seed: int,
              split_fractions: tuple[float, float, float]) -> None:
    """Append the frames of a flat folder to ``scan``, with their split (given or automatic).

    Raises:
        DatasetError: no frame has a label, or the CSV gives a split for some frames but not for others.
    """
    labels_dir = labels_dir if labels_dir is not None else root / "labels"
    images = flat_images(root, labels_dir)
    label_files = {image: _label_file(image, root, labels_dir) for image in images}
    has_label_files = labels_dir.is_dir() or any(label_files.values())
    frames = []
    for image in images:
        found = labelled_frame(image, root, None, label_files[image], table, embryo_pattern,
                               missing_file_is_normal=has_label_files)
        (scan.problems if isinstance(found, Problem) else frames).append(found)
    if images and not frames:
        raise DatasetError(f"no frame of {str(root)!r} has a label: give --labels-csv (stem or path, label) or YOLO "
                           "label files (beside the frames or in labels/)")
    scan.frames.extend(_with_splits(frames, scan, split_seed, split_fractions))
    note_orphan_labels(scan, sorted(labels_dir.rglob("*.txt")) if labels_dir.is_dir() else [])


def _label_file(image: Path, root: Path, labels_dir: Path) -> Path | None:
    relative = image.relative_to(root).with_suffix(".txt")
    for candidate in (image.with_suffix(".txt"), labels_dir / relative, labels_dir / f"{image.stem}.txt"):
        if candidate.is_file():
            return candidate
    return None


def _with_splits(frames: list[FrameSource], scan: DatasetScan, seed: int,
                 fractions: tuple[float, float, float]) -> list[FrameSource]:
    given = [f for f in frames if f.split is not None]
    if given and len(given) < len(frames):
        missing = [str(f.path) for f in frames if f.split is None]
        raise DatasetError(f"the labels CSV gives a split for {len(given)} frame(s) but not for {len(missing)} "
                           f"(e.g. {missing[0]!r}): give every frame a split, or none for an automatic split")
    if given:
        scan.info["split_source"] = "labels csv"
        return frames
    fractions = check_split_fractions(fractions)
    by_embryo = grouped_stratified_split([f.embryo_id for f in frames], [f.label for f in frames], fractions, seed)
    scan.info.update(split_source="automatic", split_seed=seed, split_fractions=[round(f, 6) for f in fractions],
                     split_rule="grouped by embryo, stratified by embryo has CS")
    return [replace(f, split=by_embryo[f.embryo_id]) for f in frames]
