"""The string-count prior of box ranking: a frame holds few strings.

After NMS, a frame's boxes are its candidates for distinct strings. Its first box says the frame holds a
string; each further box says it holds one more, which is rarer. Ranked by their scores alone, a frame's
second and third boxes (most often pieces of the string found already, boxes much larger than it, or
other lines of the same frame) come before the first boxes of other frames, and detection AP counts
every such box as a false positive ahead of a string.

The prior multiplies the rank score of the box a frame keeps in ``k``-th place (``k = 0, 1, ...``, after
NMS) by ``share ** k``. ``share`` is learned from the user's labels when a region head is trained
(:func:`second_string_share` of the train and val splits' frames with strings, saved in the head's
``config.json``): the share of frames with strings that hold a second one. A frame's order of boxes is
kept; only how one frame's later boxes interleave with other frames' boxes changes, and a frame's score
(its best box's p) does not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cs_features.errors import ConfigError

__all__ = ["CountPrior", "count_factors", "second_string_share"]


@dataclass(frozen=True)
class CountPrior:
    """Settings of the string-count prior (module docstring).

    Args:
        enabled: False ranks every kept box by its own score (factor 1).
        share: the factor's base; None takes the share the region head learned from its store's labels
            (a head saved without one, before the prior existed, ranks with factor 1).
    """

    enabled: bool = True
    share: float | None = None

    def __post_init__(self) -> None:
        if self.share is not None and not 0.0 < self.share <= 1.0:
            raise ConfigError(f"string-count prior share must be in (0, 1], got {self.share!r}")

    def decay(self, head: object | None = None) -> float:
        """The base of the factors for boxes ranked by ``head``: 1 when off or when nothing was learned."""
        if not self.enabled:
            return 1.0
        if self.share is not None:
            return float(self.share)
        learned = getattr(head, "second_string_share_", None)
        return 1.0 if learned is None else float(learned)

    def to_dict(self) -> dict:
        return asdict(self)


def second_string_share(strings_per_frame) -> float:
    """The share of frames with strings that hold a second one, Laplace-smoothed:
    ``(frames with >= 2 strings + 1) / (frames with >= 1 string + 2)``, in (0, 1).

    Args:
        strings_per_frame: ``(F,)`` the number of labelled strings of each frame (CS-free frames, 0, are
            left out).
    """
    counts = np.asarray(strings_per_frame, np.int64).reshape(-1)
    with_strings = counts[counts > 0]
    return float((np.count_nonzero(with_strings >= 2) + 1) / (len(with_strings) + 2))


def count_factors(n: int, decay: float) -> np.ndarray:
    """``(n,)`` float64 factors ``decay ** k`` of a frame's kept boxes in rank order."""
    return np.power(float(decay), np.arange(int(n), dtype=np.float64))
