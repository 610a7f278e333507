"""Label CSVs: one row per frame, ``stem or path, label[, embryo_id, split, frame_index]``.

With a header, columns are found by name (``stem``, ``path``, ``file``, ``filename`` or ``image`` for the
frame; ``label``; optional ``embryo_id``/``embryo``, ``split``, ``frame_index``/``frame``); without one,
by position in that order. Labels are read case-insensitively (:data:`LABEL_VALUES`); a frame is named by
its stem, its file name, or its path (relative to the dataset or to the CSV, or absolute).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from cs_features.datasets.names import parse_frame_name
from cs_features.datasets.sources import FrameSource, Problem
from cs_features.datasets.yolo import count_yolo_boxes
from cs_features.errors import DatasetError

LABEL_VALUES = {
    "abnormal": ("1", "abnormal", "cs", "true", "yes", "positive"),
    "normal": ("0", "normal", "no-cs", "no_cs", "nocs", "false", "no", "negative"),
}
SPLIT_VALUES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_COLUMNS = {
    "key": ("stem", "path", "file", "filename", "image"),
    "label": ("label",),
    "embryo_id": ("embryo_id", "embryo"),
    "split": ("split",),
    "frame_index": ("frame_index", "frame"),
}
_POSITIONAL = ("key", "label", "embryo_id", "split", "frame_index")


@dataclass(frozen=True)
class LabelRow:
    """One CSV row: the frame it names, its label (None when blank) and what else it gives."""

    key: str
    line: int
    label: str | None
    embryo_id: str | None
    split: str | None
    frame_index: int | None


def accepted_label_values() -> str:
    return "; ".join(f"{label}: {', '.join(values)}" for label, values in LABEL_VALUES.items())


def read_labels_csv(path: str | Path) -> list[LabelRow]:
    """Rows of a label CSV.

    Raises:
        DatasetError: the file is missing or unreadable, lacks a frame or label column, names a frame twice,
            or holds a label, split or frame index that is not accepted (file, line and accepted values quoted).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            table = [row for row in csv.reader(handle)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"labels CSV {str(path)!r} cannot be read: {exc}") from exc
    columns, first_line = _columns(path, table)
    rows, seen = [], {}
    for number, cells in enumerate(table[first_line - 1:], start=first_line):
        if not any(cell.strip() for cell in cells):
            continue
        named = {name: cells[i].strip() if i < len(cells) else "" for name, i in columns.items()}
        row = _parse_row(path, number, named)
        if row.key in seen:
            raise DatasetError(f"labels CSV {str(path)!r} line {number}: {row.key!r} is already on line "
                               f"{seen[row.key]}")
        seen[row.key] = number
        rows.append(row)
    return rows


def _columns(path: Path, table: list[list[str]]) -> tuple[dict[str, int], int]:
    """Column positions and the first data line (1-based): by header name, else by position."""
    if not table:
        raise DatasetError(f"labels CSV {str(path)!r} is empty")
    header = [cell.strip().lower() for cell in table[0]]
    found = {name: header.index(alias) for name, aliases in _COLUMNS.items() for alias in aliases if alias in header}
    if "key" in found or "label" in found:
        missing = [name for name in ("key", "label") if name not in found]
        if missing:
            raise DatasetError(f"labels CSV {str(path)!r} header {table[0]} lacks a {' and a '.join(missing)} column; "
                               f"expected: stem (or path), label[, embryo_id, split, frame_index]")
        return found, 2
    second = table[0][1].strip() if len(table[0]) > 1 else ""
    if not any(second.lower() in values for values in LABEL_VALUES.values()):
        raise DatasetError(f"labels CSV {str(path)!r} line 1 {table[0]}: neither a header naming stem (or path) and "
                           f"label columns nor a row whose second column is a label ({accepted_label_values()})")
    return {name: i for i, name in enumerate(_POSITIONAL)}, 1


