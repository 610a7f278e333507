"""Region proposals: OpenCV Selective Search as published, filament-aware boxes, and their union.

OpenCV returns rectangles in an order that changes between runs and threads, so boxes are clamped,
tiny ones dropped, duplicates removed and the rest SORTED before the cap is applied; the same frame and
settings always give the same boxes. Sources compose: ``"ss-fast,filament"`` unions both, drops boxes of
a later source that overlap a kept box by more than ``nms_iou``, and caps the total per frame, sharing
the cap between sources. Every box remembers the source that proposed it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cs_features.boxes import box_areas, clamp_boxes, iou_matrix, sort_boxes
from cs_features.filament import FilamentConfig
from cs_features.registry import Registry

PROPOSAL_SOURCES: Registry = Registry("proposal source")


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of the proposal stage (recorded in the store).

    Attributes:
        method: a registered source (``ss-fast``, ``ss-quality``, ``ss-single``, ``filament``) or several
            joined by commas, e.g. ``"ss-fast,filament"``.
        max_proposals: cap per frame. Within a source the cap keeps a uniform sample chosen by a hash of
            each box (the size and position mix of all proposals, independent of OpenCV's order); a union
            shares the cap equally between sources, handing unused shares on.
        min_area: boxes smaller than this many pixels are dropped.
        min_side: boxes thinner than this many pixels on either side are dropped.
        nms_iou: in a union, a box overlapping an already kept box (of an earlier source) by more than
            this IoU is dropped as a duplicate.
        ss_sigma, ss_k: the graph segmentation's Gaussian sigma and k of the single-strategy mode.
        filament: settings of the filament source.
    """

    method: str = "filament,ss-fast"
    max_proposals: int = 300
    min_area: int = 64
    min_side: int = 4
    nms_iou: float = 0.9
    ss_sigma: float = 0.8
    ss_k: int = 150
    filament: FilamentConfig = field(default_factory=FilamentConfig)

    @property
    def sources(self) -> list[str]:
        return [name.strip() for name in self.method.split(",") if name.strip()]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProposalConfig":
        """Rebuild from :meth:`to_dict` output (also after a JSON round trip: lists become tuples).

        Raises:
            ConfigError: an unknown key, naming it and listing the accepted ones.
        """
        from dataclasses import fields

        from cs_features.errors import ConfigError

        for klass, given in ((cls, data), (FilamentConfig, data.get("filament") or {})):
            accepted = {f.name for f in fields(klass)}
            unknown = set(given) - accepted
            if unknown:
                raise ConfigError(f"unknown {klass.__name__} setting(s) {sorted(unknown)}; accepted: {sorted(accepted)}")
        filament = FilamentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in (data.get("filament") or {}).items()})
        return cls(**{**{k: v for k, v in data.items() if k != "filament"}, "filament": filament})


@dataclass
class Proposals:
    """Boxes of one frame with the source of each: ``boxes`` ``(N, 4)`` int32, ``sources`` ``(N,)`` str."""

    boxes: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


