"""Loading head training arrays from the store, store-level bad input, knn in LanceDB, compatibility."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from cs_features.errors import ConfigError, DatasetError, StoreError
from cs_features.heads import get_head, load_head
from cs_features.heads.bench import pin_store
from cs_features.heads.data import check_encoder, load_frames, load_labelled, load_proposals
from cs_features.heads.knn import KNNHead
from cs_features.heads.training import (
    EvalSettings,
    evaluate_head,
    fit_head,
    frame_detections,
    load_head_data,
    snapshot_recall,
    train_head,
)
from cs_features.settings import SettingsMismatchError
from cs_features.store import FeatureStore, fixed_list_to_numpy, list_tags


@pytest.fixture(scope="module")
def tiny_store(tiny_dataset, tmp_path_factory):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    path = tmp_path_factory.mktemp("heads_store") / "store"
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="ss-single", max_proposals=60))))
    return path


@pytest.fixture()
def store_copy(tiny_store, tmp_path):
    """A private copy of the tiny store that a test may change."""
    shutil.copytree(tiny_store, tmp_path / "store")
    return FeatureStore(str(tmp_path / "store"))


def _reference_rows(store: FeatureStore) -> list[dict]:
    return store.read("proposals_classic", columns=["proposal_id", "split", "weak_label", "max_iou", "frame_id"]) \
        .to_pylist()


def test_load_labelled_matches_the_table_row_by_row(tiny_store):
    store = FeatureStore(str(tiny_store))
    data = load_labelled(store, "classic")
    rows = _reference_rows(store)
    expected = Counter(r["split"] for r in rows if r["weak_label"] >= 0)
    assert {split: len(a) for split, a in data.items()} == {s: expected[s] for s in ("train", "val", "test")}
    assert sum(len(a) for a in data.values()) < len(rows)  # ignored (-1) rows were dropped
    for split, arrays in data.items():
        assert arrays.X.shape == (len(arrays), 104) and arrays.X.dtype == np.float32 and arrays.X.flags.c_contiguous
        assert set(np.unique(arrays.y).tolist()) <= {0, 1}
        labels = sorted(r["weak_label"] for r in rows if r["split"] == split and r["weak_label"] >= 0)
        assert sorted(arrays.y.tolist()) == labels
    # same vectors as a plain read, in proposal id order
    table = store.read("proposals_classic", columns=["proposal_id", "split", "weak_label", "vector"]) \
        .sort_by("proposal_id")
    keep = [i for i, (s, w) in enumerate(zip(table.column("split").to_pylist(), table.column("weak_label").to_pylist()))
            if s == "train" and w >= 0]
    np.testing.assert_array_equal(data["train"].X, fixed_list_to_numpy(table.column("vector"), 104)[keep])


def test_arrays_do_not_depend_on_the_order_rows_were_written(tiny_store, store_copy):
    """Parallel ingest commits frames in whichever order its workers finish; training must not notice."""
    original = FeatureStore(str(tiny_store))
    table = store_copy.table("proposals_classic")
    rows = table.to_arrow()
    assert rows.num_rows > 2
    table.delete("true")
    table.add(rows.take(np.arange(rows.num_rows)[::-1]))  # the same rows, written in reverse
    assert store_copy.read("proposals_classic", ["proposal_id"]).column(0).to_pylist() \
        == original.read("proposals_classic", ["proposal_id"]).column(0).to_pylist()[::-1]
    before, after = load_labelled(original, "classic"), load_labelled(store_copy, "classic")
    for split in before:
        np.testing.assert_array_equal(before[split].X, after[split].X)
        np.testing.assert_array_equal(before[split].y, after[split].y)
        assert before[split].frame_id.tolist() == after[split].frame_id.tolist()
    first, second = load_proposals(original, "classic", "test"), load_proposals(store_copy, "classic", "test")
    np.testing.assert_array_equal(first.box, second.box)
    np.testing.assert_array_equal(first.X, second.X)


def test_load_proposals_keeps_ignored_rows_and_frames_have_gt(tiny_store):
    store = FeatureStore(str(tiny_store))
    test = load_proposals(store, "classic", "test")
    rows = [r for r in _reference_rows(store) if r["split"] == "test"]
    assert len(test) == len(rows) and sorted(test.weak_label.tolist()) == sorted(r["weak_label"] for r in rows)
    assert test.box.shape == (len(rows), 4) and (test.box[:, 2] > test.box[:, 0]).all()
    frames = load_frames(store, "test")
    assert set(test.frame_id) <= {f["frame_id"] for f in frames}
    assert any(f["label"] == "abnormal" and len(f["gt_boxes"]) for f in frames)
    assert all(f["gt_boxes"].shape[1] == 4 for f in frames)


def test_unknown_encoder_lists_the_encoders_the_store_has(tiny_store):
    store = FeatureStore(str(tiny_store))
    with pytest.raises(StoreError, match=r"has no vectors of encoder 'dinov3-vits16'; it has: classic"):
        load_labelled(store, "dinov3-vits16")
    with pytest.raises(StoreError, match=r"has no vectors of encoder 'dinov3-vits16'; it has: classic"):
        train_head(str(tiny_store), "logreg", encoder="dinov3-vits16")


def test_missing_and_empty_store_are_refused(tmp_path):
    with pytest.raises(StoreError, match=r"no feature store at .*missing"):
        train_head(str(tmp_path / "missing"), "logreg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"is empty"):
        train_head(str(tmp_path / "empty"), "logreg")


def test_vectors_of_another_dimension_than_recorded_are_refused(store_copy):
    info = dict(store_copy.encoders()["classic"], dim=50)
    store_copy.set_meta("encoder:classic", info)
    with pytest.raises(StoreError, match=r"holds vectors of dimension 104, but encoder 'classic' is recorded with "
                                         r"dimension 50"):
        check_encoder(store_copy, "classic")


def test_a_train_split_without_positives_is_refused_with_the_store_named(store_copy):
    # a val split without positives is not refused: tests/test_heads_few_cs.py
    store_copy.table("proposals_classic").update(where="split = 'train'", values={"weak_label": 0})
    with pytest.raises(DatasetError,
                       match=r"the train split of '.*store' \(classic\) has 0 positive and \d+ negative"):
        train_head(store_copy, "logreg")


def test_pinned_reads_ignore_later_changes(store_copy):
    tag = pin_store(store_copy, "classic")
    assert tag.startswith("bench-") and tag in list_tags(store_copy)
    assert pin_store(store_copy, "classic") == tag  # nothing changed: same tag
    before = len(load_proposals(store_copy, "classic", "test"))
    store_copy.table("proposals_classic").delete("split = 'test'")
    assert len(load_proposals(store_copy, "classic", "test")) == 0
    assert len(load_proposals(store_copy, "classic", "test", version=tag)) == before
    assert pin_store(store_copy, "classic") != tag


def test_train_head_saves_and_load_head_checks_the_encoder(tiny_store, tmp_path):
    result = train_head(str(tiny_store), "logreg", tmp_path / "model")
    assert set(result["metrics"]) >= {"average_precision", "auroc", "iou_mae", "hit@0.25", "hit@0.5", "ap25", "ap50",
                                      "train_seconds", "infer_rows_per_s", "model_bytes"}
    assert 0 <= result["metrics"]["hit@0.25"] <= 1 and result["rows"]["train"]["positives"] > 0
    assert (tmp_path / "model" / "metrics.json").is_file() and (tmp_path / "model" / "logreg.npz").is_file()
    store = FeatureStore(str(tiny_store))
    head = load_head(tmp_path / "model", store=store)
    assert head.provenance_["encoder"] == "classic" and head.provenance_["encoder_info"]["dim"] == 104
    assert head.metrics_["average_precision"] == pytest.approx(result["metrics"]["average_precision"])
    with pytest.raises(ConfigError, match=r"trained on encoder 'classic' vectors \(dim 104\), not 'dinov3-vits16'"):
        load_head(tmp_path / "model", store=store, encoder="dinov3-vits16")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    config["provenance"]["encoder_info"]["name"] = config["provenance"]["encoder"] = "dinov3-vits16"
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError,
                       match=r"trained on 'dinov3-vits16' vectors, but store .* holds vectors of: classic"):
        load_head(tmp_path / "model", store=store)


def test_load_head_refuses_vectors_made_another_way(tiny_store, tmp_path):
    store = FeatureStore(str(tiny_store))
    head = get_head("logreg").fit(*_blob_split(104, 0), *_blob_split(104, 1))
    other = dict(store.encoders()["classic"], weights_hash="0123456789abcdef")
    head.save(tmp_path / "other", provenance={"encoder": "classic", "encoder_info": other})
    with pytest.raises(SettingsMismatchError, match=r"weights_hash: '0123456789abcdef' vs '.*'\. Retrain the head on "
                                                  r"this store"):
        load_head(tmp_path / "other", store=store)
    narrow = get_head("logreg").fit(*_blob_split(32, 0), *_blob_split(32, 1))
    narrow.save(tmp_path / "narrow", provenance={})
    with pytest.raises(ConfigError, match=r"expects 32-dimensional vectors but the store's 'classic' vectors have "
                                          r"dimension 104"):
        load_head(tmp_path / "narrow", store=store, encoder="classic")


def test_load_head_refuses_frames_preprocessed_another_way(tiny_store, tmp_path):
    store = FeatureStore(str(tiny_store))
    head = get_head("logreg").fit(*_blob_split(104, 0), *_blob_split(104, 1))
    preprocess = dict(store.get_meta("settings")["preprocess"])
    head.save(tmp_path / "same", provenance={"encoder": "classic", "encoder_info": store.encoders()["classic"],
                                             "preprocess": preprocess})
    assert load_head(tmp_path / "same", store=store).n_features_ == 104
    preprocess["clahe_clip"] = preprocess["clahe_clip"] + 1.0
    head.save(tmp_path / "other", provenance={"encoder": "classic", "encoder_info": store.encoders()["classic"],
                                              "preprocess": preprocess})
    with pytest.raises(SettingsMismatchError, match=r"\(head '.*other' vs store '.*'\): preprocess.clahe_clip: "
                                                  r"\d.* vs \d.*\. Retrain the head on this store"):
        load_head(tmp_path / "other", store=store)


def _blob_split(dim: int, seed: int):
    rng = np.random.default_rng(seed)
    y = (np.arange(80) % 4 == 0).astype(np.int8)
    X = (rng.standard_normal((80, dim)) + y[:, None]).astype(np.float32)
    return X, y, np.where(y == 1, 0.5, 0.0).astype(np.float32)


def test_knn_in_lancedb_matches_exact_numpy_search(tiny_store, tmp_path):
    store = FeatureStore(str(tiny_store))
    data = load_head_data(store, "classic")
    in_store = KNNHead.from_store(store, "classic", k=5)
    exact = get_head("knn", k=5, standardise=False, max_reference=None)
    fit_head(exact, data)
    X = data.test.X[:40]
    p_store, iou_store = in_store.predict(X)
    p_exact, iou_exact = exact.predict(X)
    np.testing.assert_allclose(p_store, p_exact, atol=1e-3)
    np.testing.assert_allclose(iou_store, iou_exact, atol=1e-3)
    in_store.save(tmp_path / "knn")
    assert not (tmp_path / "knn" / "knn_reference.npz").exists()
    np.testing.assert_allclose(load_head(tmp_path / "knn").predict_proba(X), p_store, atol=1e-6)


def test_evaluate_head_and_proposal_recall_on_the_tiny_store(tiny_store):
    store = FeatureStore(str(tiny_store))
    data = load_head_data(store, "classic")
    head = get_head("lightgbm", n_estimators=30, early_stopping_rounds=5)
    assert fit_head(head, data) > 0
    metrics, curve = evaluate_head(head, data, EvalSettings(nms_iou=0.3))
    assert 0 <= metrics["average_precision"] <= 1 and 0 <= metrics["ap50"] <= metrics["ap25"] <= 1
    assert metrics["hit@0.5"] <= metrics["hit@0.25"]
    assert len(curve["precision"]) == len(curve["recall"]) > 1
    recall = snapshot_recall(data)
    assert recall["strings"] == sum(len(f["gt_boxes"]) for f in data.frames)
    assert metrics["hit@0.25"] <= 1.0 and 0 < recall["recall@0.25"] <= 1.0
    assert recall["proposals_per_frame"] == pytest.approx(len(data.test) / len(data.frames))


def test_frame_detections_are_the_boxes_and_scores_evaluate_head_reads_its_ap_from(tiny_store):
    from cs_features.metrics import detection_ap

    store = FeatureStore(str(tiny_store))
    data = load_head_data(store, "classic")
    head = get_head("logreg")
    fit_head(head, data)
    triples = frame_detections(head, data)
    assert [len(gt) for _, _, gt in triples] == [len(f["gt_boxes"]) for f in data.frames]
    assert sum(len(boxes) for boxes, _, _ in triples) == len(data.test)
    metrics, _ = evaluate_head(head, data)
    settings = EvalSettings()
    assert detection_ap(triples, settings.ap_ious, settings.nms_iou, settings.max_detections,
                        settings.nms_inside) == {"ap25": metrics["ap25"], "ap50": metrics["ap50"]}


def test_evaluate_head_ranks_boxes_with_both_priors_unless_told_not_to(tiny_store):
    from cs_features.attachment import AttachmentPrior
    from cs_features.heads.base import region_score
    from cs_features.metrics import detection_ap
    from cs_features.ranking import store_attachment_factors, store_transience_factors
    from cs_features.transience import TransiencePrior

    store = FeatureStore(str(tiny_store))
    data = load_head_data(store, "classic")
    head = get_head("logreg")
    fit_head(head, data)
    p, iou = head.predict(data.test.X)
    attached = store_attachment_factors(store, data.test.frame_id, data.test.box)
    transient = store_transience_factors(store, data.test.frame_id, data.test.box)
    assert (attached < 1).any() and (transient < 1).any()
    factors = attached * transient

    def by_hand(score):
        empty = np.zeros(0, np.int64)
        return detection_ap([(data.test.box[data.groups.get(f["frame_id"], empty)],
                              score[data.groups.get(f["frame_id"], empty)], f["gt_boxes"]) for f in data.frames],
                            nms_inside=EvalSettings().nms_inside)

    plain = region_score(p, iou, head.score_mode, head.alpha)
    with_prior, _ = evaluate_head(head, data)
    without = EvalSettings(attachment=AttachmentPrior(enabled=False), transience=TransiencePrior(enabled=False))
    only_attachment = EvalSettings(transience=TransiencePrior(enabled=False))
    assert with_prior["ap25"] == pytest.approx(by_hand(plain * factors)["ap25"])
    assert evaluate_head(head, data, without)[0]["ap25"] == pytest.approx(by_hand(plain)["ap25"])
    assert evaluate_head(head, data, only_attachment)[0]["ap25"] == pytest.approx(by_hand(plain * attached)["ap25"])
    np.testing.assert_array_equal(data.test_attachment(AttachmentPrior()), attached)
    np.testing.assert_array_equal(data.test_transience(TransiencePrior()), transient)
