"""The store's schema version: written by ingest, checked on open, with a clear message for another version."""

from __future__ import annotations

import pytest

from cs_features.errors import StoreError
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import STORE_SCHEMA_VERSION, FeatureStore


def test_a_store_from_another_schema_version_is_refused_with_a_reingest_message(tiny_dataset, tmp_path):
    path = str(tmp_path / "store")
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="ss-single", max_proposals=10))))
    store = FeatureStore(path)
    assert store.get_meta("store")["schema_version"] == STORE_SCHEMA_VERSION
    store.set_meta("store", {"schema_version": STORE_SCHEMA_VERSION + 1, "created_by": "cs_features 9.9"})
    with pytest.raises(StoreError, match=rf"schema version {STORE_SCHEMA_VERSION + 1} \(written by cs_features 9.9\)"
                                         rf".*reads schema version {STORE_SCHEMA_VERSION}: re-ingest"):
        FeatureStore(path)
    with pytest.raises(StoreError, match="re-ingest"):
        ingest(tiny_dataset, path, IngestConfig(workers=1))  # nothing is written into it either
