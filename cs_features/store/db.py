"""The LanceDB database behind the feature store: open, create tables, upsert, read, settings.

Every write is a ``merge_insert`` on the table's primary key (see :mod:`cs_features.store.schemas`),
so re-running a stage on the same input writes the same rows and concurrent writers retry on conflicts.
A ``merge_insert`` finds the rows it replaces by joining on the key: without an index it reads the
whole key column, so each batch of an ingest would cost more as the store grows. Once a table holds
:data:`KEY_INDEX_FROM_ROWS` rows its key gets a BTREE index, and rows written since are folded into it
every :data:`KEY_INDEX_REFRESH_ROWS` (``benchmarks/bench_upsert.py``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from cs_features.errors import StoreError
from cs_features.store.schemas import FRAMES, INGEST_LOG, META, PRIMARY_KEYS, STORE_SCHEMA_VERSION, meta_schema

log = logging.getLogger(__name__)

KEY_INDEX_FROM_ROWS = 100_000
"""A table's primary key is indexed (BTREE) from this many rows on."""
KEY_INDEX_REFRESH_ROWS = 100_000
"""Rows outside the key index (written since it was built or last refreshed) that make an upsert fold them in."""


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
        self.check_schema_version()

    def check_schema_version(self) -> None:
        """Refuse a store written under another table layout than this version of cs_features reads.

        Raises:
            StoreError: naming the store's schema version, the one read here, and what to do.
        """
        from cs_features import __version__

        written = (self.get_meta("store") or {}).get("schema_version", STORE_SCHEMA_VERSION)
        if written != STORE_SCHEMA_VERSION:
            made_by = (self.get_meta("store") or {}).get("created_by", "an unknown version")
            raise StoreError(f"feature store {self.uri!r} has schema version {written} (written by {made_by}); "
                             f"cs_features {__version__} reads schema version {STORE_SCHEMA_VERSION}: re-ingest the "
                             "dataset into a new --store")

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
        key = key or PRIMARY_KEYS.get(name) or "proposal_id"
        table = self.ensure_table(name, schema or rows.schema)
        for attempt in range(10):
            try:
                (table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
                 .execute(rows, on_bad_vectors=on_bad_vectors))
                break
            except Exception as exc:  # commit conflicts with a concurrent writer: reload and retry
                if attempt == 9 or "onflict" not in str(exc) and "retry" not in str(exc).lower():
                    raise
                time.sleep(0.1 * (attempt + 1))
                table = self.db.open_table(name)
        self._maintain_key_index(name, table, key)

    def _maintain_key_index(self, name: str, table, key: str) -> None:
        """Index ``key`` once the table holds :data:`KEY_INDEX_FROM_ROWS` rows; fold the rows outside the index
        into it once they reach :data:`KEY_INDEX_REFRESH_ROWS`. The rows are written already: if this fails (a
        concurrent writer's commit), the next upsert tries again, and the failure is logged."""
        from lancedb.index import BTree

        try:
            if table.count_rows() < KEY_INDEX_FROM_ROWS:
                return
            index = f"{key}_idx"
            stats = table.index_stats(index)
            if stats is None:
                table.create_index(key, config=BTree(), replace=True, name=index)
            elif stats.num_unindexed_rows >= KEY_INDEX_REFRESH_ROWS:
                table.to_lance().optimize.optimize_indices(index_names=[index])
        except Exception as exc:
            log.warning("the key index of table %r in %s was not brought up to date (%s); upserts into it scan "
                        "its key column until the next one succeeds", name, self.uri, exc)

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


def require_frames(store: FeatureStore, frame_ids: list[str], found, what: str, command: str) -> None:
    """Raise :class:`StoreError` naming how many of ``frame_ids`` are not in ``found`` (a dict or set of
    frame ids), one of them, ``what`` they lack and the ``command`` that writes it."""
    absent = [f for f in frame_ids if f not in found]
    if absent:
        raise StoreError(f"{len(absent)} of {len(frame_ids)} frames of {store.uri!r} have no {what} (e.g. frame "
                         f"{absent[0]!r}): run `{command}` first")
