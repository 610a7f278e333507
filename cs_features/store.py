"""The LanceDB feature store: explicit schemas, idempotent upserts, versions and tags.

Tables:

- ``frames``: one row per ingested frame (``frame_id`` = sha256 of the file bytes, 16 hex digits), with
  the grayscale image and the preprocessed image as PNG blobs, ground-truth boxes and the low-texture
  mask (PNG, 0/255).
- ``proposals_<encoder>``: one table per encoder so vectors of different encoders never mix; one row per
  region proposal (``proposal_id`` derived from frame id and box) with weak label and vector.
- ``ingest_log``: (frame, encoder) pairs that finished; written last, so a killed run redoes exactly the
  frames whose rows may be incomplete.
- ``errors``: every file that could not be ingested, with stage and reason.
- ``meta``: JSON settings (preprocessing, texture mask, proposals, weak labels, encoders) that every
  frame in the store was processed with.

Every write is a ``merge_insert`` on the table's primary key (marked with Lance's unenforced primary
key metadata, which also makes concurrent writers of the same keys conflict and retry instead of
duplicating rows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from cs_features.errors import StoreError

log = logging.getLogger(__name__)

STORE_SCHEMA_VERSION = 1
_PK = {"lance-schema:unenforced-primary-key": "true"}
_BLOB = {"lance-encoding:blob": "true"}
BOX_TYPE = pa.list_(pa.int32(), 4)
FRAMES, INGEST_LOG, ERRORS, META = "frames", "ingest_log", "errors", "meta"
PROPOSALS_PREFIX = "proposals_"


def _ts() -> pa.DataType:
    return pa.timestamp("us", tz="UTC")


def frames_schema() -> pa.Schema:
    return pa.schema([
        pa.field("frame_id", pa.string(), nullable=False, metadata=_PK),
        pa.field("path", pa.string()),
        pa.field("stem", pa.string()),
        pa.field("split", pa.string()),
        pa.field("label", pa.string()),
        pa.field("embryo_id", pa.string()),
        pa.field("frame_index", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("image", pa.large_binary(), metadata=_BLOB),
        pa.field("preprocessed", pa.large_binary(), metadata=_BLOB),
        pa.field("gt_boxes", pa.list_(BOX_TYPE)),
        pa.field("has_gt", pa.bool_()),
        pa.field("low_texture_mask", pa.large_binary()),
        pa.field("low_texture_fraction", pa.float32()),
        pa.field("config_hash", pa.string()),
        pa.field("ingested_at", _ts()),
    ])


def proposals_schema(dim: int, search_vector: bool = True) -> pa.Schema:
    """Schema of a ``proposals_<encoder>`` table.

    ``search_vector`` (nullable) holds ``vector`` in the encoder's fitted search space (see
    :mod:`cs_features.search_space`); tables made before search spaces lack it (``search_vector=False``).
    """
    fields = [
        pa.field("proposal_id", pa.string(), nullable=False, metadata=_PK),
        pa.field("frame_id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("frame_label", pa.string()),
        pa.field("embryo_id", pa.string()),
        pa.field("box", BOX_TYPE),
        pa.field("source", pa.string()),
        pa.field("max_iou", pa.float32()),
        pa.field("weak_label", pa.int8()),
        pa.field("encoder", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    if search_vector:
        fields.append(pa.field("search_vector", pa.list_(pa.float32(), dim)))
    return pa.schema(fields)


def ingest_log_schema() -> pa.Schema:
    return pa.schema([
        pa.field("log_id", pa.string(), nullable=False, metadata=_PK),
        pa.field("frame_id", pa.string()),
        pa.field("encoder", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("n_proposals", pa.int32()),
        pa.field("finished_at", _ts()),
    ])


def errors_schema() -> pa.Schema:
    return pa.schema([
        pa.field("error_id", pa.string(), nullable=False, metadata=_PK),
        pa.field("path", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("time", _ts()),
    ])


def meta_schema() -> pa.Schema:
    return pa.schema([
        pa.field("key", pa.string(), nullable=False, metadata=_PK),
        pa.field("value", pa.string()),
        pa.field("updated_at", _ts()),
    ])


_KEYS = {FRAMES: "frame_id", INGEST_LOG: "log_id", ERRORS: "error_id", META: "key"}


def short_hash(*parts: Any) -> str:
    """16 hex digits of sha256 over the parts' text (deterministic ids)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def proposal_id(frame_id: str, box) -> str:
    """Deterministic proposal id from the frame id and the box coordinates."""
    return short_hash(frame_id, *(int(v) for v in box))


