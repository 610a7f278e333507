"""Files written by `csf detect`: detections.json, COCO detections, YOLO txt, per-frame overlays."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np


class DetectionWriter:
    """Writes each frame's overlay as it comes and the summary files at the end."""

    def __init__(self, out_dir: Path, detector) -> None:
        self.out_dir = out_dir
        self.detector = detector
        self.detections: list = []
        (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
        (out_dir / "yolo").mkdir(parents=True, exist_ok=True)

    def add(self, detection, picture: dict | None) -> None:
        self.detections.append(detection)
        if picture is not None:
            overlay(detection, picture, self.detector.anomaly_filter.threshold_,
                    self.out_dir / "overlays" / f"{detection.stem}.png")

    def finish(self) -> dict:
        files = {"detections": self.out_dir / "detections.json", "coco": self.out_dir / "detections_coco.json",
                 "yolo": self.out_dir / "yolo", "overlays": self.out_dir / "overlays"}
        payload = {"ae_threshold": float(self.detector.anomaly_filter.threshold_),
                   "frames": [asdict(d) for d in self.detections]}
        files["detections"].write_text(json.dumps(payload, indent=2))
        files["coco"].write_text(json.dumps(coco_detections(self.detections), indent=2))
        for d in self.detections:
            if d.error is None:
                (self.out_dir / "yolo" / f"{d.stem}.txt").write_text(detection_yolo_text(d))
        return {key: str(path) for key, path in files.items()}


def coco_detections(detections) -> dict:
    """A COCO detection file: ``images`` (id, file_name, size), one category, scored ``annotations``."""
    images, annotations = [], []
    for image_id, d in enumerate((d for d in detections if d.error is None), start=1):
        images.append({"id": image_id, "file_name": d.path, "width": d.width, "height": d.height})
        for b in d.boxes:
            x1, y1, x2, y2 = b["box"]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "score": b["score"], "iscrowd": 0})
    return {"images": images, "categories": [{"id": 1, "name": "cytoplasmic_string"}], "annotations": annotations}


def detection_yolo_text(detection) -> str:
    """YOLO lines ``0 cx cy w h score`` (normalised), one per box, best first."""
    from cs_features.datasets import yolo_lines

    if not detection.boxes:
        return ""
    lines = yolo_lines(np.array([b["box"] for b in detection.boxes]), detection.width, detection.height,
                       scores=np.array([b["score"] for b in detection.boxes]))
    return "".join(line + "\n" for line in lines)


def overlay(detection, picture: dict, threshold: float, path: Path) -> Path:
    """Side by side: the frame with scored boxes, and what the AE score was taken on.

    The right half is the (filtered) residual inside the scored region as a heat map on a fixed scale,
    0 .. 2 x the filter's threshold, so frames compare: the score is a high percentile of this map, and
    a frame is flagged when it reaches the threshold (mid-scale colour). Outside the region it is dimmed.
    """
    import cv2

    from cs_features.viz import draw_boxes, save_png

    image = picture["image"]
    height, width = image.shape
    boxes = picture["scale"].to_canonical(np.array([b["box"] for b in detection.boxes], np.int32).reshape(-1, 4))
    captions = [f"#{rank} {b['score']:.2f}" for rank, b in enumerate(detection.boxes, start=1)]
    left = draw_boxes(image, boxes, captions=captions, color=(0, 0, 255), thickness=2)
    scored = cv2.resize(picture["scored"], (width, height), interpolation=cv2.INTER_LINEAR)
    region = cv2.resize(picture["region"].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    heat = cv2.applyColorMap(np.clip(scored / (2 * threshold) * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    heat[~region] = (heat[~region] * 0.3).astype(np.uint8)
    cv2.putText(heat, f"scored residual, 0 .. {2 * threshold:.3f} (2x threshold)", (6, height - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
    verdict = "CS" if detection.cs_positive else "no CS"
    gate = ("flagged" if detection.flagged
            else "below threshold" + ("" if detection.localized else " (localizer skipped)"))
    title = f"{detection.stem}: {verdict}; AE score {detection.ae_score:.4f} vs threshold {threshold:.4f} ({gate})"
    if detection.boxes:
        best = detection.boxes[0]
        title += f"; #1 p {best['p']:.2f} IoU {best['iou']:.2f}"
    canvas = np.full((height + 28, 2 * width + 8, 3), 24, np.uint8)
    canvas[28:, :width] = left
    canvas[28:, width + 8:] = heat
    cv2.putText(canvas, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return save_png(path, canvas)
