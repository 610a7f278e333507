"""`csf detect`: screen new frames for strings.

- ``chain``: the loaded models and the per-batch chain (frame pipeline, autoencoder gate, proposals,
  embeddings, region head, NMS);
- ``run``: :func:`detect` over files and folders, with the run's summary;
- ``outputs``: detections.json, COCO, YOLO files and overlays.
"""

from cs_features.detect.chain import STAGES, DetectConfig, Detector, FrameDetection, detect_batch, load_detector
from cs_features.detect.run import DetectSummary, collect_images, detect

__all__ = ["STAGES", "DetectConfig", "DetectSummary", "Detector", "FrameDetection", "collect_images", "detect",
           "detect_batch", "load_detector"]
