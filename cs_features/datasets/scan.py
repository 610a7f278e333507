"""Dataset folders: find frames, their split, label, embryo and ground-truth boxes.

Layout (what ``csf synth`` writes, the published pipeline's layout)::

    DATASET/{train,val,test}/{normal,abnormal}/<stem>.<png|jpg|bmp|tif|...>
    DATASET/labels/<stem>.txt        YOLO lines "class cx cy w h" (normalised), one per string
    DATASET/manifest.csv             optional: stem, embryo_id[, frame_index, ...]

The embryo id comes from the manifest when it names the stem, else from the stem by a regex whose
first group (or whole match) is the id; the default takes the text before the first ``_``.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cs_features.datasets.layout import LABELS, SPLITS
from cs_features.datasets.manifest import read_manifest
from cs_features.errors import DataLeakageError, DatasetError
from cs_features.io import is_image_path

log = logging.getLogger(__name__)

DEFAULT_EMBRYO_REGEX = r"^([^_]+)"
_FRAME_INDEX = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class FrameSource:
    """One frame file found in a dataset folder (nothing decoded yet)."""

    path: Path
    stem: str
    split: str
    label: str
    embryo_id: str
    frame_index: int
    label_path: Path | None


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, with the stage that rejected it and why."""

    path: str
    stage: str
    reason: str


@dataclass
class DatasetScan:
    """What :func:`scan_dataset` found: frames to ingest, files skipped, warnings."""

    root: Path
    frames: list[FrameSource]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def scan_dataset(
    root: str | Path,
    labels_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    embryo_regex: str = DEFAULT_EMBRYO_REGEX,
) -> DatasetScan:
    """List the frames of a dataset folder with split, label, embryo id and label file.

    Raises:
        DatasetError: the folder is missing or holds no split/label folders with images.
        DataLeakageError: one embryo in two splits, or one stem in two splits (named in the message).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {str(root)!r} does not exist or is not a folder")
    labels_dir = Path(labels_dir) if labels_dir is not None else root / "labels"
    rows = read_manifest(manifest if manifest is not None else root / "manifest.csv", required=manifest is not None,
                         columns=("stem", "embryo_id"))
    manifest_rows = {row["stem"]: row for row in rows if row.get("stem")}
    pattern = _compile_regex(embryo_regex)
    scan = DatasetScan(root=root, frames=[])
    for path, split, label in _iter_frame_files(root, scan):
        stem = path.stem
        row = manifest_rows.get(stem, {})
        embryo_id = row.get("embryo_id") or _embryo_from_stem(stem, pattern)
        frame_index = _frame_index(row.get("frame_index"), stem)
        label_path = labels_dir / f"{stem}.txt"
        scan.frames.append(FrameSource(path, stem, split, label, embryo_id, frame_index,
                                       label_path if label_path.is_file() else None))
    if not scan.frames:
        raise DatasetError(
            f"no frames found in {str(root)!r}: expected images under "
            "{train,val,test}/{normal,abnormal}/ (the layout `csf synth` writes)"
        )
    check_no_leakage(scan.frames)
    _note_orphan_labels(scan, labels_dir)
    return scan


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


def _compile_regex(embryo_regex: str) -> re.Pattern:
    try:
        return re.compile(embryo_regex)
    except re.error as exc:
        raise DatasetError(f"--embryo-regex {embryo_regex!r} is not a valid regular expression: {exc}") from exc


def _embryo_from_stem(stem: str, pattern: re.Pattern) -> str:
    match = pattern.search(stem)
    if match is None:
        return stem
    return match.group(1) if match.groups() else match.group(0)


def _frame_index(value: int | None, stem: str) -> int:
    if value is not None:
        return value
    match = _FRAME_INDEX.search(stem)
    return int(match.group(1)) if match else 0


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


def _note_orphan_labels(scan: DatasetScan, labels_dir: Path) -> None:
    if not labels_dir.is_dir():
        return
    stems = {frame.stem for frame in scan.frames}
    for path in sorted(labels_dir.glob("*.txt")):
        if path.stem not in stems:
            scan.problems.append(Problem(str(path), "labels", "label file has no matching image"))
