"""Ground truth after review: the latest decision per box and per frame, replayed over the stored truth.

A frame's state starts from its stored ground-truth boxes (when it has any) and replays its ``annotations``
rows in time order: ``accept`` and ``draw`` make a box a string, ``reject`` makes it a negative (a ``draw``
naming a proposal replaces that proposal's box: an adjusted box), and ``cs_free`` clears every box the
frame had (decisions after it count again). The latest decision about one box wins; nothing is deleted
from the table. Training (``csf train head``, ``csf train strings``) reads the result through
:func:`review_overrides` and :func:`relabel_proposals`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.boxes import iou_matrix
from cs_features.proposals.weak_labels import weak_labels
from cs_features.review.annotations import box_key, read_annotations
from cs_features.store import FeatureStore

# A proposal this close to a rejected box is the same region seen again: a negative too (unless it hits a string).
REJECTED_IOU = 0.7
EMPTY = np.zeros((0, 4), np.int32)


@dataclass(frozen=True)
class FrameTruth:
    """A frame's truth after review.

    ``strings`` ``(S, 4)`` int32 string boxes (frame pixels), or None when the truth is still unknown (an
    unlabelled frame whose review only rejected boxes); ``rejected`` ``(R, 4)`` int32 boxes judged not to
    be strings; ``cs_free`` the frame was marked CS-free and no string was added since.
    """

    frame_id: str
    strings: np.ndarray | None
    rejected: np.ndarray
    cs_free: bool
    decisions: int

    @property
    def label(self) -> str | None:
        """``"abnormal"`` with strings, ``"normal"`` for a frame known CS-free, None when unknown."""
        if self.strings is None:
            return None
        return "abnormal" if len(self.strings) else "normal"


def replay(frame_id: str, rows: list[dict], gt_boxes: np.ndarray | None) -> FrameTruth:
    """The truth of one frame from its stored boxes (None: unlabelled) and its annotation rows in time order."""
    state: dict[str, tuple[str, tuple]] = {}
    for box in (gt_boxes if gt_boxes is not None else EMPTY):
        state[box_key(None, frame_id, box)] = ("truth", tuple(int(v) for v in box))
    known = gt_boxes is not None
    cs_free = False
    for row in rows:
        if row["verdict"] == "cs_free":
            state.clear()
            known, cs_free = True, True
            continue
        box = tuple(int(v) for v in row["box"])
        state[box_key(row.get("proposal_id"), frame_id, box)] = (row["verdict"], box)
    strings = [box for verdict, box in state.values() if verdict in ("truth", "accept", "draw")]
    rejected = [box for verdict, box in state.values() if verdict == "reject"]
    known = known or bool(strings)
    return FrameTruth(frame_id, np.asarray(strings, np.int32).reshape(-1, 4) if known else None,
                      np.asarray(rejected, np.int32).reshape(-1, 4), cs_free and not strings, len(rows))


def reviewed_frame_ids(store: FeatureStore, version: int | str | None = None) -> list[str]:
    """Ids of the frames with at least one decision, sorted."""
    return sorted(set(read_annotations(store, version=version).column("frame_id").to_pylist()))


def review_overrides(store: FeatureStore, frames: dict[str, np.ndarray | None],
                     version: int | str | None = None) -> dict[str, FrameTruth]:
    """:class:`FrameTruth` of every reviewed frame among ``frames`` (``{frame_id: stored gt boxes or None}``).

    Frames without decisions are left out: their stored truth stands.
    """
    rows = read_annotations(store, version=version).to_pylist()
    by_frame: dict[str, list[dict]] = {}
    for row in rows:
        if row["frame_id"] in frames:
            by_frame.setdefault(row["frame_id"], []).append(row)
    return {fid: replay(fid, frame_rows, frames[fid]) for fid, frame_rows in by_frame.items()}


def relabel_proposals(boxes: np.ndarray, max_iou: np.ndarray, label: np.ndarray, truth: FrameTruth,
                      positive_iou: float, negative_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Weak labels of one frame's proposals under its reviewed truth.

    Args:
        boxes: ``(N, 4)`` proposal boxes; max_iou ``(N,)`` float32 and label ``(N,)`` int8: the stored ones.
        positive_iou, negative_iou: the store's weak-label thresholds.

    Returns:
        ``(max_iou, label)`` ``(N,)`` float32 and int8: recomputed against ``truth.strings`` when the truth is
        known (the stored ones otherwise), then proposals at IoU >= :data:`REJECTED_IOU` with a rejected box
        made negatives unless they hit a string (the rejected box itself always).
    """
    boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
    if truth.strings is not None:
        max_iou, label = weak_labels(boxes, truth.strings, positive_iou, negative_iou)
    else:
        max_iou, label = np.asarray(max_iou, np.float32).copy(), np.asarray(label, np.int8).copy()
    if len(truth.rejected) and len(boxes):
        overlap = iou_matrix(boxes, truth.rejected).max(axis=1)
        label[(overlap >= REJECTED_IOU) & (label != 1)] = 0
        label[overlap >= 1.0] = 0
    return max_iou, label


def relabel_rows(rows, reviews: dict[str, FrameTruth], positive_iou: float, negative_iou: float):
    """``rows`` (a pyarrow table of proposals with ``frame_id``, ``box``, ``weak_label``, ``max_iou``) with
    the weak labels and IoUs of the reviewed frames' proposals replaced by :func:`relabel_proposals`."""
    import pyarrow as pa

    from cs_features.store import fixed_list_to_numpy

    if not reviews or rows.num_rows == 0:
        return rows
    frame_ids = np.asarray(rows.column("frame_id").to_pylist(), dtype=object)
    reviewed = np.isin(frame_ids, list(reviews))
    if not reviewed.any():
        return rows
    boxes = fixed_list_to_numpy(rows.column("box"), 4)
    max_iou = rows.column("max_iou").to_numpy(zero_copy_only=False).astype(np.float32)
    label = rows.column("weak_label").to_numpy(zero_copy_only=False).astype(np.int8)
    positions = np.flatnonzero(reviewed)
    order = positions[np.argsort(frame_ids[positions], kind="stable")]
    starts = np.flatnonzero(np.r_[True, frame_ids[order][1:] != frame_ids[order][:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        index = order[start:end]
        max_iou[index], label[index] = relabel_proposals(boxes[index], max_iou[index], label[index],
                                                         reviews[frame_ids[index[0]]], positive_iou, negative_iou)
    rows = rows.set_column(rows.schema.get_field_index("max_iou"), "max_iou", pa.array(max_iou, pa.float32()))
    return rows.set_column(rows.schema.get_field_index("weak_label"), "weak_label", pa.array(label, pa.int8()))


def reviewed_frame_row(row: dict, truth: FrameTruth) -> dict:
    """A stored frame's row (``label``, ``has_gt``, ``gt_boxes``) with its reviewed truth, when known."""
    if truth.strings is None:
        return row
    return {**row, "label": truth.label, "has_gt": True, "gt_boxes": truth.strings.tolist()}
