"""Proposal sources composed: each source's boxes finalised, their union de-duplicated and capped.

OpenCV returns rectangles in an order that changes between runs and threads, so boxes are clamped,
tiny ones dropped, duplicates removed and the rest SORTED before the cap is applied; the same frame and
settings always give the same boxes. Sources compose: ``"ss-fast,filament"`` unions both, drops boxes of
a later source that overlap a kept box by more than ``nms_iou``, and caps the total per frame, sharing
the cap between sources. Every box remembers the source that proposed it.

Where a source must give up boxes to the cap, a fixed pseudo-random subset (by box hash) is kept: most
sources have no better order. A *ranked* source (:func:`ranked_source`, e.g. the learned ``strings``
source, whose boxes come with the string map's evidence) returns its boxes best first, and the cap keeps
its first ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.boxes import box_areas, clamp_boxes, iou_matrix, sort_boxes
from cs_features.errors import ConfigError
from cs_features.proposals.config import ProposalConfig
from cs_features.registry import Registry

PROPOSAL_SOURCES: Registry = Registry("proposal source")


def ranked_source(source):
    """Mark a proposal source function as returning its boxes best first (the cap keeps the first ones)."""
    source.ranked = True
    return source


def is_ranked(source) -> bool:
    """Whether a proposal source function returns its boxes best first (:func:`ranked_source`)."""
    return bool(getattr(source, "ranked", False))


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
        raise ConfigError(f"max_proposals must be >= 1, got {config.max_proposals}")
    names = config.sources
    if not names:
        raise ConfigError(f"no proposal source in {config.method!r}; known: {', '.join(PROPOSAL_SOURCES.names())}")
    height, width = image.shape
    sources = [PROPOSAL_SOURCES.get(name) for name in names]
    ranked = [is_ranked(source) for source in sources]
    per_source = [finalize_boxes(source(image, config, low_texture_mask), width, height, config, ranked=rank)
                  for source, rank in zip(sources, ranked)]
    return union_proposals(per_source, names, config, ranked)


def union_proposals(per_source: list[np.ndarray], names: list[str], config: ProposalConfig,
                    ranked: list[bool] | None = None) -> Proposals:
    """Union of per-source boxes: cross-source duplicates dropped, total capped, canonical order.

    ``ranked[i]``: source ``i``'s boxes are best first, and its share of the cap keeps the first ones
    (otherwise a fixed pseudo-random subset by box hash).
    """
    ranked = ranked or [False] * len(per_source)
    kept: list[np.ndarray] = []
    for boxes in per_source:
        if kept and len(boxes):
            earlier = np.concatenate(kept)
            boxes = boxes[iou_matrix(boxes, earlier).max(axis=1) <= config.nms_iou] if len(earlier) else boxes
        kept.append(boxes)
    quotas = _share_cap([len(b) for b in kept], config.max_proposals)
    boxes, sources = [], []
    for name, source_boxes, quota, rank in zip(names, kept, quotas, ranked):
        if len(source_boxes) > quota:
            source_boxes = source_boxes[:quota] if rank else \
                source_boxes[np.lexsort((np.arange(len(source_boxes)), _box_hash(source_boxes)))[:quota]]
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


def finalize_boxes(boxes: np.ndarray, width: int, height: int, config: ProposalConfig,
                   ranked: bool = False) -> np.ndarray:
    """Clamp, drop tiny, de-duplicate, cap at ``max_proposals`` by box hash, and sort canonically.

    ``ranked``: the boxes come best first; duplicates keep their first place, the cap keeps the first
    ``max_proposals`` and the result stays in that order.
    """
    boxes = clamp_boxes(boxes, width, height)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    keep = (box_areas(boxes) >= config.min_area) & (w >= config.min_side) & (h >= config.min_side)
    if ranked:
        boxes = boxes[keep]
        if not len(boxes):
            return boxes.astype(np.int32).reshape(0, 4)
        _, first = np.unique(boxes, axis=0, return_index=True)
        return boxes[np.sort(first)][: config.max_proposals].astype(np.int32)
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