def propose(image: np.ndarray, config: ProposalConfig = ProposalConfig(),
            low_texture_mask: np.ndarray | None = None) -> Proposals:
    """Region proposals for one frame.

    Args:
        image: ``(H, W)`` uint8 preprocessed frame.
        config: proposal settings.
        low_texture_mask: ``(H, W)`` bool, used by the filament source to find the embryo interior.

    Returns:
        :class:`Proposals` with at most ``config.max_proposals`` boxes in canonical (sorted) order.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        raise TypeError(f"propose expects an (H, W) uint8 frame, got {getattr(image, 'dtype', type(image))} "
                        f"{getattr(image, 'shape', '')}")
    if config.max_proposals < 1:
        raise ValueError(f"max_proposals must be >= 1, got {config.max_proposals}")
    names = config.sources
    if not names:
        raise ValueError(f"no proposal source in {config.method!r}; known: {', '.join(PROPOSAL_SOURCES.names())}")
    height, width = image.shape
    per_source = [finalize_boxes(PROPOSAL_SOURCES.get(name)(image, config, low_texture_mask), width, height, config)
                  for name in names]
    return union_proposals(per_source, names, config)


def union_proposals(per_source: list[np.ndarray], names: list[str], config: ProposalConfig) -> Proposals:
    """Union of per-source boxes: cross-source duplicates dropped, total capped, canonical order."""
    kept: list[np.ndarray] = []
    for boxes in per_source:
        if kept and len(boxes):
            earlier = np.concatenate(kept)
            boxes = boxes[iou_matrix(boxes, earlier).max(axis=1) <= config.nms_iou] if len(earlier) else boxes
        kept.append(boxes)
    quotas = _share_cap([len(b) for b in kept], config.max_proposals)
    boxes, sources = [], []
    for name, source_boxes, quota in zip(names, kept, quotas):
        if len(source_boxes) > quota:
            source_boxes = source_boxes[np.lexsort((np.arange(len(source_boxes)), _box_hash(source_boxes)))[:quota]]
        boxes.append(source_boxes)
        sources.extend([name] * len(source_boxes))
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int32)
    order = np.lexsort(all_boxes.T[::-1]) if len(all_boxes) else np.zeros(0, np.int64)
    return Proposals(all_boxes[order].astype(np.int32), np.asarray(sources, dtype=object)[order])


def _share_cap(counts: list[int], cap: int) -> list[int]:
    """Split ``cap`` equally between sources; a source needing less hands its share on, in order."""
    quotas = [0] * len(counts)
    remaining, open_sources = cap, [i for i, n in enumerate(counts) if n > 0]
    while remaining > 0 and open_sources:
        share = max(remaining // len(open_sources), 1)
        for i in list(open_sources):
            take = min(share, counts[i] - quotas[i], remaining)
            quotas[i] += take
            remaining -= take
            if quotas[i] >= counts[i]:
                open_sources.remove(i)
            if remaining == 0:
                break
    return quotas


def finalize_boxes(boxes: np.ndarray, width: int, height: int, config: ProposalConfig) -> np.ndarray:
    """Clamp, drop tiny, de-duplicate, cap at ``max_proposals`` by box hash, and sort canonically."""
    boxes = clamp_boxes(boxes, width, height)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (box_areas(boxes) >= config.min_area) & (w >= config.min_side) & (h >= config.min_side)
    boxes = sort_boxes(boxes[keep])
    if len(boxes) > config.max_proposals:
        order = np.lexsort((np.arange(len(boxes)), _box_hash(boxes)))[: config.max_proposals]
        boxes = sort_boxes(boxes[order])
    return boxes


def _box_hash(boxes: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random uint64 key per box (splitmix64 of the packed coordinates)."""
    b = boxes.astype(np.uint64)
    x = (b[:, 0] << np.uint64(48)) ^ (b[:, 1] << np.uint64(32)) ^ (b[:, 2] << np.uint64(16)) ^ b[:, 3]
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _selective_search(image: np.ndarray, mode: str, config: ProposalConfig) -> np.ndarray:
    import cv2

    # Selective Search wants 3 channels; single-threaded so the result does not depend on scheduling.
    cv2.setNumThreads(1)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    elif mode == "quality":
        search.switchToSelectiveSearchQuality()
    else:
        search.switchToSingleStrategy(config.ss_k, config.ss_sigma)
    rects = search.process()
    if rects is None or len(rects) == 0:
        return np.zeros((0, 4), np.int32)
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    return np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1).astype(np.int32)


