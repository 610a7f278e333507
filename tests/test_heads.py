"""Region heads on seeded synthetic blobs: they learn, round-trip through save/load, refuse bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from cs_features.errors import ConfigError, NotFittedError, RegistryError, WeightsError
from cs_features.heads import HEADS, balanced_undersample, get_head, head_names, load_head, region_score
from cs_features.heads.base import RegionHead, read_config

FAST = {
    "mlp": {"epochs": 6, "patience": 3, "batch_size": 64},
    "lightgbm": {"n_estimators": 60, "early_stopping_rounds": 10},
    "logreg": {},
    "knn": {"k": 15},
}


def blobs(n: int, dim: int = 16, positive_share: float = 0.2, seed: int = 0):
    """Two Gaussian clouds: positives shifted along the first 4 axes; IoU grows with feature 0.

    Returns:
        ``X`` (n, dim) float32, ``y`` (n,) int8, ``iou`` (n,) float32 in [0, 1].
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_share).astype(np.int8)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    X[:, :4] += 2.5 * y[:, None]
    X[:, 4] *= 5.0  # one wide-scale feature, as handcrafted descriptors have
    iou = np.where(y == 1, np.clip(0.45 + 0.1 * X[:, 0], 0.2, 0.9), np.clip(0.05 + 0.02 * rng.random(n), 0, 0.1))
    return X, y, iou.astype(np.float32)


@pytest.fixture(scope="module")
def splits():
    return {name: blobs(n, seed=seed) for name, n, seed in (("train", 1200, 0), ("val", 400, 1), ("test", 600, 2))}


@pytest.fixture(scope="module")
def fitted(splits):
    heads = {}
    for name in head_names():
        head = get_head(name, seed=0, **FAST[name])
        heads[name] = head.fit(*splits["train"], *splits["val"])
    return heads


def test_registry_has_the_four_heads():
    assert head_names() == ["knn", "lightgbm", "logreg", "mlp"]
    assert len(HEADS) == 4


def test_unknown_head_and_unknown_parameter_are_refused():
    with pytest.raises(RegistryError, match=r"unknown head 'svm'; known: knn, lightgbm, logreg, mlp"):
        get_head("svm")
    with pytest.raises(ConfigError, match=r"head 'logreg' does not take \['n_estimators'\]; accepted: .*ridge_alpha"):
        get_head("logreg", n_estimators=3)


@pytest.mark.parametrize("name", ["knn", "lightgbm", "logreg", "mlp"])
def test_head_learns_separable_blobs(name, fitted, splits):
    X, y, iou = splits["test"]
    p, iou_pred = fitted[name].predict(X)
    assert p.shape == (len(X),) and p.dtype == np.float32 and iou_pred.shape == (len(X),)
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert average_precision_score(y, p) > 0.9
    assert np.abs(np.clip(iou_pred, 0, 1) - iou).mean() < 0.12  # predicting the mean IoU gives ~0.17
    assert fitted[name].n_features_ == X.shape[1]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_knn_blocks_side_by_side_give_the_written_out_search_exactly(splits, monkeypatch, threads):
    from cs_features.heads.knn import KNNHead

    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    X, y, iou = splits["train"]
    head = KNNHead(k=7, block_rows=37).fit(X, y, iou, *splits["val"])  # 17 blocks of the 600 test rows
    Q = splits["test"][0]
    ref = head.reference_
    Z = ((Q - head.mean_) / head.scale_).astype(np.float32)
    d2 = (Z ** 2).sum(1, keepdims=True) - 2.0 * (Z @ ref.T) + (ref.astype(np.float64) ** 2).sum(1).astype(np.float32)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :7]
    weight = 1.0 / (np.sqrt(np.maximum(np.take_along_axis(d2, nearest, axis=1), 0.0)) + 1e-6)
    p = (weight * head.reference_labels_[nearest]).sum(1) / weight.sum(1)
    expected_iou = (weight * head.reference_iou_[nearest]).sum(1) / weight.sum(1)
    got_p, got_iou = head.predict(Q)
    np.testing.assert_allclose(got_p, p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_iou, expected_iou, rtol=1e-6, atol=1e-7)
    assert 0.05 < got_p.mean() < 0.95


