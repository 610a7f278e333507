"""Automatic train/val/test split for a dataset that gives none: grouped by embryo, stratified by label.

Every frame of an embryo lands in one split (no leakage). Embryos are stratified by whether any of their
frames shows strings, so each split gets CS and CS-free embryos whenever a stratum has enough embryos.
Within a stratum, embryos are shuffled with the seed, each split with a non-zero fraction first gets one
embryo (when there are enough), then every further embryo goes to the split furthest below its target
share of the stratum's frames. Same embryos, labels, fractions and seed: same split.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cs_features.datasets.layout import SPLITS
from cs_features.errors import DatasetError

DEFAULT_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def check_split_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    """Fractions for (train, val, test), normalised to sum 1.

    Raises:
        DatasetError: not three non-negative numbers with a positive train fraction.
    """
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not np.isfinite(f) or f < 0 for f in values) or values[0] <= 0:
        raise DatasetError(f"split fractions {fractions!r} must be three non-negative numbers (train, val, test) "
                           "with train > 0, e.g. (0.6, 0.2, 0.2)")
    total = sum(values)
    return tuple(f / total for f in values)


def grouped_stratified_split(frame_embryos: list[str], frame_labels: list[str],
                             fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                             seed: int = 0) -> dict[str, str]:
    """Assign each embryo to ``"train"``, ``"val"`` or ``"test"``.

    Args:
        frame_embryos, frame_labels: per frame, its embryo id and label (``"normal"``/``"abnormal"``).
        fractions: target shares of frames for train, val, test.
        seed: the shuffle's seed.

    Returns:
        ``{embryo_id: split}``.
    """
    if len(frame_embryos) != len(frame_labels):
        raise ValueError(f"{len(frame_embryos)} embryo ids but {len(frame_labels)} labels")
    shares = np.asarray(check_split_fractions(fractions))
    frames = Counter(frame_embryos)
    has_cs = {embryo: False for embryo in frames}
    for embryo, label in zip(frame_embryos, frame_labels):
        has_cs[embryo] |= label == "abnormal"
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for stratum in (True, False):
        embryos = sorted(e for e in frames if has_cs[e] == stratum)
        order = [embryos[i] for i in rng.permutation(len(embryos))]
        assignment.update(_fill_splits(order, frames, shares))
    return assignment


def _fill_splits(order: list[str], frames: Counter, shares: np.ndarray) -> dict[str, str]:
    """Seed each used split with one embryo, then give each embryo to the split furthest below its target."""
    targets = shares * sum(frames[e] for e in order)
    assigned = np.zeros(len(SPLITS))
    used = [i for i in range(len(SPLITS)) if shares[i] > 0]
    out: dict[str, str] = {}
    for position, embryo in enumerate(order):
        if position < len(used) and len(order) >= len(used):
            index = used[position]
        else:
            deficit = np.where(shares > 0, targets - assigned, -np.inf)
            index = int(np.argmax(deficit))
        out[embryo] = SPLITS[index]
        assigned[index] += frames[embryo]
    return out
