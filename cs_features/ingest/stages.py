"""One frame of a dataset through the frame pipeline, with its ground truth and weak labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs_features.datasets import FrameSource, read_yolo_labels
from cs_features.errors import FrameError, LabelError
from cs_features.frame import FramePipeline
from cs_features.io import encode_png
from cs_features.metrics import recall_by_source
from cs_features.proposals import weak_labels


@dataclass
class FrameResult:
    """One processed frame, ready to be written: the frame row, proposals with weak labels and vectors.

    ``boxes`` ``(N, 4)`` int32, ``sources`` ``(N,)`` str, ``max_iou`` ``(N,)`` float32, ``weak_label``
    ``(N,)`` int8, ``vectors`` ``(N, D)`` float32; ``recall`` counts strings covered per source.
    """

    source: FrameSource
    frame_id: str
    row: dict
    boxes: np.ndarray
    sources: np.ndarray
    max_iou: np.ndarray
    weak_label: np.ndarray
    vectors: np.ndarray
    stage_seconds: dict
    warnings: list
    recall: dict


def run_stages(source: FrameSource, frame_id: str, pipeline: FramePipeline) -> FrameResult:
    """Read, preprocess, mask, propose, label and embed one frame.

    Raises:
        FrameError: naming the stage that rejected the frame and why.
    """
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    image = pipeline.read(source.path, seconds)
    height, width = image.shape
    gt_boxes = ground_truth(source, width, height, warnings)
    frame = pipeline.run(image, str(source.path), seconds)
    proposals = frame.proposals
    labels = pipeline.settings.weak_labels
    max_iou, label = weak_labels(proposals.boxes, gt_boxes, labels.positive_iou, labels.negative_iou)
    row = {
        "frame_id": frame_id, "path": str(source.path), "stem": source.stem, "split": source.split,
        "label": source.label, "embryo_id": source.embryo_id, "frame_index": source.frame_index,
        "width": width, "height": height, "image": encode_png(image), "preprocessed": encode_png(frame.preprocessed),
        "gt_boxes": (gt_boxes if gt_boxes is not None else np.zeros((0, 4), np.int32)).tolist(),
        "has_gt": gt_boxes is not None, "low_texture_mask": encode_png(frame.low_texture_mask),
        "low_texture_fraction": float(frame.low_texture_mask.mean()),
        "scale": frame.scale.scale, "embryo_x": frame.scale.embryo.cx, "embryo_y": frame.scale.embryo.cy,
        "embryo_radius": frame.scale.embryo.radius, "embryo_found": frame.scale.embryo.found,
    }
    recall = recall_by_source(gt_boxes, proposals.boxes, proposals.sources) if gt_boxes is not None else {}
    return FrameResult(source, frame_id, row, proposals.boxes, proposals.sources, max_iou, label, frame.vectors,
                       seconds, warnings, recall)


def ground_truth(source: FrameSource, width: int, height: int, warnings: list[str]) -> np.ndarray | None:
    """Boxes of the frame: (G, 4) int32; None for a CS frame whose boxes are unknown.

    Raises:
        FrameError: stage ``labels``, for a malformed label file or boxes on a CS-free frame.
    """
    boxes = np.zeros((0, 4), np.int32)
    if source.label_path is not None:
        try:
            boxes = read_yolo_labels(source.label_path, width, height)
        except LabelError as exc:
            raise FrameError(source.path, "labels", f"{exc.path}: {exc.reason}") from exc
    if source.label == "normal" and len(boxes):
        raise FrameError(source.path, "labels", f"frame is in a normal/ folder but {source.label_path} has "
                                                f"{len(boxes)} string box(es); move the frame or empty the file")
    if source.label == "abnormal" and len(boxes) == 0:
        warnings.append(f"{source.path}: CS frame without boxes (no label file or an empty one): "
                        "its proposals get no weak labels")
        return None
    return boxes
