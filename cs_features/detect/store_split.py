"""A detection run on one split of a store: its frames chosen, and graded against the store's labels.

A flat dataset's split is drawn by ingest (embryo-grouped, seeded) and recorded only in the store, so
``csf detect DATA --store STORE --split test`` keeps the files of ``DATA`` that the store holds in that split.
A file is matched to its frame by the id of its bytes (the frame id ingest gave it), whatever its path or
working folder now. The kept frames take their embryo and frame index from the store too (a labels CSV's
``embryo_id`` column, where the file names do not say it). The store's labels grade them: a frame whose
boxes are known is graded on them, a CS-free frame as having none, and a CS frame without boxes (labelled
by a CSV alone) is left unlabelled, as a frame without a label file is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cs_features.errors import ConfigError, InputError


@dataclass
class SplitSelection:
    """What :func:`select_split` kept and left out (``to_dict()`` goes into the run's summary)."""

    store: str
    split: str
    other_splits: dict = field(default_factory=dict)
    not_in_store: list = field(default_factory=list)
    places: dict = field(default_factory=dict)  # path -> (embryo_id, frame_index) of each kept frame

    def left_out(self) -> str:
        """Where the files not run are: ``"108 in train, 36 in val, 2 not in the store"`` ("" when none)."""
        where = [f"{n} in {name}" for name, n in sorted(self.other_splits.items())]
        return ", ".join(where + ([f"{len(self.not_in_store)} not in the store"] if self.not_in_store else []))

    def to_dict(self) -> dict:
        return {"store": self.store, "split": self.split, "frames": len(self.places),
                "other_splits": self.other_splits, "not_in_store": len(self.not_in_store),
                "not_in_store_files": self.not_in_store, "left_out": self.left_out()}


class StoreTruth:
    """Ground truth of the kept frames from the store's rows, with :class:`~cs_features.detect.truth.GroundTruth`'s
    interface (keyed by the frame's path)."""

    def __init__(self, uri: str, split: str, boxes: dict[str, list | None]) -> None:
        self.uri, self.split = uri, split
        self.boxes = boxes

    @property
    def enabled(self) -> bool:
        return any(b is not None for b in self.boxes.values())

    @property
    def sources(self) -> list[str]:
        return [f"store {self.uri} (split {self.split})"]

    def attach(self, detection) -> None:
        if detection.error is None:
            detection.truth_boxes = self.boxes.get(str(detection.path))


def _truth_boxes(row: dict) -> list | None:
    if row["label"] == "normal":
        return []
    if row["has_gt"] and row["gt_boxes"]:
        return np.asarray(row["gt_boxes"], np.int32).reshape(-1, 4).tolist()
    return None  # a CS frame whose boxes nobody drew


def select_split(images: list[Path], store: str, split: str,
                 storage_options: dict | None = None) -> tuple[list[Path], StoreTruth, SplitSelection]:
    """The files among ``images`` that the store holds in ``split``, their truth and what was left out.

    Raises:
        StoreError: no store at ``store`` (or an empty one).
        ConfigError: the store has no frame in ``split``.
        InputError: none of ``images`` is a frame of ``split`` (the message says where they are).
    """
    from cs_features.ids import content_id
    from cs_features.store import FRAMES, FeatureStore

    db = FeatureStore(store, storage_options=storage_options)
    columns = ["frame_id", "split", "label", "has_gt", "gt_boxes", "embryo_id", "frame_index"]
    rows = db.read(FRAMES, columns).to_pylist()
    by_id = {row["frame_id"]: row for row in rows}
    splits = sorted({row["split"] for row in rows})
    if split not in splits:
        raise ConfigError(f"store {store!r} has no frame in split {split!r}; its splits: {', '.join(splits)}")
    selection = SplitSelection(store=str(store), split=split)
    kept: list[Path] = []
    boxes: dict[str, list | None] = {}
    for path in images:
        try:
            row = by_id.get(content_id(path.read_bytes()))
        except OSError:
            kept.append(path)  # unreadable here: the run reports it as a failed file
            continue
        if row is None:
            selection.not_in_store.append(str(path))
        elif row["split"] != split:
            selection.other_splits[row["split"]] = selection.other_splits.get(row["split"], 0) + 1
        else:
            kept.append(path)
            boxes[str(path)] = _truth_boxes(row)
            selection.places[str(path)] = (row["embryo_id"], int(row["frame_index"]))
    if not boxes:
        raise InputError(f"none of the {len(images)} images given is a {split!r} frame of store {store!r}: "
                         + selection.left_out())
    return kept, StoreTruth(str(store), split, boxes), selection
