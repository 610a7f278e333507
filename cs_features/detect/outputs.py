"""Files written by `csf detect`: detections.json (frames read, files that failed), COCO detections (and
ground truth when labels exist), YOLO txt, detections.csv and embryos.csv, per-frame overlays, per-embryo
timelines, and metrics.json when labels exist."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cs_features.datasets.coco import COCO_CATEGORIES, coco_annotation
from cs_features.detect.chain import FRAME_SCORE


class DetectionWriter:
    """Writes each frame's overlay as it comes and the summary files at the end.

    Read frames go to ``detections``; a file that could not be read goes to ``failed`` with its reason and
    is no frame of any embryo.
    """

    def __init__(self, out_dir: Path, detector, config, truth) -> None:
        self.out_dir = out_dir
        self.detector = detector
        self.config = config
        self.truth = truth
        self.detections: list = []
        self.failed: list[dict] = []
        for folder in ("overlays", "yolo", "timelines"):
            (out_dir / folder).mkdir(parents=True, exist_ok=True)

    @property
    def threshold(self) -> float:
        return float(self.detector.anomaly_filter.threshold_)

    def add_failure(self, path: str | Path, reason: str) -> None:
        self.failed.append({"stem": Path(path).stem, "path": str(path), "reason": reason})

    def add(self, detection) -> None:
        """A frame's final detection (its overlay drawn by :meth:`draw`), or a file that could not be read."""
        if detection.error is not None:
            self.add_failure(detection.path, detection.error)
            return
        self.truth.attach(detection)
        self.detections.append(detection)

    def draw(self, detection, picture: dict) -> None:
        """Write the overlay of a read frame whose boxes are final."""
        from cs_features.detect.overlay import overlay

        self.truth.attach(detection)
        overlay(detection, picture, self.threshold, self.config.positive_p, self.config.drawn_min_p,
                self.out_dir / "overlays" / f"{detection.stem}.png", labelled_run=self.truth.enabled)

    def finish(self, skipped: list[dict] = ()) -> tuple[dict, dict | None]:
        """Write the files (``skipped``: the files that are not images, listed in detections.json); returns
        their paths and the metrics (None without labels)."""
        from cs_features.detect.grading import grade

        files = {"detections": self.out_dir / "detections.json", "coco": self.out_dir / "detections_coco.json",
                 "csv": self.out_dir / "detections.csv", "embryos": self.out_dir / "embryos.csv",
                 "yolo": self.out_dir / "yolo", "overlays": self.out_dir / "overlays",
                 "timelines": self.out_dir / "timelines"}
        payload = {"ae_threshold": self.threshold, "positive_p": self.config.positive_p, "frame_score": FRAME_SCORE,
                   "labels": self.truth.sources,
                   "frames": [asdict(d) for d in self.detections], "failed": self.failed, "skipped": list(skipped)}
        files["detections"].write_text(json.dumps(payload, indent=2))
        files["coco"].write_text(json.dumps(coco_detections(self.detections), indent=2))
        for d in self.detections:
            (self.out_dir / "yolo" / f"{d.stem}.txt").write_text(detection_yolo_text(d))
        self._write_report(files)
        metrics = grade(self.detections, self.config.positive_p) if self.truth.enabled else None
        if metrics is not None:
            files["metrics"] = self.out_dir / "metrics.json"
            files["metrics"].write_text(json.dumps(metrics, indent=2))
            files["ground_truth_coco"] = self.out_dir / "ground_truth_coco.json"
            files["ground_truth_coco"].write_text(json.dumps(coco_ground_truth(self.detections), indent=2))
        return {key: str(path) for key, path in files.items()}, metrics

    def _write_report(self, files: dict) -> None:
        from cs_features.detect.report import BOX_FIELDS, EMBRYO_FIELDS, box_rows, by_embryo, embryo_rows, write_csv
        from cs_features.detect.timeline import plot_timeline

        write_csv(files["csv"], BOX_FIELDS, box_rows(self.detections))
        write_csv(files["embryos"], EMBRYO_FIELDS, embryo_rows(self.detections))
        for embryo, frames in by_embryo(self.detections).items():
            plot_timeline(embryo, frames, self.threshold, self.config.positive_p,
                          files["timelines"] / f"{embryo}.png", labelled_run=self.truth.enabled)


def coco_detections(detections) -> dict:
    """A COCO detection file of read frames: ``images`` (id, file_name, size), one category, ``annotations``
    scored by the rank score ``p * IoU`` (``p`` with both priors' factors)."""
    images, annotations = [], []
    for image_id, d in enumerate(detections, start=1):
        images.append({"id": image_id, "file_name": d.path, "width": d.width, "height": d.height})
        for b in d.boxes:
            annotations.append(coco_annotation(len(annotations) + 1, image_id, b["box"], b["score"]))
    return {"images": images, "categories": COCO_CATEGORIES, "annotations": annotations}


def coco_ground_truth(detections) -> dict:
    """A COCO ground-truth file of the labelled frames, with the image ids of :func:`coco_detections`.

    Unlabelled frames are left out: to evaluate with pycocotools keep the detections of these images only.
    """
    images, annotations = [], []
    for image_id, d in enumerate(detections, start=1):
        if d.truth_boxes is None:
            continue
        images.append({"id": image_id, "file_name": d.path, "width": d.width, "height": d.height})
        for box in d.truth_boxes:
            annotations.append(coco_annotation(len(annotations) + 1, image_id, box))
    return {"images": images, "categories": COCO_CATEGORIES, "annotations": annotations}


def detection_yolo_text(detection) -> str:
    """YOLO lines ``0 cx cy w h score`` (normalised), one per box, best first."""
    from cs_features.datasets import yolo_lines

    if not detection.boxes:
        return ""
    lines = yolo_lines(np.array([b["box"] for b in detection.boxes]), detection.width, detection.height,
                       scores=np.array([b["score"] for b in detection.boxes]))
    return "".join(line + "\n" for line in lines)
