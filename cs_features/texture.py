"""GLCM low-texture (cytoplasm / blastocoel) heat map and mask.

The published definition, applied to a *preprocessed* (H, W) uint8 frame:

1. quantise to ``levels`` grey levels: ``q = (img * levels) // 256`` (levels 0..levels-1; for 32 levels
   this is ``img >> 3``);
2. slide a ``window`` x ``window`` window with ``step``; top-left corners at 0, step, 2*step, ... while the
   window fits. Pixels right of / below the last fitting window belong to no window: the coarse grid is
   simply stretched over the whole frame in step 5, it is not aligned to window centres;
3. per window, the GLCM contrast (skimage ``graycomatrix(..., symmetric=True, normed=True)`` +
   ``graycoprops(.., "contrast")``) for every (distance, angle) pair, averaged;
4. stretch the coarse grid to [0, 1] between its 1st and 99th percentiles (clipped);
5. resize to (H, W) with bicubic interpolation (cubic overshoot may leave values slightly outside
   [0, 1]; they are kept, as in the published pipeline);
6. Gaussian blur (sigma 1.5) -> the **texture heat map**, float32 (H, W), high = textured;
7. 2-means split of the heat-map values (centres start at min and max) -> low-texture = lower cluster;
8. binary erosion with a 5 x 5 square (pixels outside the frame count as True, so the frame border
   does not erode the mask) -> the **low-texture mask**, bool (H, W).

Two implementations of steps 1-3 exist. :func:`glcm_contrast_grid_reference` is the slow, obvious
one (a Python loop calling skimage per window) and is the ground truth. :func:`glcm_contrast_grid`
uses the fact that the contrast of a normalised GLCM is the mean of ``(i - j)**2`` over the pairs
counted, so per pixel offset it is a window sum of a squared-difference image (an integral image)
divided by the constant number of pairs inside a window. Steps 4-8 are shared.

skimage subtleties reproduced by the fast path: the pixel offset of (distance d, angle a) is
``(round(sin(a) * d), round(cos(a) * d))`` (row, col), rounded half away from zero, so at d = 2 the
diagonals collapse to (1, 1) and (1, -1); only pairs whose both pixels lie inside the window are
counted; ``symmetric=True`` doubles every count, which leaves the contrast unchanged.

A frame whose windows all have the same contrast (e.g. a constant frame) has no spread to stretch:
the heat map is then all zeros and the mask all True (the whole frame is "low texture").
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cs_features.config import check_fields, check_keys, coerce_number, coerce_sequence
from cs_features.errors import ConfigError
from cs_features.preprocess import validate_gray_uint8

logger = logging.getLogger(__name__)

__all__ = [
    "TextureConfig", "glcm_offsets", "quantize", "window_origins", "glcm_contrast_grid",
    "glcm_contrast_grid_reference", "heatmap_from_contrast_grid", "two_means_threshold",
    "mask_from_heatmap", "low_texture_heatmap", "low_texture_heatmap_reference", "low_texture_mask",
    "low_texture",
]

# Relative spread of window contrasts below which the grid is treated as constant: summation
# order alone makes equal contrasts differ by ~1e-15 relative, which must not be stretched to [0, 1].
_FLAT_RTOL = 1e-9


@dataclass(frozen=True)
class TextureConfig:
    """Parameters of the GLCM low-texture heat map and mask (defaults are the published values).

    Attributes:
        levels: grey levels after quantisation (2..256).
        window: side of the square GLCM window in pixels (> every distance).
        step: stride between window top-left corners in pixels (>= 1).
        distances: GLCM pair distances in pixels (each >= 1 and < window).
        angles_deg: GLCM pair angles in degrees (skimage convention, 0 = along a row).
        percentiles: (low, high) percentiles used to stretch the coarse grid to [0, 1].
        blur_sigma: Gaussian blur sigma in pixels applied to the upsampled map (0 = none).
        erosion: side of the square erosion footprint in pixels (0 or 1 = none).
    """

    levels: int = 32
    window: int = 31
    step: int = 8
    distances: tuple[int, ...] = (1, 2)
    angles_deg: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)
    percentiles: tuple[float, float] = (1.0, 99.0)
    blur_sigma: float = 1.5
    erosion: int = 5

    def __post_init__(self) -> None:
        for name in ("levels", "window", "step", "erosion"):
            object.__setattr__(self, name, coerce_number(self, name, int))
        object.__setattr__(self, "blur_sigma", coerce_number(self, "blur_sigma", float))
        for name, kind in (("distances", int), ("angles_deg", float), ("percentiles", float)):
            object.__setattr__(self, name, coerce_sequence(self, name, kind))
        lo_p, hi_p = self.percentiles if len(self.percentiles) == 2 else (None, None)
        checks = [
            ("levels", 2 <= self.levels <= 256, "an integer in 2..256"),
            ("window", self.window >= 2, "an integer >= 2"),
            ("step", self.step >= 1, "an integer >= 1"),
            ("distances", len(self.distances) > 0
             and all(1 <= d < self.window for d in self.distances),
             f"a non-empty tuple of integers in 1..window-1 (window={self.window})"),
            ("angles_deg", len(self.angles_deg) > 0, "a non-empty tuple of angles in degrees"),
            ("percentiles", lo_p is not None and 0 <= lo_p < hi_p <= 100,
             "(low, high) with 0 <= low < high <= 100"),
            ("blur_sigma", self.blur_sigma >= 0, "a number >= 0"),
            ("erosion", self.erosion >= 0, "an integer >= 0"),
        ]
        check_fields(self, checks)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the parameters (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextureConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ConfigError."""
        check_keys(cls, data)
        return cls(**data)



