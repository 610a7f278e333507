"""Autoencoder anomaly filter: loss terms, reducers, training on planted anomalies, the error_maps table,
persistence and bad input. Models are the real architecture on tiny inputs (32-48 px)."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from cs_features.autoencoder import losses, score_maps
from cs_features.autoencoder.data import FrameSet, load_frames
from cs_features.autoencoder.filter import AnomalyFilter
from cs_features.autoencoder.pipeline import score_store, train_from_store
from cs_features.autoencoder.scoring import (
    ERROR_MAPS,
    REDUCERS,
    decode_residual,
    encode_residual,
    error_map_rows,
    read_error_map,
    read_scores,
    write_error_maps,
)
from cs_features.errors import ConfigError, DatasetError, RegistryError, StoreError, WeightsError
from cs_features.metrics import auroc
from cs_features.settings import SettingsMismatchError
from cs_features.store import FeatureStore, list_tags

TINY = dict(img_size=32, epochs=2, batch_size=4, device="cpu", seed=3)


# ------------------------------------------------------------------------------------------ losses


def _t(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, np.float32))[None, None]


def test_charbonnier_of_known_residuals():
    values = losses.charbonnier(torch.tensor([0.0, 0.3, -0.4]))
    expected = np.sqrt(np.array([0.0, 0.09, 0.16]) + 1e-6)
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-6)


def test_ssim_of_identical_images_is_one_and_matches_skimage():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((24, 27))
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1)
    same = losses.ssim_map(_t(a), _t(a))
    np.testing.assert_allclose(same.numpy(), 1.0, atol=1e-5)
    _, reference = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1.0, full=True)
    ours = losses.ssim_map(_t(a), _t(b))[0, 0].numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)  # every pixel, borders included
    assert ours.mean() < 0.9


def test_sobel_gradient_l1_on_a_step_edge():
    step = np.zeros((8, 8), np.float32)
    step[:, 4:] = 1.0
    l1 = losses.sobel_gradient_l1(_t(step), _t(np.zeros((8, 8))))[0, 0].numpy()
    # Gx = (1 + 2 + 1) * (right - left) = 4 on the two columns next to the edge, Gy = 0
    expected = np.zeros((8, 8), np.float32)
    expected[:, 3:5] = 4.0
    np.testing.assert_allclose(l1, expected, atol=1e-6)


def test_weighted_mean_with_weights_normalised_to_mean_one():
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    weights = losses.AE_VARIANTS.get("weighted")(mask)
    # 1 + 0.5 * mask = 1.5 / 1.0, mean 1.25 -> 1.2 / 0.8
    np.testing.assert_allclose(weights[0, 0, 0].numpy(), 1.2, rtol=1e-6)
    np.testing.assert_allclose(weights[0, 0, 3].numpy(), 0.8, rtol=1e-6)
    assert float(weights.mean()) == pytest.approx(1.0)
    values = mask.float()
    assert float(losses.weighted_mean(values, weights)) == pytest.approx(0.6)
    unweighted = losses.AE_VARIANTS.get("unweighted")(mask)
    assert float(losses.weighted_mean(values, unweighted)) == pytest.approx(0.5)


def test_loss_of_a_perfect_reconstruction_is_the_charbonnier_floor():
    x = torch.rand(2, 1, 16, 16)
    assert float(losses.reconstruction_loss(x, x.clone(), torch.ones_like(x))) == pytest.approx(1e-3, rel=1e-3)


# ---------------------------------------------------------------------------------------- reducers


def test_reducers_inside_the_mask_and_whole_frame_when_empty():
    residual = np.arange(100, dtype=np.float32).reshape(10, 10) / 100
    mask = np.zeros((10, 10), bool)
    mask[:2] = True  # values 0.00 .. 0.19
    assert REDUCERS.get("p95")(residual, mask) == pytest.approx(np.percentile(np.arange(20) / 100, 95))
    assert REDUCERS.get("p95")(residual, np.zeros_like(mask)) == pytest.approx(0.9405)
    assert REDUCERS.get("p99")(residual, mask) == pytest.approx(0.1881)
    assert REDUCERS.get("mean")(residual, mask) == pytest.approx(0.095)
    assert REDUCERS.get("max")(residual, mask) == pytest.approx(0.19)
    big = np.arange(40_000, dtype=np.float32).reshape(200, 200)
    # top 0.5 % of 40 000 = the 200 largest values 39 800 .. 39 999
    assert REDUCERS.get("topk-mean")(big, np.ones((200, 200), bool)) == pytest.approx(39_899.5)
    with pytest.raises(RegistryError, match="known: max, mean, p95, p99, topk-mean"):
        REDUCERS.get("median")


def _embryo_mask(size: int = 64) -> np.ndarray:
    """Low-texture mask of a toy embryo: textured ring (r 20..26), thick ICM blob, and the 4 px band a
    string's texture cuts out of the GLCM mask across the cavity."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    textured = (r >= 20) & (r <= 26)
    textured |= np.hypot(yy - 44, xx - 32) <= 6  # ICM bulge inside the ring
    textured[30:34, 14:50] = True  # a string's band, as wide as the GLCM window lets it be
    return ~textured


