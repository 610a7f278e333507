"""Filament-aware region proposals: boxes around thin curvilinear paths inside the embryo.

Selective Search groups colour/texture regions; a 1-3 px string is not a region, so its box is rarely
proposed. This source looks for the strings themselves:

1. **Ridge map**: multi-scale Hessian line measure (sigmas 1-2 px, scale-normalised), bright and dark
   ridges alike (relief contrast shows strings either way), blobs suppressed (both eigenvalues large).
2. **Embryo interior**: the low-texture mask's components that do not touch the frame border (the
   blastocoel; the medium outside the zona touches the border), or the whole frame when none is found.
3. **Hysteresis threshold** on robust statistics of the ridge map inside the interior, then
   skeletonisation and removal of short specks.
4. **Branches and paths**: junction pixels split the skeleton into simple branches (ordered pixel
   lists); branch ends are linked across gaps and crossings when they are close and their directions
   continue smoothly, giving whole curvilinear paths.
5. **Boxes** around each whole path, each branch, and sub-paths of several lengths (strings are often
   partly out of focus, so partial paths matter), padded by the string's half-thickness.
"""

from __future__ import annotations

import numpy as np

from cs_features.embryo import embryo_interior
from cs_features.proposals.config import FilamentConfig, ProposalConfig
from cs_features.proposals.union import PROPOSAL_SOURCES
from cs_features.ridges import line_strength


def filament_skeleton(image: np.ndarray, low_texture_mask: np.ndarray | None, config: FilamentConfig) -> np.ndarray:
    """Binary skeleton ``(H, W)`` bool of ridge pixels inside the embryo interior."""
    import cv2
    from skimage.filters import apply_hysteresis_threshold
    from skimage.morphology import skeletonize

    ridges = line_strength(image, config.sigmas)
    interior = embryo_interior(low_texture_mask, image.shape)
    values = ridges[interior]
    median = float(np.median(values))
    spread = float(np.median(np.abs(values - median))) * 1.4826 + 1e-6
    masked = np.where(interior, ridges, 0)
    binary = apply_hysteresis_threshold(masked, median + config.low_k * spread, median + config.high_k * spread)
    # Relief contrast shows a string as a bright and a dark line side by side: close merges the pair.
    binary = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    return _drop_short(skeletonize(binary), config.min_length)


def _drop_short(skeleton: np.ndarray, min_pixels: int) -> np.ndarray:
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(skeleton.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels]


_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def skeleton_branches(skeleton: np.ndarray, min_length: int = 5) -> list[np.ndarray]:
    """Split a skeleton at its junctions into simple branches.

    Returns:
        a list of ``(L, 2)`` int arrays of ``(row, col)`` pixels, each ordered from one end to the other.
    """
    import cv2

    skel = skeleton.astype(np.uint8)
    neighbours = cv2.filter2D(skel, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT) - skel
    simple = (skel > 0) & (neighbours <= 2)
    count, labels = cv2.connectedComponents(simple.astype(np.uint8), connectivity=8)
    branches = []
    order = np.argsort(labels.ravel(), kind="stable")
    sorted_labels = labels.ravel()[order]
    starts = np.searchsorted(sorted_labels, np.arange(1, count + 1))
    ends = np.append(starts[1:], len(order))
    for start, end in zip(starts, ends):
        if end - start < min_length:
            continue
        flat = order[start:end]
        branches.append(_order_pixels(np.stack(np.unravel_index(flat, skel.shape), axis=1)))
    return branches


