"""Ultralytics-style YOLO datasets::

    DATASET/images/{train,val,test}/...<stem>.<png|jpg|tif|...>    a split may be missing
    DATASET/labels/{train,val,test}/...<stem>.txt                   YOLO lines, one per string
    DATASET/data.yaml                                               optional: train: images/train, ...

Also read: Roboflow's ``{train,valid,test}/{images,labels}``. A ``data.yaml`` (or ``data.yml``,
``dataset.yaml``) names each split's image folder, relative to its ``path:`` key (itself relative to the
yaml's folder) or to the yaml's folder; a split may also be a ``.txt`` file listing images or an inline
list ``[a, b]``. Only top-level ``key: value`` lines are read (no YAML library: PyYAML is not a
dependency of this package). A frame's label file is its path with the last ``images`` folder replaced
by ``labels`` and the suffix by ``.txt`` (Ultralytics' rule). Frames with boxes are CS (``abnormal``),
frames with an empty or no label file CS-free (``normal``), unless a label CSV says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

from cs_features.datasets.folders import note_orphan_labels
from cs_features.datasets.labels_csv import LabelTable, labelled_frame
from cs_features.datasets.layout import SPLITS
from cs_features.datasets.sources import DatasetScan, Problem
from cs_features.errors import DatasetError
from cs_features.io import is_image_path

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_FOLDER_ALIASES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def find_data_yaml(root: Path) -> Path | None:
    """The dataset's yaml file, if it has one of :data:`YAML_NAMES`."""
    return next((root / name for name in YAML_NAMES if (root / name).is_file()), None)


def is_yolo_layout(root: Path) -> bool:
    """True when ``root`` has a data yaml, ``images/<split>/`` or ``<split>/images/`` folders."""
    return find_data_yaml(root) is not None or bool(_conventional_splits(root))


def read_data_yaml(path: Path) -> dict[str, str]:
    """Top-level ``key: value`` pairs of a YOLO data yaml (comments and quotes stripped; nested blocks
    such as ``names:`` are skipped)."""
    pairs: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"YOLO data file {str(path)!r} cannot be read: {exc}") from exc
    for line in lines:
        if not line.strip() or line[0] in " \t#-":
            continue
        key, sep, value = line.partition(":")
        if sep:
            value = re.sub(r"\s+#.*$", "", value).strip()
            pairs[key.strip()] = value.strip("'\"")
    return pairs


def yolo_split_images(root: Path) -> dict[str, list[Path]]:
    """Image files of each split found, from the data yaml when there is one, else from the folders.

    Raises:
        DatasetError: the yaml names a split folder or list that does not exist.
    """
    data_yaml = find_data_yaml(root)
    if data_yaml is None:
        return {split: _images_under(folder) for split, folder in _conventional_splits(root).items()}
    pairs = read_data_yaml(data_yaml)
    base = data_yaml.parent
    if pairs.get("path"):
        base = Path(pairs["path"]) if Path(pairs["path"]).is_absolute() else data_yaml.parent / pairs["path"]
    found = {}
    for split in SPLITS:
        value = next((pairs[k] for k in _FOLDER_ALIASES[split] if pairs.get(k)), None)
        if value is not None:
            found[split] = [image for entry in _entries(value) for image in _images_of(base, entry, data_yaml, split)]
    return found


def _entries(value: str) -> list[str]:
    if value.startswith("[") and value.endswith("]"):
        return [item.strip().strip("'\"") for item in value[1:-1].split(",") if item.strip()]
    return [value]


def _images_of(base: Path, entry: str, data_yaml: Path, split: str) -> list[Path]:
    target = Path(entry) if Path(entry).is_absolute() else base / entry
    if target.is_dir():
        return _images_under(target)
    if target.is_file() and target.suffix.lower() == ".txt":
        listed = [line.strip() for line in target.read_text().splitlines() if line.strip()]
        return [Path(p) if Path(p).is_absolute() else (base / p) for p in listed]
    raise DatasetError(f"{str(data_yaml)!r}: {split}: {entry!r} -> {str(target)!r} is neither a folder nor a .txt "
                       "list of images")


def _conventional_splits(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in _FOLDER_ALIASES.items():
        for name in names:
            for folder in (root / "images" / name, root / name / "images"):
                if split not in found and folder.is_dir():
                    found[split] = folder
    return found


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p))


def yolo_label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def scan_yolo(root: Path, scan: DatasetScan, labels_dir: Path | None, table: LabelTable | None,
              embryo_pattern: re.Pattern | None) -> None:
    """Append the frames of a YOLO dataset to ``scan``; label files of no frame become problems."""
    label_folders = set()
    for split, images in yolo_split_images(root).items():
        for image in images:
            if not image.is_file():
                scan.problems.append(Problem(str(image), "scan", "listed in the data yaml but no such file"))
                continue
            candidates = [yolo_label_path(image)]
            if labels_dir is not None:
                candidates = [labels_dir / split / f"{image.stem}.txt", labels_dir / f"{image.stem}.txt"]
            label_path = next((c for c in candidates if c.is_file()), None)
            label_folders.add(candidates[0].parent)
            found = labelled_frame(image, root, split, label_path, table, embryo_pattern, missing_file_is_normal=True)
            (scan.problems if isinstance(found, Problem) else scan.frames).append(found)
    note_orphan_labels(scan, sorted(p for folder in label_folders if folder.is_dir() for p in folder.glob("*.txt")))
    scan.info["split_source"] = "yolo folders"
