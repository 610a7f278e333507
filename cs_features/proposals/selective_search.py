"""OpenCV Selective Search as a proposal source, exactly as published (fast, quality, single strategy)."""

from __future__ import annotations

import numpy as np

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
