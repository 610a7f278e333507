"""The encoder contract: region proposals of one frame in, one embedding row per proposal out.

An encoder takes a preprocessed frame, ``(H, W)`` float32 in [0, 1], and ``(N, 4)`` int32 boxes
``x1, y1, x2, y2`` (frame pixels, exclusive end) and returns ``(N, dim)`` float32 embeddings. Vectors
are returned raw (not L2-normalised); the store keeps them as they are and search uses cosine
distance. Encoders are registered by name in :data:`ENCODERS` and built with :func:`get_encoder`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cs_features import model_dir
from cs_features.boxes import validate_boxes
from cs_features.registry import Registry

logger = logging.getLogger(__name__)

__all__ = ["ENCODERS", "Encoder", "validate_frame", "validate_frame_boxes", "file_sha256"]

ENCODERS: Registry[type["Encoder"]] = Registry("encoder")

# A frame may overshoot [0, 1] by float rounding after preprocessing; anything beyond is a unit error.
_RANGE_SLACK = 1e-3


def validate_frame(image: Any, name: str = "image") -> np.ndarray:
    """Check a preprocessed frame and return it as contiguous ``(H, W)`` float32.

    Raises:
        TypeError: not a numpy array, or not a floating dtype.
        ValueError: not 2-D, empty, non-finite, or outside [0, 1].
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W) float32 in [0, 1], got {type(image).__name__}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name} must be a preprocessed float frame in [0, 1], got dtype {image.dtype}; "
                        "scale uint8 frames with cs_features.preprocess.to_float first")
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D grayscale frame (H, W), got shape {image.shape}")
    lo, hi = float(image.min()), float(image.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise ValueError(f"{name} values must be finite and in [0, 1], got min {lo} and max {hi}")
    return np.ascontiguousarray(image, dtype=np.float32)


def validate_frame_boxes(image: Any, boxes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a frame and its boxes together.

    Returns:
        ``(image, boxes)``: ``(H, W)`` float32 and ``(N, 4)`` int32 (``N`` may be 0).

    Raises:
        TypeError / ValueError: see :func:`validate_frame`; a box that is empty or leaves the frame
        raises ValueError naming its index and coordinates.
    """
    image = validate_frame(image)
    height, width = image.shape
    return image, validate_boxes(boxes, width, height)


def file_sha256(path: str | Path) -> str:
    """First 16 hex digits of the sha256 of a file's bytes (the weights hash recorded in the store)."""
    return model_dir.file_sha256(path)[:16]


class Encoder:
    """Base class of region encoders.

    Subclasses set ``name`` and ``dim`` and implement :meth:`_encode`; :meth:`encode` validates the
    input and handles ``N == 0``.

    Attributes:
        name: registry name, e.g. ``"dinov3-vits16"``.
        dim: embedding length ``D``.
        pooling: how a box becomes a vector (``"roi"`` or ``"crop"``).
        weights_hash: first 16 hex of the weights file's sha256, ``"random"`` or ``"none"``.
    """

    name: str = ""
    dim: int = 0
    pooling: str = "roi"
    weights_hash: str = "none"

    def settings(self) -> dict[str, Any]:
        """Encoder-specific settings that change the vectors (recorded beside them in the store)."""
        return {}

    def info(self) -> dict[str, Any]:
        """JSON-ready description: name, dim, pooling, weights_hash and settings."""
        return {"name": self.name, "dim": int(self.dim), "pooling": self.pooling,
                "weights_hash": self.weights_hash, "settings": self.settings()}

    def encode(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed every box of one frame.

        Args:
            image: preprocessed frame, (H, W) float32 in [0, 1].
            boxes: (N, 4) int32 x1, y1, x2, y2 inside the frame; N may be 0.

        Returns:
            (N, dim) float32 embeddings, raw (not L2-normalised).

        Raises:
            TypeError / ValueError: bad frame, or a box that is empty or outside the frame.
        """
        image, boxes = validate_frame_boxes(image, boxes)
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(image, boxes)

    def encode_batch(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Embed the boxes of several frames; one ``(N_i, dim)`` float32 array per ``(image, boxes)``.

        The base implementation calls :meth:`encode` frame by frame; subclasses batch across frames.
        """
        return [self.encode(image, boxes) for image, boxes in items]

    def _encode(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed validated, non-empty boxes: (H, W) float32, (N, 4) int32 -> (N, dim) float32."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, pooling={self.pooling!r}, " \
               f"weights_hash={self.weights_hash!r})"
