"""The feature store: upserts, meta, history, tags and restore, object-store URIs."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import local_s3

from cs_features.errors import StoreError
from cs_features.ids import proposal_id, short_hash
from cs_features.store import (
    FeatureStore,
    errors_schema,
    list_tags,
    now,
    restore_store,
    store_history,
    store_info,
    tag_store,
)


def _error_rows(*paths):
    return pa.Table.from_pylist([{"error_id": short_hash(p), "path": p, "stage": "read", "reason": "x", "time": now()}
                                 for p in paths], schema=errors_schema())


def test_missing_and_empty_store_errors(tmp_path):
    with pytest.raises(StoreError, match="no feature store at"):
        FeatureStore(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="is empty"):
        FeatureStore(str(tmp_path / "empty"))


def test_upsert_is_idempotent_and_updates(tmp_path):
    store = FeatureStore(str(tmp_path / "s"), create=True)
    store.upsert("errors", _error_rows("a", "b"))
    store.upsert("errors", _error_rows("b", "c"))
    assert sorted(store.table("errors").to_arrow().column("path").to_pylist()) == ["a", "b", "c"]


def test_a_large_tables_key_is_indexed_and_kept_up_to_date_and_upserts_write_the_same_rows(tmp_path, monkeypatch):
    from cs_features.store import db

    monkeypatch.setattr(db, "KEY_INDEX_FROM_ROWS", 40)
    monkeypatch.setattr(db, "KEY_INDEX_REFRESH_ROWS", 25)
    schema = pa.schema([("key", pa.string()), ("value", pa.int64()), ("other", pa.int64())])
    store = FeatureStore(str(tmp_path / "s"), create=True)
    expected: dict[str, int] = {}

    def write(keys, value):
        store.upsert("rows", pa.table({"key": keys, "value": [value] * len(keys), "other": [0] * len(keys)},
                                      schema=schema), key="key", schema=schema)
        expected.update({k: value for k in keys})
        table = store.table("rows")
        assert dict(zip(*table.to_arrow().select(["key", "value"]).to_pydict().values())) == expected
        return table.index_stats("key_idx")

    assert write([f"k{i:03d}" for i in range(30)], 1) is None  # under 40 rows: no index
    stats = write([f"k{i:03d}" for i in range(20, 50)], 2)  # 10 replaced, 20 new: 50 rows, indexed
    assert stats.num_indexed_rows == 50 and stats.num_unindexed_rows == 0
    stats = write([f"k{i:03d}" for i in range(45, 60)], 3)  # rows outside the index, not yet folded in
    assert stats.num_unindexed_rows > 0
    stats = write([f"k{i:03d}" for i in list(range(0, 5)) + list(range(60, 80))], 4)  # replaced through the index
    assert stats.num_unindexed_rows == 0 and stats.num_indexed_rows >= 80
    assert store.table("rows").count_rows() == 80
    store.patch_columns("rows", pa.table({"key": ["k001", "k070"], "value": [9, 9]}), key="key")
    values = dict(zip(*store.table("rows").to_arrow().select(["key", "value"]).to_pydict().values()))
    assert values["k001"] == values["k070"] == 9 and values["k002"] == 4 and len(values) == 80


def test_meta_round_trip(tmp_path):
    store = FeatureStore(str(tmp_path / "s"), create=True)
    store.set_meta("settings", {"a": 1})
    store.set_meta("settings", {"a": 2})
    assert store.get_meta("settings") == {"a": 2} and store.count("meta") == 1


def test_ids_are_deterministic():
    assert proposal_id("abc", [1, 2, 3, 4]) == proposal_id("abc", (1, 2, 3, 4))
    assert proposal_id("abc", [1, 2, 3, 4]) != proposal_id("abc", [1, 2, 3, 5])


def test_tag_and_restore_keep_history(tmp_path):
    store = FeatureStore(str(tmp_path / "s"), create=True)
    store.upsert("errors", _error_rows("a"))
    pinned = tag_store(store, "v1")
    store.upsert("errors", _error_rows("b", "c"))
    assert store.count("errors") == 3
    restored = restore_store(store, "v1")
    assert restored == pinned and store.count("errors") == 1
    history = store_history(store)
    versions = [row["version"] for row in history if row["table"] == "errors"]
    assert len(versions) >= 4  # create, two writes, the restore: nothing was deleted
    assert any("v1" in row["tags"] for row in history)
    assert list_tags(store) == {"v1": pinned}
    with pytest.raises(StoreError, match="already exists"):
        tag_store(store, "v1")
    with pytest.raises(StoreError, match="no tag 'v9'.*v1"):
        restore_store(store, "v9")
    with pytest.raises(StoreError, match="not valid"):
        tag_store(store, "bad tag!")
    info = store_info(store)
    assert info["tables"]["errors"]["rows"] == 1 and info["tags"] == ["v1"]


@pytest.fixture()
def s3_server():
    """A local S3-compatible server (moto) with a bucket ``csf``; yields the store's storage options."""
    with local_s3() as options:
        yield options


def test_ingest_into_object_store(s3_server, tiny_dataset):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    config = IngestConfig(workers=1,
                          settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=20)))
    summary = ingest(tiny_dataset, "s3://csf/store", config, storage_options=s3_server)
    again = ingest(tiny_dataset, "s3://csf/store", config, storage_options=s3_server)
    store = FeatureStore("s3://csf/store", storage_options=s3_server)
    assert summary.frames_added == store.count("frames") == 18
    assert again.frames_added == 0 and again.frames_skipped == 18
    assert store.count("proposals_classic") == summary.proposals_added