@pytest.mark.parametrize("name", ["knn", "lightgbm", "logreg", "mlp"])
def test_save_load_round_trip_gives_identical_predictions(name, fitted, splits, tmp_path):
    X = splits["test"][0]
    head = fitted[name]
    head.save(tmp_path / name, provenance={"encoder": "blobs"}, metrics={"ap": 0.5})
    config = read_config(tmp_path / name)
    assert config["head"] == name and config["n_features"] == 16 and config["metrics"] == {"ap": 0.5}
    assert config["params"]["seed"] == 0 and "numpy" in config["packages"]
    loaded = load_head(tmp_path / name)
    assert type(loaded) is type(head) and loaded.get_params() == json.loads(json.dumps(head.get_params()))
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_iou(X), head.predict_iou(X))
    files = {path.name for path in (tmp_path / name).iterdir()}
    assert "config.json" in files and not any(f.endswith((".pkl", ".pickle", ".joblib", ".pt")) for f in files)
    assert not any(".tmp" in f for f in files)  # every file was written to a temporary name and renamed
    assert set(config["weights_sha256"]) == set(config["weights"])


def test_changed_weights_are_refused_and_heads_saved_without_hashes_still_load(fitted, splits, tmp_path):
    fitted["logreg"].save(tmp_path / "head")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    assert len(config["weights_sha256"]["logreg.npz"]) == 64
    del config["weights_sha256"]  # as written before the hashes were recorded
    (tmp_path / "head" / "config.json").write_text(json.dumps(config))
    X = splits["test"][0]
    np.testing.assert_array_equal(load_head(tmp_path / "head").predict_proba(X), fitted["logreg"].predict_proba(X))
    fitted["logreg"].save(tmp_path / "changed")
    (tmp_path / "changed" / "logreg.npz").write_bytes((tmp_path / "head" / "logreg.npz").read_bytes() + b"\0")
    with pytest.raises(WeightsError, match=r"logreg.npz' are not the ones config.json was written for"):
        load_head(tmp_path / "changed")


def test_mlp_is_saved_as_safetensors_and_lightgbm_as_text(fitted, tmp_path):
    fitted["mlp"].save(tmp_path / "mlp")
    fitted["lightgbm"].save(tmp_path / "gbm")
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "mlp" / "model.safetensors"))
    assert state["trunk.1.weight"].shape == (256, 16) and state["cls_head.weight"].shape == (1, 128)
    assert (tmp_path / "gbm" / "classifier.txt").read_text().startswith("tree")


@pytest.mark.parametrize("name", ["knn", "lightgbm", "logreg", "mlp"])
def test_predicting_before_fit_raises_not_fitted(name, tmp_path):
    head = get_head(name)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        head.predict_proba(np.zeros((2, 16), np.float32))
    with pytest.raises(NotFittedError):
        head.save(tmp_path)


def test_vectors_of_the_wrong_dimension_are_refused(fitted):
    with pytest.raises(ValueError, match=r"dimension 8, but this head was fitted on dimension 16"):
        fitted["logreg"].predict_proba(np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match=r"train vectors have dimension 16 but validation vectors 12"):
        get_head("logreg").fit(*blobs(200), *blobs(100, dim=12, seed=1))


@pytest.mark.parametrize("split", ["train", "validation"])
@pytest.mark.parametrize("missing", [0, 1])
def test_a_split_without_positives_or_negatives_is_refused(split, missing):
    X, y, iou = blobs(200)
    bad = (X, np.full_like(y, 1 - missing), iou)
    args = (*bad, *blobs(100, seed=1)) if split == "train" else (*blobs(100, seed=1), *bad)
    n_pos = 0 if missing == 1 else len(X)
    with pytest.raises(ValueError, match=rf"{split} split has {n_pos} positive and {len(X) - n_pos} negative"):
        get_head("logreg").fit(*args)


