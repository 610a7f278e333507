"""Both box-ranking priors of stored proposals, each stored frame read once.

The attachment prior (:mod:`cs_features.attachment`) reads a proposal's own frame, the transience prior
(:mod:`cs_features.transience`) every frame of its embryo; both read the frame's line strength
(:func:`cs_features.ridges.line_strength`) at each box's line pixels. :func:`store_rank_factors` reads
each frame once, embryo by embryo, and computes the line strength and, when the two priors use the same
quantile, the line pixels once for both, as ``csf detect`` does frame by frame.
"""

from __future__ import annotations

import numpy as np

from cs_features.attachment import AttachmentPrior, attachment_factors
from cs_features.ridges import line_pixels, line_strength
from cs_features.scale import STORED_CIRCLE_COLUMNS, stored_circle
from cs_features.transience import EmbryoLines, TransiencePrior, transience_factors

__all__ = ["store_attachment_factors", "store_rank_factors", "store_transience_factors"]


def store_rank_factors(store, frame_ids: np.ndarray, boxes: np.ndarray, attachment: AttachmentPrior | None = None,
                       transience: TransiencePrior | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The attachment and transience factors of stored proposals.

    Args:
        store: a :class:`cs_features.store.FeatureStore`.
        frame_ids: ``(N,)`` the frame id of each proposal.
        boxes: ``(N, 4)`` int proposal boxes in frame pixels (as stored).
        attachment, transience: the priors' settings; None uses the defaults.

    Returns:
        ``(attachment, transience)``, each ``(N,)`` float32, all 1 for a prior that is disabled. The
        transience prior reads every stored frame of a proposal's embryo, whatever its split.

    Raises:
        ValueError: a frame id the store does not hold.
    """
    from cs_features.strings.data import iter_frames, rows_by_id

    attachment, transience = attachment or AttachmentPrior(), transience or TransiencePrior()
    frame_ids = np.asarray(frame_ids).astype(str)
    attached, transient = np.ones(len(frame_ids), np.float32), np.ones(len(frame_ids), np.float32)
    if not (attachment.enabled or transience.enabled) or not len(frame_ids):
        return attached, transient
    rows = rows_by_id(store, frame_ids, "the ranking priors")
    circles = {row["frame_id"]: stored_circle(row) for row in store.read(
        "frames", ["frame_id", *STORED_CIRCLE_COLUMNS]).to_pylist()}
    members: dict[str, list[int]] = {}
    for k, frame_id in enumerate(frame_ids.tolist()):
        members.setdefault(frame_id, []).append(k)

    def group_of(row: dict) -> str:  # what to read together: an embryo's frames, or a wanted frame alone
        return row["embryo_id"] if row["embryo_id"] and transience.enabled else f"frame {row['frame_id']}"

    groups: dict[str, list[dict]] = {group_of(rows[frame_id]): [] for frame_id in members}
    for row in rows.values():
        if group_of(row) in groups:
            groups[group_of(row)].append(row)
    for group in groups.values():
        lines, found = EmbryoLines(transience) if transience.enabled else None, {}
        for frame in iter_frames(store, group):
            scale = rows[frame.frame_id]["scale"] or 1.0
            strength = line_strength(frame.image)
            if lines is not None:
                lines.add(frame.frame_id, strength, circles[frame.frame_id])
            if frame.frame_id not in members:
                continue
            mine = members[frame.frame_id]
            canonical = np.rint(np.asarray(boxes, np.float64)[mine] * scale)
            found[frame.frame_id] = line_pixels(strength, canonical, transience.line_quantile)
            shared = found[frame.frame_id] if attachment.line_quantile == transience.line_quantile else None
            attached[mine] = attachment_factors(frame.image, frame.mask, canonical, attachment, strength=strength,
                                                lines=shared)
        if lines is not None:
            for frame_id, pixels in found.items():
                transient[members[frame_id]] = transience_factors(lines.background(frame_id), pixels, transience)
    return attached, transient


def store_attachment_factors(store, frame_ids: np.ndarray, boxes: np.ndarray,
                             prior: AttachmentPrior | None = None) -> np.ndarray:
    """``(N,)`` attachment factors of stored proposals (:func:`store_rank_factors` without the transience prior)."""
    return store_rank_factors(store, frame_ids, boxes, prior, TransiencePrior(enabled=False))[0]


def store_transience_factors(store, frame_ids: np.ndarray, boxes: np.ndarray,
                             prior: TransiencePrior | None = None) -> np.ndarray:
    """``(N,)`` transience factors of stored proposals (:func:`store_rank_factors` without the attachment prior)."""
    return store_rank_factors(store, frame_ids, boxes, AttachmentPrior(enabled=False), prior)[1]
