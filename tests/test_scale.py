"""Scale normalisation: the embryo found at any frame size, boxes mapped both ways within 1 px."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.embryo import find_embryo
from cs_features.errors import ConfigError
from cs_features.frame import FramePipeline
from cs_features.scale import FrameScale, ScaleSettings, measure_scale
from cs_features.settings import StoreSettings


def _rendered(embryo_index: int, size: int = 500) -> tuple[np.ndarray, float, tuple[float, float]]:
    """A synthetic frame, its embryo's true outer radius and centre (the renderer's first draw)."""
    from cs_features.synth import SynthConfig, embryo_circle, render_embryo

    config = SynthConfig(image_size=size, frames_per_embryo=1)
    cx, cy, radius = embryo_circle(embryo_index, 5, config)
    image = render_embryo(embryo_index, 5, True, config)[0].image
    return image, radius, (cx, cy)


@pytest.fixture(scope="module")
def frames():
    return [_rendered(index) for index in range(4)]


@pytest.mark.parametrize("side", [250, 500, 1000, 1500])
def test_embryo_diameter_is_found_at_any_frame_size(frames, side):
    for image, radius, center in frames:
        resized = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if side < 500 else cv2.INTER_LINEAR)
        found = find_embryo(resized)
        factor = side / image.shape[0]
        assert found.found
        assert found.radius == pytest.approx(radius * factor, rel=0.07)
        assert np.hypot(found.cx - center[0] * factor, found.cy - center[1] * factor) < 0.08 * radius * factor


def test_embryo_cut_by_the_crop_edges_keeps_its_full_radius(frames):
    for image, radius, center in frames:
        half = int(0.95 * radius)  # the crop is narrower than the embryo: its outline leaves the frame
        x, y = int(center[0]), int(center[1])
        crop = image[max(0, y - half):y + half, max(0, x - half):x + half]
        found = find_embryo(crop)
        assert found.found and found.radius == pytest.approx(radius, rel=0.08)


def test_a_frame_without_an_embryo_keeps_its_scale():
    flat = np.random.default_rng(0).normal(128, 2, (300, 300)).clip(0, 255).astype(np.uint8)
    scale = measure_scale(flat, ScaleSettings(embryo_diameter=384))
    assert not scale.embryo.found and scale.scale == 1.0


@pytest.mark.parametrize("side, diameter", [(250, 230), (450, 420), (500, 385), (1000, 780), (1500, 1200),
                                            (1500, 600)])
def test_boxes_round_trip_within_one_pixel(side, diameter):
    from cs_features.embryo import EmbryoCircle

    scale = 384 / diameter
    frame_scale = FrameScale(scale, EmbryoCircle(side / 2, side / 2, diameter / 2, True), (side, side))
    rng = np.random.default_rng(side + diameter)
    xy = rng.integers(0, side - 8, (500, 2))
    boxes = np.concatenate([xy, xy + rng.integers(4, side // 3, (500, 2))], axis=1).clip(0, side).astype(np.int32)
    # boxes are made at the canonical scale and reported in frame pixels: that round trip is within 1 px
    canonical = frame_scale.to_canonical(boxes)
    assert np.abs(frame_scale.to_canonical(frame_scale.to_frame(canonical)) - canonical).max() <= 1
    # a frame-pixel box through the canonical grid comes back within 1 px, or within half a canonical pixel
    # where the canonical grid is coarser (a frame shrunk by more than 2)
    back = frame_scale.to_frame(frame_scale.to_canonical(boxes))
    assert np.abs(back - boxes).max() <= max(1, int(np.ceil(0.5 / scale)))


def test_the_pipeline_sees_one_embryo_size_whatever_the_frame_size(frames):
    image, radius, _ = frames[0]
    pipeline = FramePipeline(StoreSettings(scale=ScaleSettings(embryo_diameter=384)))
    sizes = []
    for side in (260, 500, 900):
        resized = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if side < 500 else cv2.INTER_LINEAR)
        frame = pipeline.prepare(resized, f"{side}px")
        sizes.append(2 * radius * side / 500 * frame.scale.scale)  # the embryo's diameter at the canonical scale
        proposals = pipeline.propose(frame)
        assert proposals.boxes[:, 2].max() <= side and proposals.boxes[:, 3].max() <= side  # frame pixels
    assert np.allclose(sizes, 384, rtol=0.08)


def test_scale_settings_validate_and_old_records_mean_no_resampling():
    with pytest.raises(ConfigError, match="embryo_diameter"):
        ScaleSettings(embryo_diameter=10)
    assert not StoreSettings.from_dict({"preprocess": {}}).scale.enabled  # settings recorded before scale existed
    assert not StoreSettings().scale.enabled  # off by default until the transfer benchmark decides
    off = FramePipeline(StoreSettings())
    image = np.random.default_rng(1).integers(0, 255, (120, 140), dtype=np.uint8)
    assert off.prepare(image).preprocessed.shape == (120, 140)


def test_embryo_is_found_beside_a_few_strong_specks():
    """A `hard-crop` time-lapse whose zona carries a few very strong bright/dark specks: uncapped, they set
    the texture's scale, the Otsu threshold kept them alone, and no embryo was found on 5 of its 6 frames."""
    from cs_features.synth import embryo_circle, render_embryo, synth_preset

    config = synth_preset("hard-crop")
    cx, cy, radius = embryo_circle(23, 6, config)
    for frame in render_embryo(23, 6, False, config):
        found = find_embryo(frame.image)
        assert found.found
        assert found.radius == pytest.approx(radius, rel=0.08)
        assert np.hypot(found.cx - cx, found.cy - cy) < 0.08 * radius


def test_the_uncapped_reference_is_the_old_search_and_the_cap_is_checked():
    from cs_features.synth import render_embryo, synth_preset

    image = render_embryo(23, 6, False, synth_preset("hard-crop"))[0].image
    assert not find_embryo(image, cap_quantile=1.0).found  # scaled by its maximum, the specks take the threshold
    with pytest.raises(ValueError, match="cap_quantile"):
        find_embryo(image, cap_quantile=0.2)
