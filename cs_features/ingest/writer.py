"""Batched, crash-safe writes of processed frames into the feature store."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from cs_features.datasets import Problem
from cs_features.ids import proposal_id, short_hash
from cs_features.metrics import add_counts
from cs_features.store import (
    ERRORS,
    FRAMES,
    INGEST_LOG,
    FeatureStore,
    errors_schema,
    frames_schema,
    ingest_log_schema,
    now,
    proposals_schema,
    proposals_table_name,
    vectors_to_arrow,
)


class BatchRows:
    """The Arrow rows one batch of :class:`~cs_features.ingest.FrameResult` objects writes, per table.

    Built the same way by every engine (the local writer upserts them, Ray workers write them as Lance
    fragments), so the rows do not depend on where a frame was processed.
    """

    def __init__(self, encoder: str, dim: int, config_hash: str) -> None:
        self.encoder = encoder
        self.dim = int(dim)
        self.config_hash = config_hash

    def frames(self, results, stamp) -> pa.Table:
        """Rows of the ``frames`` table, for the results that carry a frame row."""
        return pa.Table.from_pylist([{**r.row, "config_hash": self.config_hash, "ingested_at": stamp}
                                     for r in results if r.row is not None], schema=frames_schema())

    def log(self, results, stamp) -> pa.Table:
        """``ingest_log`` rows (the commit markers) of every result."""
        rows = [{"log_id": short_hash(r.frame_id, self.encoder), "frame_id": r.frame_id, "encoder": self.encoder,
                 "config_hash": self.config_hash, "n_proposals": len(r.boxes), "finished_at": stamp}
                for r in results]
        return pa.Table.from_pylist(rows, schema=ingest_log_schema())

    def proposals(self, results, with_search: bool = True, space=None) -> pa.Table:
        """Rows of ``proposals_<encoder>``; ``search_vector`` in ``space`` (null before the first fit).

        Raises:
            ValueError: vectors of another dimension than the encoder's, or NaN/infinite vectors.
        """
        counts = [len(r.boxes) for r in results]
        boxes = np.concatenate([r.boxes for r in results]) if sum(counts) else np.zeros((0, 4), np.int32)
        vectors = np.concatenate([r.vectors for r in results]) if sum(counts) else np.zeros((0, self.dim), np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"encoder {self.encoder} returned vectors of dimension {vectors.shape[1]}, "
                             f"expected {self.dim}")
        if not np.isfinite(vectors).all():
            bad = sorted({r.source.path for r in results if not np.isfinite(r.vectors).all()})
            raise ValueError(f"encoder {self.encoder} returned NaN or infinite vectors for {[str(p) for p in bad]}")

        def per_frame(values):
            return np.repeat(np.asarray(values, dtype=object), counts).tolist()

        ids = [proposal_id(r.frame_id, box) for r in results for box in r.boxes]
        columns = {
            "proposal_id": pa.array(ids, pa.string()),
            "frame_id": pa.array(per_frame([r.frame_id for r in results]), pa.string()),
            "split": pa.array(per_frame([r.source.split for r in results]), pa.string()),
            "frame_label": pa.array(per_frame([r.source.label for r in results]), pa.string()),
            "embryo_id": pa.array(per_frame([r.source.embryo_id for r in results]), pa.string()),
            "box": pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1).astype(np.int32)), 4),
            "source": pa.array(np.concatenate([r.sources for r in results]).tolist() if ids else [], pa.string()),
            "max_iou": pa.array(np.concatenate([r.max_iou for r in results]) if ids else [], pa.float32()),
            "weak_label": pa.array(np.concatenate([r.weak_label for r in results]) if ids else [], pa.int8()),
            "encoder": pa.array([self.encoder] * len(ids), pa.string()),
            "vector": vectors_to_arrow(vectors) if ids else pa.array([], pa.list_(pa.float32(), self.dim)),
        }
        if with_search:
            columns["search_vector"] = (vectors_to_arrow(space.transform(vectors)) if space is not None and ids
                                        else pa.nulls(len(ids), pa.list_(pa.float32(), self.dim)))
        return pa.Table.from_pydict(columns, schema=proposals_schema(self.dim, search_vector=with_search))


def tally_frame(summary, result) -> None:
    """Add one frame result's stage times, warnings and proposal recall to an ingest summary."""
    for stage, seconds in result.stage_seconds.items():
        summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + seconds
    summary.warnings.extend(result.warnings)
    add_counts(summary.recall_counts, result.recall)


