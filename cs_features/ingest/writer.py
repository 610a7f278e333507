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
        self.summary = summary
        self.pending: list = []

    def add(self, result) -> None:
        self.pending.append(result)
        for stage, seconds in result.stage_seconds.items():
            self.summary.stage_seconds[stage] = self.summary.stage_seconds.get(stage, 0.0) + seconds
        self.summary.warnings.extend(result.warnings)
        add_counts(self.summary.recall_counts, result.recall)
        if len(self.pending) >= self.config.batch_frames:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        start = time.perf_counter()
        results, self.pending = self.pending, []
        stamp = now()
        with_search, space = self._search_space()
        proposals = self._proposal_rows(results, with_search, space)
        self.store.upsert(proposals_table_name(self.encoder), proposals, key="proposal_id",
                          schema=proposals_schema(self.dim, search_vector=with_search), on_bad_vectors="null")
        new = [r for r in results if r.row is not None]
        frames = pa.Table.from_pylist([{**r.row, "config_hash": self.config.settings.config_hash(),
                                        "ingested_at": stamp}
                                       for r in new], schema=frames_schema())
        self.store.upsert(FRAMES, frames, schema=frames_schema())
        stored = [r.frame_id for r in results if r.row is None]  # re-proposed from the store: only the hash moves
        if stored:
            config_hash = self.config.settings.config_hash()
            hashes = pa.table({"frame_id": pa.array(stored, pa.string()),
                               "config_hash": pa.array([config_hash] * len(stored), pa.string())})
            self.store.patch_columns(FRAMES, hashes, key="frame_id")
        log_rows = [{"log_id": short_hash(r.frame_id, self.encoder), "frame_id": r.frame_id, "encoder": self.encoder,
                     "config_hash": self.config.settings.config_hash(), "n_proposals": len(r.boxes),
                     "finished_at": stamp}
                    for r in results]
        self.store.upsert(INGEST_LOG, pa.Table.from_pylist(log_rows, schema=ingest_log_schema()),
                          schema=ingest_log_schema())
        self.summary.frames_added += len(results)
        self.summary.proposals_added += proposals.num_rows
        labels = proposals.column("weak_label").to_numpy()
        self.summary.positives += int((labels == 1).sum())
        self.summary.negatives += int((labels == 0).sum())
        self.summary.ignored += int((labels == -1).sum())
        self.summary.stage_seconds["write"] = self.summary.stage_seconds.get("write", 0.0) + time.perf_counter() - start

    def _search_space(self):
        """Whether the table has ``search_vector``, and the space to fill it with (None before the first fit).

        Read at every flush, so rows written after a space was fitted (by this run's end or another
        process) are written in that space. A table made before search spaces lacks the column; the
        end of the ingest adds and fills it.
        """
        from cs_features.search import SEARCH_COLUMN, load_search_space

        name = proposals_table_name(self.encoder)
        if self.store.has_table(name) and SEARCH_COLUMN not in self.store.table(name).schema.names:
            return False, None
        return True, load_search_space(self.store, self.encoder)

    def _proposal_rows(self, results, with_search: bool = True, space=None) -> pa.Table:
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

    def record_problems(self, problems: list[Problem]) -> None:
        """Write every skipped file to the ``errors`` table (one row per path, stage and reason)."""
        if not problems:
            return
        stamp = now()
        rows = [{"error_id": short_hash(p.path, p.stage, p.reason), "path": p.path, "stage": p.stage,
                 "reason": p.reason, "time": stamp} for p in problems]
        unique = {row["error_id"]: row for row in rows}
        self.store.upsert(ERRORS, pa.Table.from_pylist(list(unique.values()), schema=errors_schema()),
                          schema=errors_schema())
