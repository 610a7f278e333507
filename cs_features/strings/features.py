"""The per-pixel filter bank of the string map (ilastik's pixel-classification features, tuned for strings).

A cytoplasmic string is 1-6 px wide, faint, and under Hoffman modulation contrast (HMC) or DIC it often
shows as a *relief doublet*: a bright line beside a dark line along the shear direction, which is the
derivative of the string's optical height along that direction. Which side is bright, how bright the
frame is and how strong its contrast is differ between microscopes, optics and labs, so every channel
of the bank (version 2) is **blind to polarity and brightness**: a model trained on dark strings finds
bright ones and doublets, and one trained on one contrast finds strings at another. Every pixel has:

- ``localstd_s``: local standard deviation (textured cells against the flat cavity), and
  ``localcontrast``: ``|G_1.5 - G_16|``, how far a pixel stands out of its surroundings;
- ``gradmag_s``: Gaussian gradient magnitude (step edges: cell boundaries, the zona);
- ``hess_big_s`` / ``hess_small_s``: the Hessian eigenvalues' larger and smaller magnitude, scale-normalised
  by ``sigma^2`` (:func:`cs_features.ridges.hessian_eigenvalues`): a line of either polarity has one large
  and one small, a blob two large; ``hess_rel_s`` is ``hess_big_s`` over ``localstd_8`` (contrast-free);
- ``coherence_s``: structure-tensor coherence ``((l1 - l2) / (l1 + l2))^2`` (oriented, line-like texture);
- ``absdog_a_b``: the magnitude of a difference of Gaussians (a band-pass of line widths);
- ``lineness_s``: ``sigma^2 (|l1| - |l2|) - sigma |grad|``, a line of either polarity but not a step edge:
  beside a step the scale-normalised curvature and slope are about equal (both ``0.24 h`` for a step of
  height ``h``), so they cancel, while on a line's centre line the slope is zero; ``lineness_rel_s`` is it
  over ``localstd_8``;
- ``relief_n_f``: the directional integral (:func:`relief_integral`). An odd box filter ``sign(t)`` on
  ``[-n, n]`` along direction ``d`` turns the derivative of a line profile ``g`` into
  ``2 g(x) - g(x - n) - g(x + n)``: the line itself, high-passed, peaking at the doublet's centre. A step
  edge would integrate to a ramp, so the same sum over the taps ``n+1..f`` is subtracted (a step keeps its
  level that far out, a doublet does not). The shear direction is unknown per frame, so four directions
  (0, 45, 90, 135 degrees) are filtered and the largest absolute response is kept; ``relief_ridge_n_f``
  is the bright-line :func:`lineness` of that integrated image and ``relief_rel_n_f`` the integral over
  ``localstd_8``.

Version 1 (signed eigenvalues, raw Gaussian intensities, signed DoG) learned the polarity and brightness
of the training world: trained on one synthetic preset it scored the strings of another below chance
(string-map frame AUROC 0.27 from ``clean`` to ``hard``, 0.73 back); version 2 measures 0.52 and 0.82
on the same stores (``benchmarks/bench_transfer.py`` and the README's transfer table).

Input: a preprocessed frame, ``(H, W)`` float32 in [0, 1]. Output: ``(H, W, F)`` float32 with
``F = len(feature_names())``. Everything uses OpenCV filters with reflected borders, so the bank is
translation-equivariant away from the border and fast (about 0.15 s for a 500 x 500 frame on one core).
"""

from __future__ import annotations

import numpy as np

from cs_features.ridges import hessian_eigenvalues

FILTER_BANK_VERSION = 2
LOCAL_STD_SIGMAS = (3.0, 8.0)
CONTRAST_NORM_SIGMA = 8.0  # the local std (one of LOCAL_STD_SIGMAS) the ``*_rel`` channels are divided by
LOCAL_CONTRAST_SIGMAS = (1.5, 16.0)
GRADIENT_SIGMAS = (1.0, 2.0, 4.0)
HESSIAN_SIGMAS = (1.0, 1.5, 2.5, 3.5)
COHERENCE_SIGMAS = (1.5, 3.0)
DOG_PAIRS = ((0.7, 2.0), (1.5, 4.0))
LINENESS_SIGMAS = (1.0, 1.5, 2.5)
RELIEF_SMOOTHING = 0.7  # the relief integral runs on the frame lightly smoothed at this sigma
RELIEF_SPANS = ((3, 9), (5, 14))  # (near, far) taps of the relief integral
RELIEF_ANGLES = (0.0, 45.0, 90.0, 135.0)
STD_FLOOR = 1e-3  # a quarter of a grey level: the ``*_rel`` channels of a perfectly flat patch stay finite