def test_cavity_region_keeps_the_interior_and_the_string_but_not_medium_or_icm():
    mask = _embryo_mask()
    region = score_maps.cavity_region(mask)
    assert region[30:34, 20].all() and region[30:34, 40].all()  # the string's band is scored
    assert region[24, 32] and not region[44, 32]  # cavity yes, ICM no
    assert not region[2, 2] and not region[32, 62]  # medium outside the embryo
    assert not region[32, 9]  # the textured ring itself
    assert score_maps.score_region(mask, "mask").sum() == mask.sum()


def test_region_erosion_and_its_fallback():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    assert score_maps.score_region(mask, "mask", 2).sum() == 36  # 10x10 square eroded by 2 -> 6x6
    assert score_maps.score_region(mask, "mask", 9).sum() == 100  # erosion would empty it: kept
    full = np.ones((20, 20), bool)
    assert score_maps.score_region(full, "mask", 3).all()  # the frame edge does not erode


def test_highpass_and_line_response():
    flat = np.full((32, 32), 0.3, np.float32)
    assert np.abs(score_maps.highpass(flat, 4.0)).max() < 1e-6
    lines = np.zeros((32, 32), np.float32)
    lines[16, 4:28] = 1.0
    lines[5, 5] = 1.0  # an isolated speck
    response = score_maps.line_response(lines, 9)
    assert response[16, 16] == pytest.approx(1.0)
    # a speck is averaged with the zeros of a segment of 7 (diagonal) to 9 (axis-parallel) pixels
    assert 1 / 9 - 1e-6 <= response[5, 5] <= 1 / 7 + 1e-6


def test_published_score_settings_reduce_exactly_like_p95_in_the_mask():
    rng = np.random.default_rng(5)
    residuals = rng.random((3, 24, 24)).astype(np.float32)
    masks = rng.random((3, 24, 24)) > 0.4
    scores = score_maps.reduce_scores(residuals, masks)
    expected = [np.percentile(r[m], 95) for r, m in zip(residuals, masks)]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


# -------------------------------------------------------------------- training on planted anomalies


