"""Frame preprocessing: CLAHE contrast equalisation, then an edge-preserving bilateral filter.

This is the published pipeline's first stage. CLAHE lifts the faint (5-25 grey level) cytoplasmic
strings against the blastocoel; the small bilateral filter then removes shot noise without blurring
1-3 px filaments across their width. Everything runs in OpenCV on uint8 frames.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cs_features.config import check_fields, check_keys, coerce_number

logger = logging.getLogger(__name__)

__all__ = ["PreprocessConfig", "preprocess", "to_float", "validate_gray_uint8"]


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of CLAHE + bilateral preprocessing (defaults are the published values).

    Attributes:
        clahe_clip: CLAHE clip limit (> 0).
        clahe_grid: CLAHE tiles per side, i.e. ``tileGridSize=(clahe_grid, clahe_grid)`` (>= 1).
        bilateral_d: bilateral filter neighbourhood diameter in pixels (>= 1).
        bilateral_sigma_color: bilateral range sigma in grey levels (> 0).
        bilateral_sigma_space: bilateral spatial sigma in pixels (> 0).
    """

    clahe_clip: float = 2.0
    clahe_grid: int = 8
    bilateral_d: int = 5
    bilateral_sigma_color: float = 12.0
    bilateral_sigma_space: float = 7.0

    def __post_init__(self) -> None:
        # Coerce so that 2 and 2.0 give the same config and the same hash.
        for name in ("clahe_clip", "bilateral_sigma_color", "bilateral_sigma_space"):
            object.__setattr__(self, name, coerce_number(self, name, float))
        for name in ("clahe_grid", "bilateral_d"):
            object.__setattr__(self, name, coerce_number(self, name, int))
        checks = [
            ("clahe_clip", self.clahe_clip > 0, "a number > 0"),
            ("clahe_grid", self.clahe_grid >= 1, "an integer >= 1"),
            ("bilateral_d", self.bilateral_d >= 1, "an integer >= 1"),
            ("bilateral_sigma_color", self.bilateral_sigma_color > 0, "a number > 0"),
            ("bilateral_sigma_space", self.bilateral_sigma_space > 0, "a number > 0"),
        ]
        check_fields(self, checks)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the parameters."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ConfigError."""
        check_keys(cls, data)
        return cls(**data)



def validate_gray_uint8(image: Any, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a non-empty 2-D uint8 array and return it.

    Raises:
        TypeError: not a numpy array, or dtype is not uint8.
        ValueError: not 2-D (H, W), or empty.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {image.dtype}; convert grayscale "
                        "frames to uint8 (0-255) first")
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grayscale array (H, W), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {image.shape}")
    return image


def preprocess(image: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """CLAHE then bilateral filter, as in the published pipeline.

    Args:
        image: grayscale frame, (H, W) uint8.
        config: preprocessing parameters.

    Returns:
        (H, W) uint8 preprocessed frame (a new array).

    Raises:
        TypeError: ``image`` is not a uint8 numpy array.
        ValueError: ``image`` is not 2-D or is empty.
    """
    import cv2

    image = validate_gray_uint8(image)
    grid = int(config.clahe_grid)
    clahe = cv2.createCLAHE(clipLimit=float(config.clahe_clip), tileGridSize=(grid, grid))
    equalised = clahe.apply(np.ascontiguousarray(image))
    return cv2.bilateralFilter(
        equalised,
        int(config.bilateral_d),
        float(config.bilateral_sigma_color),
        float(config.bilateral_sigma_space),
    )


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 frame to float32 in [0, 1].

    Args:
        image: (H, W) uint8.

    Returns:
        (H, W) float32, ``image / 255``.
    """
    image = validate_gray_uint8(image)
    return image.astype(np.float32) / np.float32(255.0)