def tally_batch(summary, n_frames: int, proposals: pa.Table) -> None:
    """Add a written batch's frame, proposal and weak-label counts to an ingest summary."""
    summary.frames_added += n_frames
    summary.proposals_added += proposals.num_rows
    labels = proposals.column("weak_label").to_numpy()
    summary.positives += int((labels == 1).sum())
    summary.negatives += int((labels == 0).sum())
    summary.ignored += int((labels == -1).sum())


def search_space_for_rows(store: FeatureStore, encoder: str):
    """Whether the proposals table has ``search_vector``, and the space to fill it with (None before the first fit).

    A table made before search spaces lacks the column; the end of the ingest adds and fills it.
    """
    from cs_features.search import SEARCH_COLUMN, load_search_space

    name = proposals_table_name(encoder)
    if store.has_table(name) and SEARCH_COLUMN not in store.table(name).schema.names:
        return False, None
    return True, load_search_space(store, encoder)


class BatchWriter:
    """Collects :class:`~cs_features.ingest.FrameResult` objects and writes them every ``batch_frames``.

    Order per batch: proposals, then frames, then ``ingest_log``; the log row is the commit marker. A
    result without a frame row (a stored frame proposed again) only moves the frame's settings hash.
    """

    def __init__(self, store: FeatureStore, config, encoder_info: dict, summary) -> None:
        self.store = store
        self.config = config
        self.encoder = config.encoder
        self.dim = int(encoder_info["dim"])
        self.rows = BatchRows(self.encoder, self.dim, config.settings.config_hash())
        self.summary = summary
        self.pending: list = []

    def add(self, result) -> None:
        self.pending.append(result)
        tally_frame(self.summary, result)
        if len(self.pending) >= self.config.batch_frames:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        start = time.perf_counter()
        results, self.pending = self.pending, []
        stamp = now()
        # read at every flush, so rows written after a space was fitted (by this run's end or another
        # process) are written in that space
        with_search, space = search_space_for_rows(self.store, self.encoder)
        proposals = self.rows.proposals(results, with_search, space)
        self.store.upsert(proposals_table_name(self.encoder), proposals, key="proposal_id",
                          schema=proposals_schema(self.dim, search_vector=with_search), on_bad_vectors="null")
        self.store.upsert(FRAMES, self.rows.frames(results, stamp), schema=frames_schema())
        stored = [r.frame_id for r in results if r.row is None]  # re-proposed from the store: only the hash moves
        if stored:
            hashes = pa.table({"frame_id": pa.array(stored, pa.string()),
                               "config_hash": pa.array([self.rows.config_hash] * len(stored), pa.string())})
            self.store.patch_columns(FRAMES, hashes, key="frame_id")
        self.store.upsert(INGEST_LOG, self.rows.log(results, stamp), schema=ingest_log_schema())
        tally_batch(self.summary, len(results), proposals)
        self.summary.stage_seconds["write"] = self.summary.stage_seconds.get("write", 0.0) + time.perf_counter() - start

def record_problems(store: FeatureStore, problems: list[Problem]) -> None:
    """Write every skipped file to the ``errors`` table (one row per path, stage and reason)."""
    if not problems:
        return
    stamp = now()
    rows = [{"error_id": short_hash(p.path, p.stage, p.reason), "path": p.path, "stage": p.stage,
             "reason": p.reason, "time": stamp} for p in problems]
    unique = {row["error_id"]: row for row in rows}
    store.upsert(ERRORS, pa.Table.from_pylist(list(unique.values()), schema=errors_schema()), schema=errors_schema())
