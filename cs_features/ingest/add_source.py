"""Add a proposal source to an existing store, from the stored preprocessed frames (no image is read again).

Each frame's proposals are recomputed from its stored preprocessed frame and mask under the store's
settings with the new source appended: exactly what a fresh ingest with those settings would propose.
Boxes already stored keep their rows and vectors, new boxes are embedded and weakly labelled, and boxes
the shared cap now drops are deleted; then the frame is logged under the new settings' hash, so a
killed run resumes and a later ``csf ingest`` with the new settings adds nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.datasets import FrameSource
from cs_features.embryo import EmbryoCircle
from cs_features.errors import ConfigError
from cs_features.frame import FramePipeline, ProcessedFrame
from cs_features.ids import proposal_id
from cs_features.ingest.config import IngestConfig, IngestSummary
from cs_features.ingest.stages import FrameResult
from cs_features.ingest.writer import BatchWriter
from cs_features.metrics import recall_by_source
from cs_features.proposals import weak_labels
from cs_features.scale import FrameScale
from cs_features.settings import StoreSettings, check_encoder_info
from cs_features.store import FRAMES, FeatureStore, fixed_list_to_numpy, proposals_table_name, sql_quote

log = logging.getLogger(__name__)
FRAME_COLUMNS = ["frame_id", "path", "stem", "split", "label", "embryo_id", "frame_index", "width", "height",
                 "gt_boxes", "has_gt", "low_texture_mask", "scale", "embryo_x", "embryo_y", "embryo_radius",
                 "embryo_found"]
CHUNK = 16


@dataclass
class AddSourceSummary:
    """What adding a source did, per encoder table."""

    store: str
    source: str
    settings: dict
    frames: int = 0
    frames_skipped: int = 0
    proposals_added: int = 0
    proposals_removed: int = 0
    seconds: float = 0.0
    recall: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def add_proposal_source(store_uri: str | Path, source: str, overrides: dict | None = None,
                        weights: str | None = None, storage_options: dict | None = None,
                        progress: Callable[[int, int], None] | None = None) -> AddSourceSummary:
    """Append ``source`` to the store's proposal sources and re-propose every frame from the store.

    Args:
        source: a registered proposal source (e.g. ``"strings"``).
        overrides: proposal settings the source needs, e.g. ``{"strings_model": "models/strings"}``.
        weights: DINOv3 weights file, for stores with DINOv3 vectors.

    Raises:
        ConfigError: the store already proposes with ``source``, or the source is unknown.
        SettingsMismatchError: ``weights`` are not the ones the store's vectors were made with.
    """
    from cs_features.proposals import PROPOSAL_SOURCES

    start = time.perf_counter()
    store = FeatureStore(str(store_uri), storage_options=storage_options)
    old = StoreSettings.from_dict(store.get_meta("settings") or {})
    if source in old.proposals.sources:
        raise ConfigError(f"store {store.uri!r} already proposes with {source!r} ({old.proposals.method})")
    PROPOSAL_SOURCES.get(source)  # an unknown source raises, listing the known ones
    settings = old.merged({"proposals": {**(overrides or {}), "method": f"{old.proposals.method},{source}"}})
    summary = AddSourceSummary(store.uri, source, settings.to_dict())
    rows = store.read(FRAMES, FRAME_COLUMNS, with_row_id=True).sort_by("stem").to_pylist()
    for encoder_name, info in store.encoders().items():
        _re_propose(store, encoder_name, info, settings, rows, weights, summary, progress)
    store.set_meta("settings", settings.to_dict())
    summary.frames = len(rows)
    summary.seconds = round(time.perf_counter() - start, 3)
    return summary


def _re_propose(store: FeatureStore, encoder_name: str, info: dict, settings: StoreSettings, rows: list[dict],
                weights: str | None, summary: AddSourceSummary, progress) -> None:
    from cs_features.encoders import get_encoder
    from cs_features.metrics import add_counts, recall_summary

    encoder = get_encoder(encoder_name, weights=weights, pooling=info.get("pooling", "roi"))
    check_encoder_info(info, encoder.info(), expected_name=f"store {store.uri!r}", actual_name="--weights",
                       remedy="Pass the weights file the store was ingested with")
    pipeline = FramePipeline(settings, encoder)
    config = IngestConfig(encoder=encoder_name, settings=settings)
    ingest_summary = IngestSummary(store=store.uri, encoder=encoder_name)
    writer = BatchWriter(store, config, info, ingest_summary)
    done = store.done_frames(encoder_name, settings.config_hash())
    todo = [row for row in rows if row["frame_id"] not in done]
    summary.frames_skipped += len(rows) - len(todo)
    counts: dict = {}
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        images = store.frame_images([row["_rowid"] for row in chunk], column="preprocessed")
        for row, preprocessed in zip(chunk, images):
            result, removed = _frame_result(store, encoder_name, pipeline, row, preprocessed)
            summary.proposals_removed += removed
            add_counts(counts, result.recall)
            writer.add(result)
        writer.flush()
        if progress:
            progress(min(start + CHUNK, len(todo)), len(todo))
    summary.proposals_added += ingest_summary.proposals_added
    summary.recall[encoder_name] = recall_summary(counts)


def _frame_result(store: FeatureStore, encoder_name: str, pipeline: FramePipeline, row: dict,
                  preprocessed: np.ndarray) -> tuple[FrameResult, int]:
    """The frame's proposals under the new settings, reusing stored vectors; deletes rows it no longer has."""
    from cs_features.io import decode_png

    scale = FrameScale(row["scale"] or 1.0, EmbryoCircle(row["embryo_x"] or 0.0, row["embryo_y"] or 0.0,
                                                         row["embryo_radius"] or 0.0, bool(row["embryo_found"])),
                       (row["height"], row["width"]))
    frame = ProcessedFrame(row["path"], None, scale, preprocessed, decode_png(row["low_texture_mask"]) > 0)
    proposals = pipeline.propose(frame)
    table = proposals_table_name(encoder_name)
    stored = store.read(table, ["proposal_id", "vector"], where=f"frame_id = '{sql_quote(row['frame_id'])}'")
    stored_vectors = dict(zip(stored.column("proposal_id").to_pylist(),
                              fixed_list_to_numpy(stored.column("vector"), pipeline.encoder.dim)))
    ids = [proposal_id(row["frame_id"], box) for box in proposals.boxes]
    new = [k for k, pid in enumerate(ids) if pid not in stored_vectors]
    vectors = np.zeros((len(ids), pipeline.encoder.dim), np.float32)
    for k, pid in enumerate(ids):
        if pid in stored_vectors:
            vectors[k] = stored_vectors[pid]
    if new:
        vectors[new] = pipeline.embed(frame, proposals.boxes[new])
    stale = sorted(set(stored_vectors) - set(ids))
    if stale:
        store.table(table).delete("proposal_id IN (" + ", ".join(f"'{sql_quote(p)}'" for p in stale) + ")")
    gt = np.asarray(row["gt_boxes"] or [], np.int32).reshape(-1, 4) if row["has_gt"] else None
    labels = pipeline.settings.weak_labels
    max_iou, label = weak_labels(proposals.boxes, gt, labels.positive_iou, labels.negative_iou)
    source = FrameSource(Path(row["path"]), row["stem"], row["split"], row["label"], row["embryo_id"],
                         row["frame_index"], None)
    recall = recall_by_source(gt, proposals.boxes, proposals.sources) if gt is not None else {}
    return (FrameResult(source, row["frame_id"], None, proposals.boxes, proposals.sources, max_iou, label, vectors,
                        dict(frame.seconds), [], recall), len(stale))
