"""Self-training of the string map on the user's unlabelled time-lapses (``csf train strings --unlabelled-store``).

A map learned on one camera's labelled frames reads another camera's frames with less certainty: trained
on the transfer protocol's ``clean`` world, it lights the ``hard`` world's strings and the structures that
look like them alike. A lab has thousands of unlabelled frames of its own camera, and their time-lapse
tells the two apart: a cytoplasmic string appears and snaps, while a fibre of the medium, a membrane ridge
or a cell boundary is there in every frame of the embryo (the premise of :mod:`cs_features.transience`).
So the first map, trained on the labelled store as ever, reads every unlabelled frame, and pixels inside
the embryo's interior are labelled from that map and from the embryo's other frames' maps (their
:class:`~cs_features.transience.EmbryoLines` background: per pixel the lowest of the other frames' maps,
dilated and aligned on the embryo circle):

- positives: the map at or above ``lit`` where the background is at or below ``quiet`` (a lit line the
  embryo's other frames do not show);
- persistent negatives: the map and the background both at or above ``persistent`` (lit in every frame);
- dark negatives: the map at or below ``dark``.

At most ``positives``, ``persistent_negatives`` and ``dark_negatives`` of each are drawn per frame, seeded
by the run's seed and the frame id. A second map of the same hyperparameters is trained on the labelled
pixels plus these (their total weight ``share`` times the labelled pixels', half of it to each class) and
early-stopped on the labelled val split, as the first. The unlabelled store's labels and boxes are never
read. Frames alone in their embryo (no time-lapse) or whose embryo was not found give no pixel: there is
no other frame to tell a string from a structure that stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from cs_features.config import check_fields, coerce_number
from cs_features.embryo import embryo_interior
from cs_features.scale import STORED_CIRCLE_COLUMNS, stored_circle
from cs_features.store.schemas import FRAMES
from cs_features.strings.data import StoreFrame, iter_frames
from cs_features.strings.features import feature_names
from cs_features.strings.model import StringMapModel
from cs_features.strings.sampling import frame_rng
from cs_features.transience import EmbryoLines, TransiencePrior

__all__ = ["SelfTraining", "PseudoPixels", "pseudo_pixels", "pseudo_weights"]


@dataclass(frozen=True)
class SelfTraining:
    """How unlabelled frames are labelled and weighed (see the module docstring)."""

    share: float = 0.5
    lit: float = 0.9
    quiet: float = 0.3
    persistent: float = 0.7
    dark: float = 0.3
    positives: int = 150
    persistent_negatives: int = 750
    dark_negatives: int = 1500

    def __post_init__(self) -> None:
        for name in ("share", "lit", "quiet", "persistent", "dark"):
            object.__setattr__(self, name, coerce_number(self, name, float))
        for name in ("positives", "persistent_negatives", "dark_negatives"):
            object.__setattr__(self, name, coerce_number(self, name, int))
        check_fields(self, [
            ("share", self.share > 0, "a number > 0"),
            ("lit", 0 < self.lit <= 1, "a level in (0, 1]"),
            ("quiet", 0 <= self.quiet < self.lit, "a level in [0, lit)"),
            ("persistent", 0 < self.persistent <= 1, "a level in (0, 1]"),
            ("dark", 0 <= self.dark < self.lit, "a level in [0, lit)"),
            ("positives", self.positives >= 1, "an integer >= 1"),
            ("persistent_negatives", self.persistent_negatives >= 0, "an integer >= 0"),
            ("dark_negatives", self.dark_negatives >= 0, "an integer >= 0"),
        ])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PseudoPixels:
    """Pseudo-labelled pixels: ``X`` (N, F) float32 filter-bank rows, ``y`` (N,) int8, and ``counts``
    (frames read, frames used, embryos, pixels of each kind)."""

    X: np.ndarray
    y: np.ndarray
    counts: dict


def pseudo_weights(y: np.ndarray, labelled_weight: float, share: float) -> np.ndarray:
    """``(N,)`` float32 weights of pseudo-labelled pixels ``y``: ``share * labelled_weight`` in all, half to
    each class present."""
    y = np.asarray(y)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    half = share * float(labelled_weight) / 2.0
    return np.where(y == 1, half / max(n_pos, 1), half / max(n_neg, 1)).astype(np.float32)


def embryo_groups(rows: list[dict]) -> list[list[dict]]:
    """``rows`` (:func:`~cs_features.strings.data.frame_rows`) grouped by embryo id, in order of first
    appearance; frames without an embryo id and embryos of one frame are left out (no time-lapse)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("embryo_id"):
            groups.setdefault(row["embryo_id"], []).append(row)
    return [group for group in groups.values() if len(group) > 1]


