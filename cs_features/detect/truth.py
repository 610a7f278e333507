"""Ground truth for `csf detect`: YOLO label files ``<stem>.txt`` from ``--labels`` or a dataset folder.

A frame is labelled when a label file of its stem exists (an empty file: CS-free) and unlabelled when
none does; a label file that cannot be parsed leaves the frame unlabelled with the reason recorded.
Labels are found automatically when a path given to detect is one of our dataset folders (the root, a
split folder or a split/label folder) with a ``labels/`` folder beside the split folders.
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
    return None


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
    """Looks up each frame's label file by stem in ``label_dirs`` (the first folder holding it wins)."""

    def __init__(self, label_dirs: list[Path]) -> None:
        self.label_dirs = [Path(d) for d in label_dirs]

    @property
    def enabled(self) -> bool:
        return bool(self.label_dirs)

    def label_file(self, stem: str) -> Path | None:
        for folder in self.label_dirs:
            path = folder / f"{stem}.txt"
            if path.is_file():
                return path
        return None

    def attach(self, detection) -> None:
        """Set ``detection.truth_boxes`` (frame pixels; None: unlabelled) and ``label_error``."""
        from cs_features.datasets import read_yolo_labels

        path = self.label_file(detection.stem)
        if path is None or detection.error is not None:
            return
        try:
            detection.truth_boxes = read_yolo_labels(path, detection.width, detection.height).tolist()
        except LabelError as exc:
            detection.label_error = str(exc)
