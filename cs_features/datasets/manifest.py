"""Manifest CSVs: one row per frame (stem, split, label, embryo id, frame index, string boxes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from cs_features.datasets.layout import MANIFEST_FIELDS
from cs_features.errors import DatasetError


def read_manifest(path: str | Path, required: bool = True, columns: tuple[str, ...] = ("stem",)) -> list[dict]:
    """Rows of a manifest CSV; ``frame_index`` parsed to int (None when empty or not a number) and ``boxes``
    (JSON ``[[x1, y1, x2, y2], ...]``) to ``(N, 4)`` int32 where those columns exist.

    Args:
        required: a missing file raises; otherwise it reads as no rows (a dataset's optional manifest).
        columns: columns the file must have.

    Raises:
        DatasetError: the file is missing (when required), lacks a column, or has unreadable boxes.
    """
    path = Path(path)
    if not path.is_file():
        if required:
            raise DatasetError(f"manifest {str(path)!r} does not exist")
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        found = reader.fieldnames or []
        missing = [c for c in columns if c not in found]
        if missing:
            raise DatasetError(f"manifest {str(path)!r} needs columns {list(columns)}; found {found}")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        if "frame_index" in row:
            text = (row["frame_index"] or "").strip()
            row["frame_index"] = int(text) if text.lstrip("-").isdigit() else None
        if "boxes" in row:
            try:
                row["boxes"] = np.asarray(json.loads(row["boxes"] or "[]"), np.int32).reshape(-1, 4)
            except (ValueError, TypeError) as exc:
                raise DatasetError(f"manifest {str(path)!r} line {number}: boxes {row['boxes']!r} are not "
                                   f"[[x1, y1, x2, y2], ...]: {exc}") from exc
    return rows


def write_manifest(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` (sorted by stem) with the :data:`MANIFEST_FIELDS` columns; boxes as JSON."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["stem"]):
            boxes = row.get("boxes")
            if isinstance(boxes, np.ndarray):
                row = {**row, "boxes": json.dumps(boxes.reshape(-1, 4).tolist())}
            writer.writerow(row)
    return path
