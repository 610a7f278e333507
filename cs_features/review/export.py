"""Reviewed labels out of the store: one YOLO label file per reviewed frame and a COCO json.

Each frame with a reviewed truth (:mod:`cs_features.review.truth`) is written: its string boxes (stored
truth, accepted and drawn boxes; rejected ones left out) as ``labels/<stem>.txt`` (an empty file for a
CS-free frame) and as COCO annotations. Frames whose truth is still unknown (only rejections on an
unlabelled frame) are counted, not written. Stems need not be unique (EmbryoScope exports repeat frame
file names in every embryo's folder): reviewed frames sharing a stem are written as
``labels/<stem>__<frame_id>.txt``, so no label file overwrites another; every COCO image names its file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from cs_features.datasets.coco import COCO_CATEGORIES, coco_annotation
from cs_features.errors import InputError
from cs_features.review.truth import review_overrides
from cs_features.store import FRAMES, FeatureStore


def export_reviews(store: FeatureStore, out_dir: str | Path) -> dict:
    """Write ``out_dir/labels/<stem>.txt`` (YOLO, ``0 cx cy w h``) and ``out_dir/reviewed_coco.json``.

    Returns:
        ``{"frames", "cs_free", "boxes", "unknown", "labels", "coco"}`` counts and paths.

    Raises:
        InputError: the store has no review decisions yet.
    """
    from cs_features.datasets import yolo_lines

    columns = ["frame_id", "stem", "path", "split", "width", "height", "has_gt", "gt_boxes"]
    rows = store.read(FRAMES, columns).to_pylist()
    frames = {row["frame_id"]: row for row in rows}
    stored = {fid: np.asarray(r["gt_boxes"] or [], np.int32).reshape(-1, 4) if r["has_gt"] else None
              for fid, r in frames.items()}
    reviews = review_overrides(store, stored)
    if not reviews:
        raise InputError(f"store {store.uri!r} has no review decisions yet: review it with `csf review --store "
                         f"{store.uri}` first")
    labels = Path(out_dir) / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    known = [f for f in sorted(reviews, key=lambda f: (frames[f]["stem"] or "", f)) if reviews[f].strings is not None]
    unknown = len(reviews) - len(known)
    stems = Counter(frames[f]["stem"] or f for f in known)
    for frame_id in known:
        truth, frame = reviews[frame_id], frames[frame_id]
        stem = frame["stem"] or frame_id
        name = f"{stem}.txt" if stems[stem] == 1 else f"{stem}__{frame_id}.txt"
        lines = yolo_lines(truth.strings, frame["width"], frame["height"])
        (labels / name).write_text("".join(line + "\n" for line in lines))
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": frame["path"], "stem": frame["stem"], "frame_id": frame_id,
                       "label_file": f"labels/{name}", "split": frame["split"], "width": frame["width"],
                       "height": frame["height"]})
        for box in truth.strings.tolist():
            annotations.append(coco_annotation(len(annotations) + 1, image_id, box))
    coco = Path(out_dir) / "reviewed_coco.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations, "categories": COCO_CATEGORIES}, indent=2))
    return {"frames": len(images), "cs_free": sum(1 for t in reviews.values() if t.label == "normal"),
            "boxes": len(annotations), "unknown": unknown, "labels": str(labels), "coco": str(coco)}
