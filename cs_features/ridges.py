"""Hessian ridge filters: where thin bright or dark lines (strings, fibres, cell edges) run.

- :func:`gaussian_derivative`: scipy's Gaussian derivative filter, computed by OpenCV for float32;
- :func:`hessian_eigenvalues`: the Gaussian-derivative Hessian's eigenvalues at one scale;
- :func:`sato_ridges`: Sato tubeness of bright and of dark ridges from :func:`hessian_eigenvalues` (the
  classic encoder's version 1, which ``benchmarks/bench_encoders.py`` still runs);
- :func:`gaussian_derivative_float64`: scipy's Gaussian derivative filter in float64, by OpenCV
  (the classic encoder's orientation block);
- :func:`sato_ridges_float32`: Sato tubeness from Gaussian second derivatives in float32, one OpenCV
  separable pass per Hessian entry (the classic encoder's ridge block);
- :func:`line_strength`: ``|l1| - |l2|`` of both polarities, blobs suppressed (the filament proposals);
- :func:`line_pixels`: each box's strongest line pixels (what the box-ranking priors read).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


def gaussian_derivative(image: np.ndarray, sigma: float, order: tuple[int, int]) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma, order, mode="reflect", truncate=4.0)``, faster for float32.

    For a float32 image the two axes are filtered by OpenCV in float64 (rows first, rounded to float32
    in between, as scipy does), with scipy's own kernels: the same values as scipy's (compared for
    equality in the tests) at about half the cost. Other dtypes go to scipy itself.

    Args:
        image: (H, W) array.
        order: derivative order along rows and columns, e.g. ``(1, 0)``.

    Returns:
        (H, W) array of the image's dtype.
    """
    from scipy import ndimage as ndi

    if image.dtype != np.float32 or min(image.shape) <= 2 * int(4.0 * sigma + 0.5):
        return ndi.gaussian_filter(image, sigma, order=order, mode="reflect", truncate=4.0)
    import cv2

    one = np.ones(1)
    row_kernel, col_kernel = (_correlation_kernel(sigma, k) for k in order)
    # OpenCV's vertical pass sums a symmetric (antisymmetric) kernel as scipy does, pairing
    # x[i - j] and x[i + j] first, so a flat area stays exactly 0; both axes are filtered vertically.
    rows_done = cv2.sepFilter2D(image, cv2.CV_64F, one, row_kernel, borderType=cv2.BORDER_REFLECT)
    turned = cv2.transpose(rows_done.astype(np.float32))
    cols_done = cv2.sepFilter2D(turned, cv2.CV_64F, one, col_kernel, borderType=cv2.BORDER_REFLECT)
    return cv2.transpose(cols_done.astype(np.float32))


