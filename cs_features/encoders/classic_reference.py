"""A per-box reference of the ``classic`` descriptor, written from its definition (slow, for checks).

:func:`cs_features.encoders.classic.describe_boxes` computes all boxes of a frame together
(integral tables, batched crops, one histogram per GLCM offset). :func:`reference_describe_boxes`
computes one box at a time, block by block as the classic module's docstring defines it, with numpy,
scipy and scikit-image: the region's own pixels for moments, ring and LBP histograms, one
``cv2.resize`` per map for the crops, ``graycomatrix``/``graycoprops`` for the GLCM. The tests compare
the two to 1e-5, and ``benchmarks/bench_encoders.py`` times them side by side.
"""

from __future__ import annotations

import numpy as np

from cs_features.encoders import classic

__all__ = ["ANGLES", "reference_describe_boxes", "reference_frame", "reference_hog", "reference_ridges",
           "reference_vector"]

ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def reference_ridges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sato tubeness (sigmas 1, 2) from zero-sum Gaussian second derivatives: bright, dark (H, W) float64.

    scipy's second-derivative filters, each minus what it reads on a constant image (its kernel's
    sum) times the Gaussian-smoothed image, so a flat area has no curvature.
    """
    from scipy import ndimage as ndi

    image = image.astype(np.float64)
    bright, dark = np.zeros_like(image), np.zeros_like(image)
    for sigma in classic.RIDGE_SIGMAS:
        def d(order, sigma=sigma):
            return ndi.gaussian_filter(image, sigma, order=order, mode="reflect", truncate=4.0)

        offset = ndi.gaussian_filter1d(np.ones(64), sigma, order=2, mode="reflect", truncate=4.0)[32]
        smooth = d((0, 0))
        h_rr, h_rc, h_cc = d((2, 0)) - offset * smooth, d((1, 1)), d((0, 2)) - offset * smooth
        half_trace = (h_rr + h_cc) / 2
        radius = np.sqrt(((h_rr - h_cc) / 2) ** 2 + h_rc ** 2)
        bright = np.maximum(bright, sigma ** 2 * np.maximum(-(half_trace - radius), 0))
        dark = np.maximum(dark, sigma ** 2 * np.maximum(half_trace + radius, 0))
    return bright, dark


def reference_frame(image: np.ndarray) -> dict:
    """The per-frame maps the reference cuts boxes from."""
    from scipy import ndimage as ndi
    from skimage.feature import local_binary_pattern

    bright, dark = reference_ridges(image)
    return {"image": image, "bright": bright, "dark": dark,
            "g_row": ndi.gaussian_filter(image.astype(np.float64), 1.0, order=(1, 0), mode="reflect", truncate=4.0),
            "g_col": ndi.gaussian_filter(image.astype(np.float64), 1.0, order=(0, 1), mode="reflect", truncate=4.0),
            "lbp": local_binary_pattern(np.round(image * 255).astype(np.uint8), 8, 1, method="uniform"),
            "p95": [np.percentile(bright, 95), np.percentile(dark, 95)]}


def _moments(values: np.ndarray) -> list[float]:
    """Mean, std, skewness, excess kurtosis; 0 for the last two on a flat region (variance < 1e-10)."""
    values = values.astype(np.float64)
    mean, var = values.mean(), values.var()
    if var < 1e-10:
        return [mean, np.sqrt(var), 0.0, 0.0]
    centred = values - mean
    return [mean, np.sqrt(var), (centred ** 3).mean() / var ** 1.5, (centred ** 4).mean() / var ** 2 - 3.0]


def _crop(array: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(array, (classic.CROP, classic.CROP), interpolation=cv2.INTER_AREA)


def _sorted_percentile(values: np.ndarray, q: float) -> np.float32:
    """Linear interpolation between order statistics, in the crop's float32 (the quantiser's lo / hi)."""
    ordered = np.sort(values.ravel())
    position = q / 100.0 * (len(ordered) - 1)
    lo = int(np.floor(position))
    frac = position - lo
    return ordered[lo] * (1 - frac) + ordered[min(lo + 1, len(ordered) - 1)] * frac


def _glcm_block(intensity_crop: np.ndarray) -> list[float]:
    from skimage.feature import graycomatrix, graycoprops

    lo, hi = _sorted_percentile(intensity_crop, 1), _sorted_percentile(intensity_crop, 99)
    span = np.maximum(hi - lo, 1e-6)
    quantised = np.clip(((intensity_crop - lo) / span * classic.GLCM_LEVELS).astype(np.int32), 0, 15)
    glcm = graycomatrix(quantised.astype(np.uint8), list(classic.GLCM_DISTANCES), list(ANGLES),
                        levels=classic.GLCM_LEVELS, symmetric=True)
    pooled = glcm.sum(axis=3, keepdims=True).astype(np.float64)
    names = ["contrast", "dissimilarity", "homogeneity", "energy", "correlation"]
    return [graycoprops(pooled[:, :, d:d + 1], name)[0, 0]
            for d in range(len(classic.GLCM_DISTANCES)) for name in names]


def _coherence(g_col: np.ndarray, g_row: np.ndarray) -> tuple[float, float, float, float]:
    """Coherence, cos and sin of the doubled angle, summed squared gradient of a region."""
    s_xx = (g_col * g_col).astype(np.float64).sum()
    s_yy = (g_row * g_row).astype(np.float64).sum()
    s_xy = (g_col * g_row).astype(np.float64).sum()
    value = np.sqrt((s_xx - s_yy) ** 2 + 4 * s_xy ** 2) / (s_xx + s_yy + 1e-12)
    angle = np.arctan2(2 * s_xy, s_xx - s_yy)
    return value, np.cos(angle), np.sin(angle), s_xx + s_yy


def reference_hog(intensity_crop: np.ndarray) -> np.ndarray:
    """HOG of one float32 crop: centred differences, 8 unsigned bins of 22.5 degrees, 2 x 2 cells, L2-Hys.

    The layout of ``skimage.feature.hog``; the bin is ``floor(8 * theta / pi) mod 8`` with ``theta`` the
    float32 arctangent times the float32 ``8 / pi``, as the encoder computes it: on upsampled crops many
    gradients lie exactly on the 45-degree bin edge, where other roundings fall on other sides.
    """
    g_row, g_col = np.zeros_like(intensity_crop), np.zeros_like(intensity_crop)
    g_row[1:-1, :] = intensity_crop[2:, :] - intensity_crop[:-2, :]
    g_col[:, 1:-1] = intensity_crop[:, 2:] - intensity_crop[:, :-2]
    magnitude = np.sqrt(g_col * g_col + g_row * g_row)
    orientations = classic.HOG_ORIENTATIONS
    bins = np.floor(np.arctan2(g_row, g_col) * np.float32(orientations / np.pi)).astype(int) % orientations
    cell = classic.HOG_CELL
    hist = [magnitude[r:r + cell, c:c + cell][bins[r:r + cell, c:c + cell] == b].astype(np.float64).sum()
            for r in (0, cell) for c in (0, cell) for b in range(orientations)]
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
    crops = {name: _crop(box_of[name]) for name in ("image", "bright", "dark")}

    geometry = [np.log(w), np.log(h), np.log(w / h), np.sqrt(w * h / (height * width))]
    box_m, ring_m = _moments(box_of["image"]), _moments(image[in_ring])
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
    value, cos2, sin2, energy = _coherence(box_of["g_col"], box_of["g_row"])
    ring_value = _coherence(frame["g_col"][in_ring], frame["g_row"][in_ring])[0]
    orientation = [value, value * cos2, value * sin2, np.log(energy / (w * h) + 1e-12), ring_value]
    vector = np.concatenate([geometry, intensity, context, _glcm_block(crops["image"]), lbp, ridge, orientation,
                             reference_hog(crops["image"])])
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def reference_describe_boxes(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The classic descriptor of every box, one box at a time.

    Args:
        image: (H, W) float32 in [0, 1].
        boxes: (N, 4) int32 x1, y1, x2, y2 inside the frame, none empty.

    Returns:
        (N, 104) float32.
    """
    frame = reference_frame(image)
    return np.stack([reference_vector(frame, box) for box in boxes]).astype(np.float32)