def _draw(rng: np.random.Generator, candidates: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(candidates, n, replace=False) if len(candidates) > n else candidates


def frame_pseudo_labels(string_map: np.ndarray, background: np.ndarray, inside: np.ndarray,
                        settings: SelfTraining, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One frame's pseudo-labels: ``string_map``, ``background`` ``(H, W)`` float32, ``inside`` ``(H, W)`` bool
    -> ``(N,)`` int64 indices into ``H * W``, ``(N,)`` int8 labels, and how many positives, persistent
    negatives and dark negatives they hold (module docstring)."""
    value, other, inside = string_map.reshape(-1), background.reshape(-1), inside.reshape(-1)
    kinds = [
        _draw(rng, np.flatnonzero(inside & (value >= settings.lit) & (other <= settings.quiet)), settings.positives),
        _draw(rng, np.flatnonzero(inside & (value >= settings.persistent) & (other >= settings.persistent)),
              settings.persistent_negatives),
        _draw(rng, np.flatnonzero(inside & (value <= settings.dark)), settings.dark_negatives),
    ]
    index = np.concatenate(kinds).astype(np.int64)
    y = np.concatenate([np.ones(len(kinds[0]), np.int8), np.zeros(len(kinds[1]) + len(kinds[2]), np.int8)])
    return index, y, [len(kind) for kind in kinds]


def _circles(store, frame_ids: list[str]) -> dict[str, tuple[float, float, float] | None]:
    wanted = set(frame_ids)
    table = store.read(FRAMES, ["frame_id", *STORED_CIRCLE_COLUMNS])
    return {row["frame_id"]: stored_circle(row) for row in table.to_pylist() if row["frame_id"] in wanted}


def _embryo_maps(store, group: list[dict], model: StringMapModel,
                 circles: dict) -> list[tuple[StoreFrame, np.ndarray, np.ndarray]]:
    """The frames of one embryo whose embryo was found, each with its interior ``(H, W)`` bool and the
    model's map inside it."""
    out = []
    for frame in iter_frames(store, group):
        if circles.get(frame.frame_id) is None:
            continue
        inside = embryo_interior(frame.mask, frame.image.shape)
        out.append((frame, inside, model.predict_map(frame.image, where=inside)))
    return out


def pseudo_pixels(store, rows: list[dict], model: StringMapModel, settings: SelfTraining, seed: int,
                  progress: Callable[[int, int], None] | None = None) -> PseudoPixels:
    """Pseudo-labelled pixels of the frames of ``rows`` of ``store`` under the fitted ``model`` (module
    docstring); ``progress(frames_done, len(rows))``."""
    circles = _circles(store, [row["frame_id"] for row in rows])
    groups = embryo_groups(rows)
    total = sum(map(len, groups))
    parts_X, parts_y = [], []
    kinds = np.zeros(3, np.int64)
    counts = {"frames": len(rows), "frames_in_time_lapses": total, "frames_used": 0, "embryos": 0}
    done = 0
    for group in groups:
        maps = _embryo_maps(store, group, model, circles)
        lines = EmbryoLines(TransiencePrior())
        for frame, _, string_map in maps:
            lines.add(frame.frame_id, string_map, circles[frame.frame_id])
        used = 0
        for frame, inside, string_map in maps:
            background = lines.background(frame.frame_id)
            if background is None:
                continue
            index, y, drawn = frame_pseudo_labels(string_map, background, inside, settings,
                                                  frame_rng(seed, frame.frame_id))
            if not drawn[0] and not drawn[1]:
                continue  # dark pixels alone teach nothing the labelled frames do not
            # the bank again rather than held from the map: an embryo's banks would hold ~40 MB a frame
            features = model.features(frame.image)
            parts_X.append(features.reshape(-1, features.shape[-1])[index])
            parts_y.append(y)
            kinds += drawn
            used += 1
        counts["frames_used"] += used
        counts["embryos"] += int(used > 0)
        done += len(group)
        if progress:
            progress(done, len(rows))
    if progress:  # frames alone in their embryo were not read
        progress(len(rows), len(rows))
    counts.update(positive_pixels=int(kinds[0]), persistent_negative_pixels=int(kinds[1]),
                  dark_negative_pixels=int(kinds[2]))
    if not parts_y:
        return PseudoPixels(np.empty((0, len(feature_names())), np.float32), np.empty(0, np.int8), counts)
    return PseudoPixels(np.concatenate(parts_X), np.concatenate(parts_y), counts)
