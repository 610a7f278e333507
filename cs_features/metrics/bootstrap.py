"""Confidence intervals by resampling whole embryos.

The frames of one embryo are a time-lapse of one object: its strings, cavity and distractors repeat from
frame to frame, so its frames are not independent draws, and an interval that resamples frames (or strings)
one by one is too narrow. :func:`embryo_bootstrap` resamples embryos with replacement, keeps every item
(string, frame) of each embryo drawn, and reads the statistic on the pooled items; the interval is the
percentile interval of those values. With the transfer protocol's 24 test embryos it says how far a figure
can move from one seed family of embryos to the next.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["embryo_bootstrap"]


def embryo_bootstrap(embryo_ids: Sequence[str], statistic: Callable[[np.ndarray], float | None],
                     resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Percentile interval of ``statistic`` over resamples of whole embryos.

    Args:
        embryo_ids: ``(N,)`` the embryo of each item (a string, a frame).
        statistic: takes ``(M,)`` int indices into the items (an embryo drawn twice gives its items twice) and
            returns the figure, or None where it is undefined on that resample (an AUROC with one class).
        resamples: how many resamples of the embryos.
        confidence: the interval's coverage, in (0, 1).
        seed: the resampling's seed (the same seed, the same interval).

    Returns:
        ``{"low", "high"}`` the interval's ends (None when no resample gave a value), ``"resamples"`` how many
        gave one, ``"embryos"`` how many embryos there are.

    Raises:
        ValueError: no item, ``resamples`` < 1 or ``confidence`` outside (0, 1).
    """
    ids = np.asarray(embryo_ids).astype(str)
    if not ids.size:
        raise ValueError("embryo_bootstrap needs at least one item")
    if int(resamples) < 1 or not 0 < confidence < 1:
        raise ValueError(f"resamples must be >= 1 and confidence in (0, 1), got {resamples!r} and {confidence!r}")
    embryos, owner = np.unique(ids, return_inverse=True)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(len(embryos) + 1))
    items = [order[starts[k]:starts[k + 1]] for k in range(len(embryos))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(resamples)):
        drawn = rng.integers(0, len(embryos), len(embryos))
        value = statistic(np.concatenate([items[k] for k in drawn]))
        if value is not None:
            values.append(float(value))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if values else (None, None)
    return {"low": None if low is None else float(low), "high": None if high is None else float(high),
            "resamples": len(values), "embryos": len(embryos)}
