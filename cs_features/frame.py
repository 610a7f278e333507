"""The one per-frame chain: read -> scale -> preprocess -> low-texture mask -> proposals -> embeddings.

``csf ingest`` runs it on every frame of a dataset, ``csf detect`` on new frames (with the autoencoder
gate between :meth:`FramePipeline.prepare` and :meth:`FramePipeline.propose`), and ``csf similar
--image`` on a query frame, so a frame is processed exactly as the stored frames were: same settings
(:class:`~cs_features.settings.StoreSettings`), same code. Later stages are added here, once.

Every stage after reading runs on the frame resampled to the canonical embryo diameter
(:mod:`cs_features.scale`); proposals come out, and boxes go in, in the frame's own pixels.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from cs_features.errors import FrameError, ImageReadError
from cs_features.scale import FrameScale
from cs_features.settings import StoreSettings

MAX_PIXELS = 4096 * 4096
STAGES = ("read", "scale", "preprocess", "texture", "proposals", "encode")


@dataclass
class ProcessedFrame:
    """What the per-frame stages made of one image.

    Attributes:
        name: the file (or a caller's label) the image came from, for messages.
        image: ``(H, W)`` uint8 frame as read (None for a frame rebuilt from the store, whose later stages
            need only the preprocessed frame and mask).
        scale: the frame's resampling (embryo found, canonical px per frame px, box mapping).
        preprocessed: ``(h, w)`` uint8 canonical-scale frame after CLAHE + bilateral filter.
        low_texture_mask: ``(h, w)`` bool GLCM low-texture mask of the canonical frame, the embryo circle's
            ring marked textured where the mask's outline misses part of it
            (:func:`~cs_features.embryo.mark_outline`).
        proposals: boxes ``(N, 4)`` int32 in frame pixels with their sources, once proposed.
        vectors: ``(N, D)`` float32 embeddings of the proposals, once embedded.
        seconds: wall seconds spent per stage.
    """

    name: str
    image: np.ndarray
    scale: FrameScale
    preprocessed: np.ndarray
    low_texture_mask: np.ndarray
    proposals: object | None = None
    vectors: np.ndarray | None = None
    seconds: dict = field(default_factory=dict)


class FramePipeline:
    """The per-frame chain under one store's settings, with one encoder.

    Args:
        settings: the store-wide settings every frame is processed with.
        encoder: a :class:`~cs_features.encoders.base.Encoder`; needed only by :meth:`embed`.
        max_pixels: frames with more pixels are refused (a frame is ~500 x 500; a whole-slide image
            passed by mistake would exhaust memory).
    """

    def __init__(self, settings: StoreSettings = StoreSettings(), encoder=None, max_pixels: int = MAX_PIXELS) -> None:
        if not isinstance(settings, StoreSettings):
            raise TypeError(f"settings must be StoreSettings, got {type(settings).__name__}")
        self.settings = settings
        self.encoder = encoder
        self.max_pixels = int(max_pixels)

    def read(self, path: str | Path, seconds: dict | None = None) -> np.ndarray:
        """The ``(H, W)`` uint8 frame in ``path``.

        Raises:
            FrameError: stage ``read``, with the reader's reason.
        """
        from cs_features.io import read_gray

        with _timed(seconds, "read"):
            try:
                return read_gray(path)
            except ImageReadError as exc:
                raise FrameError(path, "read", exc.reason) from exc

    def prepare(self, image: np.ndarray, name: str = "<array>", seconds: dict | None = None) -> ProcessedFrame:
        """Resample ``image`` ``(H, W)`` uint8 to the canonical embryo size, preprocess it and compute its
        low-texture mask.

        Raises:
            FrameError: the frame is too large (stage ``read``) or, resampled, smaller than the GLCM
                window (stage ``texture``).
        """
        from cs_features.embryo import mark_outline
        from cs_features.preprocess import preprocess
        from cs_features.scale import measure_scale, resample
        from cs_features.texture import low_texture

        seconds = {} if seconds is None else seconds
        self._check_pixels(image, name)
        with _timed(seconds, "scale"):
            frame_scale = measure_scale(image, self.settings.scale)
            canonical = resample(image, frame_scale)
        self._check_window(canonical, name)
        with _timed(seconds, "preprocess"):
            pre = preprocess(canonical, self.settings.preprocess)
        with _timed(seconds, "texture"):
            _, mask = low_texture(pre, self.settings.texture)
            mask = mark_outline(mask, frame_scale.canonical_circle)
        return ProcessedFrame(name, image, frame_scale, pre, mask, seconds=seconds)

    def propose(self, frame: ProcessedFrame):
        """Region proposals of a prepared frame, in frame pixels (stored on it and returned).

        Sources run on the canonical frame; their boxes are mapped to frame pixels, where two canonical
        boxes that land on one frame box are one proposal.
        """
        from cs_features.proposals import Proposals, propose

        with _timed(frame.seconds, "proposals"):
            canonical = propose(frame.preprocessed, self.settings.proposals, low_texture_mask=frame.low_texture_mask)
            boxes = frame.scale.to_frame(canonical.boxes)
            _, first = np.unique(boxes, axis=0, return_index=True)
            keep = np.sort(first)
            frame.proposals = Proposals(boxes[keep], canonical.sources[keep])
        return frame.proposals

    def embed(self, frame: ProcessedFrame, boxes: np.ndarray) -> np.ndarray:
        """``(N, D)`` float32 embeddings of ``boxes`` ``(N, 4)`` in frame pixels of a prepared frame.

        The boxes are mapped to the canonical frame, where the encoder runs; a box given in frame
        pixels therefore always gets the vector ingest stored for it.
        """
        from cs_features.preprocess import to_float

        if self.encoder is None:
            raise ValueError("this FramePipeline has no encoder; pass one to embed regions")
        with _timed(frame.seconds, "encode"):
            if len(boxes) == 0:
                return np.zeros((0, self.encoder.dim), np.float32)
            canonical = frame.scale.to_canonical(boxes)
            return np.asarray(self.encoder.encode(to_float(frame.preprocessed), canonical), np.float32)

    def run(self, image: np.ndarray, name: str = "<array>", seconds: dict | None = None) -> ProcessedFrame:
        """Every stage on one frame: prepare, propose, embed the proposals."""
        frame = self.prepare(image, name, seconds)
        self.propose(frame)
        frame.vectors = self.embed(frame, frame.proposals.boxes)
        return frame

    def _check_window(self, canonical: np.ndarray, name: str) -> None:
        height, width = canonical.shape[:2]
        window = self.settings.texture.window
        if width < window or height < window:
            raise FrameError(name, "texture", f"image is {width}x{height} at the canonical scale, smaller than the "
                                              f"{window}x{window} GLCM window")

    def _check_pixels(self, image: np.ndarray, name: str) -> None:
        height, width = image.shape[:2]
        if width * height > self.max_pixels:
            raise FrameError(name, "read", f"image is {width}x{height} = {width * height} pixels, more than the limit "
                                           f"of {self.max_pixels}; downscale it (frames are ~500x500) "
                                           "or raise max_pixels")


@contextmanager
def _timed(seconds: dict | None, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