def gaussian_derivative_float64(image: np.ndarray, sigma: float, order: tuple[int, int]) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image.astype(float64), sigma, order, mode="reflect", truncate=4.0)``.

    One OpenCV separable pass with scipy's kernels, float64 throughout (within 1e-15 of scipy's
    float64 values, at a third of the cost of :func:`gaussian_derivative`'s two rounded passes).

    Args:
        image: (H, W) float32 or float64.
        order: derivative order along rows and columns, e.g. ``(1, 0)``.

    Returns:
        (H, W) float64.
    """
    if min(image.shape) <= 2 * int(4.0 * sigma + 0.5):
        from scipy import ndimage as ndi

        return ndi.gaussian_filter(np.asarray(image, np.float64), sigma, order=order, mode="reflect", truncate=4.0)
    import cv2

    return cv2.sepFilter2D(image, cv2.CV_64F, _correlation_kernel(sigma, order[1]),
                           _correlation_kernel(sigma, order[0]), borderType=cv2.BORDER_REFLECT)


def sato_ridges_float32(image: np.ndarray, sigmas: tuple[float, ...] = (1.0, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """Sato tubeness of bright and of dark ridges from Gaussian second derivatives, in float32.

    Per sigma the Hessian is three OpenCV separable passes at sigma itself (second derivative along
    rows, mixed, second derivative along columns), where :func:`sato_ridges` chains first derivatives
    at sigma / sqrt(2) as scikit-image does: the same operator in the continuum (on 512 px synthetic
    frames 99 % of pixels within 1.2e-3, all within 1.6e-2, of responses up to 0.13), at a quarter of
    the cost. scipy's second-derivative kernel truncated at 4 sigma
    sums to about -1e-4, which would read a flat area of grey g as a bright ridge of up to 3.5e-4 g;
    it is made to sum to 0 by subtracting that sum times the Gaussian kernel (a flat area then reads
    below 3e-8: float32 rounding).

    Args:
        image: (H, W) float32.

    Returns:
        ``(bright, dark)``, each (H, W) float32 >= 0: ``sigma ** 2 * max(-l2, 0)`` and
        ``sigma ** 2 * max(l1, 0)`` maximised over sigmas, l1 >= l2 the Hessian's eigenvalues.
    """
    image = np.asarray(image, np.float32)
    bright = np.zeros_like(image)
    dark = np.zeros_like(image)
    for sigma in sigmas:
        smooth, first, second = (_correlation_kernel(sigma, 0), _correlation_kernel(sigma, 1),
                                 _zero_sum_second_derivative(sigma))
        h_rr = _separable_float32(image, smooth, second)
        h_cc = _separable_float32(image, second, smooth)
        h_rc = _separable_float32(image, first, first)
        # In place, as doubled quantities: trace = l1 + l2 and root = l1 - l2 = sqrt((h_rr - h_cc)^2 + 4 h_rc^2).
        trace = h_rr + h_cc
        root = np.subtract(h_rr, h_cc, out=h_rr)
        root *= root
        h_rc *= h_rc
        h_rc *= np.float32(4)
        root += h_rc
        np.sqrt(root, out=root)
        half_scale = np.float32(sigma ** 2 / 2)
        for ridges, candidate in ((bright, np.subtract(root, trace, out=h_cc)), (dark, np.add(root, trace, out=trace))):
            np.maximum(candidate, 0, out=candidate)
            candidate *= half_scale  # -l2 = (root - trace) / 2, l1 = (root + trace) / 2
            np.maximum(ridges, candidate, out=ridges)
    return bright, dark


def _separable_float32(image: np.ndarray, along_cols: np.ndarray, along_rows: np.ndarray) -> np.ndarray:
    """Correlate float32 rows with ``along_cols`` and columns with ``along_rows`` (reflect border), float32."""
    if min(image.shape) <= max(len(along_cols), len(along_rows)) // 2 * 2:
        from scipy import ndimage as ndi

        rows_done = ndi.correlate1d(image, along_cols, axis=1, mode="reflect")
        return ndi.correlate1d(rows_done, along_rows, axis=0, mode="reflect")
    import cv2

    return cv2.sepFilter2D(image, cv2.CV_32F, along_cols, along_rows, borderType=cv2.BORDER_REFLECT)


@functools.lru_cache(maxsize=32)
def _zero_sum_second_derivative(sigma: float) -> np.ndarray:
    """scipy's second-derivative kernel minus its sum times the Gaussian kernel: it sums to 0."""
    kernel = _correlation_kernel(sigma, 2) - _correlation_kernel(sigma, 2).sum() * _correlation_kernel(sigma, 0)
    kernel.flags.writeable = False
    return kernel


