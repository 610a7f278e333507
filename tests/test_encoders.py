"""Encoder registry, input validation and the weights-free ``classic`` encoder."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cs_features.encoders import ENCODERS, classic, encoder_names, get_encoder
from cs_features.encoders.base import validate_frame
from cs_features.errors import ConfigError, RegistryError, WeightsError
from cs_features.ridges import sato_ridges


def noisy_frame(seed: int = 0, shape: tuple[int, int] = (160, 200)) -> np.ndarray:
    """A seeded blastocoel-like frame: smooth grey background with mild noise, (H, W) float32."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    base = 0.45 + 0.05 * ndi.gaussian_filter(rng.standard_normal(shape), 6)
    return np.clip(base + 0.01 * rng.standard_normal(shape), 0, 1).astype(np.float32)


def random_boxes(n: int, height: int, width: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(8, 60, n)
    h = rng.integers(8, 60, n)
    x1 = rng.integers(0, width - w)
    y1 = rng.integers(0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.int32)


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("classic")


# ----------------------------------------------------------------------------------- registry


def test_registry_lists_the_three_encoders():
    assert encoder_names() == ["classic", "dinov3-vitb16", "dinov3-vits16"]
    assert len(ENCODERS) == 3


def test_unknown_encoder_name_lists_known_names():
    with pytest.raises(RegistryError) as info:
        get_encoder("dinov2")
    assert "'dinov2'" in str(info.value) and "dinov3-vits16" in str(info.value) and "classic" in str(info.value)


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match=r"roi_size"):
        get_encoder("classic", roi_size=512)


# ----------------------------------------------------------------------------------- validation


def test_validate_frame_rejects_uint8_and_says_how_to_fix():
    with pytest.raises(TypeError, match="to_float"):
        validate_frame(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((8, 8, 3), np.float32), r"\(8, 8, 3\)"),
    (np.full((8, 8), 1.5, np.float32), "max 1.5"),
    (np.full((8, 8), np.nan, np.float32), "finite"),
])
def test_validate_frame_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_frame(bad)


def test_validate_frame_returns_float32_copy_of_float64():
    out = validate_frame(np.full((4, 5), 0.25))
    assert out.dtype == np.float32 and out.shape == (4, 5) and float(out[0, 0]) == 0.25


@pytest.mark.parametrize("box", [[0, 0, 0, 10], [10, 10, 5, 20], [-1, 0, 10, 10], [0, 0, 201, 10], [0, 0, 10, 161]])
def test_bad_boxes_raise_naming_the_box(encoder, box):
    boxes = np.array([[0, 0, 10, 10], box], np.int32)
    with pytest.raises(ValueError) as info:
        encoder.encode(noisy_frame(), boxes)
    assert "[1]" in str(info.value) and str(box) in str(info.value)


# ----------------------------------------------------------------------------------- classic


def test_classic_dimension_and_info(encoder):
    assert classic.DIM == 104 == sum(size for _, size in classic.BLOCKS) == encoder.dim
    info = encoder.info()
    assert info["name"] == "classic" and info["dim"] == 104 and info["weights_hash"] == "none"
    assert info["pooling"] == "roi" and info["settings"]["blocks"]["hog"] == 32
    assert classic.BLOCK_SLICES["hog"] == slice(72, 104)
    assert info["settings"]["version"] == classic.VERSION == 2


def test_a_store_of_version_1_classic_vectors_is_refused(encoder, tmp_path):
    """Version 1 vectors (settings without "version") and this method's never mix in one store."""
    from cs_features.ingest import record_settings
    from cs_features.settings import SettingsMismatchError, StoreSettings
    from cs_features.store import FeatureStore

    store = FeatureStore(str(tmp_path / "store"), create=True)
    old = encoder.info()
    old["settings"] = {key: value for key, value in old["settings"].items() if key != "version"}
    store.set_meta("encoder:classic", old)
    refused = (r"use different classic vectors \(store '.*' vs this run\): settings\.version: None vs 2\. "
               r".*use a new --store")
    with pytest.raises(SettingsMismatchError, match=refused):
        record_settings(store, StoreSettings(), "classic", encoder.info())
    assert store.get_meta("encoder:classic") == old
    record_settings(store, StoreSettings(), "classic", old)  # the same version is accepted


def test_classic_shapes_determinism_and_finite_values(encoder):
    image = noisy_frame()
    boxes = random_boxes(40, *image.shape)
    first = encoder.encode(image, boxes)
    second = get_encoder("classic").encode(image.copy(), boxes.copy())
    assert first.shape == (40, 104) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert np.ptp(first, axis=0).max() > 0  # boxes differ, so vectors differ


def test_classic_zero_boxes(encoder):
    out = encoder.encode(noisy_frame(), np.zeros((0, 4), np.int32))
    assert out.shape == (0, 104) and out.dtype == np.float32


def test_classic_box_covering_the_frame_and_one_pixel_box_are_finite(encoder):
    image = noisy_frame(shape=(40, 50))
    out = encoder.encode(image, np.array([[0, 0, 50, 40], [3, 4, 4, 5]], np.int32))
    assert out.shape == (2, 104) and np.isfinite(out).all()
    assert out[0, 0] == pytest.approx(np.log(50)) and out[0, 1] == pytest.approx(np.log(40))


def test_classic_intensity_moments_match_scipy(encoder):
    image = noisy_frame(seed=3)
    box = np.array([[30, 20, 90, 70]], np.int32)
    region = image[20:70, 30:90].astype(np.float64).ravel()
    moments = encoder.encode(image, box)[0, classic.BLOCK_SLICES["intensity"]][:4]
    expected = [region.mean(), region.std(), stats.skew(region), stats.kurtosis(region)]
    np.testing.assert_allclose(moments, expected, rtol=1e-3, atol=1e-5)


