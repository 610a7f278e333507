"""Scale normalisation: every frame is resampled so its embryo has one canonical diameter.

Labs record whole wells of ~500-1500 px and blastocyst-centred crops of 250-450 px; a string is 1-3 px
wide in one and 3-6 px in another. Every stage after reading (preprocessing, texture mask, proposals,
embeddings, learned maps) runs on the frame resampled by ``scale = embryo_diameter / found diameter``
(:func:`cs_features.embryo.find_embryo`), so filters, windows and models see strings at one size.
Boxes are stored and reported in the frame's own pixels: :class:`FrameScale` maps them both ways.
The embryo circle is found and stored for every frame; resampling is switched on per store with
``{"scale": {"embryo_diameter": 384}}`` in ``csf ingest --settings``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cs_features.config import check_fields, check_keys, coerce_number
from cs_features.embryo import EmbryoCircle


@dataclass(frozen=True)
class ScaleSettings:
    """How frames are resampled before every stage.

    Attributes:
        embryo_diameter: the embryo's outer diameter after resampling, in px; 0 (the default) uses frames
            at their own scale; a 500-px ``clean`` synthetic frame's embryo is about 400 px across. It is
            for frames of different magnifications: on the transfer benchmark (README) 400 lowers every
            stage on ``hard-crop``, whose embryos differ in size at one magnification, so it is opt-in.
        min_scale, max_scale: the resampling factor is clamped to this range, so a missed embryo
            cannot blow a frame up or shrink it to nothing.
    """

    embryo_diameter: int = 0
    min_scale: float = 0.25
    max_scale: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "embryo_diameter", coerce_number(self, "embryo_diameter", int))
        for name in ("min_scale", "max_scale"):
            object.__setattr__(self, name, coerce_number(self, name, float))
        check_fields(self, [("embryo_diameter", self.embryo_diameter == 0 or self.embryo_diameter >= 64,
                             "0 (off) or an integer >= 64"),
                            ("min_scale", 0 < self.min_scale <= 1, "a number in (0, 1]"),
                            ("max_scale", self.max_scale >= 1, "a number >= 1")])

    @property
    def enabled(self) -> bool:
        return self.embryo_diameter > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScaleSettings:
        check_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class FrameScale:
    """One frame's resampling: ``scale`` (canonical px per frame px), the embryo found, both shapes."""

    scale: float
    embryo: EmbryoCircle
    frame_shape: tuple[int, int]

    @property
    def canonical_shape(self) -> tuple[int, int]:
        height, width = self.frame_shape
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    @property
    def canonical_circle(self) -> tuple[float, float, float] | None:
        """The embryo circle ``(cx, cy, radius)`` in canonical pixels (as :func:`stored_circle` reads it
        back); None when the embryo was not found."""
        if not self.embryo.found:
            return None
        return _scaled_circle(self.embryo.cx, self.embryo.cy, self.embryo.radius, self.scale)

    def to_canonical(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` int32 boxes in frame pixels -> canonical pixels (clamped to the canonical frame)."""
        return _map(boxes, self.scale, self.canonical_shape)

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` int32 boxes in canonical pixels -> frame pixels (clamped to the frame)."""
        return _map(boxes, 1.0 / self.scale, self.frame_shape)


STORED_CIRCLE_COLUMNS = ("embryo_x", "embryo_y", "embryo_radius", "embryo_found", "scale")


def stored_circle(row) -> tuple[float, float, float] | None:
    """A stored frame's embryo circle ``(cx, cy, radius)`` in its stored (canonical) pixels, where its
    preprocessed image and maps lie, from a ``frames`` row holding :data:`STORED_CIRCLE_COLUMNS` (the circle
    is stored in the frame's own pixels); None when the embryo was not found."""
    if not row["embryo_found"]:
        return None
    return _scaled_circle(row["embryo_x"], row["embryo_y"], row["embryo_radius"], row["scale"] or 1.0)


def _scaled_circle(cx: float, cy: float, radius: float, scale: float) -> tuple[float, float, float]:
    """A circle in frame pixels -> canonical pixels."""
    return cx * scale, cy * scale, radius * scale


def _map(boxes: np.ndarray, factor: float, shape: tuple[int, int]) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = shape
    out = np.rint(boxes * factor)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out.astype(np.int32)


def measure_scale(image: np.ndarray, settings: ScaleSettings = ScaleSettings()) -> FrameScale:
    """Find the embryo in a ``(H, W)`` uint8 frame and the factor that gives it the canonical diameter.

    With scale normalisation off (``embryo_diameter = 0``) or no embryo found, the scale is 1.
    """
    from cs_features.embryo import find_embryo

    embryo = find_embryo(image)
    scale = 1.0
    if settings.enabled and embryo.found:
        scale = float(np.clip(settings.embryo_diameter / embryo.diameter, settings.min_scale, settings.max_scale))
    return FrameScale(scale, embryo, tuple(image.shape[:2]))


def resample(image: np.ndarray, frame_scale: FrameScale) -> np.ndarray:
    """``image`` ``(H, W)`` resampled to ``frame_scale.canonical_shape`` (area averaging when shrinking)."""
    import cv2

    if frame_scale.scale == 1.0:
        return image
    height, width = frame_scale.canonical_shape
    interpolation = cv2.INTER_AREA if frame_scale.scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
