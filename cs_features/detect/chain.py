"""The detection chain on one embryo's frames: frame pipeline -> autoencoder gate -> proposals ->
embeddings -> region head (with the string map's framing, where the head's store proposes with the learned
``strings`` source) -> score ``p * clamp(IoU, 0, 1)`` times the attachment and transience priors -> NMS
-> top-k boxes.

Frames run in batches; boxes are ranked once the embryo's last frame is in, because the transience
prior (:mod:`cs_features.transience`) reads every frame of the embryo's time-lapse. A frame that skips
the localizer is final at once; what the picture of a localized frame needs (about 0.6 MB for a
500 px frame) is held until its embryo's last frame is in.

Frames under the autoencoder's threshold are reported CS-negative and skip the localizer, unless the
gate is off. Settings come from the model directories: the autoencoder's preprocessing/texture settings
and the head's store settings and encoder must agree (:func:`load_detector`), and the frames are
processed by the frame pipeline under the head's store settings, exactly as ingest processed them.
A frame that cannot be read is reported, never the whole batch.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.attachment import AttachmentPrior, attachment_factors
from cs_features.errors import ConfigError, FrameError
from cs_features.frame import FramePipeline, ProcessedFrame
from cs_features.proposals.learned import interior_string_map
from cs_features.ridges import LinePixels, line_pixels
from cs_features.settings import (
    ENCODER_IDENTITY,
    FRAME_SECTIONS,
    StoreSettings,
    check_compatible,
    check_encoder_info,
)
from cs_features.strings.framing import MapFraming, box_framing, framed_p, ranking_string_model
from cs_features.transience import EmbryoLines, TransiencePrior, transience_factors

log = logging.getLogger(__name__)
STAGES = ("read", "preprocess", "texture", "autoencoder", "proposals", "encode", "head", "framing", "lines",
          "attachment", "transience")


@dataclass(frozen=True)
class DetectConfig:
    """Detection settings: ``gate`` (skip the localizer under the AE threshold), ``top_k`` boxes per frame after NMS at
    ``nms_iou`` (a box with at least ``nms_inside`` of its area inside a higher-ranked kept box is dropped too: a
    piece of a string already boxed; None drops by IoU alone), ``min_score`` the smallest rank score (``p * IoU``) of
    a reported box, ``positive_p`` (a frame is CS-positive when its frame score, the highest p of its reported boxes,
    is at least this; a box's p is the head's times the priors' factors; None: the head's own decision, chosen on its
    val split, :mod:`cs_features.heads.decision`), ``overlay_min_p`` the smallest p of a box
    drawn on the overlays (None: ``positive_p``, only the boxes that count), ``residual_proposals`` (add boxes around
    high-residual regions of the AE error map to the proposals), ``attachment`` (the prior that multiplies each box's
    region score by how its line meets the cavity's edge, :mod:`cs_features.attachment`;
    ``AttachmentPrior(enabled=False)`` turns it off), ``transience`` (the prior that lowers a box whose line the
    embryo's other frames show at the same place, :mod:`cs_features.transience`; ``TransiencePrior(enabled=False)``
    turns it off), ``framing`` (where the head's store proposes with the learned ``strings`` source, its string map
    reads each box too: p is ``sqrt(head p * map strength)`` and IoU the box's fit to the map's string,
    :mod:`cs_features.strings.framing`; ``MapFraming(enabled=False)`` ranks by the head alone)."""

    gate: bool = True
    positive_p: float | None = None
    top_k: int = 5
    nms_iou: float = 0.3
    nms_inside: float | None = 0.9
    min_score: float = 0.0
    overlay_min_p: float | None = None
    residual_proposals: bool = False
    embryo_regex: str | None = None
    batch_size: int = 8
    attachment: AttachmentPrior = field(default_factory=AttachmentPrior)
    transience: TransiencePrior = field(default_factory=TransiencePrior)
    framing: MapFraming = field(default_factory=MapFraming)

    @property
    def drawn_min_p(self) -> float:
        """The smallest p of a box drawn on an overlay."""
        return self.positive_p if self.overlay_min_p is None else self.overlay_min_p


FRAME_SCORE = ("the highest string probability p among the frame's reported boxes (after NMS and top-k), "
               "each box's p being the head's (with the string map's, where it ranks boxes) times its attachment "
               "and transience factors; "
               "0 when the localizer was skipped (autoencoder gate) or reported no box")


@dataclass
class FrameDetection:
    """Result for one frame; ``boxes`` are dicts with ``box`` [x1, y1, x2, y2], ``head_p`` (the region head's
    string probability), ``map_strength`` (the string map's evidence in the box, :mod:`cs_features.strings.framing`;
    None where no string map ranks boxes), ``attachment`` and ``transience`` (the priors' factors), ``p``
    (``head_p``, or ``sqrt(head_p * map_strength)``, times both factors: the box's string probability), ``iou``
    (the head's IoU estimate, or the box's fit to the map's string), ``score`` (``p * IoU``, what the boxes are
    ranked by).

    ``frame_score`` is :data:`FRAME_SCORE`; ``cs_positive`` is ``frame_score >= positive_p``.
    ``truth_boxes`` are the ground-truth boxes when a label file was found (``[]``: CS-free), None when
    the frame is unlabelled; ``label_error`` says why a label file found could not be read.
    """

    path: str
    stem: str
    embryo_id: str
    frame_index: int = 0
    width: int = 0
    height: int = 0
    ae_score: float | None = None
    flagged: bool = False
    localized: bool = False
    boxes: list = field(default_factory=list)
    error: str | None = None
    frame_score: float = 0.0
    cs_positive: bool = False
    truth_boxes: list | None = None
    label_error: str | None = None

    @property
    def truth(self) -> bool | None:
        """Ground truth of the frame: True (strings), False (CS-free), None (unlabelled)."""
        return None if self.truth_boxes is None else bool(self.truth_boxes)


@dataclass
class Detector:
    """The loaded chain: autoencoder filter, region head, and the frame pipeline (settings + encoder) they agree on."""

    anomaly_filter: object
    head: object
    pipeline: FramePipeline
    ae_config: dict
    head_config: dict

    @property
    def encoder(self):
        return self.pipeline.encoder

    @property
    def settings(self) -> StoreSettings:
        return self.pipeline.settings


def load_detector(
    ae_dir: str | Path, head_dir: str | Path, weights: str | None = None, device: str = "cpu"
) -> Detector:
    """Load both models and check they agree (preprocessing, texture settings, encoder).

    Raises:
        ConfigError: the models were trained on differently processed frames, or the head's encoder
            weights do not match ``weights``.
    """
    from cs_features.autoencoder import AnomalyFilter
    from cs_features.autoencoder.persist import read_config
    from cs_features.encoders import get_encoder
    from cs_features.heads import RegionHead
    from cs_features.heads.base import read_config as read_head_config

    ae_config = read_config(Path(ae_dir))
    head_config = read_head_config(head_dir)
    provenance = head_config.get("provenance", {})
    settings = provenance.get("store_settings") or {}
    if not settings.get("proposals"):
        raise ConfigError(f"head {str(head_dir)!r} records no store settings (proposals); retrain it with this version")
    check_compatible(ae_config.get("store_settings"), settings, sections=FRAME_SECTIONS,
                     expected_name=f"autoencoder {str(ae_dir)!r}", actual_name=f"head {str(head_dir)!r}",
                     remedy="Use an autoencoder and a head trained on the same store")
    info = provenance.get("encoder_info") or {}
    encoder = get_encoder(info["name"], weights=weights, pooling=info.get("pooling", "roi"), device=device)
    check_encoder_info(info, encoder.info(), expected_name=f"head {str(head_dir)!r}", actual_name="--weights",
                       remedy="Pass the weights file the head's store was ingested with", keys=ENCODER_IDENTITY)
    pipeline = FramePipeline(StoreSettings.from_dict(settings), encoder)
    return Detector(AnomalyFilter.load(ae_dir, device=device), RegionHead.load(head_dir), pipeline,
                    ae_config, head_config)


def embryo_of(stem: str, pattern: re.Pattern | None) -> str:
    """The embryo id of a frame stem, by the rules ingest uses (:func:`cs_features.datasets.parse_frame_name`)."""
    from cs_features.datasets.names import parse_frame_name

    return parse_frame_name(stem, pattern)[0]


@dataclass
class _Candidates:
    """A localized frame's boxes before ranking: frame-pixel boxes, the head's p, the p and IoU they are
    ranked by (the head's, or read with the string map), the attachment factors, ``p * IoU * attachment``,
    the boxes' line pixels for the transience prior, and the map's strength (None without a map)."""

    boxes: np.ndarray
    head_p: np.ndarray
    p: np.ndarray
    iou: np.ndarray
    attachment: np.ndarray
    score: np.ndarray
    lines: LinePixels
    strength: np.ndarray | None = None


@dataclass
class _Prepared:
    detection: FrameDetection
    frame: ProcessedFrame | None = None
    candidates: _Candidates | None = None


def detect_embryo(detector: Detector, paths: list[Path], config: DetectConfig, pattern: re.Pattern, seconds: dict,
                  draw: Callable[[FrameDetection, dict], None],
                  progress: Callable[[int], None] | None = None) -> list[FrameDetection]:
    """Run the chain on one embryo's files (its time-lapse; a single frame is fine) in batches of
    ``config.batch_size``, then rank every localized frame's boxes against the embryo's other frames.

    Args:
        draw: called with each read frame's detection and what its picture needs once its boxes are final
            (at once for a frame that skips the localizer, after the embryo's last frame for the others).
        progress: called with the number of files of each batch done.

    Returns:
        each file's detection (``error`` set for a file that could not be read), in the order of ``paths``.
    """
    lines = EmbryoLines(config.transience) if config.transience.enabled and len(paths) > 1 else None
    out: list[_Prepared] = []
    held: list[tuple[_Prepared, dict]] = []
    for start in range(0, len(paths), config.batch_size):
        prepared = [_prepare(detector, path, pattern, seconds) for path in paths[start:start + config.batch_size]]
        good = [item for item in prepared if item.detection.error is None]
        residuals = _autoencoder(detector, good, seconds) if good else []
        for item in prepared:
            out.append(item)
            if item.detection.error is not None:
                continue
            residual = residuals[good.index(item)]
            localize = item.detection.flagged or not config.gate
            strength = _line_strength(item, lines, seconds) if localize or lines is not None else None
            if localize:
                _localize(detector, item, residual, strength, config, seconds)
            picture = _picture(detector, item, residual)
            if item.candidates is None:
                draw(item.detection, picture)
            else:
                held.append((item, picture))
            item.frame = None
        if progress:
            progress(len(prepared))
    for item, picture in held:
        _rank(item, lines, config, seconds)
        draw(item.detection, picture)
    return [item.detection for item in out]


def _line_strength(item: _Prepared, lines: EmbryoLines | None, seconds: dict) -> np.ndarray:
    """The frame's line strength (shared by both priors), added to its embryo's lines when kept."""
    from cs_features.ridges import line_strength

    clock = time.perf_counter()
    frame = item.frame
    strength = line_strength(frame.preprocessed)
    if lines is not None:
        embryo, scale = frame.scale.embryo, frame.scale.scale
        circle = (embryo.cx * scale, embryo.cy * scale, embryo.radius * scale) if embryo.found else None
        lines.add(item.detection.path, strength, circle)
    seconds["lines"] += time.perf_counter() - clock
    return strength


def _picture(detector: Detector, item: _Prepared, residual: np.ndarray) -> dict:
    """What the overlay shows: the preprocessed (canonical-scale) frame, the map and region the AE score was
    taken on, and the frame's scale to draw frame-pixel boxes on it."""
    from cs_features.autoencoder.data import resize_mask
    from cs_features.autoencoder.score_maps import scoring_map

    ae = detector.anomaly_filter
    scored, region = scoring_map(residual, resize_mask(item.frame.low_texture_mask, ae.img_size), ae.score_settings)
    return {"image": item.frame.preprocessed, "scored": scored, "region": region, "scale": item.frame.scale}


def _prepare(detector: Detector, path: Path, pattern: re.Pattern, seconds: dict) -> _Prepared:
    item = _Prepared(FrameDetection(str(path), path.stem, embryo_of(path.stem, pattern)))
    try:
        image = detector.pipeline.read(path, seconds)
        item.detection.height, item.detection.width = image.shape
        item.frame = detector.pipeline.prepare(image, str(path), seconds)
    except FrameError as exc:
        item.detection.error = exc.reason
    return item


def _autoencoder(detector: Detector, items: list[_Prepared], seconds: dict) -> list[np.ndarray]:
    """Score frames with the AE; sets ae_score/flagged; returns residual maps at the AE's size."""
    import torch

    from cs_features.autoencoder.data import FrameSet, resize_frame, resize_mask

    clock = time.perf_counter()
    ae = detector.anomaly_filter
    size = ae.img_size
    images = torch.from_numpy(np.stack([resize_frame(i.frame.preprocessed, size) for i in items])[:, None])
    masks = torch.from_numpy(np.stack([resize_mask(i.frame.low_texture_mask, size) for i in items])[:, None])
    ids = np.array([i.detection.stem for i in items])
    frames = FrameSet(images, masks, ids, ids, ids, ids, ids)
    residuals: list[np.ndarray] = []
    for start, batch, scores in ae.iter_residuals(frames):
        residuals.extend(batch)
        for item, score in zip(items[start:start + len(scores)], scores):
            item.detection.ae_score = float(score)
            item.detection.flagged = bool(score >= ae.threshold_)
    seconds["autoencoder"] += time.perf_counter() - clock
    return residuals


def _localize(detector: Detector, item: _Prepared, residual: np.ndarray, strength: np.ndarray,
              config: DetectConfig, seconds: dict) -> None:
    """Proposals, embeddings, head and attachment prior of a frame: its :class:`_Candidates`."""
    from cs_features.heads import region_score

    frame = item.frame
    boxes = detector.pipeline.propose(frame).boxes
    if config.residual_proposals:
        clock = time.perf_counter()
        boxes = _with_residual_boxes(boxes, residual, item, detector)
        seconds["proposals"] += time.perf_counter() - clock
    vectors = detector.pipeline.embed(frame, boxes)
    item.detection.localized = True
    if not len(boxes):
        return
    clock = time.perf_counter()
    canonical = frame.scale.to_canonical(boxes)
    found = line_pixels(strength, canonical, config.transience.line_quantile)
    shared = found if config.attachment.line_quantile == config.transience.line_quantile else None
    seconds["lines"] += time.perf_counter() - clock
    clock = time.perf_counter()
    attached = attachment_factors(frame.preprocessed, frame.low_texture_mask, canonical, config.attachment,
                                  strength=strength, lines=shared)
    seconds["attachment"] += time.perf_counter() - clock
    clock = time.perf_counter()
    head_p, iou = detector.head.predict(vectors)
    p, strength = head_p, None
    seconds["head"] += time.perf_counter() - clock
    directory = ranking_string_model(detector.settings.proposals)
    if config.framing.enabled and directory:
        clock = time.perf_counter()
        prob = interior_string_map(frame.preprocessed, frame.low_texture_mask, directory)
        strength, iou = box_framing(prob, canonical, config.framing)
        p = framed_p(head_p, strength)
        seconds["framing"] += time.perf_counter() - clock
    score = region_score(p, iou, getattr(detector.head, "score_mode", "product"),
                         getattr(detector.head, "alpha", 0.5)) * attached
    item.candidates = _Candidates(boxes, head_p, p, iou, attached, score, found, strength)


def _rank(item: _Prepared, lines: EmbryoLines | None, config: DetectConfig, seconds: dict) -> None:
    """Transience factors, then NMS and the top-k boxes of a localized frame; its frame score."""
    from cs_features.boxes import reported_boxes

    clock = time.perf_counter()
    found = item.candidates
    background = lines.background(item.detection.path) if lines is not None else None
    transient = transience_factors(background, found.lines, config.transience)
    score = found.score * transient
    p = found.p * found.attachment * transient
    keep = reported_boxes(found.boxes, score, config.nms_iou, config.nms_inside, config.min_score, config.top_k)
    item.detection.boxes = [{"box": found.boxes[k].tolist(), "p": round(float(p[k]), 4),
                             "head_p": round(float(found.head_p[k]), 4),
                             "map_strength": None if found.strength is None else round(float(found.strength[k]), 4),
                             "attachment": round(float(found.attachment[k]), 4),
                             "transience": round(float(transient[k]), 4), "iou": round(float(found.iou[k]), 4),
                             "score": round(float(score[k]), 4)}
                            for k in keep]
    item.detection.frame_score = max((b["p"] for b in item.detection.boxes), default=0.0)
    item.detection.cs_positive = item.detection.frame_score >= config.positive_p
    item.candidates = None
    seconds["transience"] += time.perf_counter() - clock


def _with_residual_boxes(boxes: np.ndarray, residual: np.ndarray, item: _Prepared, detector: Detector) -> np.ndarray:
    from cs_features.proposals import residual_boxes

    canonical = residual_boxes(residual, item.frame.low_texture_mask, item.frame.preprocessed.shape)
    extra = item.frame.scale.to_frame(canonical)
    return np.unique(np.concatenate([boxes, extra]), axis=0).astype(np.int32) if len(extra) else boxes
