"""A ``csf detect`` output folder read for review: each frame's boxes matched to a stored frame.

Detections name frames by file path and stem; the store names them by content id. A detection is matched
to the stored frame with the same path, else to the one stored frame with its stem; detections of frames
the store lacks (or whose stem several stored frames share) are counted and left out, since the review
page shows only images from the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cs_features.errors import InputError
from cs_features.ids import proposal_id

DETECTIONS_FILE = "detections.json"


@dataclass
class DetectionSet:
    """Detections by stored frame id: ``boxes`` ``{frame_id: [{"box", "p", "iou", "score", "proposal_id"}]}``,
    ``frame_score`` and ``ae_score`` ``{frame_id: float}``, the run's ``positive_p`` and ``ae_threshold``,
    and the stems of the detections no stored frame matched."""

    positive_p: float
    ae_threshold: float | None
    boxes: dict[str, list[dict]] = field(default_factory=dict)
    frame_score: dict[str, float] = field(default_factory=dict)
    ae_score: dict[str, float] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def load_detections(folder: str | Path, frames: list[dict]) -> DetectionSet:
    """Read ``folder/detections.json`` and match its frames to ``frames`` (stored rows with ``frame_id``,
    ``path`` and ``stem``).

    Raises:
        InputError: no detections.json in ``folder``, or a file that is not a ``csf detect`` output.
    """
    path = Path(folder) / DETECTIONS_FILE
    if not path.is_file():
        raise InputError(f"no {DETECTIONS_FILE} in {str(folder)!r}: pass the --out folder of `csf detect`")
    try:
        payload = json.loads(path.read_text())
        detected, positive_p = payload["frames"], float(payload.get("positive_p", 0.5))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{str(path)!r} is not a csf detect output ({type(exc).__name__}: {exc})") from exc
    by_path = {row["path"]: row["frame_id"] for row in frames if row.get("path")}
    by_stem: dict[str, list[str]] = {}
    for row in frames:
        by_stem.setdefault(row["stem"], []).append(row["frame_id"])
    out = DetectionSet(positive_p, payload.get("ae_threshold"))
    for frame in detected:
        stem_ids = by_stem.get(frame.get("stem"), [])
        frame_id = by_path.get(frame.get("path")) or (stem_ids[0] if len(stem_ids) == 1 else None)
        if frame_id is None:
            out.unmatched.append(str(frame.get("stem")))
            continue
        out.boxes[frame_id] = [{"box": [int(v) for v in b["box"]], "p": float(b["p"]), "iou": b.get("iou"),
                                "score": b.get("score"), "proposal_id": proposal_id(frame_id, b["box"])}
                               for b in frame.get("boxes") or []]
        out.frame_score[frame_id] = float(frame.get("frame_score") or 0.0)
        if frame.get("ae_score") is not None:
            out.ae_score[frame_id] = float(frame["ae_score"])
    return out
