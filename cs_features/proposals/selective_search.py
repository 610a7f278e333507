"""OpenCV Selective Search as proposal sources.

``ss-fast``, ``ss-quality`` and ``ss-single`` are OpenCV's modes exactly as published: each segments the
frame converted to three identical colour channels, ``ss-fast`` in two colour spaces at two k. On a
grey frame that repeats work: the colour spaces carry the same grey levels, and the graph segmentation
(about 0.17 CPU-s per k on a 500 px frame) dominates the cost. ``ss-grey`` (the default) segments the one
grey channel of the frame shrunk to ``grey_max_side`` px at two k (50 and 300: finer and coarser regions
than the published 150 and 300), groups with the colour + size + fill strategy, and maps the boxes back
to the frame's pixels: about a tenth of ``ss-fast``'s time, with recall at least as high on the synthetic
presets (``benchmarks/bench_proposals.py``).
"""

from __future__ import annotations

import numpy as np

from cs_features.errors import ConfigError
from cs_features.proposals.config import ProposalConfig
from cs_features.proposals.union import PROPOSAL_SOURCES
from cs_features.runtime import cv2_threads


def _selective_search(image: np.ndarray, mode: str, config: ProposalConfig) -> np.ndarray:
    import cv2

    # Selective Search wants 3 channels; single-threaded so the result does not depend on scheduling.
    with cv2_threads(1):
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
    return np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]],
                    1).astype(np.int32)


def _grey_selective_search(image: np.ndarray, config: ProposalConfig) -> np.ndarray:
    import cv2

    segmentation = cv2.ximgproc.segmentation
    height, width = image.shape
    factor = min(1.0, config.grey_max_side / max(height, width)) if config.grey_max_side > 0 else 1.0
    small = image if factor >= 1.0 else cv2.resize(
        image, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
    with cv2_threads(1):
        search = segmentation.createSelectiveSearchSegmentation()
        search.addImage(small)
        for k in config.grey_ks:
            search.addGraphSegmentation(segmentation.createGraphSegmentation(
                float(config.ss_sigma), float(k), int(config.grey_min_size)))
        search.addStrategy(segmentation.createSelectiveSearchSegmentationStrategyMultiple(
            segmentation.createSelectiveSearchSegmentationStrategyColor(),
            segmentation.createSelectiveSearchSegmentationStrategySize(),
            segmentation.createSelectiveSearchSegmentationStrategyFill()))
        rects = search.process()
    if rects is None or len(rects) == 0:
        return np.zeros((0, 4), np.int32)
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1)
    # Back to the frame's pixels: corners scale exactly (x / factor), rounded to the nearest pixel.
    return np.round(boxes * np.array([width / small.shape[1], height / small.shape[0]] * 2)).astype(np.int32)


@PROPOSAL_SOURCES.register("ss-grey")
def selective_search_grey(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """Selective Search on the grey channel of the shrunk frame at several k (the default source)."""
    if config.grey_max_side < 0 or not config.grey_ks or min(config.grey_ks) <= 0 or config.grey_min_size < 1:
        raise ConfigError(f"ss-grey needs grey_max_side >= 0, grey_ks > 0 and grey_min_size >= 1, got "
                          f"{config.grey_max_side}, {list(config.grey_ks)}, {config.grey_min_size}")
    return _grey_selective_search(image, config)


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