def _parse_row(path: Path, number: int, cells: dict[str, str]) -> LabelRow:
    where = f"labels CSV {str(path)!r} line {number}"
    if not cells["key"]:
        raise DatasetError(f"{where}: no frame named (first column: stem or path)")
    frame_text = cells.get("frame_index", "")
    if frame_text and not frame_text.isdigit():
        raise DatasetError(f"{where}: frame_index {frame_text!r} is not a non-negative integer")
    return LabelRow(key=cells["key"].replace("\\", "/"), line=number,
                    label=parse_label(cells["label"], where) if cells.get("label") else None,
                    embryo_id=cells.get("embryo_id") or None,
                    split=_parse_split(cells["split"], where) if cells.get("split") else None,
                    frame_index=int(frame_text) if frame_text else None)


def parse_label(value: str, where: str = "label") -> str:
    """``"abnormal"`` or ``"normal"`` from any accepted spelling (case-insensitive).

    Raises:
        DatasetError: an unknown value; the message quotes it, ``where`` and the accepted values.
    """
    text = value.strip().lower()
    for label, values in LABEL_VALUES.items():
        if text in values:
            return label
    raise DatasetError(f"{where}: label {value!r} is not accepted; accepted (case-insensitive): "
                       f"{accepted_label_values()}")


def _parse_split(value: str, where: str) -> str:
    text = value.strip().lower()
    for split, values in SPLIT_VALUES.items():
        if text in values:
            return split
    accepted = ", ".join(v for values in SPLIT_VALUES.values() for v in values)
    raise DatasetError(f"{where}: split {value!r} is not accepted; accepted (case-insensitive): {accepted}")


class LabelTable:
    """A label CSV indexed for lookup by stem, file name, or path; remembers which rows were used."""

    def __init__(self, path: str | Path, dataset_root: Path) -> None:
        self.path = Path(path)
        self.rows = read_labels_csv(self.path)
        self._by_key = {row.key: row for row in self.rows}
        self._by_path: dict[Path, LabelRow] = {}
        for row in self.rows:
            for base in (dataset_root, self.path.parent):
                self._by_path.setdefault(_resolved(base / row.key), row)
        self._used: set[int] = set()

    def find(self, path: Path, root: Path) -> LabelRow | None:
        """The row naming the frame file ``path`` (of the dataset at ``root``), or None."""
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
        for key in (relative, path.name, path.stem):
            if key is not None and key in self._by_key:
                return self._mark(self._by_key[key])
        row = self._by_path.get(_resolved(path))
        return self._mark(row) if row is not None else None

    def _mark(self, row: LabelRow) -> LabelRow:
        self._used.add(row.line)
        return row

    def unused(self) -> list[LabelRow]:
        """Rows that named no frame found."""
        return [row for row in self.rows if row.line not in self._used]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def labelled_frame(path: Path, root: Path, split: str | None, label_path: Path | None, table: LabelTable | None,
                   embryo_pattern: re.Pattern | None, missing_file_is_normal: bool) -> FrameSource | Problem:
    """A frame file with its label, embryo and frame index: the CSV row first, else the YOLO label file
    (boxes: ``"abnormal"``, none: ``"normal"``), else, when ``missing_file_is_normal`` (YOLO's convention:
    an image without a label file shows no object), ``"normal"``; a frame with none of these is a problem.

    ``split`` None takes the CSV row's split (None when it has none: the caller splits).
    """
    row = table.find(path, root) if table is not None else None
    embryo_id, frame_index = parse_frame_name(path.stem, embryo_pattern)
    if row is not None and row.label is not None:
        label = row.label
    elif label_path is not None:
        label = "abnormal" if count_yolo_boxes(label_path) else "normal"
    elif missing_file_is_normal:
        label = "normal"
    else:
        return Problem(str(path), "labels", "no label: not in the labels CSV and no YOLO label file")
    if row is not None and split is not None and row.split is not None and row.split != split:
        raise DatasetError(f"labels CSV {str(table.path)!r} line {row.line}: split {row.split!r} but {str(path)!r} "
                           f"sits in the {split!r} split folder")
    return FrameSource(path, path.stem, split or (row.split if row else None), label,
                       (row.embryo_id if row else None) or embryo_id,
                       row.frame_index if row is not None and row.frame_index is not None else frame_index, label_path)
