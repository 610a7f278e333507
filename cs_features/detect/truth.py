"""Ground truth for `csf detect`: YOLO label files ``<stem>.txt`` from ``--labels`` or a dataset folder.

A frame is labelled when a label file of its stem exists (an empty file: CS-free) and unlabelled when
none does, except in a YOLO dataset (a frame in ``.../images/<split>`` whose labels are in
``.../labels/<split>``), where a frame without a label file is CS-free, as ingest reads that layout; a label
file that cannot be parsed leaves the frame unlabelled with the reason recorded.
Labels are found automatically when a path given to detect is one of our dataset folders (the root, a
split folder or a split/label folder) with a ``labels/`` folder beside the split folders, a flat folder
with a ``labels/`` folder in it, or an Ultralytics ``.../images/<split>`` folder whose labels are in
``.../labels/<split>``; and label files beside the frames (``<stem>.txt`` next to ``<stem>.png``, as the
flat layout allows) count too.
"""

from __future__ import annotations

from pathlib import Path

from cs_features.datasets.layout import SPLITS
from cs_features.errors import InputError, LabelError


def dataset_labels_dir(path: str | Path) -> Path | None:
    """The ``labels/`` folder of the dataset folder ``path`` belongs to, or None.

    ``path`` may be the dataset root, one of its split folders, a split/label folder or a frame in one.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    for root in (folder, folder.parent, folder.parent.parent):
        if not (root / "labels").is_dir() or not any((root / split).is_dir() for split in SPLITS):
            continue
        if folder == root or any(folder.is_relative_to(root / split) for split in SPLITS):
            return root / "labels"
    labels = yolo_labels_dir(folder)
    if labels is not None:
        return labels
    if path.is_dir() and (folder / "labels").is_dir():  # a flat dataset folder
        return folder / "labels"
    return None


def yolo_labels_dir(folder: str | Path) -> Path | None:
    """The labels folder of a folder under ``images/``, as Ultralytics pairs them (``DATA/images/<split>`` ->
    ``DATA/labels/<split>``), when it exists; else None."""
    parts = list(Path(folder).parts)
    if "images" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("images")
    labels = Path(*parts[:at], "labels", *parts[at + 1:])
    return labels if labels.is_dir() else None


def find_label_dirs(paths: list[str | Path], labels: str | Path | None = None) -> list[Path]:
    """``[labels]`` when given, else the ``labels/`` folders of the dataset folders among ``paths``.

    Raises:
        InputError: ``labels`` is given but is not a folder.
    """
    if labels is not None:
        if not Path(labels).is_dir():
            raise InputError(f"--labels {str(labels)!r} is not a folder: expected a folder of YOLO label files "
                             "<stem>.txt (one line 'class cx cy w h' per string, an empty file for a CS-free frame)")
        return [Path(labels)]
    found: list[Path] = []
    for path in paths:
        folder = dataset_labels_dir(path)
        if folder is not None and folder not in found:
            found.append(folder)
    return found


class GroundTruth:
    """Looks up each frame's label file by stem in ``label_dirs`` (the first folder holding it wins), else
    among ``beside``: label files next to their frames (``<stem>.txt`` in the frame's folder)."""

    def __init__(self, label_dirs: list[Path], beside: list[Path] = ()) -> None:
        self.label_dirs = [Path(d) for d in label_dirs]
        self.beside = {Path(p) for p in beside}

    @property
    def enabled(self) -> bool:
        return bool(self.label_dirs or self.beside)

    @property
    def sources(self) -> list[str]:
        """Where the labels came from, as detections.json records it."""
        return [str(d) for d in self.label_dirs] + (["label files beside the frames"] if self.beside else [])

    def label_file(self, stem: str, frame_path: str | Path | None = None) -> Path | None:
        for folder in self.label_dirs:
            path = folder / f"{stem}.txt"
            if path.is_file():
                return path
        if frame_path is not None and Path(frame_path).with_suffix(".txt") in self.beside:
            return Path(frame_path).with_suffix(".txt")
        return None

    def attach(self, detection) -> None:
        """Set ``detection.truth_boxes`` (frame pixels; None: unlabelled) and ``label_error``."""
        from cs_features.datasets import read_yolo_labels

        if detection.error is not None:
            return
        path = self.label_file(detection.stem, detection.path)
        if path is None:
            if yolo_labels_dir(Path(detection.path).parent) in self.label_dirs:
                detection.truth_boxes = []  # YOLO: a frame without a label file holds no string
            return
        try:
            detection.truth_boxes = read_yolo_labels(path, detection.width, detection.height).tolist()
        except LabelError as exc:
            detection.label_error = str(exc)
