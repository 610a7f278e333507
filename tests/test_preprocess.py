"""Tests of cs_features.preprocess: CLAHE + bilateral preprocessing and its config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.errors import ConfigError
from cs_features.preprocess import PreprocessConfig, preprocess, to_float


def _embryo_like_frame(shape=(120, 160), seed=0) -> np.ndarray:
    """A dim smooth disc with noise and a faint line: (H, W) uint8."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 2.5) ** 2
    frame = 60.0 + 40.0 * disc + rng.normal(0.0, 4.0, shape)
    frame[h // 2, w // 4: 3 * w // 4] += 12.0
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_preprocess_shape_dtype_and_published_pipeline():
    frame = _embryo_like_frame()
    out = preprocess(frame)
    assert out.shape == frame.shape
    assert out.dtype == np.uint8
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    expected = cv2.bilateralFilter(clahe.apply(frame), 5, 12.0, 7.0)
    np.testing.assert_array_equal(out, expected)
    # CLAHE stretches the dim frame: the output uses a wider grey range than the input.
    assert int(out.max()) - int(out.min()) > int(frame.max()) - int(frame.min())


def test_preprocess_is_deterministic_and_does_not_modify_input():
    frame = _embryo_like_frame(seed=3)
    copy = frame.copy()
    np.testing.assert_array_equal(preprocess(frame), preprocess(frame))
    np.testing.assert_array_equal(frame, copy)


def test_preprocess_accepts_non_contiguous_view():
    frame = _embryo_like_frame((120, 200))
    view = frame[:, ::2]
    np.testing.assert_array_equal(preprocess(view), preprocess(np.ascontiguousarray(view)))


def test_preprocess_config_changes_output():
    frame = _embryo_like_frame()
    base = preprocess(frame)
    stronger = preprocess(frame, PreprocessConfig(clahe_clip=4.0))
    assert not np.array_equal(base, stronger)


def _store_hash(config: PreprocessConfig) -> str:
    from cs_features.settings import StoreSettings

    return StoreSettings(preprocess=config).config_hash()


def test_store_settings_hash_is_stable_and_sensitive_to_every_preprocess_setting():
    cfg = PreprocessConfig()
    assert _store_hash(cfg) == _store_hash(PreprocessConfig())
    assert len(_store_hash(cfg)) == 16
    int(_store_hash(cfg), 16)  # hex
    # 2 and 2.0 are the same setting.
    assert _store_hash(PreprocessConfig(clahe_clip=2)) == _store_hash(cfg)
    changed = {
        _store_hash(PreprocessConfig(clahe_clip=2.5)),
        _store_hash(PreprocessConfig(clahe_grid=4)),
        _store_hash(PreprocessConfig(bilateral_d=7)),
        _store_hash(PreprocessConfig(bilateral_sigma_color=20.0)),
        _store_hash(PreprocessConfig(bilateral_sigma_space=3.0)),
    }
    assert len(changed) == 5
    assert _store_hash(cfg) not in changed


def test_config_dict_roundtrip_and_unknown_key():
    cfg = PreprocessConfig(clahe_clip=3.0, clahe_grid=4)
    data = cfg.to_dict()
    assert data == {"clahe_clip": 3.0, "clahe_grid": 4, "bilateral_d": 5,
                    "bilateral_sigma_color": 12.0, "bilateral_sigma_space": 7.0}
    assert PreprocessConfig.from_dict(data) == cfg
    with pytest.raises(ConfigError, match="clahe_clipp"):
        PreprocessConfig.from_dict({"clahe_clipp": 2.0})


@pytest.mark.parametrize("kwargs, fragment", [
    ({"clahe_clip": 0.0}, "clahe_clip=0.0"),
    ({"clahe_grid": 2.5}, "clahe_grid=2.5"),
    ({"bilateral_d": 0}, "bilateral_d=0"),
    ({"bilateral_sigma_color": "a"}, "bilateral_sigma_color='a'"),
])
def test_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        PreprocessConfig(**kwargs)
    assert fragment in str(info.value)


def test_preprocess_rejects_bad_images():
    with pytest.raises(TypeError, match="float32"):
        preprocess(np.zeros((10, 10), np.float32))
    with pytest.raises(TypeError, match="list"):
        preprocess([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"\(10, 10, 3\)"):
        preprocess(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(0, 10\)"):
        preprocess(np.zeros((0, 10), np.uint8))


def test_to_float_range_and_dtype():
    out = to_float(np.array([[0, 51, 255]], np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0.0, 0.2, 1.0]], np.float32))
    with pytest.raises(TypeError, match="int64"):
        to_float(np.zeros((2, 2), np.int64))
