"""The fast ``classic`` encoder against a per-box reference written from the method's definition.

The library computes every box of a frame at once (integral tables, batched crops, one histogram per
GLCM offset); :func:`reference_vector` below computes one box at a time with numpy, scipy and
scikit-image, the way the module docstring of :mod:`cs_features.encoders.classic` describes each block.
They must agree to 1e-5 on synthetic frames and on boxes at the frame's edges, 1 px wide, 1 px in
size and filling the frame.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cs_features.encoders import classic, get_encoder
from cs_features.encoders.lbp import uniform_lbp
from cs_features.preprocess import preprocess, to_float
from cs_features.ridges import gaussian_derivative

ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


# ------------------------------------------------------------------------------- the reference


def reference_ridges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sato tubeness (sigmas 1, 2) from scipy's Gaussian derivatives: bright, dark (H, W) float32."""
    bright, dark = np.zeros_like(image), np.zeros_like(image)
    for sigma in classic.RIDGE_SIGMAS:
        scale = sigma / np.sqrt(2.0)

        def d(a, order, scale=scale):
            return ndi.gaussian_filter(a, scale, order=order, mode="reflect", truncate=4.0)

        g_row, g_col = d(image, (1, 0)), d(image, (0, 1))
        h_rr, h_rc, h_cc = d(g_row, (1, 0)), d(g_row, (0, 1)), d(g_col, (0, 1))
        half_trace = (h_rr + h_cc) / 2
        radius = np.sqrt(((h_rr - h_cc) / 2) ** 2 + h_rc ** 2)
        bright = np.maximum(bright, sigma ** 2 * np.maximum(-(half_trace - radius), 0))
        dark = np.maximum(dark, sigma ** 2 * np.maximum(half_trace + radius, 0))
    return bright, dark


def reference_frame(image: np.ndarray) -> dict:
    """The per-frame maps the reference cuts boxes from."""
    from skimage.feature import local_binary_pattern

    bright, dark = reference_ridges(image)
    return {"image": image, "bright": bright, "dark": dark,
            "g_row": ndi.gaussian_filter(image, 1.0, order=(1, 0), mode="reflect", truncate=4.0),
            "g_col": ndi.gaussian_filter(image, 1.0, order=(0, 1), mode="reflect", truncate=4.0),
            "lbp": local_binary_pattern(np.round(image * 255).astype(np.uint8), 8, 1, method="uniform"),
            "p95": [np.percentile(bright, 95), np.percentile(dark, 95)]}


def moments(values: np.ndarray) -> list[float]:
    """Mean, std, skewness, excess kurtosis; 0 for the last two on a flat region (variance < 1e-10)."""
    values = values.astype(np.float64)
    mean, var = values.mean(), values.var()
    if var < 1e-10:
        return [mean, np.sqrt(var), 0.0, 0.0]
    centred = values - mean
    return [mean, np.sqrt(var), (centred ** 3).mean() / var ** 1.5, (centred ** 4).mean() / var ** 2 - 3.0]


