"""Learned proposals added to an existing store equal a fresh ingest with the source; detection proposes the same."""

from __future__ import annotations

import numpy as np
import pytest

from cs_features.errors import ConfigError
from cs_features.ingest import IngestConfig, ingest
from cs_features.ingest.add_source import add_proposal_source
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import INGEST_LOG, FeatureStore, fixed_list_to_numpy, proposals_table_name

BASE = ProposalConfig(method="filament", max_proposals=40)


@pytest.fixture(scope="module")
def stores(tiny_dataset, tmp_path_factory):
    """(store with filament proposals + strings added, fresh store ingested with filament,strings)."""
    from cs_features.strings.training import train_strings

    root = tmp_path_factory.mktemp("add_source")
    added, fresh = str(root / "added"), str(root / "fresh")
    ingest(tiny_dataset, added, IngestConfig(workers=1, settings=StoreSettings(proposals=BASE)))
    model = str(root / "strings")
    train_strings(added, model)
    summary = add_proposal_source(added, "strings", {"strings_model": model})
    settings = StoreSettings(proposals=ProposalConfig(method="filament,strings", max_proposals=40,
                                                      strings_model=model))
    ingest(tiny_dataset, fresh, IngestConfig(workers=1, settings=settings))
    return added, fresh, summary


def _rows(uri: str) -> dict:
    store = FeatureStore(uri)
    table = store.read(proposals_table_name("classic"), ["proposal_id", "source", "weak_label", "vector"])
    vectors = fixed_list_to_numpy(table.column("vector"), 104)
    return {pid: (source, label, vector) for pid, source, label, vector in
            zip(table.column("proposal_id").to_pylist(), table.column("source").to_pylist(),
                table.column("weak_label").to_pylist(), vectors)}


def test_added_source_gives_the_rows_a_fresh_ingest_gives(stores):
    added, fresh, summary = stores
    a, b = _rows(added), _rows(fresh)
    assert set(a) == set(b)
    assert sum(source == "strings" for source, _, _ in b.values()) > 0  # the learned source proposed boxes
    assert summary.proposals_added > 0
    for pid, (source, label, vector) in b.items():
        assert a[pid][:2] == (source, label)
        np.testing.assert_allclose(a[pid][2], vector, rtol=0, atol=1e-5)


def test_the_store_records_the_new_settings_and_logs_every_frame_under_them(stores, tiny_dataset):
    added, fresh, _ = stores
    meta_a, meta_b = FeatureStore(added).get_meta("settings"), FeatureStore(fresh).get_meta("settings")
    assert meta_a == meta_b and meta_a["proposals"]["method"] == "filament,strings"
    hashes = set(FeatureStore(added).read(INGEST_LOG, ["config_hash"]).column("config_hash").to_pylist())
    assert hashes == {StoreSettings.from_dict(meta_a).config_hash()}
    again = ingest(tiny_dataset, added, IngestConfig(workers=1, settings=StoreSettings.from_dict(meta_a)))
    assert again.frames_added == 0  # the store is what an ingest with the new settings would write


def test_a_source_is_added_once_and_must_exist(stores):
    added, _, _ = stores
    with pytest.raises(ConfigError, match="already proposes with 'strings'"):
        add_proposal_source(added, "strings")
    with pytest.raises(Exception, match="unknown proposal source 'stringz'"):
        add_proposal_source(added, "stringz")
