"""Learned proposals added to an existing store equal a fresh ingest with the source; detection proposes the same,
and evaluation and detection rank its boxes with the same string-map framing."""

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


def test_evaluation_ranks_a_strings_store_by_its_string_map(stores, tiny_store):
    from cs_features.heads import get_head, region_score
    from cs_features.heads.training import EvalSettings, fit_head, load_head_data
    from cs_features.strings.framing import MapFraming, framed_p

    added, _, _ = stores
    data = load_head_data(FeatureStore(added), "classic")
    head = get_head("logreg")
    fit_head(head, data)
    p, iou = head.predict(data.test.X)
    strength, fit = data.test_framing(MapFraming())
    assert strength.shape == fit.shape == (len(data.test),) and fit.max() > 0.5 and strength.max() > 0.5
    np.testing.assert_allclose(data.test_region_score(head, p, iou, EvalSettings()),
                               region_score(framed_p(p, strength), fit), atol=1e-6)
    off = EvalSettings(framing=MapFraming(enabled=False))
    np.testing.assert_allclose(data.test_region_score(head, p, iou, off), region_score(p, iou), atol=1e-6)
    plain = load_head_data(FeatureStore(str(tiny_store)), "classic")
    assert plain.test_framing(MapFraming()) is None  # no 'strings' source: the head ranks alone
    data.settings = {**data.settings, "proposals": {**data.settings["proposals"], "strings_model": "/gone/strings"}}
    data.framings.clear()
    with pytest.raises(ConfigError, match="/gone/strings"):
        data.test_framing(MapFraming())


@pytest.fixture(scope="module")
def detector_models(stores, tmp_path_factory):
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head

    added, _, _ = stores
    root = tmp_path_factory.mktemp("framed_detect")
    train_from_store(added, root / "ae", AnomalyFilter(epochs=1, img_size=64, batch_size=8, seed=0))
    train_head(added, "logreg", root / "head", encoder="classic")
    return root


def test_detect_frames_boxes_with_the_map_exactly_as_the_store_evaluation_does(stores, detector_models, tiny_dataset,
                                                                               tmp_path):
    import json

    from cs_features.detect import DetectConfig, detect
    from cs_features.strings.framing import MapFraming, store_framing

    added, _, _ = stores
    model = FeatureStore(added).get_meta("settings")["proposals"]["strings_model"]
    detect([tiny_dataset / "test"], detector_models / "ae", detector_models / "head", tmp_path / "on",
           DetectConfig(gate=False, top_k=20))
    detect([tiny_dataset / "test"], detector_models / "ae", detector_models / "head", tmp_path / "off",
           DetectConfig(gate=False, top_k=20, framing=MapFraming(enabled=False)))
    frames = json.loads((tmp_path / "on" / "detections.json").read_text())["frames"]
    ids = dict(zip(*[FeatureStore(added).read("frames", ["stem", "frame_id"]).column(c).to_pylist()
                     for c in ("stem", "frame_id")]))
    boxes = [(ids[f["stem"]], b) for f in frames for b in f["boxes"]]
    assert len(boxes) > 20 and all(b["map_strength"] is not None for _, b in boxes)
    strength, fit = store_framing(FeatureStore(added), np.array([i for i, _ in boxes]),
                                  np.array([b["box"] for _, b in boxes]), model)
    np.testing.assert_allclose([b["map_strength"] for _, b in boxes], strength, atol=1e-4)
    np.testing.assert_allclose([b["iou"] for _, b in boxes], fit, atol=1e-4)
    assert all(abs(b["p"] - np.sqrt(b["head_p"] * b["map_strength"]) * b["attachment"] * b["transience"]) < 1e-3
               for _, b in boxes)
    plain = [b for f in json.loads((tmp_path / "off" / "detections.json").read_text())["frames"] for b in f["boxes"]]
    assert plain and all(b["map_strength"] is None for b in plain)
    assert all(abs(b["p"] - b["head_p"] * b["attachment"] * b["transience"]) < 1e-3 for b in plain)
