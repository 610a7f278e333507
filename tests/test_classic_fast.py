"""The fast ``classic`` encoder against a per-box reference written from the method's definition.

The library computes every box of a frame at once (integral tables, batched crops, one histogram per
GLCM offset); :mod:`cs_features.encoders.classic_reference` computes one box at a time with numpy,
scipy and scikit-image, the way the module docstring of :mod:`cs_features.encoders.classic` describes
each block.
They must agree to 1e-5 on synthetic frames and on boxes at the frame's edges, 1 px wide, 1 px in
size and filling the frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cs_features.encoders import classic, get_encoder
from cs_features.encoders.classic_reference import ANGLES, reference_frame, reference_vector
from cs_features.encoders.lbp import uniform_lbp
from cs_features.preprocess import preprocess, to_float
from cs_features.ridges import gaussian_derivative, sato_ridges_float32

# ----------------------------------------------------------------------------------- frames and boxes


def synth_frame(embryo: int, size: int = 160) -> np.ndarray:
    """A preprocessed synthetic embryo frame, (size, size) float32 in [0, 1]."""
    from cs_features.synth import SynthConfig, render_embryo

    rendered = render_embryo(embryo, 3, embryo % 2 == 0, SynthConfig(image_size=size, frames_per_embryo=1))
    return to_float(preprocess(rendered[0].image))


def flat_patch_frame() -> np.ndarray:
    """A non-square synthetic frame with a constant block (flat LBP, zero ridges and gradients there)."""
    image = synth_frame(5, 192)[:150, :190].copy()
    image[20:70, 30:110] = 0.5
    return image


def box_set(height: int, width: int, seed: int) -> np.ndarray:
    """Random boxes plus the awkward ones: edges, corners, 1 px wide / high, 1 px, the whole frame."""
    rng = np.random.default_rng(seed)
    w, h = rng.integers(2, width // 2, 40), rng.integers(2, height // 2, 40)
    x1, y1 = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
    random = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
    awkward = [[0, 0, width, height], [0, 0, 1, 1], [width - 1, height - 1, width, height], [5, 7, 6, 8],
               [0, 0, 1, height], [0, 10, width, 11], [width - 30, 0, width, 25], [0, height - 20, 17, height],
               [3, 3, width - 3, height - 3], [0, 0, 64, 64], [10, 5, 11, 70], [2, 40, 130, 41]]
    awkward = [b for b in awkward if b[2] <= width and b[3] <= height]
    return np.concatenate([random, awkward]).astype(np.int32)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [synth_frame(0), synth_frame(1, 176), flat_patch_frame()]


# ----------------------------------------------------------------------------------- the comparisons


@pytest.mark.parametrize("index", [0, 1, 2])
def test_fast_classic_equals_the_per_box_reference(frames, index):
    image = frames[index]
    boxes = box_set(*image.shape, seed=index)
    fast = get_encoder("classic").encode(image, boxes)
    frame = reference_frame(image)
    expected = np.stack([reference_vector(frame, box) for box in boxes]).astype(np.float32)
    assert fast.shape == expected.shape == (len(boxes), classic.DIM)
    assert_close_to_reference(fast, expected, f"frame {index}")


def assert_close_to_reference(fast: np.ndarray, expected: np.ndarray, where: str) -> None:
    """Every feature within 1e-5 (relative or absolute), block by block.

    One exception, a property of integral images rather than of the fast path: a box's variance is a
    difference of frame-wide power sums, so on a flat box (1 px, say) its std is rounding noise of
    up to a few 1e-6 instead of 0, and "box std / ring std" divides that noise by the ring's std.
    """
    atol = np.full(fast.shape, 1e-5)
    context = classic.BLOCK_SLICES["context"].start
    atol[:, context + 6] += 5e-6 / (expected[:, context + 1] + 1e-6)
    for name, block in classic.BLOCK_SLICES.items():
        excess = np.abs(fast[:, block] - expected[:, block]) - atol[:, block] - 1e-5 * np.abs(expected[:, block])
        worst = np.unravel_index(excess.argmax(), excess.shape)
        assert excess.max() <= 0, (f"block {name!r} of {where}: box {worst[0]} feature {worst[1]} differs: "
                                   f"{fast[:, block][worst]} vs {expected[:, block][worst]}")


def test_more_boxes_than_one_histogram_pass_holds(frames):
    """300 boxes: the GLCM counts run in passes of 256 crops; the split must not show in the vectors."""
    image = frames[0]
    rng = np.random.default_rng(11)
    w, h = rng.integers(1, 80, 300), rng.integers(1, 80, 300)
    x1, y1 = rng.integers(0, 160 - w + 1), rng.integers(0, 160 - h + 1)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.int32)
    encoder = get_encoder("classic")
    together = encoder.encode(image, boxes)
    # Boxes 250-300 encoded alone sit in the first pass instead of the second.
    np.testing.assert_array_equal(together[250:], encoder.encode(image, boxes[250:]))
    frame = reference_frame(image)
    picked = [0, 255, 256, 299]
    expected = np.stack([reference_vector(frame, boxes[k]) for k in picked]).astype(np.float32)
    assert_close_to_reference(together[picked], expected, "300 boxes")


def test_glcm_features_of_many_crops_match_skimage():
    from skimage.feature import graycomatrix, graycoprops

    quantised = np.random.default_rng(12).integers(0, 16, (260, 16, 16))
    quantised[3] = 7
    quantised[259, :8] = 0
    ours = classic.glcm_features(quantised)
    names = ["contrast", "dissimilarity", "homogeneity", "energy", "correlation"]
    for k in (0, 3, 255, 256, 259):
        glcm = graycomatrix(quantised[k].astype(np.uint8), [1, 2, 4], list(ANGLES), levels=16, symmetric=True)
        pooled = glcm.sum(axis=3, keepdims=True).astype(np.float64)
        expected = [graycoprops(pooled[:, :, d:d + 1], name)[0, 0] for d in range(3) for name in names]
        np.testing.assert_allclose(ours[k], expected, atol=1e-9)


def test_glcm_features_refuse_more_than_16_levels():
    with pytest.raises(ValueError, match="levels must be <= 16, got 32"):
        classic.glcm_features(np.zeros((1, 8, 8), np.int32), levels=32)


@pytest.mark.parametrize("kind", ["synthetic", "random", "plateaus", "flat"])
def test_uniform_lbp_equals_skimage(kind):
    from skimage.feature import local_binary_pattern

    rng = np.random.default_rng(13)
    image = {"synthetic": lambda: np.round(synth_frame(2, 128) * 255).astype(np.uint8),
             "random": lambda: rng.integers(0, 256, (37, 53)).astype(np.uint8),
             "plateaus": lambda: rng.integers(100, 103, (64, 48)).astype(np.uint8),
             "flat": lambda: np.full((9, 11), 200, np.uint8)}[kind]()
    codes = uniform_lbp(image)
    assert codes.dtype == np.uint8 and codes.shape == image.shape
    np.testing.assert_array_equal(codes, local_binary_pattern(image, 8, 1, method="uniform"))


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (12, 40), (150, 190)])
@pytest.mark.parametrize("order", [(1, 0), (0, 1), (0, 0)])
def test_gaussian_derivative_equals_scipy(shape, order):
    rng = np.random.default_rng(14)
    image = rng.random(shape).astype(np.float32)
    image[: shape[0] // 2] = 0.25  # a flat half: scipy's derivative is exactly 0 there
    for sigma in (1 / np.sqrt(2), 1.0, np.sqrt(2)):
        expected = ndi.gaussian_filter(image, sigma, order=order, mode="reflect", truncate=4.0)
        ours = gaussian_derivative(image, sigma, order)
        assert ours.dtype == expected.dtype
        np.testing.assert_array_equal(ours, expected)
    as_float64 = image.astype(np.float64)
    np.testing.assert_array_equal(gaussian_derivative(as_float64, 1.0, order),
                                  ndi.gaussian_filter(as_float64, 1.0, order=order, mode="reflect", truncate=4.0))


@pytest.mark.parametrize("size", [150, 12])  # 12 px: smaller than the kernel, filtered by scipy
def test_sato_ridges_float32_from_zero_sum_second_derivatives(frames, size):
    from cs_features.encoders.classic_reference import reference_ridges

    image = frames[2][:size, :size]
    bright, dark = sato_ridges_float32(image, classic.RIDGE_SIGMAS)
    expected_bright, expected_dark = reference_ridges(image)
    assert bright.dtype == dark.dtype == np.float32 and bright.min() >= 0 and dark.min() >= 0
    np.testing.assert_allclose(bright, expected_bright, atol=2e-6)
    np.testing.assert_allclose(dark, expected_dark, atol=2e-6)
    if size == 150:  # the constant block, beyond the kernel radius (8 px), has no ridges
        assert max(bright[29:61, 39:101].max(), dark[29:61, 39:101].max()) < 1e-7


@pytest.mark.parametrize("q", [0, 1, 5, 50, 95, 99, 100])
def test_frame_percentile_equals_numpy(frames, q):
    from cs_features.ridges import sato_ridges

    rng = np.random.default_rng(15)
    arrays = [rng.random(n).astype(np.float32) for n in (1, 2, 21, 1001)]
    arrays += [rng.integers(0, 4, 500).astype(np.float32), rng.random(300), *sato_ridges(frames[2])]
    for values in arrays:
        expected, ours = np.percentile(values, q), classic.frame_percentile(values, q)
        assert ours == expected and np.asarray(ours).dtype == np.asarray(expected).dtype