def feature_names() -> list[str]:
    """The names of the bank's ``F`` channels, in channel order (stored in a string-map model's config)."""
    a, b = LOCAL_CONTRAST_SIGMAS
    names = [f"localstd_{s}" for s in LOCAL_STD_SIGMAS] + [f"localcontrast_{a}_{b}"]
    names += [f"gradmag_{s}" for s in GRADIENT_SIGMAS]
    for s in HESSIAN_SIGMAS:
        names += [f"hess_big_{s}", f"hess_small_{s}", f"hess_rel_{s}"]
    names += [f"coherence_{s}" for s in COHERENCE_SIGMAS] + [f"absdog_{a}_{b}" for a, b in DOG_PAIRS]
    for s in LINENESS_SIGMAS:
        names += [f"lineness_{s}", f"lineness_rel_{s}"]
    for near, far in RELIEF_SPANS:
        names += [f"relief_{near}_{far}", f"relief_ridge_{near}_{far}", f"relief_rel_{near}_{far}"]
    return names


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _gradients(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-derivative gradient (d/dx, d/dy) at ``sigma``, each (H, W) float32."""
    import cv2

    smooth = _blur(image, sigma)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    return gx, gy


def structure_coherence(image: np.ndarray, sigma: float) -> np.ndarray:
    """Coherence ``((l1 - l2) / (l1 + l2))^2`` of the structure tensor integrated at ``sigma``, (H, W) in [0, 1]."""
    gx, gy = _gradients(image, 1.0)
    jxx, jyy, jxy = _blur(gx * gx, sigma), _blur(gy * gy, sigma), _blur(gx * gy, sigma)
    trace = jxx + jyy
    diff = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2)
    return ((diff / (trace + 1e-6)) ** 2).astype(np.float32)


def lineness(image: np.ndarray, sigma: float, bright_only: bool = False,
             eigenvalues: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Line strength minus edge strength at ``sigma`` (see the module docstring), (H, W) float32, may be < 0.

    Args:
        bright_only: count bright lines only (``-l2``, the smaller eigenvalue) instead of both polarities.
        eigenvalues: the image's :func:`hessian_eigenvalues` at ``sigma`` if already computed.
    """
    larger, smaller = eigenvalues if eigenvalues is not None else hessian_eigenvalues(image, sigma)
    if bright_only:
        curvature = np.maximum(-smaller, 0)
    else:
        a, b = np.abs(larger), np.abs(smaller)
        curvature = np.abs(a - b)
    gx, gy = _gradients(image, sigma)
    return (sigma ** 2 * curvature - sigma * np.sqrt(gx * gx + gy * gy)).astype(np.float32)


def _line_offsets(length: int, angle_deg: float) -> list[tuple[int, int]]:
    """Integer (dx, dy) of the taps ``t = 1..length`` along ``angle_deg``."""
    theta = np.deg2rad(angle_deg)
    return [(int(round(t * np.cos(theta))), int(round(t * np.sin(theta)))) for t in range(1, length + 1)]


def _odd_sum(padded: np.ndarray, pad: int, shape: tuple[int, int], offsets: list[tuple[int, int]]) -> np.ndarray:
    """``sum over offsets of f(x + d) - f(x - d)`` from a reflect-padded frame (shifted slices, no kernel)."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for dx, dy in offsets:
        out += padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
        out -= padded[pad - dy:pad - dy + h, pad - dx:pad - dx + w]
    return out


def relief_integral(image: np.ndarray, near: int, far: int | None = None,
                    angles: tuple[float, ...] = RELIEF_ANGLES) -> np.ndarray:
    """The relief doublet turned into a line: an odd box filter along each direction, the largest response.

    Along direction ``d`` the odd filter ``sum_{t=1..near} f(x + t d) - f(x - t d)`` is the integral of the
    image across ``x``: a doublet (the derivative of a line along ``d``) becomes the line, centred on the
    doublet. A step edge also integrates to a ramp, so with ``far`` the same sum over the taps
    ``near+1..far`` (rescaled to ``near`` taps) is subtracted in absolute value: a step keeps its level
    out to ``far`` and cancels, a doublet is back to the background there and stays.

    Args:
        image: (H, W) float32 (a lightly smoothed frame).
        near: taps on each side that hold the doublet (about the string's width, px).
        far: outer extent of the step test (px), > near; None: no step test.

    Returns:
        (H, W) float32 >= 0 (the max over ``angles`` of ``|near sum| - near/(far-near) |far sum|``, clipped
        at 0), peaking at the centre of a bright/dark doublet of either polarity.
    """
    import cv2

    reach = far or near
    padded = cv2.copyMakeBorder(image, reach, reach, reach, reach, cv2.BORDER_REFLECT)
    best = np.zeros(image.shape, np.float32)
    for angle in angles:
        offsets = _line_offsets(reach, angle)
        response = np.abs(_odd_sum(padded, reach, image.shape, offsets[:near]))
        if far:
            response -= (near / (far - near)) * np.abs(_odd_sum(padded, reach, image.shape, offsets[near:]))
        np.maximum(best, response, out=best)
    return best


def _relief_channels(image: np.ndarray, near: int, far: int) -> list[np.ndarray]:
    relief = relief_integral(image, near, far)
    return [relief, lineness(relief, 1.0, bright_only=True)]


def string_features(image: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """The filter bank of one preprocessed frame.

    Args:
        image: (H, W) float32 in [0, 1] (uint8 frames are divided by 255).
        smoothing: sigma (px) of a Gaussian applied to the frame before the bank; 0 for none. A string map
            reads frames with the value it was trained with (:class:`~cs_features.strings.model.StringMapModel`'s
            ``input_smoothing``, where its effect on the transfer protocol is given).

    Returns:
        (H, W, F) float32, channels in the order of :func:`feature_names`.

    Raises:
        TypeError: not a numpy array. ValueError: not 2-D, smaller than 8 x 8, or a negative ``smoothing``.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W), got {type(image).__name__}")
    if image.ndim != 2 or min(image.shape) < 8:
        raise ValueError(f"image must be a 2-D frame of at least 8 x 8 px, got shape {image.shape}")
    if not smoothing >= 0.0:
        raise ValueError(f"smoothing must be a sigma >= 0 (px), got {smoothing!r}")
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32, copy=False)
    if smoothing > 0:
        image = _blur(image, smoothing)
    blurred: dict[float, np.ndarray] = {}

    def blur(sigma: float) -> np.ndarray:
        if sigma not in blurred:
            blurred[sigma] = _blur(image, sigma)
        return blurred[sigma]

    centred = image - np.float32(image.mean())  # E[x^2] - E[x]^2 loses float32 digits far from 0
    local_std = {s: np.sqrt(np.maximum(_blur(centred * centred, s) - _blur(centred, s) ** 2, 0))
                 for s in LOCAL_STD_SIGMAS}
    norm = np.maximum(local_std[CONTRAST_NORM_SIGMA], STD_FLOOR)
    channels = [local_std[s] for s in LOCAL_STD_SIGMAS]
    channels.append(np.abs(blur(LOCAL_CONTRAST_SIGMAS[0]) - blur(LOCAL_CONTRAST_SIGMAS[1])))
    for s in GRADIENT_SIGMAS:
        gx, gy = _gradients(image, s)
        channels.append(np.sqrt(gx * gx + gy * gy) * s)
    eigenvalues = {s: hessian_eigenvalues(image, s) for s in HESSIAN_SIGMAS}
    for s, (larger, smaller) in eigenvalues.items():
        a, b = np.abs(larger) * s ** 2, np.abs(smaller) * s ** 2
        big = np.maximum(a, b)
        channels += [big, np.minimum(a, b), big / norm]
    channels += [structure_coherence(image, s) for s in COHERENCE_SIGMAS]
    channels += [np.abs(blur(a) - blur(b)) for a, b in DOG_PAIRS]
    for s in LINENESS_SIGMAS:
        line = lineness(image, s, eigenvalues=eigenvalues.get(s))
        channels += [line, line / norm]
    for near, far in RELIEF_SPANS:
        relief, ridge = _relief_channels(blur(RELIEF_SMOOTHING), near, far)
        channels += [relief, ridge, relief / norm]
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)


def line_response(image: np.ndarray) -> np.ndarray:
    """Where a thin line of either polarity, or a relief doublet, runs, and not a step edge: (H, W) float32 >= 0.

    The larger of :func:`lineness` (sigma 1, 1.5, 2.5) and the bright-ridge lineness of the integrated
    relief, clipped at 0; used to pick the string pixels inside a ground-truth box (which also holds the
    cell edges a string ends on) and the hard negatives.
    """
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32, copy=False)
    best = np.zeros(image.shape, np.float32)
    for s in LINENESS_SIGMAS:
        np.maximum(best, lineness(image, s), out=best)
    near, far = RELIEF_SPANS[0]
    return np.maximum(best, _relief_channels(_blur(image, RELIEF_SMOOTHING), near, far)[1])