def _order_pixels(pixels: np.ndarray) -> np.ndarray:
    """Order the pixels of a simple 8-connected curve from one end to the other (a walk)."""
    members = {(int(r), int(c)) for r, c in pixels}

    def degree(p):
        return sum((p[0] + dr, p[1] + dc) in members for dr, dc in _NEIGHBOURS)

    start = min(members, key=lambda p: (degree(p), p))
    path, seen, current = [start], {start}, start
    while True:
        step = [(current[0] + dr, current[1] + dc) for dr, dc in _NEIGHBOURS
                if (current[0] + dr, current[1] + dc) in members and (current[0] + dr, current[1] + dc) not in seen]
        if not step:
            break
        # Prefer 4-neighbours so the walk does not skip a pixel of a staircase.
        current = min(step, key=lambda p: abs(p[0] - current[0]) + abs(p[1] - current[1]))
        path.append(current)
        seen.add(current)
    return np.asarray(path, dtype=np.int32)


def _end_direction(branch: np.ndarray, at_start: bool, span: int = 15) -> np.ndarray:
    """Unit vector pointing OUT of the branch at one end (row, col)."""
    if at_start:
        a, b = branch[min(span, len(branch) - 1)], branch[0]
    else:
        a, b = branch[max(len(branch) - 1 - span, 0)], branch[-1]
    vector = (b - a).astype(np.float64)
    norm = np.hypot(*vector)
    return vector / norm if norm > 0 else vector


def link_branches(branches: list[np.ndarray], max_distance: float, max_angle_deg: float) -> list[np.ndarray]:
    """Join branches whose ends face each other across a gap or a crossing into longer paths.

    Two ends are linked when they are within ``max_distance`` px, each end's outward direction points
    towards the other end, and the two directions are anti-parallel within ``max_angle_deg``. Pairs are
    joined greedily by a cost of distance and bend; each end is used once.

    Returns:
        paths as ``(L, 2)`` int32 ordered ``(row, col)`` pixel arrays (linked gaps are not filled).
    """
    ends = []
    for index, branch in enumerate(branches):
        for at_start in (True, False):
            ends.append((index, at_start, branch[0] if at_start else branch[-1], _end_direction(branch, at_start)))
    cos_limit = np.cos(np.radians(max_angle_deg))
    candidates = []
    for i in range(len(ends)):
        for j in range(i + 1, len(ends)):
            bi, si, pi, di = ends[i]
            bj, sj, pj, dj = ends[j]
            if bi == bj:
                continue
            gap = (pj - pi).astype(np.float64)
            distance = float(np.hypot(*gap))
            if distance > max_distance:
                continue
            towards = gap / distance if distance > 0 else di
            bend = min(float(np.dot(di, towards)), float(np.dot(dj, -towards)), float(-np.dot(di, dj)))
            if bend >= cos_limit:
                candidates.append((distance * (2 - bend), i, j))
    partner: dict[int, int] = {}
    for _, i, j in sorted(candidates):
        if i not in partner and j not in partner:
            partner[i], partner[j] = j, i
    return _chain(branches, partner)


def _chain(branches: list[np.ndarray], partner: dict[int, int]) -> list[np.ndarray]:
    """Walk linked ends into ordered paths; end index = 2 * branch + (0 for its start, 1 for its end)."""
    used = [False] * len(branches)
    paths = []
    for first in range(len(branches)):
        if used[first]:
            continue
        head, entry = first, 0  # walk backwards to the chain's free end (or around a cycle)
        while (other := partner.get(2 * head + entry)) is not None:
            head, entry = other // 2, 1 - other % 2
            if head == first:
                head, entry = first, 0
                break
        pieces, current = [], head
        while not used[current]:
            used[current] = True
            pieces.append(branches[current] if entry == 0 else branches[current][::-1])
            other = partner.get(2 * current + 1 - entry)
            if other is None:
                break
            current, entry = other // 2, other % 2
        paths.append(np.concatenate(pieces))
    return paths


