"""COCO pieces shared by every COCO file cs_features writes (detections, ground truth, reviewed labels)."""

from __future__ import annotations

COCO_CATEGORIES = [{"id": 1, "name": "cytoplasmic_string"}]


def coco_annotation(annotation_id: int, image_id: int, box, score: float | None = None) -> dict:
    """One COCO annotation of a string box ``[x1, y1, x2, y2]`` (``bbox`` as x, y, width, height)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    annotation = {"id": annotation_id, "image_id": image_id, "category_id": 1,
                  "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
    if score is not None:
        annotation["score"] = score
    annotation["iscrowd"] = 0
    return annotation
