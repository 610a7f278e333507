"""Tests of cs_features.texture: GLCM contrast grid (fast vs skimage reference), heat map, mask."""

from __future__ import annotations

import numpy as np
import pytest

from cs_features.errors import ConfigError
from cs_features.texture import (
    TextureConfig,
    glcm_contrast_grid,
    glcm_contrast_grid_reference,
    glcm_offsets,
    heatmap_from_contrast_grid,
    low_texture,
    low_texture_heatmap,
    low_texture_heatmap_reference,
    low_texture_mask,
    mask_from_heatmap,
    quantize,
    two_means_threshold,
    window_origins,
)

TOP = 255  # quantises to level 31 of 32, so a 0/255 step is (31 - 0)**2 = 961 in contrast units
STEP2 = 961.0


def _random_frame(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth_noisy_frame(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    frame = 128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0.0, 6.0, shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _half_smooth_half_textured(shape=(128, 192), seed=0) -> np.ndarray:
    """Left half nearly flat (grey 100 +- 1), right half uniform noise: (H, W) uint8."""
    rng = np.random.default_rng(seed)
    frame = np.clip(rng.normal(100.0, 1.0, shape), 97, 103).astype(np.uint8)
    half = shape[1] // 2
    frame[:, half:] = rng.integers(0, 256, (shape[0], shape[1] - half), dtype=np.uint8)
    return frame


# ---- fast path == skimage reference ---------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 64), (97, 130), (200, 150), (31, 31), (31, 47)])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_fast_matches_reference(shape, kind):
    frame = _random_frame(shape, 1) if kind == "random" else _smooth_noisy_frame(shape, 2)
    fast_grid, ref_grid = glcm_contrast_grid(frame), glcm_contrast_grid_reference(frame)
    ys, xs = window_origins(shape, TextureConfig())
    assert fast_grid.shape == ref_grid.shape == (len(ys), len(xs))
    assert np.abs(fast_grid - ref_grid).max() <= 1e-9
    fast, ref = low_texture_heatmap(frame), low_texture_heatmap_reference(frame)
    assert fast.shape == ref.shape == shape and fast.dtype == ref.dtype == np.float32
    assert np.abs(fast - ref).max() <= 1e-5


@pytest.mark.parametrize("config", [
    TextureConfig(angles_deg=(45,)),
    TextureConfig(angles_deg=(270, 200)),  # negative row offsets, flipped by the fast path
    TextureConfig(distances=(1, 3), step=5),
    TextureConfig(levels=20, window=15, step=7),  # not a power of two: general quantisation
])
def test_fast_matches_reference_other_configs(config):
    frame = _smooth_noisy_frame((70, 83), 4)
    fast_grid = glcm_contrast_grid(frame, config)
    assert np.abs(fast_grid - glcm_contrast_grid_reference(frame, config)).max() <= 1e-9
    diff = low_texture_heatmap(frame, config) - low_texture_heatmap_reference(frame, config)
    assert np.abs(diff).max() <= 1e-5


def test_window_origins_cover_only_fitting_windows():
    ys, xs = window_origins((97, 130), TextureConfig())
    np.testing.assert_array_equal(ys, [0, 8, 16, 24, 32, 40, 48, 56, 64])
    assert xs[-1] == 96 and xs[-1] + 31 <= 130 and xs[-1] + 8 + 31 > 130


def test_offsets_follow_skimage_rounding():
    assert glcm_offsets(TextureConfig()) == [(0, 1), (1, 1), (1, 0), (1, -1),
                                             (0, 2), (1, 1), (2, 0), (1, -1)]


# ---- hand-worked contrasts ------------------------------------------------------------------

def test_horizontal_stripes_show_diagonal_collapse():
    rows = np.arange(31)[:, None] % 2
    frame = np.repeat(rows * TOP, 31, axis=1).astype(np.uint8)
    # (0,1)=0, (1,1)=(1,0)=(1,-1)=961; d=2: (0,2)=0, (2,0)=0, and the diagonals collapse to
    # (1,1), (1,-1) = 961 each. Without the collapse ((2,2) offsets) they would be 0: 3*961/8.
    expected = 5 * STEP2 / 8
    assert glcm_contrast_grid_reference(frame)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert glcm_contrast_grid(frame)[0, 0] == pytest.approx(expected, abs=1e-12)


def test_checkerboard_contrast():
    yy, xx = np.mgrid[:31, :31]
    frame = (((yy + xx) % 2) * TOP).astype(np.uint8)
    expected = 2 * STEP2 / 8  # only (0,1) and (1,0) see a change; every diagonal pair is equal
    assert glcm_contrast_grid_reference(frame)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert glcm_contrast_grid(frame)[0, 0] == pytest.approx(expected, abs=1e-12)


def test_pairs_count_only_inside_the_window():
    frame = np.zeros((31, 39), np.uint8)
    frame[:, 31:] = TOP  # the edge lies just outside window 0 and inside window 1 (x = 8)
    # Window 1: one crossing per row out of 30 pairs for (0,1), (1,1), (1,-1) at d=1 and the two
    # collapsed diagonals at d=2; two crossings out of 29 pairs for (0,2); none vertically.
    expected = (5 * STEP2 / 30 + 2 * STEP2 / 29) / 8
    for grid in (glcm_contrast_grid(frame), glcm_contrast_grid_reference(frame)):
        assert grid.shape == (1, 2)
        assert grid[0, 0] == 0.0
        assert grid[0, 1] == pytest.approx(expected, abs=1e-9)


def test_quantize_levels():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(quantize(ramp, 32), ramp // 8)
    q20 = quantize(ramp, 20)
    np.testing.assert_array_equal(q20, (ramp.astype(np.int64) * 20) // 256)
    assert q20.dtype == np.uint8 and q20.max() == 19


# ---- heat map and mask ----------------------------------------------------------------------

def test_mask_separates_smooth_from_textured():
    frame = _half_smooth_half_textured()
    heatmap, mask = low_texture(frame)
    assert heatmap.shape == mask.shape == frame.shape
    assert heatmap.dtype == np.float32 and mask.dtype == bool
    assert heatmap[:, :80].mean() < 0.1 and heatmap[:, 112:].mean() > 0.8
    assert mask[:, :80].mean() > 0.95
    assert mask[:, 112:].mean() < 0.05
    np.testing.assert_array_equal(low_texture_mask(frame), mask)


def test_erosion_shrinks_mask():
    frame = _half_smooth_half_textured(seed=5)
    heatmap = low_texture_heatmap(frame)
    plain = mask_from_heatmap(heatmap, TextureConfig(erosion=0))
    eroded = mask_from_heatmap(heatmap, TextureConfig(erosion=5))
    assert np.all(plain[eroded])  # eroded is a subset
    assert eroded.sum() < plain.sum()
    # A straight vertical boundary moves by exactly 2 px (half of the 5 x 5 square) per row.
    plain_width = plain[64].sum()
    assert plain[64, :plain_width].all() and eroded[64].sum() == plain_width - 2


def test_constant_image_gives_zero_heatmap_and_full_mask():
    frame = np.full((64, 90), 77, np.uint8)
    heatmap, mask = low_texture(frame)
    assert heatmap.dtype == np.float32 and np.all(heatmap == 0.0)
    assert mask.all()
    np.testing.assert_array_equal(low_texture_heatmap_reference(frame), heatmap)


def test_equal_nonzero_contrasts_count_as_flat():
    frame = (np.repeat((np.arange(64) % 2)[:, None], 80, axis=1) * TOP).astype(np.uint8)
    grid = glcm_contrast_grid(frame)
    assert np.all(grid == grid[0, 0]) and grid[0, 0] > 0
    # Summation-order noise must not be stretched to [0, 1].
    noisy = grid * (1.0 + 1e-15 * np.arange(grid.size).reshape(grid.shape))
    assert np.all(heatmap_from_contrast_grid(noisy, frame.shape) == 0.0)


def test_two_means_threshold():
    assert two_means_threshold(np.array([0, 0, 1, 1, 10], np.uint8)) == pytest.approx(5.25)
    assert two_means_threshold(np.full((3, 3), 0.5, np.float32)) == 0.5
    values = np.concatenate([np.full(100, 0.1), np.full(50, 0.9)]).astype(np.float32)
    t = two_means_threshold(values)
    assert 0.1 < t < 0.9 and np.float32(t) == t  # exactly representable in float32
    assert (values <= t).sum() == 100


def test_too_small_image_raises_with_shape_and_window():
    with pytest.raises(ConfigError) as info:
        low_texture_mask(np.zeros((30, 100), np.uint8))
    assert isinstance(info.value, ValueError)
    assert "(30, 100)" in str(info.value) and "31x31" in str(info.value)
    with pytest.raises(ConfigError, match=r"\(100, 20\)"):
        glcm_contrast_grid_reference(np.zeros((100, 20), np.uint8))


def test_bad_image_types():
    with pytest.raises(TypeError, match="float64"):
        low_texture_heatmap(np.zeros((64, 64)))
    with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
        low_texture_heatmap(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(TypeError, match="dict"):
        low_texture_heatmap(np.zeros((64, 64), np.uint8), {"window": 31})


# ---- config ---------------------------------------------------------------------------------

def _store_hash(config: TextureConfig) -> str:
    from cs_features.settings import StoreSettings

    return StoreSettings(texture=config).config_hash()


def test_texture_config_roundtrip_and_store_settings_hash():
    cfg = TextureConfig()
    data = cfg.to_dict()
    assert data["distances"] == [1, 2] and data["angles_deg"] == [0.0, 45.0, 90.0, 135.0]
    assert TextureConfig.from_dict(data) == cfg
    assert _store_hash(TextureConfig.from_dict(data)) == _store_hash(cfg)
    assert _store_hash(TextureConfig(angles_deg=[0, 45, 90, 135])) == _store_hash(cfg)
    others = {_store_hash(TextureConfig(step=4)), _store_hash(TextureConfig(levels=16)),
              _store_hash(TextureConfig(distances=(1,))), _store_hash(TextureConfig(erosion=3))}
    assert len(others) == 4 and _store_hash(cfg) not in others
    with pytest.raises(ConfigError, match="windw"):
        TextureConfig.from_dict({"windw": 31})


@pytest.mark.parametrize("kwargs, fragment", [
    ({"levels": 300}, "levels=300"),
    ({"window": 1}, "window=1"),
    ({"step": 0}, "step=0"),
    ({"distances": (1, 31)}, "distances=(1, 31)"),
    ({"distances": "12"}, "distances='12'"),
    ({"percentiles": (99, 1)}, "percentiles=(99.0, 1.0)"),
    ({"blur_sigma": -1}, "blur_sigma=-1.0"),
    ({"angles_deg": ()}, "angles_deg=()"),
])
def test_texture_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        TextureConfig(**kwargs)
    assert fragment in str(info.value)
