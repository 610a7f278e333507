"""`csf detect`: the autoencoder gate and the region localizer chained over new frames (``chain``),
written as JSON, COCO, YOLO and overlays (``outputs``).
"""

from cs_features.detect.chain import (  # noqa: F401
    STAGES, DetectConfig, FrameDetection, Detector, load_detector, collect_images, DetectSummary, detect,
    detect_batch,
)
