"""Shared by the review tests: a writable copy of the tiny store and a detections folder built from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cs_features.store import FRAMES, FeatureStore, proposals_table_name

# p shown for a frame's detections: the first near the 0.5 threshold, the others further from it
DETECTION_PS = (0.52, 0.81, 0.12)


def store_copy(tiny_store: Path, folder: Path) -> Path:
    target = folder / "db"
    shutil.copytree(tiny_store, target)
    return target


def write_detections(store_path: Path, out: Path) -> dict[str, list[dict]]:
    """A ``detections.json`` as `csf detect` writes it: three stored proposals per frame with set p values
    (weak positives first, so CS frames show a string among their boxes); returns the boxes by frame id."""
    store = FeatureStore(str(store_path))
    frames = store.read(FRAMES, ["frame_id", "path", "stem", "embryo_id", "frame_index", "width", "height"]).to_pylist()
    proposals = store.read(proposals_table_name("classic"), ["frame_id", "box", "weak_label", "proposal_id"])
    by_frame: dict[str, list[dict]] = {}
    for row in sorted(proposals.to_pylist(), key=lambda r: (-r["weak_label"], r["proposal_id"])):
        by_frame.setdefault(row["frame_id"], []).append(row)
    payload, boxes = {"positive_p": 0.5, "ae_threshold": 0.1, "frames": [], "failed": []}, {}
    for frame in frames:
        chosen = by_frame.get(frame["frame_id"], [])[:len(DETECTION_PS)]
        # each frame its own offset, so frames differ in how near their best box is to the threshold
        offset = (frame["frame_index"] + int(frame["embryo_id"][1:] or 0)) * 0.003
        boxes[frame["frame_id"]] = [{"box": row["box"], "p": round(p + offset, 4), "iou": 0.4, "score": p * 0.4,
                                     "proposal_id": row["proposal_id"]} for row, p in zip(chosen, DETECTION_PS)]
        payload["frames"].append({"path": frame["path"], "stem": frame["stem"], "embryo_id": frame["embryo_id"],
                                  "frame_index": frame["frame_index"], "width": frame["width"],
                                  "height": frame["height"], "boxes": boxes[frame["frame_id"]],
                                  "frame_score": max([b["p"] for b in boxes[frame["frame_id"]]] or [0.0])})
    payload["frames"].append({"path": "/elsewhere/X9_f00.png", "stem": "X9_f00", "embryo_id": "X9", "boxes": [],
                              "frame_score": 0.0})
    out.mkdir(parents=True, exist_ok=True)
    (out / "detections.json").write_text(json.dumps(payload))
    return boxes
