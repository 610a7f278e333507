"""`csf detect`: screen new frames for strings.

- ``chain``: the loaded models and the chain on one embryo's frames (frame pipeline, autoencoder gate,
  proposals, embeddings, region head, attachment and transience priors, NMS);
- ``run``: :func:`detect` over files and folders, with the run's summary;
- ``truth``: ground truth from YOLO label files (``--labels`` or a dataset folder's ``labels/``);
- ``grading``: metrics.json, the run graded against the ground truth;
- ``report``: detections.csv and embryos.csv;
- ``outputs``: detections.json, COCO, YOLO files; ``overlay``: per-frame pictures; ``timeline``: per-embryo plots.
"""

from cs_features.detect.chain import (
    FRAME_SCORE,
    STAGES,
    DetectConfig,
    Detector,
    FrameDetection,
    detect_embryo,
    load_detector,
)
from cs_features.detect.run import DetectSummary, collect_images, collect_inputs, detect

__all__ = ["FRAME_SCORE", "STAGES", "DetectConfig", "DetectSummary", "Detector", "FrameDetection", "collect_images",
           "collect_inputs", "detect", "detect_embryo", "load_detector"]
