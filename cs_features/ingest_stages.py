"""The per-frame stages of ingest, run inside worker processes."""

from __future__ import annotations

import time

import numpy as np

from cs_features.dataset import FrameSource, read_yolo_labels
from cs_features.errors import FrameError, ImageReadError, LabelError


def run_stages(source: FrameSource, frame_id: str, config, encoder):
    """Read, preprocess, mask, propose, label and embed one frame.

    Returns:
        a :class:`cs_features.ingest.FrameResult`.

    Raises:
        FrameError: naming the stage that rejected the frame and why.
    """
    from cs_features.ingest import FrameResult
    from cs_features.io import encode_png, read_gray
    from cs_features.preprocess import preprocess, to_float
    from cs_features.proposals import propose, weak_labels
    from cs_features.texture import low_texture

    seconds: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    try:
        image = read_gray(source.path)
    except ImageReadError as exc:
        raise FrameError(source.path, "read", exc.reason) from exc
    height, width = image.shape
    _check_size(source, width, height, config)
    gt_boxes = _ground_truth(source, width, height, warnings)
    lap("read")
    pre = preprocess(image, config.preprocess)
    lap("preprocess")
    _, mask = low_texture(pre, config.texture)
    lap("texture")
    proposals = propose(pre, config.proposals, low_texture_mask=mask)
    boxes = proposals.boxes
    max_iou, label = weak_labels(boxes, gt_boxes, config.positive_iou, config.negative_iou)
    lap("proposals")
    vectors = encoder.encode(to_float(pre), boxes) if len(boxes) else np.zeros((0, encoder.dim), np.float32)
    lap("encode")
    row = {
        "frame_id": frame_id, "path": str(source.path), "stem": source.stem, "split": source.split,
        "label": source.label, "embryo_id": source.embryo_id, "frame_index": source.frame_index,
        "width": width, "height": height, "image": encode_png(image), "preprocessed": encode_png(pre),
        "gt_boxes": (gt_boxes if gt_boxes is not None else np.zeros((0, 4), np.int32)).tolist(),
        "has_gt": gt_boxes is not None, "low_texture_mask": encode_png(mask),
        "low_texture_fraction": float(mask.mean()),
    }
    lap("write")
    return FrameResult(source, frame_id, row, boxes, proposals.sources, max_iou, label,
                       np.asarray(vectors, np.float32), seconds, warnings, string_recall(gt_boxes, proposals))


def string_recall(gt_boxes: np.ndarray | None, proposals) -> dict:
    """Per source and for all proposals: ``[strings, hits at IoU >= 0.25, hits at IoU >= 0.5]``."""
    from cs_features.boxes import iou_matrix

    if gt_boxes is None or len(gt_boxes) == 0:
        return {}
    out = {}
    for name in ["all", *sorted(set(proposals.sources.tolist()))]:
        boxes = proposals.boxes if name == "all" else proposals.boxes[proposals.sources == name]
        best = iou_matrix(gt_boxes, boxes).max(axis=1) if len(boxes) else np.zeros(len(gt_boxes))
        out[name] = [len(gt_boxes), int((best >= 0.25).sum()), int((best >= 0.5).sum())]
    return out


def _check_size(source: FrameSource, width: int, height: int, config) -> None:
    window = config.texture.window
    if width < window or height < window:
        raise FrameError(source.path, "texture",
                         f"image is {width}x{height}, smaller than the {window}x{window} GLCM window")
    if width * height > config.max_pixels:
        raise FrameError(source.path, "read",
                         f"image is {width}x{height} = {width * height} pixels, more than the limit of "
                         f"{config.max_pixels}; downscale it (frames are ~500x500) or raise max_pixels")


def _ground_truth(source: FrameSource, width: int, height: int, warnings: list[str]) -> np.ndarray | None:
    """Boxes of the frame: (G, 4) int32; None for a CS frame whose boxes are unknown."""
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