@functools.lru_cache(maxsize=32)
def _correlation_kernel(sigma: float, order: int) -> np.ndarray:
    """scipy's Gaussian (derivative) weights at ``truncate=4``, in the order a correlation applies them."""
    from scipy import ndimage as ndi

    impulse = np.zeros(2 * int(4.0 * sigma + 0.5) + 1)
    impulse[len(impulse) // 2] = 1.0
    # The impulse response of scipy's filter is its kernel exactly (one non-zero term per output).
    kernel = ndi.gaussian_filter1d(impulse, sigma, order=order, mode="constant", truncate=4.0)[::-1].copy()
    kernel.flags.writeable = False  # cached: shared by every call
    return kernel


def hessian_eigenvalues(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (larger, smaller) of the Gaussian Hessian, each (H, W) float32.

    As ``skimage.feature.hessian_matrix(use_gaussian_derivatives=True)``: two first-derivative
    Gaussian passes at sigma / sqrt(2), but with the usual truncation at 4 sigma instead of 100
    (a few 1e-6 apart, 50x faster).
    """
    scale = sigma / np.sqrt(2.0)

    def derivative(array: np.ndarray, order: tuple[int, int]) -> np.ndarray:
        return gaussian_derivative(array, scale, order)

    g_row, g_col = derivative(image, (1, 0)), derivative(image, (0, 1))
    h_rr, h_rc, h_cc = derivative(g_row, (1, 0)), derivative(g_row, (0, 1)), derivative(g_col, (0, 1))
    half_trace = (h_rr + h_cc) / 2
    radius = np.sqrt(((h_rr - h_cc) / 2) ** 2 + h_rc ** 2)
    return half_trace + radius, half_trace - radius


def sato_ridges(image: np.ndarray, sigmas: tuple[float, ...] = (1.0, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """Sato tubeness for bright and for dark ridges from one Hessian per sigma.

    Equals ``skimage.filters.sato(image, sigmas, black_ridges=False)`` and ``(..., black_ridges=True)``
    up to kernel truncation, at a fraction of the cost.

    Args:
        image: (H, W) float32.

    Returns:
        ``(bright, dark)``, each (H, W) float32 >= 0.
    """
    image = np.asarray(image, np.float32)
    bright = np.zeros_like(image)
    dark = np.zeros_like(image)
    for sigma in sigmas:
        larger, smaller = hessian_eigenvalues(image, sigma)
        np.maximum(bright, sigma ** 2 * np.maximum(-smaller, 0), out=bright)
        np.maximum(dark, sigma ** 2 * np.maximum(larger, 0), out=dark)
    return bright, dark


def line_strength(image: np.ndarray, sigmas: tuple[float, ...] = (1.0, 1.5, 2.0)) -> np.ndarray:
    """Scale-normalised Hessian line strength, bright and dark ridges alike (the filament proposals' ridge map).

    Its Hessian is a 3x3 Sobel of an OpenCV Gaussian blur, not :func:`hessian_eigenvalues`: the two
    discretisations differ by a few percent per pixel, which moves every filament box (measured: 0 of 24
    synthetic frames kept identical proposals, recall unchanged), so stores keep the proposals they
    were built with.

    Args:
        image: ``(H, W)`` uint8 or float frame.

    Returns:
        ``(H, W)`` float32 >= 0: ``sigma^2 * (|l1| - |l2|)`` maximised over sigmas, where ``l1`` is the
        eigenvalue of largest magnitude; high on thin lines, low on flat areas, edges and blobs.
    """
    import cv2

    image = image.astype(np.float32)
    best = np.zeros(image.shape, np.float32)
    for sigma in sigmas:
        smooth = cv2.GaussianBlur(image, (0, 0), sigma)
        hxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
        hyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
        hxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
        half_trace = (hxx + hyy) / 2
        root = np.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2)
        big = np.abs(half_trace) + root  # |l1|
        small = np.abs(np.abs(half_trace) - root)  # |l2|
        np.maximum(best, (sigma**2) * (big - small), out=best)
    return best


@dataclass
class LinePixels:
    """A frame's boxes' line pixels: ``own`` ``(N,)`` median line strength over them, ``pixels`` their
    flat indices into the frame (``(K_i,)`` int64 per box, empty for a box outside the frame)."""

    own: np.ndarray
    pixels: list


def line_pixels(strength: np.ndarray, boxes: np.ndarray, quantile: float) -> LinePixels:
    """Each box's strongest pixels (at or above its ``quantile`` of ``strength``) in a ``(H, W)`` map;
    ``boxes`` ``(N, 4)`` int in the map's pixels, clamped to it."""
    height, width = strength.shape
    own = np.zeros(len(boxes), np.float64)
    pixels = []
    quantile = float(quantile)
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.int64).reshape(-1, 4)):
        x1, x2 = max(int(x1), 0), min(int(x2), width)
        y1, y2 = max(int(y1), 0), min(int(y2), height)
        if x2 <= x1 or y2 <= y1:
            pixels.append(np.zeros(0, np.int64))
            continue
        inside = strength[y1:y2, x1:x2]
        rows, cols = np.nonzero(inside >= linear_quantile(inside, quantile))
        pixels.append((rows + y1) * width + (cols + x1))
        own[k] = float(median(inside[rows, cols]))
    return LinePixels(own, pixels)


def linear_quantile(values: np.ndarray, quantile: float):
    """``np.quantile(values, quantile)`` for a Python float ``quantile``, the same value bit for bit, without
    its per-call overhead (a frame's hundreds of boxes each take one: 5x faster on 60 x 60 boxes)."""
    flat = values.ravel()
    virtual = (flat.size - 1) * quantile
    low = int(np.floor(virtual))
    high = min(low + 1, flat.size - 1)
    part = np.partition(flat, (low, high))
    a, b, gamma = part[low], part[high], float(virtual - low)
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma  # numpy's lerp, exact at both ends


def median(values: np.ndarray):
    """``np.median(values)`` (non-empty, no NaN), the same value, without its per-call overhead."""
    flat = values.ravel()
    half = flat.size // 2
    if flat.size % 2:
        return np.partition(flat, half)[half]
    part = np.partition(flat, (half - 1, half))
    return (part[half - 1] + part[half]) / 2