@PROPOSAL_SOURCES.register("ss-fast")
def selective_search_fast(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """OpenCV Selective Search, fast mode (as published)."""
    return _selective_search(image, "fast", config)


@PROPOSAL_SOURCES.register("ss-quality")
def selective_search_quality(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """OpenCV Selective Search, quality mode."""
    return _selective_search(image, "quality", config)


@PROPOSAL_SOURCES.register("ss-single")
def selective_search_single(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """OpenCV Selective Search, single strategy (one graph segmentation, colour+size+fill similarity)."""
    return _selective_search(image, "single", config)


@PROPOSAL_SOURCES.register("filament")
def filament_source(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """Boxes around thin curvilinear paths inside the embryo (see :mod:`cs_features.filament`)."""
    from cs_features.filament import filament_proposals

    return filament_proposals(image, low_texture_mask, config.filament)


def weak_labels(
    proposals: np.ndarray, gt_boxes: np.ndarray | None, positive_iou: float = 0.2, negative_iou: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Weak labels of proposals from ground-truth boxes.

    Args:
        proposals: ``(N, 4)`` boxes; gt_boxes: ``(G, 4)`` boxes, or None when the frame's boxes are
            unknown (a CS frame without a label file).
        positive_iou: label 1 when max IoU > this; negative_iou: label 0 when max IoU < this.

    Returns:
        ``max_iou`` ``(N,)`` float32 and ``label`` ``(N,)`` int8 with 1 / 0 / -1 (ignored). With
        ``gt_boxes=None`` every label is -1 and max_iou is NaN. A CS-free frame (G = 0) gives all 0.
    """
    from cs_features.boxes import iou_matrix

    if negative_iou > positive_iou:
        raise ValueError(f"negative_iou ({negative_iou}) must not exceed positive_iou ({positive_iou})")
    n = len(proposals)
    if gt_boxes is None:
        return np.full(n, np.nan, np.float32), np.full(n, -1, np.int8)
    if len(gt_boxes) == 0:
        return np.zeros(n, np.float32), np.zeros(n, np.int8)
    max_iou = iou_matrix(proposals, gt_boxes).max(axis=1).astype(np.float32)
    label = np.full(n, -1, np.int8)
    label[max_iou > positive_iou] = 1
    label[max_iou < negative_iou] = 0
    return max_iou, label


def residual_boxes(residual: np.ndarray, low_texture_mask: np.ndarray | None, shape: tuple[int, int],
                   k_sigma: float = 3.0, min_pixels: int = 20, pad: int = 3) -> np.ndarray:
    """Boxes around high-residual regions of an autoencoder error map (where the AE saw something new).

    Args:
        residual: ``(S, S)`` float32 error map at the AE's input size.
        low_texture_mask: ``(H, W)`` bool frame mask; only the embryo interior counts.
        shape: the frame's ``(H, W)``.
        k_sigma: a pixel is high when it exceeds the interior's median by ``k_sigma`` robust sigmas.

    Returns:
        ``(N, 4)`` int32 boxes in frame pixels (raw: the caller clamps and de-duplicates).
    """
    import cv2

    from cs_features.filament import embryo_interior

    height, width = shape
    error = cv2.resize(residual.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    interior = embryo_interior(low_texture_mask, shape)
    values = error[interior]
    if values.size == 0:
        return np.zeros((0, 4), np.int32)
    median = float(np.median(values))
    sigma = float(np.median(np.abs(values - median))) * 1.4826 + 1e-6
    high = ((error > median + k_sigma * sigma) & interior).astype(np.uint8)
    high = cv2.morphologyEx(high, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))  # join a string's pieces
    count, _, stats, _ = cv2.connectedComponentsWithStats(high, connectivity=8)
    keep = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    x, y = stats[1:, cv2.CC_STAT_LEFT][keep], stats[1:, cv2.CC_STAT_TOP][keep]
    w, h = stats[1:, cv2.CC_STAT_WIDTH][keep], stats[1:, cv2.CC_STAT_HEIGHT][keep]
    boxes = np.stack([x - pad, y - pad, x + w + pad, y + h + pad], axis=1).astype(np.int32)
    return clamp_boxes(boxes, width, height)
