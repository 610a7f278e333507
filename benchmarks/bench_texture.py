"""Benchmark: fast GLCM low-texture heat map vs the skimage reference, on 500x500 frames.

Frames come from ``cs_features.synth.render_embryo`` when that module exists; otherwise from a
numpy stand-in (a mid-grey frame with a smooth elliptical cavity, a granular ring of "cells"
around it, a few faint lines and Gaussian noise), documented in :func:`standin_frame`.
Every frame is preprocessed (CLAHE + bilateral) first, as in the pipeline.

Usage::

    python benchmarks/bench_texture.py --frames 20 --out benchmarks/results/texture.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from cs_features.preprocess import preprocess
from cs_features.texture import (
    TextureConfig,
    low_texture,
    low_texture_heatmap,
    low_texture_heatmap_reference,
    mask_from_heatmap,
)


def standin_frame(index: int, size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Numpy stand-in for a blastocyst frame and its cavity mask: (size, size) uint8 and bool.

    Mid-grey background (~125) with a slow gradient; an elliptical smooth cavity (grey ~135, low
    texture); a 25-40 px ring of granular texture (random cell-sized blobs) around it; three faint
    straight lines (+10 grey levels) across the cavity; Gaussian noise sigma 3. Seeded by ``index``.
    """
    import cv2

    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    frame = 125.0 + 10.0 * (xx / size) + rng.normal(0.0, 3.0, (size, size))
    cy, cx = size / 2 + rng.uniform(-20, 20, 2)
    ry, rx = size * rng.uniform(0.28, 0.34, 2)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    granules = cv2.GaussianBlur(rng.normal(0.0, 40.0, (size, size)).astype(np.float32), (0, 0), 1.5)
    ring = (r >= 1.0) & (r < 1.0 + 35.0 / min(ry, rx))
    frame[ring] += granules[ring]
    frame[r < 1.0] += 10.0
    for _ in range(3):
        p0 = (int(cx + rng.uniform(-0.7, 0.7) * rx), int(cy - 0.7 * ry))
        p1 = (int(cx + rng.uniform(-0.7, 0.7) * rx), int(cy + 0.7 * ry))
        line = np.zeros((size, size), np.uint8)
        cv2.line(line, p0, p1, 1, 1, cv2.LINE_AA)
        frame += 10.0 * line
    return np.clip(frame, 0, 255).astype(np.uint8), r < 1.0


def load_frames(n_frames: int) -> tuple[list[np.ndarray], list[np.ndarray | None], str]:
    """N raw frames (H, W) uint8, their cavity masks when known, and the source's name."""
    try:
        from cs_features.synth import SynthConfig, render_embryo
    except ImportError:
        pairs = [standin_frame(i) for i in range(n_frames)]
        return [p[0] for p in pairs], [p[1] for p in pairs], "numpy stand-in"
    frames, truths, embryo = [], [], 0
    config = SynthConfig()
    while len(frames) < n_frames:
        for rendered in render_embryo(embryo, 0, embryo % 2 == 0, config):
            frames.append(rendered.image)
            truths.append(getattr(rendered, "low_texture_truth", None))
        embryo += 1
    return frames[:n_frames], truths[:n_frames], "cs_features.synth.render_embryo"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def run(n_frames: int) -> dict:
    """Time fast and reference heat maps side by side; return the figures as a dict."""
    config = TextureConfig()
    raw, truths, source = load_frames(n_frames)
    frames = [preprocess(frame) for frame in raw]
    low_texture_heatmap(frames[0], config)  # warm-up: imports, OpenCV initialisation
    t_fast = t_full = t_ref = 0.0
    max_diff, masks_equal, ious, recalls = 0.0, 0, [], []
    for frame, truth in zip(frames, truths):
        start = time.perf_counter()
        fast = low_texture_heatmap(frame, config)
        t_fast += time.perf_counter() - start
        start = time.perf_counter()
        _, mask = low_texture(frame, config)
        t_full += time.perf_counter() - start
        start = time.perf_counter()
        ref = low_texture_heatmap_reference(frame, config)
        t_ref += time.perf_counter() - start
        max_diff = max(max_diff, float(np.abs(fast - ref).max()))
        masks_equal += int(np.array_equal(mask, mask_from_heatmap(ref, config)))
        if truth is not None:
            ious.append(_iou(mask, truth))
            recalls.append(float(mask[truth].mean()) if truth.any() else 1.0)
    n = len(frames)
    return {
        "frames": n,
        "frame_shape": list(frames[0].shape),
        "source": source,
        "texture_config": config.to_dict(),
        "texture_config_hash": config.config_hash(),
        "fast_heatmap_s_per_frame": t_fast / n,
        "fast_heatmap_and_mask_s_per_frame": t_full / n,
        "reference_heatmap_s_per_frame": t_ref / n,
        "speedup_heatmap": t_ref / t_fast,
        "max_abs_diff_heatmap": max_diff,
        "masks_identical_frames": masks_equal,
        # The mask also keeps the smooth medium outside the embryo, so IoU with the cavity is low by
        # definition; recall (cavity pixels inside the mask) is the figure that matters.
        "mask_vs_cavity_iou_mean": float(np.mean(ious)) if ious else None,
        "cavity_recall_mean": float(np.mean(recalls)) if recalls else None,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="number of 500x500 frames")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/texture.json"))
    args = parser.parse_args()
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    result = run(args.frames)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if key != "texture_config":
            print(f"{key:36s} {value}")
    print(f"written to {args.out}")
    if result["max_abs_diff_heatmap"] > 1e-5:
        raise SystemExit(f"fast and reference heat maps differ by {result['max_abs_diff_heatmap']}")


if __name__ == "__main__":
    main()