def test_labels_other_than_0_1_and_iou_out_of_range_are_refused():
    X, y, iou = blobs(100)
    y_bad = y.copy()
    y_bad[0] = -1
    with pytest.raises(ValueError, match=r"train labels must be 0 or 1 .* got values \[-1\]"):
        get_head("logreg").fit(X, y_bad, iou, *blobs(50, seed=1))
    with pytest.raises(ValueError, match=r"iou targets must be in \[0, 1\]"):
        get_head("logreg").fit(X, y, iou * 3, *blobs(50, seed=1))
    with pytest.raises(TypeError, match=r"X_train must be a numpy array"):
        get_head("logreg").fit(X.tolist(), y, iou, *blobs(50, seed=1))


def test_unknown_iou_targets_are_left_out_of_the_iou_fit():
    X, y, iou = blobs(600)
    iou_nan = iou.copy()
    iou_nan[::3] = np.nan
    head = get_head("logreg").fit(X, y, iou_nan, *blobs(200, seed=1))
    assert np.isfinite(head.predict_iou(X)).all()


def test_balanced_sampler_counts_epochs_and_seeds():
    labels = np.array([1] * 30 + [0] * 170)
    rng = np.random.default_rng(5)
    first, second = balanced_undersample(labels, rng), balanced_undersample(labels, rng)
    for draw in (first, second):
        assert len(draw) == 60 and (labels[draw] == 1).sum() == 30 and len(np.unique(draw)) == 60
    assert set(first) != set(second)  # a fresh majority draw each epoch
    again = np.random.default_rng(5)
    np.testing.assert_array_equal(balanced_undersample(labels, again), first)
    np.testing.assert_array_equal(balanced_undersample(labels, again), second)
    with pytest.raises(ValueError, match=r"both classes, got 0 positive\(s\) and 4 negative"):
        balanced_undersample(np.zeros(4), rng)


@pytest.mark.parametrize("name", ["mlp", "lightgbm"])
def test_training_is_deterministic_for_a_seed(name, splits, fitted):
    import torch

    state = torch.random.get_rng_state()
    again = get_head(name, seed=0, **FAST[name]).fit(*splits["train"], *splits["val"])
    X = splits["test"][0]
    np.testing.assert_array_equal(again.predict_proba(X), fitted[name].predict_proba(X))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global torch RNG is left alone
    other = get_head(name, seed=1, **FAST[name]).fit(*splits["train"], *splits["val"])
    assert not np.array_equal(other.predict_proba(X), fitted[name].predict_proba(X))


def test_mlp_history_records_early_stopping_on_validation_ap(fitted, splits):
    history = fitted["mlp"].history_
    assert 1 <= len(history) <= 6
    assert fitted["mlp"].val_average_precision_ == max(h["val_ap"] for h in history)
    n_pos = int(splits["train"][1].sum())
    assert all(h["rows"] == 2 * n_pos for h in history)  # balanced: every positive + as many negatives


def test_region_score_product_and_exponent():
    p, iou = np.array([0.8, 0.5, 1.0]), np.array([0.5, 1.4, -0.2])
    np.testing.assert_allclose(region_score(p, iou), [0.4, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(region_score(p, iou, "exponent", 0.5), [np.sqrt(0.4), np.sqrt(0.5), 0.0], rtol=1e-6)
    np.testing.assert_allclose(region_score(p, iou, "exponent", 1.0), p, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"unknown score_mode 'sum'; accepted: product, exponent"):
        region_score(p, iou, "sum")
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\] .* got 1.5"):
        region_score(p, iou, "exponent", 1.5)


def test_head_score_uses_its_score_mode(fitted, splits):
    X = splits["test"][0][:50]
    head = fitted["logreg"]
    np.testing.assert_allclose(head.score(X), region_score(head.predict_proba(X), head.predict_iou(X)), rtol=1e-6)


def test_load_refuses_a_directory_without_config(tmp_path):
    with pytest.raises(WeightsError, match=r"has no config.json .* expected a region head folder written by "
                                           r"`csf train head"):
        RegionHead.load(tmp_path)
    with pytest.raises(WeightsError, match=r"model directory '.*absent' does not exist"):
        RegionHead.load(tmp_path / "absent")
