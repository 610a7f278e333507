"""Benchmark: DINOv3 ViT-S/16 ``roi`` vs ``crop`` pooling, and the ``classic`` encoder, per frame.

Frames are 500x500 from ``cs_features.synth.render_embryo`` (preprocessed, then scaled to [0, 1]);
when that module is missing, a seeded numpy stand-in (mid-grey frame, a smooth cavity, noise and
three faint lines). Each frame gets ``--boxes`` random boxes of plausible proposal sizes (12-120 px
a side, seeded). The ViT uses random weights (speed does not depend on the weights). One warm-up
call per encoder is not timed. ``crop`` pooling forwards every box at 224x224, so it is timed on
``--crop-frames`` frames only. Torch's thread count is left as it is unless ``--threads`` is given;
it is recorded either way, with the load average. Wall and process CPU seconds are both
reported: on a shared machine the CPU time is the steadier figure.

Usage::

    python benchmarks/bench_encoders.py --frames 3 --crop-frames 1 --out benchmarks/results/encoders.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from cs_features.encoders import get_encoder
from cs_features.preprocess import preprocess, to_float


def standin_frame(index: int, size: int = 500) -> np.ndarray:
    """(size, size) uint8 stand-in: grey ~125, a brighter smooth ellipse, 3 faint lines, noise sigma 3."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    frame = 125.0 + rng.normal(0.0, 3.0, (size, size))
    r = np.hypot((yy - size / 2) / (0.3 * size), (xx - size / 2) / (0.32 * size))
    frame[r < 1.0] += 10.0
    for _ in range(3):
        x0, x1 = rng.uniform(0.3, 0.7, 2) * size
        rows = np.arange(int(0.25 * size), int(0.75 * size))
        cols = np.round(x0 + (x1 - x0) * (rows - rows[0]) / len(rows)).astype(int)
        frame[rows, cols] += 10.0
    return np.clip(frame, 0, 255).astype(np.uint8)


def load_frames(n_frames: int, size: int) -> tuple[list[np.ndarray], str]:
    """N preprocessed frames, (size, size) float32 in [0, 1], and the source's name."""
    try:
        from cs_features.synth import SynthConfig, render_embryo
    except ImportError:
        raw, source = [standin_frame(i, size) for i in range(n_frames)], "numpy stand-in"
    else:
        raw, embryo, config = [], 0, SynthConfig(image_size=size)
        while len(raw) < n_frames:
            raw += [rendered.image for rendered in render_embryo(embryo, 0, embryo % 2 == 0, config)]
            embryo += 1
        source = "cs_features.synth.render_embryo"
    return [to_float(preprocess(image)) for image in raw[:n_frames]], source


def random_boxes(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 4) int32 boxes, 12-120 px a side, inside a size x size frame."""
    rng = np.random.default_rng(seed)
    w, h = rng.integers(12, 121, n), rng.integers(12, 121, n)
    x1, y1 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.int32)


def time_encoder(encoder, frames: list[np.ndarray], boxes: list[np.ndarray]) -> dict:
    """Seconds per frame over ``frames`` after one untimed warm-up call."""
    encoder.encode(frames[0], boxes[0][:8])
    seconds, cpu_seconds = [], []
    for image, frame_boxes in zip(frames, boxes):
        start, cpu_start = time.perf_counter(), time.process_time()
        vectors = encoder.encode(image, frame_boxes)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        assert vectors.shape == (len(frame_boxes), encoder.dim) and np.isfinite(vectors).all()
    return {"frames": len(frames), "s_per_frame_mean": float(np.mean(seconds)),
            "s_per_frame_min": float(np.min(seconds)), "s_per_frame_all": [round(s, 4) for s in seconds],
            "cpu_s_per_frame_mean": float(np.mean(cpu_seconds)),
            "boxes_per_frame": int(np.mean([len(b) for b in boxes])), "dim": encoder.dim,
            "info": encoder.info()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames for roi pooling and classic")
    parser.add_argument("--crop-frames", type=int, default=1, help="frames for crop pooling (slow on CPU)")
    parser.add_argument("--boxes", type=int, default=300, help="boxes per frame")
    parser.add_argument("--size", type=int, default=500, help="frame side in px")
    parser.add_argument("--roi-size", type=int, default=512, help="long side of the dense roi pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--out", default="benchmarks/results/encoders.json")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    frames, source = load_frames(max(args.frames, args.crop_frames), args.size)
    boxes = [random_boxes(args.boxes, args.size, seed=i) for i in range(len(frames))]
    results: dict = {}
    roi = get_encoder("dinov3-vits16", weights="random", pooling="roi", device=args.device, roi_size=args.roi_size)
    results["dinov3-vits16/roi"] = time_encoder(roi, frames[:args.frames], boxes[:args.frames])
    crop = get_encoder("dinov3-vits16", weights="random", pooling="crop", device=args.device, batch_size=32)
    results["dinov3-vits16/crop"] = time_encoder(crop, frames[:args.crop_frames], boxes[:args.crop_frames])
    results["classic"] = time_encoder(get_encoder("classic"), frames[:args.frames], boxes[:args.frames])
    ratio = results["dinov3-vits16/crop"]["s_per_frame_mean"] / results["dinov3-vits16/roi"]["s_per_frame_mean"]
    cpu_ratio = (results["dinov3-vits16/crop"]["cpu_s_per_frame_mean"]
                 / results["dinov3-vits16/roi"]["cpu_s_per_frame_mean"])
    report = {
        "benchmark": "encoders", "frame_source": source, "frame_size": args.size, "boxes_per_frame": args.boxes,
        "crop_over_roi_speed_ratio": round(ratio, 2), "crop_over_roi_cpu_time_ratio": round(cpu_ratio, 2),
        "target_ratio": 50.0, "results": results,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                        "device": args.device, "machine": platform.machine(),
                        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()]},
    }
    print(f"frames: {source}, {args.size}x{args.size}, {args.boxes} boxes/frame, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'encoder':22s} {'frames':>6s} {'s/frame':>9s} {'min':>9s} {'cpu s/frame':>12s}")
    for name, row in results.items():
        print(f"{name:22s} {row['frames']:6d} {row['s_per_frame_mean']:9.3f} {row['s_per_frame_min']:9.3f} "
              f"{row['cpu_s_per_frame_mean']:12.3f}")
    print(f"crop / roi ratio: {ratio:.1f}x wall time, {cpu_ratio:.1f}x CPU time (target >= 50x)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
