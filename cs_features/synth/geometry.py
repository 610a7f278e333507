"""The geometry of one synthetic embryo: its fixed shape, what changes per frame, and its boundary tables.

An embryo is a set of nested star-shaped boundaries in its own polar coordinates; :class:`Tables` holds
their radii over ``N_ANGLES`` angles. Shared by the renderer (:mod:`cs_features.synth.render`) and the
line drawing (:mod:`cs_features.synth.lines`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_ANGLES = 2048
ANGLES = np.linspace(-np.pi, np.pi, N_ANGLES, endpoint=False)


@dataclass
class EmbryoGeometry:
    """Shape and imaging parameters of one embryo, fixed over its time-lapse (lengths in px)."""

    size: int
    scale: float
    center: np.ndarray  # (2,) x, y
    radius: float  # mean outer zona radius
    harmonics: np.ndarray  # (K, 3) order, relative amplitude, phase
    zona_thickness: float
    te_thickness: float
    icm_angle: float
    icm_half_width: float  # rad
    icm_depth: float
    icm_lumps: np.ndarray  # (L, 3) order, relative amplitude, phase
    nuclei: np.ndarray  # (M, 2) angle, inward bulge in px
    light_angle: float  # direction of the HMC shear, rad
    background: float
    gradient: np.ndarray  # (2,) relative illumination slope in x, y
    vignetting: float


@dataclass
class FrameState:
    """What changes between frames of one embryo: drift, focus, noise, slow shape change."""

    shift: np.ndarray  # (2,) px
    rotation: float  # rad
    zoom: float
    harmonic_jitter: np.ndarray  # (K,)
    icm_factor: float
    blur_sigma: float
    noise_sigma: float


@dataclass
class Tables:
    """Boundary radii of one frame as 1-D tables over ``ANGLES`` (each (N_ANGLES,) float64)."""

    zona_outer: np.ndarray
    zona_inner: np.ndarray
    te_inner: np.ndarray
    cavity: np.ndarray

    nucleus: np.ndarray  # 0..1 presence of a TE nucleus

    def at(self, name: str, theta: np.ndarray | float) -> np.ndarray:
        """Table ``name`` linearly interpolated at angles ``theta`` (any shape) -> same shape, float64."""
        table = getattr(self, name)
        pos = (np.asarray(theta, np.float64) + np.pi) * (N_ANGLES / (2 * np.pi))
        base = np.floor(pos)
        i0 = base.astype(np.int64) % N_ANGLES
        frac = pos - base
        return table[i0] * (1 - frac) + table[(i0 + 1) % N_ANGLES] * frac

    def image(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """All tables at the angles ``theta`` (H, W) of a frame, nearest entry, (H, W) float32 each."""
        idx = np.rint((theta + np.float32(np.pi)) * np.float32(N_ANGLES / (2 * np.pi))).astype(np.int32)
        idx[idx >= N_ANGLES] = 0
        names = ("zona_outer", "zona_inner", "te_inner", "cavity", "nucleus")
        return {k: np.take(getattr(self, k).astype(np.float32), idx) for k in names}