def test_classic_context_ring_mean_matches_numpy(encoder):
    image = noisy_frame(seed=4)
    x1, y1, x2, y2 = 60, 50, 100, 70  # margin max(4, (40 + 20) // 4) = 15
    ring = image[35:85, 45:115].astype(np.float64).copy()
    ring[15:35, 15:55] = np.nan
    context = encoder.encode(image, np.array([[x1, y1, x2, y2]], np.int32))[0, classic.BLOCK_SLICES["context"]]
    assert context[0] == pytest.approx(np.nanmean(ring), abs=1e-5)
    assert context[1] == pytest.approx(np.nanstd(ring), rel=1e-3)


@pytest.mark.parametrize("polarity, offset", [(+1, 0), (-1, 6)])  # bright ridge block first, dark second
def test_box_on_a_thin_line_has_higher_ridge_features_than_flat_background(encoder, polarity, offset):
    image = noisy_frame(seed=5, shape=(200, 200))
    rr = np.arange(30, 170)
    cc = (40 + 0.5 * (rr - 30) + 8 * np.sin(rr / 15)).astype(int)  # a faint curved 2 px filament
    for dc in (0, 1):
        image[rr, cc + dc] += polarity * 0.06
    boxes = np.array([[60, 70, 110, 120], [140, 10, 190, 60]], np.int32)  # on the line / on background
    ridge = encoder.encode(np.clip(image, 0, 1), boxes)[:, classic.BLOCK_SLICES["ridge"]]
    on_line, background = ridge[0, offset:offset + 6], ridge[1, offset:offset + 6]
    # The line covers ~4 % of its box, so the box mean rises less than the max and the p95.
    assert on_line[0] > 1.2 * background[0]  # mean response
    assert on_line[1] > 1.5 * background[1]  # 95th percentile
    assert on_line[2] > 2.5 * background[2]  # max response
    assert on_line[3] > 1.2 and background[3] < 1.0  # box mean / frame mean
    assert on_line[4] > background[4] + 0.04  # fraction of ridge pixels
    other = ridge[0, 6 - offset:12 - offset]
    assert on_line[2] > 1.4 * other[2]  # the matching polarity responds most


def test_sato_ridges_match_skimage_sato():
    from skimage.filters import sato

    image = noisy_frame(seed=6, shape=(120, 130))
    image[60, 10:120] += 0.05
    bright, dark = sato_ridges(image, sigmas=(1.0, 2.0))
    np.testing.assert_allclose(bright, sato(image, sigmas=(1.0, 2.0), black_ridges=False), atol=2e-5)
    np.testing.assert_allclose(dark, sato(image, sigmas=(1.0, 2.0), black_ridges=True), atol=2e-5)


def test_glcm_features_match_skimage_graycoprops():
    from skimage.feature import graycomatrix, graycoprops

    quantised = np.random.default_rng(7).integers(0, 16, (3, 64, 64))
    quantised[2] = 5  # a flat crop: correlation 1 by skimage's convention
    ours = classic.glcm_features(quantised)
    names = ["contrast", "dissimilarity", "homogeneity", "energy", "correlation"]
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    for k, crop in enumerate(quantised):
        glcm = graycomatrix(crop.astype(np.uint8), [1, 2, 4], angles, levels=16, symmetric=True)
        pooled = glcm.sum(axis=3, keepdims=True).astype(np.float64)
        expected = [graycoprops(pooled[:, :, d:d + 1], name)[0, 0] for d in range(3) for name in names]
        np.testing.assert_allclose(ours[k], expected, atol=1e-9)


def test_hog_features_match_skimage_hog():
    from skimage.feature import hog

    crops = np.random.default_rng(8).random((3, 64, 64)).astype(np.float32)
    expected = np.stack([hog(c, orientations=8, pixels_per_cell=(32, 32), cells_per_block=(2, 2),
                             block_norm="L2-Hys") for c in crops])
    np.testing.assert_allclose(classic.hog_features(crops), expected, atol=1e-6)


def test_hog_bins_equal_arctan2_on_the_bins_edges():
    from cs_features.encoders.classic_reference import reference_hog  # numpy's arctan2 for every pixel

    # Planes whose gradient points at each bin's edge (k * 22.5 degrees) or just beside it: the pixels
    # where a fast angle could fall in the neighbouring bin. Quantised noise adds axis and diagonal ties.
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    planes = [np.cos(k * np.pi / 8 + eps) * x / 200 + np.sin(k * np.pi / 8 + eps) * y / 200
              for k in range(16) for eps in (0.0, 1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3)]
    noise = np.round(np.random.default_rng(3).random((20, 64, 64)) * 4) / 4
    crops = np.concatenate([np.stack(planes), noise]).astype(np.float32)
    expected = np.stack([reference_hog(crop) for crop in crops])
    np.testing.assert_allclose(classic.hog_features(crops), expected, rtol=0, atol=1e-9)


def test_classic_encode_batch_equals_frame_by_frame(encoder):
    items = [(noisy_frame(seed=s, shape=(90, 120)), random_boxes(5, 90, 120, seed=s)) for s in (10, 11)]
    batch = encoder.encode_batch(items)
    for (image, boxes), vectors in zip(items, batch):
        np.testing.assert_array_equal(vectors, encoder.encode(image, boxes))


def test_classic_rejects_weights_and_crop_pooling():
    with pytest.raises(WeightsError, match="takes no weights"):
        get_encoder("classic", weights="some.pth")
    with pytest.raises(ConfigError, match="'roi' only"):
        get_encoder("classic", pooling="crop")