def crop(array: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(array, (classic.CROP, classic.CROP), interpolation=cv2.INTER_AREA)


def sorted_percentile(values: np.ndarray, q: float) -> np.float32:
    """Linear interpolation between order statistics, in the crop's float32 (the quantiser's lo / hi)."""
    ordered = np.sort(values.ravel())
    position = q / 100.0 * (len(ordered) - 1)
    lo = int(np.floor(position))
    frac = position - lo
    return ordered[lo] * (1 - frac) + ordered[min(lo + 1, len(ordered) - 1)] * frac


def glcm_block(intensity_crop: np.ndarray) -> list[float]:
    from skimage.feature import graycomatrix, graycoprops

    lo, hi = sorted_percentile(intensity_crop, 1), sorted_percentile(intensity_crop, 99)
    span = np.maximum(hi - lo, 1e-6)
    quantised = np.clip(((intensity_crop - lo) / span * classic.GLCM_LEVELS).astype(np.int32), 0, 15)
    glcm = graycomatrix(quantised.astype(np.uint8), list(classic.GLCM_DISTANCES), list(ANGLES),
                        levels=classic.GLCM_LEVELS, symmetric=True)
    pooled = glcm.sum(axis=3, keepdims=True).astype(np.float64)
    names = ["contrast", "dissimilarity", "homogeneity", "energy", "correlation"]
    return [graycoprops(pooled[:, :, d:d + 1], name)[0, 0]
            for d in range(len(classic.GLCM_DISTANCES)) for name in names]


def coherence(g_col: np.ndarray, g_row: np.ndarray) -> tuple[float, float, float, float]:
    """Coherence, cos and sin of the doubled angle, summed squared gradient of a region."""
    s_xx = (g_col * g_col).astype(np.float64).sum()
    s_yy = (g_row * g_row).astype(np.float64).sum()
    s_xy = (g_col * g_row).astype(np.float64).sum()
    value = np.sqrt((s_xx - s_yy) ** 2 + 4 * s_xy ** 2) / (s_xx + s_yy + 1e-12)
    angle = np.arctan2(2 * s_xy, s_xx - s_yy)
    return value, np.cos(angle), np.sin(angle), s_xx + s_yy


def hog_block(intensity_crop: np.ndarray) -> np.ndarray:
    """HOG of one float32 crop: centred differences, 8 unsigned bins of 22.5 degrees, 2 x 2 cells, L2-Hys.

    The layout of ``skimage.feature.hog``, with the angle in float32 as the encoder computes it: on
    upsampled crops many gradients lie exactly on the 45-degree bin edge, where float32 and float64
    arctangents fall on different sides.
    """
    g_row, g_col = np.zeros_like(intensity_crop), np.zeros_like(intensity_crop)
    g_row[1:-1, :] = intensity_crop[2:, :] - intensity_crop[:-2, :]
    g_col[:, 1:-1] = intensity_crop[:, 2:] - intensity_crop[:, :-2]
    magnitude = np.hypot(g_col, g_row)
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    bins = np.minimum((angle / np.float32(22.5)).astype(int), 7)
    cell = classic.HOG_CELL
    hist = [magnitude[r:r + cell, c:c + cell][bins[r:r + cell, c:c + cell] == b].astype(np.float64).sum()
            for r in (0, cell) for c in (0, cell) for b in range(classic.HOG_ORIENTATIONS)]
    block = np.array(hist) / (cell * cell)
    block = block / np.sqrt((block ** 2).sum() + 1e-10)
    block = np.minimum(block, 0.2)
    return block / np.sqrt((block ** 2).sum() + 1e-10)


def reference_vector(frame: dict, box: np.ndarray) -> np.ndarray:
    """The 104-d classic descriptor of one box, block by block as the module docstring defines it."""
    image = frame["image"]
    height, width = image.shape
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    margin = max(4, (w + h) // 4)
    gx1, gy1, gx2, gy2 = max(0, x1 - margin), max(0, y1 - margin), min(width, x2 + margin), min(height, y2 + margin)
    in_ring = np.zeros((height, width), bool)
    in_ring[gy1:gy2, gx1:gx2] = True
    in_ring[y1:y2, x1:x2] = False
    if not in_ring.any():  # the box fills the frame: its ring is itself
        in_ring[y1:y2, x1:x2] = True
    box_of = {name: frame[name][y1:y2, x1:x2] for name in ("image", "bright", "dark", "g_row", "g_col", "lbp")}
    crops = {name: crop(box_of[name]) for name in ("image", "bright", "dark")}

    geometry = [np.log(w), np.log(h), np.log(w / h), np.sqrt(w * h / (height * width))]
    box_m, ring_m = moments(box_of["image"]), moments(image[in_ring])
    intensity = box_m + [np.percentile(crops["image"], q) for q in (5, 25, 50, 75, 95)]
    diff = box_m[0] - ring_m[0]
    context = ring_m + [diff, diff / (ring_m[1] + 1e-6), box_m[1] / (ring_m[1] + 1e-6)]
    lbp = ([np.mean(box_of["lbp"] == code) for code in range(classic.LBP_BINS)]
           + [np.mean(frame["lbp"][in_ring] == code) for code in range(classic.LBP_BINS)])
    ridge = []
    for k, name in enumerate(("bright", "dark")):
        region = box_of[name].astype(np.float64)
        ridge += [region.mean(), np.percentile(crops[name], 95), region.max(),
                  region.mean() / (frame[name].astype(np.float64).mean() + 1e-9),
                  np.mean(box_of[name] > frame["p95"][k]), frame[name][in_ring].astype(np.float64).mean()]
    value, cos2, sin2, energy = coherence(box_of["g_col"], box_of["g_row"])
    ring_value = coherence(frame["g_col"][in_ring], frame["g_row"][in_ring])[0]
    orientation = [value, value * cos2, value * sin2, np.log(energy / (w * h) + 1e-12), ring_value]
    vector = np.concatenate([geometry, intensity, context, glcm_block(crops["image"]), lbp, ridge, orientation,
                             hog_block(crops["image"])])
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


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