def _smooth_frames(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) uint8 'cytoplasm': low-frequency blobs plus mild noise."""
    import cv2

    frames = []
    for _ in range(n):
        coarse = rng.random((4, 4)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        frame = 90 + 60 * smooth + rng.normal(0, 2, (size, size))
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _plant_line(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    out = frame.copy()
    size = frame.shape[0]
    a, b = (int(v) for v in rng.integers(4, size - 4, 2))
    ends = [(2, a), (size - 3, b)] if rng.integers(2) else [(a, 2), (b, size - 3)]  # edge to edge
    cv2.line(out, ends[0], ends[1], 245, 1)
    return out


def _frameset(images: np.ndarray, labels: list[str]) -> FrameSet:
    n = len(images)
    ids = np.array([f"f{i:03d}" for i in range(n)])
    return FrameSet(torch.from_numpy(images[:, None].copy()), torch.ones((n, 1) + images.shape[1:], dtype=torch.bool),
                    ids, ids, np.array(["x"] * n), np.array(labels), np.array([f"E{i // 2}" for i in range(n)]))


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(11)
    train = _frameset(_smooth_frames(48, 48, rng), ["normal"] * 48)
    held = _smooth_frames(32, 48, rng)
    y = np.arange(32) % 2
    held = np.stack([_plant_line(f, rng) if label else f for f, label in zip(held, y)])
    val = _frameset(held, ["abnormal" if label else "normal" for label in y])
    fitted = AnomalyFilter(img_size=48, epochs=6, batch_size=8, lr=3e-3, device="cpu", seed=0,
                           reducer="p99").fit(train, val)
    return fitted, train, val


def test_training_lowers_the_loss_and_separates_planted_lines(planted):
    fitted, _, val = planted
    losses_per_epoch = [h["loss"] for h in fitted.history_]
    assert losses_per_epoch[-1] < 0.7 * losses_per_epoch[0]
    assert auroc(val.y_true, fitted.score(val)) > 0.8
    assert fitted.val_auroc_ == max(h["val_auroc"] for h in fitted.history_)
    assert fitted.threshold_method_ == "sensitivity-0.97-val"
    kept = fitted.score(val)[val.y_true == 1] >= fitted.threshold_
    assert kept.mean() >= 0.97  # the gate is chosen for recall on validation


def test_same_seed_same_weights_and_save_load_gives_identical_scores(planted, tmp_path):
    fitted, train, val = planted
    again = AnomalyFilter(img_size=48, epochs=6, batch_size=8, lr=3e-3, device="cpu", seed=0,
                          reducer="p99").fit(train, val)
    assert again.weights_sha256_ == fitted.weights_sha256_
    fitted.save(tmp_path / "m", {"model_id": "abc"})
    loaded = AnomalyFilter.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(loaded.score(val), fitted.score(val))
    assert loaded.threshold_ == fitted.threshold_ and loaded.best_epoch_ == fitted.best_epoch_


def test_no_abnormal_validation_frame_falls_back_to_p99_of_normals(planted, caplog):
    _, train, val = planted
    normals = val.subset(val.y_true == 0)
    with caplog.at_level(logging.WARNING, logger="cs_features.autoencoder.filter"):
        fitted = AnomalyFilter(img_size=48, epochs=2, batch_size=8, device="cpu").fit(train.subset(np.arange(16)),
                                                                                        normals)
    assert "validation AUROC is undefined" in caplog.text
    assert fitted.best_epoch_ == 2 and fitted.val_auroc_ is None
    assert fitted.threshold_method_ == "p99-normal-val"
    assert fitted.threshold_ == pytest.approx(np.percentile(fitted.score(normals), 99), rel=1e-5)


def test_unfitted_filter_and_bad_hyperparameters_are_refused(planted):
    _, train, val = planted
    from cs_features.errors import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        AnomalyFilter().score(val)
    with pytest.raises(ConfigError, match="img_size=30 is invalid"):
        AnomalyFilter(img_size=30).fit(train, val)
    with pytest.raises(RegistryError, match="unknown autoencoder variant 'heavy'"):
        AnomalyFilter(variant="heavy").fit(train, val)


@pytest.mark.parametrize("name", ["conv-ae", "conv-ae-up"])
def test_scoring_with_batch_norms_folded_matches_the_model_as_trained(name):
    from cs_features.autoencoder.model import AE_MODELS, fused_for_inference
    from cs_features.autoencoder.training import inference_copy, iter_residuals

    torch.manual_seed(0)
    model = AE_MODELS.get(name)()
    with torch.no_grad():  # running statistics away from 0 / 1, and affine parameters away from 1 / 0
        for _ in range(3):
            model(torch.rand(4, 1, 32, 32) * 0.7 + 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.eval()
    images = torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        x = images.float() / 255.0
        expected = (x - model(x)).abs()[:, 0].numpy()
    scoring = inference_copy(model, torch.device("cpu"))
    got = np.concatenate([r for _, r in iter_residuals(scoring, images, 4, torch.device("cpu"))])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    fused = fused_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 11  # the model keeps its own


# ------------------------------------------------------------------------------- the feature store


def test_residual_encoding_round_trip():
    rng = np.random.default_rng(1)
    residual = (rng.random((40, 40)) * 0.3).astype(np.float32)
    png, scale = encode_residual(residual)
    assert isinstance(png, bytes) and scale == pytest.approx(residual.max())
    decoded = decode_residual(png, scale)
    assert decoded.shape == (40, 40) and decoded.dtype == np.float32
    assert np.abs(decoded - residual).max() <= scale / 510 + 1e-7
    zero_png, zero_scale = encode_residual(np.zeros((8, 8), np.float32))
    assert zero_scale == 1.0 and not decode_residual(zero_png, zero_scale).any()


@pytest.fixture(scope="module")
def tiny_store(tiny_dataset, tmp_path_factory):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    path = tmp_path_factory.mktemp("ae_store") / "db"
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="ss-single", max_proposals=20))))
    return str(path)


def _copy_store(src: str, dst) -> str:
    shutil.copytree(src, dst)
    return str(dst)


@pytest.fixture(scope="module")
def trained(tiny_store, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("ae_model") / "m"
    result = train_from_store(tiny_store, model_dir, AnomalyFilter(**TINY))
    return result, model_dir


def test_train_from_store_writes_a_complete_model_dir(trained, tiny_store):
    result, model_dir = trained
    config = json.loads((model_dir / "config.json").read_text())
    assert (model_dir / "weights.safetensors").is_file()
    for key in ("variant", "epochs", "lr", "batch_size", "img_size", "seed", "reducer"):
        assert key in config["hyperparameters"]
    assert config["threshold_method"] == "sensitivity-0.97-val" and config["best_epoch"] in (1, 2)
    assert config["store_tag"] == f"ae-{config['model_id']}" == result.store_tag
    assert config["store_tag"] in list_tags(FeatureStore(tiny_store))
    assert set(config["store_settings"]) == {"scale", "preprocess", "texture"}
    assert {"torch", "numpy", "cs_features"} <= set(config["packages"])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics == config["metrics"]
    for split in ("val", "test"):
        assert {"auroc", "average_precision", "f1", "precision", "recall", "accuracy", "confusion",
                "threshold"} <= set(metrics[split])
    assert metrics["test_embryo"]["n"] == 2 and "auroc" in metrics["test_embryo"]


def test_score_store_writes_error_maps_that_round_trip(trained, tiny_store):
    result, model_dir = trained
    summary = score_store(tiny_store, model_dir, device="cpu")
    store = FeatureStore(tiny_store)
    n_frames = store.count("frames")
    assert summary.frames_scored == n_frames == store.count(ERROR_MAPS)
    rows = read_scores(store, result.model_id)
    assert rows.num_rows == n_frames and len(set(rows.column("error_map_id").to_pylist())) == n_frames
    frames = load_frames(store, None, 32)
    fitted = AnomalyFilter.load(model_dir, device="cpu")
    _, residuals, scores = next(fitted.iter_residuals(frames))
    stored = read_error_map(store, frames.frame_ids[0], result.model_id)
    assert stored.shape == (32, 32)
    assert np.abs(stored - residuals[0]).max() <= residuals[0].max() / 510 + 1e-6
    by_id = dict(zip(rows.column("frame_id").to_pylist(), rows.column("score").to_pylist()))
    assert by_id[frames.frame_ids[0]] == pytest.approx(float(scores[0]))
    flagged = dict(zip(rows.column("frame_id").to_pylist(), rows.column("flagged").to_pylist()))
    assert flagged[frames.frame_ids[0]] == bool(scores[0] >= fitted.threshold_)
    score_store(tiny_store, model_dir, device="cpu")  # rerun: same rows rewritten, none added
    assert FeatureStore(tiny_store).count(ERROR_MAPS) == n_frames


def test_error_map_rows_are_one_merge_insert_per_chunk(tiny_store, tmp_path):
    store = FeatureStore(_copy_store(tiny_store, tmp_path / "s"))
    if store.has_table(ERROR_MAPS):  # another test may have scored the shared store already
        store.db.drop_table(ERROR_MAPS)
    frames = load_frames(store, "split = 'val'", 16)
    residuals = np.random.default_rng(0).random((len(frames), 16, 16)).astype(np.float32)
    rows = error_map_rows(frames, residuals, residuals.mean(axis=(1, 2)), "m1", 0.5, "p95")
    write_error_maps(store, rows)
    assert store.table(ERROR_MAPS).version == 2  # created empty (v1), then one commit for the chunk
    decoded = read_error_map(store, frames.frame_ids[-1], "m1")
    assert np.abs(decoded - residuals[-1]).max() <= residuals[-1].max() / 510 + 1e-6
    with pytest.raises(StoreError, match="no error map for frame"):
        read_error_map(store, frames.frame_ids[0], "other-model")


# ----------------------------------------------------------------------------------------- bad input


def test_missing_and_empty_store(tmp_path):
    with pytest.raises(StoreError, match="no feature store at"):
        train_from_store(str(tmp_path / "nothing"), tmp_path / "m", AnomalyFilter(**TINY))
    FeatureStore(str(tmp_path / "empty"), create=True)
    (tmp_path / "empty").mkdir(exist_ok=True)
    with pytest.raises(StoreError, match="is empty"):
        train_from_store(str(tmp_path / "empty"), tmp_path / "m", AnomalyFilter(**TINY))


def test_no_normal_training_frames_names_store_and_counts(tiny_store, tmp_path):
    path = _copy_store(tiny_store, tmp_path / "s")
    FeatureStore(path).table("frames").delete("split = 'train' AND label = 'normal'")
    with pytest.raises(DatasetError, match=r"no normal frames in the train split.*\"train\": \{\"abnormal\": \d+\}"):
        train_from_store(path, tmp_path / "m", AnomalyFilter(**TINY))
    assert not (tmp_path / "m").exists()


def test_no_abnormal_validation_frames_recorded_in_metrics(tiny_store, tmp_path, caplog):
    path = _copy_store(tiny_store, tmp_path / "s")
    FeatureStore(path).table("frames").delete("split = 'val' AND label = 'abnormal'")
    with caplog.at_level(logging.WARNING):
        result = train_from_store(path, tmp_path / "m", AnomalyFilter(**TINY))
    assert "validation AUROC is undefined" in caplog.text
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["val"]["auroc"] is None and "no positive" in metrics["val"]["auroc_undefined_reason"]
    assert metrics["threshold_method"] == "p99-normal-val" and "val_warning" in metrics
    assert result.best_epoch == TINY["epochs"]


def test_model_from_other_preprocessing_is_refused(trained, tiny_store, tmp_path):
    _, model_dir = trained
    other = shutil.copytree(model_dir, tmp_path / "m")
    config = json.loads((other / "config.json").read_text())
    config["store_settings"]["texture"]["window"] = 21
    config["store_settings"]["preprocess"]["clahe_clip"] = 3.0
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(SettingsMismatchError, match=r"\(model '.*' vs store '.*'\): preprocess.clahe_clip: 3.0 vs 2.0; "
                                                  r"texture.window: 21 vs 31"):
        score_store(tiny_store, other, device="cpu")


@pytest.mark.parametrize("damage, text", [
    ("no-config", "has no config.json"),
    ("no-weights", "weights.safetensors' is missing"),
    ("bad-config", "config.json' is corrupt"),
    ("bad-weights", "corrupt or not safetensors"),
    ("other-weights", "sha256 differs"),
])
def test_broken_model_dir_names_the_file(trained, tmp_path, damage, text):
    _, model_dir = trained
    broken = shutil.copytree(model_dir, tmp_path / "m")
    if damage == "no-config":
        (broken / "config.json").unlink()
    elif damage == "no-weights":
        (broken / "weights.safetensors").unlink()
    elif damage == "bad-config":
        (broken / "config.json").write_text('{"hyperparameters": ')
    elif damage == "bad-weights":
        (broken / "weights.safetensors").write_bytes(b"\x00" * 64)
    else:
        from safetensors.torch import load_file, save_file

        state = load_file(str(broken / "weights.safetensors"))
        state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(broken / "weights.safetensors"))
    with pytest.raises(WeightsError, match=text):
        AnomalyFilter.load(broken, device="cpu")
    with pytest.raises(WeightsError, match="does not exist"):
        AnomalyFilter.load(tmp_path / "absent")


def test_gate_is_chosen_for_recall_by_default_and_youden_on_request():
    from cs_features.metrics import sensitivity_threshold, youden_threshold

    y = np.r_[np.ones(30), np.zeros(70)].astype(int)
    s = np.r_[np.linspace(0.2, 1.0, 30), np.linspace(0.0, 0.5, 70)]
    for gate, expected in (("sensitivity", sensitivity_threshold(y, s, 0.97)), ("youden", youden_threshold(y, s))):
        anomaly_filter = AnomalyFilter(gate=gate)
        anomaly_filter.val_undefined_reason_ = None
        assert anomaly_filter._threshold(y, s)[0] == expected
    assert sensitivity_threshold(y, s, 0.97) < youden_threshold(y, s)  # recall costs a lower threshold here
    with pytest.raises(ConfigError, match="gate"):
        AnomalyFilter(gate="otsu")._validate()
