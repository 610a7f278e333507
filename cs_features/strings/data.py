"""The store's frames as the string map sees them: metadata rows plus the preprocessed image, in chunks.

Frames come from the ``frames`` table sorted by (stem, frame_id), so every run visits them in the same
order; their preprocessed PNG blobs are fetched and decoded a chunk at a time, never all at once.
Frames a reviewer decided on (``csf review``) carry their reviewed truth: accepted and drawn boxes are
strings, a frame marked CS-free has none (:mod:`cs_features.review.truth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from cs_features.io import decode_png
from cs_features.review.truth import review_overrides, reviewed_frame_row
from cs_features.store import FRAMES, FeatureStore

FRAME_COLUMNS = ["frame_id", "stem", "split", "label", "embryo_id", "gt_boxes", "has_gt", "scale", "low_texture_mask"]
POSITIVE_LABEL = "abnormal"
CHUNK = 32


@dataclass
class StoreFrame:
    """One stored frame: ``image`` (h, w) float32 in [0, 1] (the preprocessed frame, canonical scale),
    ``boxes`` (N, 4) int32 ground truth at the same scale, ``mask`` (h, w) bool low-texture mask."""

    frame_id: str
    stem: str
    split: str
    label: str
    embryo_id: str
    has_gt: bool
    boxes: np.ndarray
    image: np.ndarray
    mask: np.ndarray | None = None

    @property
    def is_cs(self) -> bool:
        return self.label == POSITIVE_LABEL


def open_store(store: FeatureStore | str | Path, storage_options: dict | None = None) -> FeatureStore:
    """``store`` itself, or the FeatureStore at that URI (a missing or empty store raises StoreError)."""
    return store if isinstance(store, FeatureStore) else FeatureStore(str(store), storage_options=storage_options)


def frame_rows(store: FeatureStore, where: str | None = None) -> list[dict]:
    """Metadata of the frames matching SQL ``where`` (all if None), sorted by stem; ``_rowid`` included;
    reviewed frames with their reviewed ``label``, ``has_gt`` and ``gt_boxes``."""
    table = store.read(FRAMES, FRAME_COLUMNS, where=where, with_row_id=True)
    rows = table.sort_by([("stem", "ascending"), ("frame_id", "ascending")]).to_pylist()
    stored = {row["frame_id"]: np.asarray(row["gt_boxes"] or [], np.int32).reshape(-1, 4) if row["has_gt"] else None
              for row in rows}
    reviews = review_overrides(store, stored)
    return [reviewed_frame_row(row, reviews[row["frame_id"]]) if row["frame_id"] in reviews else row for row in rows]


def rows_by_id(store: FeatureStore, frame_ids, purpose: str) -> dict[str, dict]:
    """:func:`frame_rows` of every stored frame keyed by frame id, after checking ``frame_ids`` are all there.

    Raises:
        ValueError: a frame id the store does not hold (the message names ``purpose``).
    """
    rows = {row["frame_id"]: row for row in frame_rows(store)}
    missing = sorted(set(np.asarray(frame_ids).astype(str).tolist()) - set(rows))
    if missing:
        raise ValueError(f"store {store.uri!r} holds no frame {missing[0]!r} ({len(missing)} missing) for {purpose}")
    return rows


def iter_frames(store: FeatureStore, rows: list[dict]) -> Iterator[StoreFrame]:
    """The frames of ``rows`` (from :func:`frame_rows`) with their preprocessed images, in order."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        images = store.frame_images([row["_rowid"] for row in chunk], column="preprocessed")
        for row, image in zip(chunk, images):
            # boxes are stored in frame pixels, the preprocessed image is at the canonical scale
            boxes = np.rint(np.asarray(row["gt_boxes"] or [], np.float64).reshape(-1, 4) * (row["scale"] or 1.0))
            boxes = np.clip(boxes, 0, [image.shape[1], image.shape[0]] * 2).astype(np.int32)
            mask = decode_png(row["low_texture_mask"]) > 0 if row.get("low_texture_mask") else None
            yield StoreFrame(row["frame_id"], row["stem"], row["split"], row["label"], row["embryo_id"] or "",
                             bool(row["has_gt"]), boxes, image.astype(np.float32) / 255.0, mask)
