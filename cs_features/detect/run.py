"""`csf detect`: screen image files or folders and write what was found (:func:`detect`)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from cs_features.detect.chain import STAGES, DetectConfig, FrameDetection, detect_batch, load_detector
from cs_features.errors import InputError


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Image files named directly or found (recursively, sorted) in the folders given."""
    from cs_features.io import is_image_path

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p)))
        else:
            found.append(path)  # missing/unreadable files are reported per frame
    if not found:
        raise InputError(f"no images found in {[str(p) for p in paths]}")
    return found


@dataclass
class DetectSummary:
    """What a detection run did; ``to_dict()`` is what ``--json`` prints."""

    out_dir: str
    frames: int = 0
    failed: int = 0
    flagged: int = 0
    localized: int = 0
    cs_positive_frames: int = 0
    gate: bool = True
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    embryos: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "frames_per_second": round(self.frames_per_second, 3),
                "localizer_skipped": self.frames - self.failed - self.localized}


def detect(paths: list[str | Path], ae_dir: str | Path, head_dir: str | Path, out_dir: str | Path,
           config: DetectConfig = DetectConfig(), weights: str | None = None, device: str = "cpu",
           progress: Callable[[int, int], None] | None = None) -> DetectSummary:
    """Detect strings in image files or folders; write detections.json, COCO and YOLO files, overlays.

    Returns:
        a :class:`DetectSummary`; per-frame results are in ``out_dir/detections.json``.
    """
    from cs_features.detect.outputs import DetectionWriter

    start = time.perf_counter()
    detector = load_detector(ae_dir, head_dir, weights=weights, device=device)
    images = collect_images(paths)
    summary = DetectSummary(out_dir=str(out_dir), gate=config.gate)
    writer = DetectionWriter(Path(out_dir), detector)
    pattern = re.compile(config.embryo_regex)
    for index in range(0, len(images), config.batch_size):
        batch = images[index:index + config.batch_size]
        for detection, picture in detect_batch(detector, batch, config, pattern, summary.stage_seconds):
            writer.add(detection, picture)
        if progress:
            progress(min(index + config.batch_size, len(images)), len(images))
    summary.files = writer.finish()
    _summarise(summary, writer.detections)
    summary.seconds = time.perf_counter() - start
    return summary


def _summarise(summary: DetectSummary, detections: list[FrameDetection]) -> None:
    summary.frames = len(detections)
    summary.failed = sum(d.error is not None for d in detections)
    summary.flagged = sum(d.flagged for d in detections)
    summary.localized = sum(d.localized for d in detections)
    summary.cs_positive_frames = sum(d.cs_positive for d in detections)
    embryos: dict[str, dict] = {}
    for d in detections:
        entry = embryos.setdefault(d.embryo_id, {"cs_positive": False, "frames": 0, "deciding_frames": []})
        entry["frames"] += 1
        if d.cs_positive:
            entry["cs_positive"] = True
            entry["deciding_frames"].append({"stem": d.stem, "best_score": max(b["score"] for b in d.boxes),
                                             "best_p": max(b["p"] for b in d.boxes)})
    for entry in embryos.values():
        entry["deciding_frames"].sort(key=lambda f: -f["best_score"])
    summary.embryos = embryos