def glcm_offsets(config: TextureConfig) -> list[tuple[int, int]]:
    """Pixel offsets (row, col) skimage uses for each (distance, angle), distance-major.

    skimage's ``_glcm_loop`` pairs pixel (r, c) with (r + round(sin(a) * d), c + round(cos(a) * d)),
    C ``round`` (half away from zero). With the defaults this gives
    [(0, 1), (1, 1), (1, 0), (1, -1), (0, 2), (1, 1), (2, 0), (1, -1)]: the d = 2 diagonals collapse.
    """
    offsets = []
    for d in config.distances:
        for angle in np.deg2rad(np.asarray(config.angles_deg, dtype=np.float64)):
            dr, dc = math.sin(angle) * d, math.cos(angle) * d
            offsets.append((int(math.copysign(math.floor(abs(dr) + 0.5), dr)),
                            int(math.copysign(math.floor(abs(dc) + 0.5), dc))))
    return offsets


def quantize(image_pre: np.ndarray, levels: int) -> np.ndarray:
    """Quantise a uint8 frame to ``levels`` grey levels, ``(img * levels) // 256``.

    Args:
        image_pre: (H, W) uint8.
        levels: 2..256.

    Returns:
        (H, W) uint8 with values in 0..levels-1.
    """
    if 256 % levels == 0:  # power of two: a shift, no uint16 copy
        return np.right_shift(image_pre, int(math.log2(256 // levels)))
    return ((image_pre.astype(np.uint16) * levels) // 256).astype(np.uint8)


def window_origins(shape: tuple[int, int], config: TextureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Top-left rows and columns of the fitting windows: 0, step, ... up to H - window (W - window).

    Returns:
        (ys, xs): int64 arrays of shapes (ny,) and (nx,).
    """
    h, w = shape
    return (np.arange(0, h - config.window + 1, config.step, dtype=np.int64),
            np.arange(0, w - config.window + 1, config.step, dtype=np.int64))


def _validated_quantized(image_pre: Any, config: TextureConfig) -> np.ndarray:
    """Validate a preprocessed frame (uint8, 2-D, at least window x window) and quantise it."""
    image_pre = validate_gray_uint8(image_pre, "image_pre")
    if not isinstance(config, TextureConfig):
        raise TypeError(f"config must be a TextureConfig, got {type(config).__name__}")
    h, w = image_pre.shape
    if h < config.window or w < config.window:
        raise ConfigError(
            f"image_pre of shape {image_pre.shape} is smaller than the GLCM window "
            f"{config.window}x{config.window}; frames must be at least {config.window} px "
            "in both dimensions (or use a smaller TextureConfig.window)"
        )
    return quantize(image_pre, config.levels)


def glcm_contrast_grid_reference(image_pre: np.ndarray,
                                 config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Slow reference: mean GLCM contrast of every window via skimage, one window at a time.

    Args:
        image_pre: preprocessed frame, (H, W) uint8, H and W >= ``config.window``.
        config: texture parameters.

    Returns:
        (ny, nx) float64 coarse grid, ``[i, j]`` for the window at (ys[i], xs[j]) of
        :func:`window_origins`.
    """
    from skimage.feature import graycomatrix, graycoprops

    q = _validated_quantized(image_pre, config)
    ys, xs = window_origins(q.shape, config)
    angles = np.deg2rad(np.asarray(config.angles_deg, dtype=np.float64))
    win = config.window
    grid = np.empty((len(ys), len(xs)), dtype=np.float64)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            glcm = graycomatrix(q[y:y + win, x:x + win], distances=list(config.distances),
                                angles=angles, levels=config.levels, symmetric=True, normed=True)
            grid[i, j] = graycoprops(glcm, "contrast").mean()
    return grid


def _offset_window_sums(q: np.ndarray, dr: int, dc: int, ys: np.ndarray, xs: np.ndarray,
                        win: int) -> np.ndarray:
    """Sum of (q[p] - q[p + (dr, dc)])**2 over the pairs inside each window, dr >= 0.

    A pair is indexed by the top-left of its bounding box (r, c0), so it lies inside the window at
    (y, x) exactly when y <= r < y + win - dr and x <= c0 < x + win - |dc|.

    Returns:
        (ny, nx) float64 exact integer sums.
    """
    import cv2

    h, w = q.shape
    adc = abs(dc)
    first = q[:h - dr, (adc if dc < 0 else 0):w - (0 if dc < 0 else adc)]
    second = q[dr:, (adc if dc > 0 else 0):w - (0 if dc > 0 else adc)]
    absdiff = cv2.absdiff(first, second)  # uint8, (H - dr, W - |dc|)
    # float64 integral of squares: exact integers (< 2**53) for any frame size.
    _, sqsum = cv2.integral2(absdiff, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
    y0, y1 = ys[:, None], (ys + win - dr)[:, None]
    x0, x1 = xs[None, :], (xs + win - adc)[None, :]
    return sqsum[y1, x1] - sqsum[y0, x1] - sqsum[y1, x0] + sqsum[y0, x0]


def glcm_contrast_grid(image_pre: np.ndarray, config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Fast mean GLCM contrast of every window, equal to :func:`glcm_contrast_grid_reference`.

    Args:
        image_pre: preprocessed frame, (H, W) uint8, H and W >= ``config.window``.
        config: texture parameters.

    Returns:
        (ny, nx) float64 coarse grid (see :func:`glcm_contrast_grid_reference`).
    """
    q = _validated_quantized(image_pre, config)
    ys, xs = window_origins(q.shape, config)
    win = config.window
    counts: dict[tuple[int, int], int] = {}
    for dr, dc in glcm_offsets(config):
        if dr < 0 or (dr == 0 and dc < 0):  # (i - j)**2 is symmetric: flip to dr >= 0
            dr, dc = -dr, -dc
        counts[(dr, dc)] = counts.get((dr, dc), 0) + 1
    grid = np.zeros((len(ys), len(xs)), dtype=np.float64)
    for (dr, dc), multiplicity in counts.items():
        n_pairs = (win - dr) * (win - abs(dc))
        grid += _offset_window_sums(q, dr, dc, ys, xs, win) * (multiplicity / n_pairs)
    return grid / sum(counts.values())


def heatmap_from_contrast_grid(grid: np.ndarray, shape: tuple[int, int],
                               config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Steps 4-6: percentile stretch, bicubic resize to ``shape``, Gaussian blur.

    Args:
        grid: (ny, nx) float64 window contrasts.
        shape: (H, W) of the frame.
        config: texture parameters.

    Returns:
        (H, W) float32 texture heat map (high = textured). All zeros if the grid has no spread.
    """
    import cv2

    lo, hi = np.percentile(grid, config.percentiles)
    if hi - lo > _FLAT_RTOL * max(1.0, abs(hi)):
        stretched = np.clip((grid - lo) / (hi - lo), 0.0, 1.0)
    else:  # the limit of the clipped stretch as hi -> lo
        stretched = (grid > lo + _FLAT_RTOL * max(1.0, abs(lo))).astype(np.float64)
    h, w = shape
    heat = cv2.resize(stretched.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if config.blur_sigma > 0:
        heat = cv2.GaussianBlur(heat, (0, 0), sigmaX=config.blur_sigma, sigmaY=config.blur_sigma)
    return heat


def two_means_threshold(values: np.ndarray, max_iter: int = 100) -> float:
    """Deterministic 1-D 2-means: centres start at min and max, iterate until the split is stable.

    Args:
        values: any-shape float array (a heat map, typically (H, W) float32).
        max_iter: iteration cap (1-D 2-means converges in a few tens of steps).

    Returns:
        Threshold t, exactly representable in ``values``' dtype: values <= t form the lower cluster.
        If all values are equal, t is that value (everything is in the lower cluster).
    """
    v = np.asarray(values).ravel()
    if v.dtype not in (np.float32, np.float64):
        v = v.astype(np.float64)
    v = np.sort(v)
    c_lo, c_hi, total = float(v[0]), float(v[-1]), float(np.sum(v, dtype=np.float64))
    if not c_hi > c_lo:
        return c_hi
    split = -1
    for _ in range(max_iter):
        # Snap the float64 midpoint down to v's dtype so that `v <= t` means the same in either.
        t = v.dtype.type(0.5 * (c_lo + c_hi))
        if t > 0.5 * (c_lo + c_hi):
            t = np.nextafter(t, v.dtype.type(-np.inf))
        new_split = int(np.searchsorted(v, t, side="right"))  # size of the lower cluster
        if new_split == split:
            break
        split = new_split
        # min stays in the lower cluster and max in the upper one, so neither is empty.
        sum_low = float(np.sum(v[:split], dtype=np.float64))
        c_lo, c_hi = sum_low / split, (total - sum_low) / (v.size - split)
    return float(t)


def mask_from_heatmap(heatmap: np.ndarray, config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Steps 7-8: lower 2-means cluster of the heat map, eroded with a square footprint.

    Args:
        heatmap: (H, W) float32 texture heat map.
        config: texture parameters (``erosion``).

    Returns:
        (H, W) bool low-texture mask. Pixels outside the frame count as True for the erosion.
    """
    import cv2

    low = (heatmap <= two_means_threshold(heatmap)).astype(np.uint8)
    if config.erosion > 1:
        footprint = np.ones((config.erosion, config.erosion), dtype=np.uint8)
        low = cv2.erode(low, footprint, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return low.astype(bool)


def low_texture_heatmap(image_pre: np.ndarray, config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Texture heat map of a preprocessed frame (fast path).

    Args:
        image_pre: preprocessed frame, (H, W) uint8, H and W >= ``config.window``.
        config: texture parameters.

    Returns:
        (H, W) float32 heat map, high = textured, about [0, 1].

    Raises:
        TypeError: not a uint8 numpy array. ValueError: not 2-D or empty.
        ConfigError: the frame is smaller than the window.
    """
    grid = glcm_contrast_grid(image_pre, config)
    return heatmap_from_contrast_grid(grid, image_pre.shape, config)


def low_texture_heatmap_reference(image_pre: np.ndarray,
                                  config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Slow reference heat map (skimage per window); same contract as :func:`low_texture_heatmap`.

    Ground truth for tests and benchmarks only: about 100x slower than the fast path.
    """
    grid = glcm_contrast_grid_reference(image_pre, config)
    return heatmap_from_contrast_grid(grid, image_pre.shape, config)


def low_texture(image_pre: np.ndarray,
                config: TextureConfig = TextureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Texture heat map and low-texture (cytoplasm / blastocoel) mask of a preprocessed frame.

    Args:
        image_pre: preprocessed frame, (H, W) uint8, H and W >= ``config.window``.
        config: texture parameters.

    Returns:
        (heatmap, mask): (H, W) float32 and (H, W) bool.
    """
    heatmap = low_texture_heatmap(image_pre, config)
    return heatmap, mask_from_heatmap(heatmap, config)


def low_texture_mask(image_pre: np.ndarray, config: TextureConfig = TextureConfig()) -> np.ndarray:
    """Low-texture (cytoplasm / blastocoel) mask of a preprocessed frame, (H, W) bool."""
    return low_texture(image_pre, config)[1]
