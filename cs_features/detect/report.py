"""The per-embryo report of a detection run: ``detections.csv`` (one row per box) and ``embryos.csv``.

Only frames that were read count: a file that failed is listed under ``failed`` in detections.json and
is no frame of any embryo. Frames are named by stem and ordered within an embryo by frame index.
"""

from __future__ import annotations

import csv
from pathlib import Path

BOX_FIELDS = ("stem", "embryo", "frame_index", "x1", "y1", "x2", "y2", "p", "head_p", "map_strength", "attachment",
              "transience", "iou", "score")
EMBRYO_FIELDS = ("embryo", "frames", "cs_frames_detected", "first_cs_frame", "last_cs_frame", "max_frame_score",
                 "verdict", "labelled_frames", "cs_frames_truth", "truth")


def by_embryo(detections: list) -> dict[str, list]:
    """Read frames grouped by embryo id (sorted), each embryo's frames in frame-index order."""
    groups: dict[str, list] = {}
    for d in detections:
        groups.setdefault(d.embryo_id, []).append(d)
    return {embryo: sorted(frames, key=lambda d: (d.frame_index, d.stem)) for embryo, frames in sorted(groups.items())}


def embryo_row(embryo: str, frames: list) -> dict:
    """One embryo's line of embryos.csv; ``truth`` is "CS"/"no CS" from its labelled frames, "" when none is."""
    detected = [d.frame_index for d in frames if d.cs_positive]
    labelled = [d for d in frames if d.truth is not None]
    truth_cs = sum(bool(d.truth) for d in labelled)
    return {"embryo": embryo, "frames": len(frames), "cs_frames_detected": len(detected),
            "first_cs_frame": detected[0] if detected else "", "last_cs_frame": detected[-1] if detected else "",
            "max_frame_score": round(max(d.frame_score for d in frames), 4),
            "verdict": "CS" if detected else "no CS", "labelled_frames": len(labelled),
            "cs_frames_truth": truth_cs if labelled else "",
            "truth": ("CS" if truth_cs else "no CS") if labelled else ""}


def embryo_rows(detections: list) -> list[dict]:
    """embryos.csv rows, one per embryo with at least one read frame."""
    return [embryo_row(embryo, frames) for embryo, frames in by_embryo(detections).items()]


def box_rows(detections: list) -> list[dict]:
    """detections.csv rows: every reported box of every read frame, frames in embryo and frame order."""
    rows = []
    for frames in by_embryo(detections).values():
        for d in frames:
            for b in d.boxes:
                x1, y1, x2, y2 = b["box"]
                rows.append({"stem": d.stem, "embryo": d.embryo_id, "frame_index": d.frame_index, "x1": x1, "y1": y1,
                             "x2": x2, "y2": y2, "p": b["p"], "head_p": b["head_p"],
                             "map_strength": "" if b.get("map_strength") is None else b["map_strength"],
                             "attachment": b["attachment"], "transience": b["transience"], "iou": b["iou"],
                             "score": b["score"]})
    return rows


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path
