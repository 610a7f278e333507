"""Benching heads on one proposal source of a store (what a source is worth downstream)."""

from __future__ import annotations

import pytest

from cs_features.heads.bench import BenchConfig, run_heads_bench
from cs_features.heads.training import load_head_data
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import FeatureStore


@pytest.fixture(scope="module")
def store(tiny_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("sources") / "db"
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="filament,ss-single", max_proposals=120))))
    return FeatureStore(str(path))


def test_sources_restrict_training_and_test_rows(store):
    everything = load_head_data(store, "classic")
    filament = load_head_data(store, "classic", sources=("filament",))
    single = load_head_data(store, "classic", sources=("ss-single",))
    assert len(filament.test) + len(single.test) == len(everything.test)
    for split in ("train", "val", "test"):
        assert len(filament.labelled[split]) + len(single.labelled[split]) == len(everything.labelled[split])
    assert 0 < len(filament.test) < len(everything.test)


def test_bench_on_one_source_reports_it(store, tmp_path):
    result = run_heads_bench(store, tmp_path, config=BenchConfig(models=("logreg",), seeds=1, sources=("filament",)))
    assert result["config"]["sources"] == ["filament"]
    assert "proposal sources filament" in (tmp_path / "heads.md").read_text()