def path_boxes(paths: list[np.ndarray], width: int, height: int, config: FilamentConfig) -> np.ndarray:
    """Boxes around whole paths and sub-paths of several lengths, at each padding.

    Args:
        paths: ordered ``(L, 2)`` ``(row, col)`` pixel arrays.

    Returns:
        ``(N, 4)`` int32 boxes (not yet clamped, sorted or de-duplicated).
    """
    boxes = []
    for path in paths:
        steps = np.hypot(*np.diff(path, axis=0).T) if len(path) > 1 else np.zeros(0)
        arc = np.concatenate([[0.0], np.cumsum(steps)])
        total = arc[-1]
        spans = [(0.0, total)]
        for fraction in config.sub_fractions:
            length = fraction * total
            if length < config.min_length:
                continue
            starts = np.arange(0.0, total - length + 1e-6, length / 2)
            spans.extend((start, start + length) for start in starts)
        for start, stop in spans:
            chosen = path[(arc >= start) & (arc <= stop)]
            if len(chosen) == 0:
                continue
            (r1, c1), (r2, c2) = chosen.min(axis=0), chosen.max(axis=0)
            boxes.extend([c1 - pad, r1 - pad, c2 + 1 + pad, r2 + 1 + pad] for pad in config.pads)
    return np.asarray(boxes, np.int32).reshape(-1, 4)


def filament_proposals(image: np.ndarray, low_texture_mask: np.ndarray | None,
                       config: FilamentConfig = FilamentConfig()) -> np.ndarray:
    """Filament proposals for one preprocessed frame.

    Args:
        image: ``(H, W)`` uint8 preprocessed frame; low_texture_mask: ``(H, W)`` bool or None.

    Returns:
        ``(N, 4)`` int32 raw boxes (the caller clamps, de-duplicates, sorts and caps).
    """
    skeleton = filament_skeleton(image, low_texture_mask, config)
    branches = skeleton_branches(skeleton, min_length=5)
    # Longest branches first, so the cap on paths keeps the strings rather than specks.
    branches.sort(key=len, reverse=True)
    paths = link_branches(branches[: 4 * config.max_paths], config.link_distance, config.link_angle_deg)
    paths.sort(key=len, reverse=True)
    paths = [p for p in paths if len(p) >= config.min_length][: config.max_paths]
    singles = [b for b in branches[: config.max_paths] if len(b) >= config.min_length]
    pairs = _end_to_end_pairs(paths, config.pair_distance)
    boxes = path_boxes(paths + singles, image.shape[1], image.shape[0], config)
    return np.concatenate([boxes, _union_boxes(pairs, config.pads)])


def _end_to_end_pairs(paths: list[np.ndarray], max_distance: float) -> list[np.ndarray]:
    """Concatenations of two paths whose ends meet (within ``max_distance``) at any angle.

    Linking follows smooth continuations only; where two strings cross at a shallow angle or a string
    meets another structure, the right continuation may be the sharper one, so each meeting pair is
    also offered as one candidate.
    """
    ends = np.array([[p[0], p[-1]] for p in paths], dtype=np.float64).reshape(-1, 2, 2)
    pairs = []
    for i in range(len(paths)):
        gaps = np.linalg.norm(ends[i][:, None, None, :] - ends[i + 1:][None, :, :, :], axis=-1)
        close = np.flatnonzero((gaps.reshape(2, -1, 2) <= max_distance).any(axis=(0, 2)))
        pairs.extend(np.concatenate([paths[i], paths[i + 1 + j]]) for j in close)
    return pairs


def _union_boxes(pairs: list[np.ndarray], pads: tuple[int, ...]) -> np.ndarray:
    boxes = []
    for pixels in pairs:
        (r1, c1), (r2, c2) = pixels.min(axis=0), pixels.max(axis=0)
        boxes.extend([c1 - pad, r1 - pad, c2 + 1 + pad, r2 + 1 + pad] for pad in pads)
    return np.asarray(boxes, np.int32).reshape(-1, 4)


@PROPOSAL_SOURCES.register("filament")
def filament_source(image: np.ndarray, config: ProposalConfig, low_texture_mask=None) -> np.ndarray:
    """Boxes around thin curvilinear paths inside the embryo (see :mod:`cs_features.filament`)."""
    return filament_proposals(image, low_texture_mask, config.filament)
