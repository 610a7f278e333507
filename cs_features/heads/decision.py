"""The frame decision a head is saved with: the string probability at which `csf detect` calls a frame CS.

`csf detect` scores a frame by the highest p among its reported boxes (:data:`~cs_features.detect.chain.FRAME_SCORE`:
the head's p, read with the string map where it ranks boxes, times the attachment and transience factors).
Those factors and the map's strength only ever lower p, so a fixed 0.5 reads a probability nobody
calibrated (README, "Frame decision"). Like the autoencoder's gate and the frame screen, the decision is
chosen on the validation split, for recall: the val frames are scored exactly as `csf detect` scores them
(every proposal ranked with the priors and the framing, NMS, the top boxes), and the threshold is the
highest that keeps ``sensitivity`` of the val CS frames, moved halfway down to the next lower val frame
(:func:`~cs_features.metrics.sensitivity_threshold`): when val separates CS from CS-free frames, the middle
of the gap between them. A decision of 0 would call every frame, so one that falls to 0 is not taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.boxes import reported_boxes

DEFAULT_POSITIVE_P = 0.5  # heads saved before the decision was chosen on val, and heads whose val has no CS frame


@dataclass(frozen=True)
class FrameDecision:
    """How the decision is chosen: the share of val CS frames it keeps, and how many boxes a frame reports
    (``csf detect``'s ``--top-k``; the NMS is the evaluation settings', as for every ranking of the head)."""

    sensitivity: float = 0.97
    top_k: int = 5


def frame_scores(head, data, settings, decision: FrameDecision = FrameDecision()) -> np.ndarray:
    """Each frame of ``data`` (a :class:`~cs_features.heads.training.HeadData` whose evaluated arrays are one
    split's) scored as `csf detect` scores it, in ``data.frames`` order."""
    from cs_features.strings.framing import framed_p

    p, iou = head.predict(data.test.X)
    factors = data.test_rank_factors(settings)
    score = data.test_region_score(head, p, iou, settings) * factors
    framed = data.test_framing(settings.framing)
    p = (framed_p(p, framed[0]) if framed is not None else p) * factors
    empty = np.zeros(0, np.int64)
    out = np.zeros(len(data.frames), np.float64)
    for i, frame in enumerate(data.frames):
        rows = data.groups.get(frame["frame_id"], empty)
        kept = reported_boxes(data.test.box[rows], score[rows], settings.nms_iou, settings.nms_inside,
                              top_k=decision.top_k)
        out[i] = max((float(p[rows[k]]) for k in kept), default=0.0)
    return out


def choose_frame_decision(head, data, settings, decision: FrameDecision = FrameDecision()) -> dict:
    """The frame decision chosen on ``data`` (the val split), with what it keeps there.

    Returns:
        ``{"positive_p", "sensitivity", "split", "cs_frames", "cs_free_frames", "cs_kept", "cs_free_called",
        "rule"}``; ``positive_p`` is :data:`DEFAULT_POSITIVE_P` and ``"reason"`` says why when the split
        has no CS frame to keep.
    """
    from cs_features.metrics import sensitivity_threshold

    y = np.array([int(f["label"] == "abnormal") for f in data.frames], np.int8)
    out = {"sensitivity": decision.sensitivity, "split": "val", "cs_frames": int(y.sum()),
           "cs_free_frames": int(len(y) - y.sum()), "top_k": decision.top_k}
    if not y.any():
        return {**out, "positive_p": DEFAULT_POSITIVE_P, "chosen": False,
                "reason": "the val split has no CS frame: the decision stays at p >= 0.5"}
    scores = frame_scores(head, data, settings, decision)
    threshold = sensitivity_threshold(y, scores, decision.sensitivity, midgap=True)
    if threshold <= 0:  # p >= 0 would call every frame, those the gate skips included
        return {**out, "positive_p": DEFAULT_POSITIVE_P, "chosen": False,
                "reason": "the val CS frames to keep score 0 (no box of theirs has a p): it stays at p >= 0.5"}
    return {**out, "positive_p": round(float(threshold), 6), "chosen": True,
            "cs_kept": int((scores[y == 1] >= threshold).sum()),
            "cs_free_called": int((scores[y == 0] >= threshold).sum()),
            "rule": f"the highest frame score keeping {decision.sensitivity:.0%} of the val CS frames, halfway "
                    "down to the next lower val frame"}


def saved_positive_p(config: dict) -> tuple[float, str]:
    """The decision a saved head's ``config.json`` carries, and where it came from, as `csf detect` reports it."""
    chosen = config.get("frame_decision") or {}
    if chosen.get("chosen"):
        return float(chosen["positive_p"]), (f"the head's, chosen on its val split (keeps "
                                             f"{chosen['cs_kept']} of {chosen['cs_frames']} val CS frames)")
    why = chosen.get("reason") or "the head was saved without a frame decision"
    return DEFAULT_POSITIVE_P, f"{DEFAULT_POSITIVE_P:g}: {why}"
