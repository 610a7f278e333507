"""The review queue: stored frames in the order they need a human, each with its boxes and review state.

Frames come from the ``frames`` table (metadata only, no images), boxes from a ``csf detect`` run
(:mod:`cs_features.review.detections`) and the stored ground truth, frame scores from the detections (the
frame score) or else from the newest autoencoder model in ``error_maps``. "Needs a human most" is the
priority order: frames nobody decided on first, among them those whose undecided boxes lie nearest the
decision threshold (``|p - positive_p|``); frames without boxes follow, nearest the autoencoder's
threshold first. Summaries are rebuilt from ``annotations`` after every write (:meth:`ReviewQueue.refresh`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cs_features.errors import InputError
from cs_features.ids import proposal_id
from cs_features.review.annotations import box_key, read_annotations
from cs_features.review.detections import DetectionSet
from cs_features.review.truth import replay
from cs_features.store import FRAMES, FeatureStore

FRAME_COLUMNS = ["frame_id", "path", "stem", "split", "label", "embryo_id", "frame_index", "width", "height", "has_gt",
                 "gt_boxes"]
SORTS = ("priority", "score", "embryo", "time")
VERDICT_FILTERS = ("all", "unreviewed", "reviewed", "accepted", "rejected", "drawn", "cs_free")
ERROR_MAPS = "error_maps"  # written by cs_features.autoencoder.scoring (not imported: that pulls in torch)


@dataclass
class QueueItem:
    """One frame in the queue: where it comes from, its score, its priority ``margin`` (smaller: sooner), its
    box counts and the decisions on it (``{verdict: count}``)."""

    frame_id: str
    stem: str
    split: str
    label: str
    embryo_id: str
    frame_index: int
    score: float | None
    margin: float
    boxes: int
    undecided: int
    decisions: dict = field(default_factory=dict)
    cs_free: bool = False

    @property
    def reviewed(self) -> bool:
        return bool(self.decisions)

    def matches(self, verdict: str) -> bool:
        wanted = {"all": True, "unreviewed": not self.reviewed, "reviewed": self.reviewed, "cs_free": self.cs_free,
                  "accepted": bool(self.decisions.get("accept")), "rejected": bool(self.decisions.get("reject")),
                  "drawn": bool(self.decisions.get("draw"))}
        return wanted[verdict]


def newest_error_maps(store: FeatureStore) -> tuple[str | None, dict[str, float], float | None]:
    """``(model_id, {frame_id: score}, threshold)`` of the autoencoder model scored last (None, {}, None
    without an ``error_maps`` table)."""
    if not store.has_table(ERROR_MAPS):
        return None, {}, None
    rows = store.read(ERROR_MAPS, ["frame_id", "model_id", "score", "threshold", "scored_at"])
    if rows.num_rows == 0:
        return None, {}, None
    latest = rows.sort_by([("scored_at", "descending")]).slice(0, 1).to_pylist()[0]
    mine = [r for r in rows.to_pylist() if r["model_id"] == latest["model_id"]]
    return latest["model_id"], {r["frame_id"]: float(r["score"]) for r in mine}, float(latest["threshold"])


class ReviewQueue:
    """The frames of a store with their boxes, scores and review state, sorted and filtered on request.

    Args:
        store: the feature store (its frames are the queue).
        detections: boxes and scores from a ``csf detect`` run, or None (ground truth and drawn boxes only).
    """

    def __init__(self, store: FeatureStore, detections: DetectionSet | None = None) -> None:
        self.store = store
        self.detections = detections or DetectionSet(positive_p=0.5, ae_threshold=None)
        self.has_detections = detections is not None
        rows = store.read(FRAMES, FRAME_COLUMNS).to_pylist()
        self.frames = {row["frame_id"]: row for row in rows}
        self.ae_model, self.ae_scores, self.ae_threshold = newest_error_maps(store)
        if self.ae_threshold is None:
            self.ae_threshold = self.detections.ae_threshold
        self.threshold = self.detections.positive_p if self.has_detections else self.ae_threshold
        self.annotations: dict[str, list[dict]] = {}
        self.items: dict[str, QueueItem] = {}
        self.refresh()

    # ---- state -------------------------------------------------------------------------------
    def refresh(self, frame_ids: list[str] | None = None) -> None:
        """Re-read the decisions (of ``frame_ids``, or all) and rebuild those frames' queue items."""
        if frame_ids is None:
            self.annotations = {}
            for row in read_annotations(self.store).to_pylist():
                self.annotations.setdefault(row["frame_id"], []).append(row)
            frame_ids = list(self.frames)
        else:
            for frame_id in frame_ids:
                self.annotations[frame_id] = read_annotations(self.store, frame_id).to_pylist()
        for frame_id in frame_ids:
            self.items[frame_id] = self._item(frame_id)

    def frame(self, frame_id: str) -> dict:
        """The stored row of ``frame_id``.

        Raises:
            InputError: no such frame in the store.
        """
        row = self.frames.get(frame_id)
        if row is None:
            raise InputError(f"no frame {frame_id!r} in {self.store.uri!r}")
        return row

    def score(self, frame_id: str) -> float | None:
        """The frame's score: the detections' frame score, else the autoencoder's score (None: neither)."""
        if self.has_detections:
            return self.detections.frame_score.get(frame_id)
        return self.ae_scores.get(frame_id)

    def frame_boxes(self, frame_id: str) -> list[dict]:
        """The boxes of a frame with their state: detections (best p first), stored truth, drawn boxes.

        Each is ``{"key", "box", "p", "kind" ("detection", "truth", "drawn"), "verdict" (None, "accept",
        "reject", "draw", or "cs_free" when a later CS-free mark cleared it), "reviewer", "proposal_id"}``.
        """
        frame = self.frame(frame_id)
        entries: dict[str, dict] = {}
        for b in sorted(self.detections.boxes.get(frame_id, []), key=lambda b: -b["p"]):
            entries[b["proposal_id"]] = {"key": b["proposal_id"], "box": b["box"], "p": b["p"], "kind": "detection",
                                         "verdict": None, "reviewer": None, "proposal_id": b["proposal_id"]}
        for box in frame["gt_boxes"] or []:
            key = proposal_id(frame_id, box)
            entries.setdefault(key, {"key": key, "box": list(box), "p": None, "kind": "truth", "verdict": None,
                                     "reviewer": None, "proposal_id": None})
        for row in self.annotations.get(frame_id, []):
            if row["verdict"] == "cs_free":
                for entry in entries.values():
                    entry["verdict"], entry["reviewer"] = "cs_free", row["reviewer"]
                continue
            key = box_key(row["proposal_id"], frame_id, row["box"])
            entry = entries.setdefault(key, {"key": key, "p": row["score"], "kind": "drawn", "proposal_id": key})
            entry.update(box=list(row["box"]), verdict=row["verdict"], reviewer=row["reviewer"])
        return list(entries.values())

    def _item(self, frame_id: str) -> QueueItem:
        frame, boxes = self.frames[frame_id], self.frame_boxes(frame_id)
        rows = self.annotations.get(frame_id, [])
        decisions: dict[str, int] = {}
        for row in rows:
            decisions[row["verdict"]] = decisions.get(row["verdict"], 0) + 1
        undecided = [b for b in boxes if b["kind"] == "detection" and b["verdict"] is None]
        score = self.score(frame_id)
        if undecided:
            margin = min(abs(b["p"] - self.detections.positive_p) for b in undecided)
        elif self.ae_scores.get(frame_id) is not None and self.ae_threshold:
            margin = 1.0 + abs(self.ae_scores[frame_id] - self.ae_threshold) / abs(self.ae_threshold)
        else:
            margin = math.inf
        stored = np.asarray(frame["gt_boxes"] or [], np.int32).reshape(-1, 4) if frame["has_gt"] else None
        truth = replay(frame_id, rows, stored) if rows else None
        return QueueItem(frame_id, frame["stem"] or "", frame["split"] or "", frame["label"] or "",
                         frame["embryo_id"] or "", int(frame["frame_index"] or 0), score, margin, len(boxes),
                         len(undecided), decisions, bool(truth and truth.cs_free))

    # ---- ordering ----------------------------------------------------------------------------
    def ordered(self, sort: str = "priority", split: str = "", embryo: str = "",
                verdict: str = "all") -> list[QueueItem]:
        """The queue's items under a sort and filters (empty filter strings keep everything).

        Raises:
            InputError: an unknown sort or verdict filter (the message lists the accepted ones).
        """
        if sort not in SORTS:
            raise InputError(f"sort {sort!r} is not one of {', '.join(SORTS)}")
        if verdict not in VERDICT_FILTERS:
            raise InputError(f"verdict filter {verdict!r} is not one of {', '.join(VERDICT_FILTERS)}")
        items = [i for i in self.items.values() if (not split or i.split == split)
                 and (not embryo or i.embryo_id == embryo) and i.matches(verdict)]
        keys = {"priority": lambda i: (i.reviewed, i.margin, i.embryo_id, i.frame_index),
                "score": lambda i: (i.score is None, -(i.score or 0.0), i.embryo_id, i.frame_index),
                "embryo": lambda i: (i.embryo_id, i.frame_index, i.stem),
                "time": lambda i: (i.frame_index, i.embryo_id, i.stem)}
        return sorted(items, key=keys[sort])

    def next_frame(self, frame_id: str, **filters) -> str | None:
        """The frame to review after ``frame_id``: in priority order the first undecided other frame, else
        the one after it in the chosen order (None at the end)."""
        items = self.ordered(**filters)
        if filters.get("sort", "priority") == "priority":
            for item in items:
                if item.frame_id != frame_id and not item.reviewed:
                    return item.frame_id
        ids = [i.frame_id for i in items]
        if frame_id not in ids:
            return ids[0] if ids else None
        position = ids.index(frame_id) + 1
        return ids[position] if position < len(ids) else None

    def timeline(self, embryo_id: str) -> list[dict]:
        """The embryo's frames in time order: ``{"frame_id", "stem", "frame_index", "score", "reviewed"}``."""
        items = sorted((i for i in self.items.values() if i.embryo_id == embryo_id), key=lambda i: i.frame_index)
        return [{"frame_id": i.frame_id, "stem": i.stem, "frame_index": i.frame_index, "score": i.score,
                 "reviewed": i.reviewed} for i in items]

    def choices(self) -> dict[str, list[str]]:
        """The splits and embryos present (for the filter menus)."""
        return {"splits": sorted({i.split for i in self.items.values() if i.split}),
                "embryos": sorted({i.embryo_id for i in self.items.values() if i.embryo_id})}