def encoder_slug(encoder: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", encoder.lower()).strip("_")


def proposals_table_name(encoder: str) -> str:
    return PROPOSALS_PREFIX + encoder_slug(encoder)


def now() -> datetime:
    return datetime.now(timezone.utc)


class FeatureStore:
    """A LanceDB database holding the cs_features tables.

    Args:
        uri: a local directory or an object-store URI (``s3://bucket/prefix``).
        storage_options: passed to LanceDB for object stores (endpoint, keys, region, ...).
        create: create the database if it does not exist; otherwise a missing or empty store raises.
    """

    def __init__(self, uri: str, storage_options: dict | None = None, create: bool = False) -> None:
        import lancedb

        self.uri = str(uri)
        self.storage_options = storage_options or {}
        if not create and "://" not in self.uri:
            from pathlib import Path

            if not Path(self.uri).is_dir():
                raise StoreError(f"no feature store at {self.uri!r}: run `csf ingest DATASET --store {self.uri}` first")
        self.db = lancedb.connect(self.uri, storage_options=self.storage_options or None)
        if not create and not self.table_names():
            raise StoreError(f"feature store {self.uri!r} is empty: run `csf ingest DATASET --store {self.uri}` first")

    # ---- tables ------------------------------------------------------------------------------
    def table_names(self) -> list[str]:
        names, token = [], None
        while True:  # list_tables pages its answer
            response = self.db.list_tables(page_token=token)
            names.extend(response.tables)
            token = response.page_token
            if not token:
                return sorted(names)

    def has_table(self, name: str) -> bool:
        return name in self.table_names()

    def table(self, name: str):
        """Open table ``name``; waits briefly for a table a concurrent writer is creating.

        A table's folder is listed as soon as a creator starts writing it, before its first version is
        committed; opening it in between fails with "not found", so that is retried a few times.
        """
        for attempt in range(6):
            if not self.has_table(name):
                raise StoreError(f"feature store {self.uri!r} has no table {name!r}; "
                                 f"tables: {', '.join(self.table_names()) or '(none)'}")
            try:
                return self.db.open_table(name)
            except ValueError as exc:
                if attempt == 5:
                    raise StoreError(f"table {name!r} of {self.uri!r} is listed but cannot be opened: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))

    def ensure_table(self, name: str, schema: pa.Schema):
        """Open ``name``, creating it with ``schema`` if missing (safe when two writers race)."""
        for attempt in range(5):
            if self.has_table(name):
                table = self.table(name)
                if not _same_fields(table.schema, schema):
                    raise StoreError(f"table {name!r} in {self.uri!r} has another schema than this version of "
                                     f"cs_features writes:\n{table.schema}\nexpected:\n{schema}")
                return table
            try:
                return self.db.create_table(name, schema=schema, exist_ok=True)
            except Exception as exc:  # a concurrent creator won the race; open theirs
                log.debug("create_table %s raced (%s), retrying", name, exc)
                time.sleep(0.05 * (attempt + 1))
        return self.table(name)

    def upsert(self, name: str, rows: pa.Table, key: str | None = None, schema: pa.Schema | None = None,
               on_bad_vectors: str = "error") -> None:
        """Insert new rows and replace existing ones with the same primary key, retrying on conflicts.

        LanceDB refuses null or NaN vectors unless ``on_bad_vectors="null"`` (used for the proposals'
        ``search_vector``, null until a search space is fitted; the writer checks ``vector`` itself).
        """
        if rows.num_rows == 0:
            return
        key = key or _KEYS.get(name) or "proposal_id"
        table = self.ensure_table(name, schema or rows.schema)
        for attempt in range(10):
            try:
                (table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
                 .execute(rows, on_bad_vectors=on_bad_vectors))
                return
            except Exception as exc:  # commit conflicts with a concurrent writer: reload and retry
                if attempt == 9 or "onflict" not in str(exc) and "retry" not in str(exc).lower():
                    raise
                time.sleep(0.1 * (attempt + 1))
                table = self.db.open_table(name)

    def patch_columns(self, name: str, rows: pa.Table, key: str) -> None:
        """Overwrite some columns of existing rows, matched on ``key``; rows not in the table are ignored.

        Lance writes only the given columns' data files (``rewrite_columns``), not whole rows, and
        retries commit conflicts with concurrent writers itself.
        """
        if rows.num_rows == 0:
            return
        dataset = self.table(name).to_lance()
        try:
            (dataset.merge_insert(key).when_matched_update_all().write_mode("rewrite_columns").execute(rows))
        except Exception as exc:
            raise StoreError(f"updating columns {rows.column_names} of {name!r} in {self.uri!r} failed: {exc}") from exc

    # ---- settings ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> dict | None:
        if not self.has_table(META):
            return None
        rows = self.table(META).search().where(f"key = '{sql_quote(key)}'").select(["value"]).to_arrow()
        return json.loads(rows.column("value")[0].as_py()) if rows.num_rows else None

    def all_meta(self) -> dict[str, dict]:
        if not self.has_table(META):
            return {}
        rows = self.table(META).to_arrow().select(["key", "value"]).to_pylist()
        return {row["key"]: json.loads(row["value"]) for row in rows}

    def set_meta(self, key: str, value: dict) -> None:
        rows = pa.Table.from_pylist([{"key": key, "value": json.dumps(value, sort_keys=True), "updated_at": now()}],
                                    schema=meta_schema())
        self.upsert(META, rows, schema=meta_schema())

    # ---- reading -----------------------------------------------------------------------------
    def done_frames(self, encoder: str, config_hash: str) -> set[str]:
        """Frame ids whose ingest with ``encoder`` under ``config_hash`` finished."""
        if not self.has_table(INGEST_LOG):
            return set()
        rows = (self.table(INGEST_LOG).search()
                .where(f"encoder = '{sql_quote(encoder)}' AND config_hash = '{sql_quote(config_hash)}'")
                .select(["frame_id"]).limit(None).to_arrow())
        return set(rows.column("frame_id").to_pylist())

    def count(self, name: str) -> int:
        return self.table(name).count_rows() if self.has_table(name) else 0

    def read(self, name: str, columns: list[str] | None = None, where: str | None = None,
             with_row_id: bool = False) -> pa.Table:
        """Read ``columns`` of table ``name`` (all rows, or those matching the SQL ``where``).

        Blob columns (the frames' ``image`` and ``preprocessed``) come back as descriptors; fetch their
        bytes with :meth:`frame_images`.
        """
        query = self.table(name).search()
        if where:
            query = query.where(where)
        if columns:
            query = query.select(list(columns))
        if with_row_id:
            query = query.with_row_id(True)
        try:
            return query.limit(None).to_arrow()
        except Exception as exc:
            raise StoreError(f"reading {name!r} from {self.uri!r} failed (where={where!r}): {exc}") from exc

    def frame_images(self, row_ids: list[int], column: str = "preprocessed") -> list[np.ndarray]:
        """Decode the ``image`` or ``preprocessed`` blobs of frames given by ``_rowid``.

        Returns:
            a list of ``(H, W)`` uint8 arrays, in the order of ``row_ids``.
        """
        from cs_features.io import decode_png

        if column not in ("image", "preprocessed"):
            raise ValueError(f"column must be 'image' or 'preprocessed', got {column!r}")
        if not row_ids:
            return []
        blobs = self.table(FRAMES).fetch_blobs(column, list(row_ids))
        return [decode_png(blob) for blob in blobs.to_pylist()]

    def encoders(self) -> dict[str, dict]:
        """``{encoder name: info}`` for every proposals table in the store."""
        return {key.split(":", 1)[1]: value for key, value in self.all_meta().items() if key.startswith("encoder:")}


def _same_fields(a: pa.Schema, b: pa.Schema) -> bool:
    """Same column names, and same types except for blob columns (Lance reports those as structs)."""
    if a.names != b.names:
        return False
    return all(fa.type == fb.type or (fb.metadata or {}).get(b"lance-encoding:blob") for fa, fb in zip(a, b))


def sql_quote(text: str) -> str:
    """Quote a value for a LanceDB SQL filter (single quotes doubled)."""
    return str(text).replace("'", "''")


_quote = sql_quote  # older private name, still used by a few modules


def boxes_to_arrow(boxes_list: list[np.ndarray]) -> pa.Array:
    """A list of ``(N, 4)`` int32 arrays as an Arrow ``list<fixed_size_list<int32, 4>>`` column."""
    return pa.array([np.asarray(b, np.int32).reshape(-1, 4).tolist() for b in boxes_list], pa.list_(BOX_TYPE))


def vectors_to_arrow(vectors: np.ndarray) -> pa.Array:
    """``(N, D)`` float32 as an Arrow ``fixed_size_list<float32, D>`` column (no per-row Python)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def fixed_list_to_numpy(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A fixed-size-list column as a contiguous ``(N, width)`` numpy array (no per-row Python)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, width)


# Inspection, history, tags and restore live in store_admin; re-exported here for one import path.
from cs_features.store_admin import (  # noqa: E402  (needs the names above)
    list_tags, restore_store, store_history, store_info, tag_store,
)
