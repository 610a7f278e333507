"""Benchmark: the ``classic`` encoder against its per-box reference, DINOv3 ViT-S/16 ``roi`` against ``crop``.

Everything is measured in one run, side by side, so the ratios survive a loaded machine:

- ``classic`` (what ingest uses by default),
  :func:`cs_features.encoders.classic_reference.reference_describe_boxes` (one box at a time, from the
  method's definition) and classic version 1 (its module's and its LBP module's source at
  ``--v1-commit``, read with ``git show``, unregistered) on the same frames and boxes; the largest
  difference between the fast and the reference vectors, and between version 2 and version 1 per
  block, is reported beside the timings. OpenCV runs single-threaded, as in ingest workers.
- ViT-S/16 ``roi`` (one dense pass per frame, one batched ``roi_align``) and ``crop`` (every box
  resized to 224 x 224 and forwarded) with random weights (speed does not depend on the weights),
  torch threads set by ``--threads``. ``crop`` is timed on ``--crop-frames`` frames only, ``roi``
  before and after it (and once more on one torch thread: OpenMP threads of small operations wait
  on each other when the cores are shared, which the roi pass, with its many small operations,
  feels most). The floating-point operations of both (torch's ``FlopCounterMode``) give the ratio the hardware could
  reach at equal efficiency: the ceiling of the measured one.

Frames are ``--size`` px squares from ``cs_features.synth.render_embryo`` (preprocessed, scaled to
[0, 1]); each gets ``--boxes`` seeded random boxes of proposal sizes (12-120 px a side). One untimed
warm-up call per encoder. Wall and process CPU seconds are both reported (CPU time is the steadier
figure on shared cores), with the load average before and after.

Usage::

    python benchmarks/bench_encoders.py --frames 3 --crop-frames 1 --boxes 300 --threads 2 \\
        --out benchmarks/results/encoders.json
    python benchmarks/bench_encoders.py --frames 8 --skip-vit --out benchmarks/results/encoders_classic.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import types
from pathlib import Path

import numpy as np

from cs_features.encoders import get_encoder
from cs_features.encoders.classic_reference import reference_describe_boxes
from cs_features.preprocess import preprocess, to_float


def load_frames(n_frames: int, size: int) -> list[np.ndarray]:
    """N preprocessed synthetic embryo frames, (size, size) float32 in [0, 1]."""
    from cs_features.synth import SynthConfig, render_embryo

    raw, embryo, config = [], 0, SynthConfig(image_size=size)
    while len(raw) < n_frames:
        raw += [rendered.image for rendered in render_embryo(embryo, 0, embryo % 2 == 0, config)]
        embryo += 1
    return [to_float(preprocess(image)) for image in raw[:n_frames]]


def random_boxes(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 4) int32 boxes, 12-120 px a side, inside a size x size frame."""
    rng = np.random.default_rng(seed)
    w, h = rng.integers(12, 121, n), rng.integers(12, 121, n)
    x1, y1 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.int32)


def time_calls(embed, frames: list[np.ndarray], boxes: list[np.ndarray]) -> tuple[dict, list[np.ndarray]]:
    """Wall and CPU seconds per frame of ``embed(image, boxes)`` after one untimed warm-up call."""
    embed(frames[0], boxes[0][:8])
    seconds, cpu_seconds, outputs = [], [], []
    for image, frame_boxes in zip(frames, boxes):
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs.append(embed(image, frame_boxes))
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        assert outputs[-1].shape[0] == len(frame_boxes) and np.isfinite(outputs[-1]).all()
    return {"frames": len(frames), "boxes_per_frame": int(np.mean([len(b) for b in boxes])),
            "s_per_frame_mean": float(np.mean(seconds)), "s_per_frame_min": float(np.min(seconds)),
            "cpu_s_per_frame_mean": float(np.mean(cpu_seconds)),
            "s_per_frame_all": [round(s, 4) for s in seconds]}, outputs


def forward_flops(encoder, image: np.ndarray, boxes: np.ndarray) -> float:
    """Floating-point operations of one ``encode`` call, counted by torch (attention included)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    # torch counts its CUDA attention kernels but not the CPU one the model runs here.
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        encoder.encode(image, boxes)
    return float(counter.get_total_flops())


V1_COMMIT = "ad57029"  # the last commit of the classic encoder's version 1


def load_classic_v1(commit: str):
    """``describe_boxes`` of classic version 1: its module's and its LBP module's source at ``commit``,
    executed unregistered (the LBP codes are the same today, computed faster)."""
    modules = {}
    for name in ("lbp", "classic"):
        path = f"cs_features/encoders/{name}.py"
        source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).resolve().parents[1]).stdout
        modules[name] = types.ModuleType(f"{name}_v1")
        exec(compile(source.replace('@ENCODERS.register("classic")\n', ""), f"{commit}:{path}", "exec"),
             modules[name].__dict__)
    modules["classic"].uniform_lbp = modules["lbp"].uniform_lbp
    return modules["classic"].describe_boxes


def bench_classic(frames: list[np.ndarray], boxes: list[np.ndarray], v1_commit: str) -> dict:
    """The fast classic encoder, the per-box reference and version 1 on the same frames and boxes."""
    import cv2

    from cs_features.encoders.classic import BLOCK_SLICES
    from cs_features.runtime import cv2_threads

    encoder = get_encoder("classic")
    with cv2_threads(1):
        fast, fast_vectors = time_calls(encoder.encode, frames, boxes)
        version_1, v1_vectors = time_calls(load_classic_v1(v1_commit), frames, boxes)
        reference, reference_vectors = time_calls(reference_describe_boxes, frames, boxes)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(fast_vectors, reference_vectors))
    new, old = np.concatenate(fast_vectors), np.concatenate(v1_vectors)
    per_block = {name: {"max_abs": float(np.abs(new[:, block] - old[:, block]).max()),
                        "max_abs_over_range": float(np.abs(new[:, block] - old[:, block]).max()
                                                    / max(float(np.ptp(old[:, block])), 1e-12))}
                 for name, block in BLOCK_SLICES.items()}
    return {"classic": dict(fast, info=encoder.info()), f"classic v1 ({v1_commit})": version_1,
            "classic/per-box reference": reference,
            "classic_reference_over_fast_cpu": reference["cpu_s_per_frame_mean"] / fast["cpu_s_per_frame_mean"],
            "classic_v1_over_fast_cpu": version_1["cpu_s_per_frame_mean"] / fast["cpu_s_per_frame_mean"],
            "classic_max_abs_difference": difference, "classic_v2_minus_v1_per_block": per_block,
            "opencv_threads": 1, "opencv": cv2.__version__}


def bench_vit(frames: list[np.ndarray], boxes: list[np.ndarray], args: argparse.Namespace) -> dict:
    """ViT-S/16 roi and crop pooling per frame, their ratios and the FLOP ceiling of the ratio."""
    roi = get_encoder("dinov3-vits16", weights="random", pooling="roi", device=args.device, roi_size=args.roi_size)
    crop = get_encoder("dinov3-vits16", weights="random", pooling="crop", device=args.device, batch_size=32)
    from cs_features.runtime import torch_threads

    # roi is timed before and after the long crop run, so both see the machine's load of the same minutes.
    roi_before, _ = time_calls(roi.encode, frames[:args.frames], boxes[:args.frames])
    crop_row, _ = time_calls(crop.encode, frames[:args.crop_frames], boxes[:args.crop_frames])
    roi_after, _ = time_calls(roi.encode, frames[:args.frames], boxes[:args.frames])
    roi_row = merge_rows(roi_before, roi_after)
    with torch_threads(1):
        roi_one_thread, _ = time_calls(roi.encode, frames[:args.frames], boxes[:args.frames])
    flops_roi = forward_flops(roi, frames[0], boxes[0])
    flops_crop = forward_flops(crop, frames[0], boxes[0][:32]) * len(boxes[0]) / 32
    return {"dinov3-vits16/roi": dict(roi_row, info=roi.info(), gflops_per_frame=flops_roi / 1e9),
            "dinov3-vits16/crop": dict(crop_row, info=crop.info(), gflops_per_frame=flops_crop / 1e9),
            "dinov3-vits16/roi, 1 torch thread": roi_one_thread,
            "crop_over_roi_wall": crop_row["s_per_frame_mean"] / roi_row["s_per_frame_mean"],
            "crop_over_roi_cpu": crop_row["cpu_s_per_frame_mean"] / roi_row["cpu_s_per_frame_mean"],
            "crop_over_roi_flops": flops_crop / flops_roi}


def merge_rows(first: dict, second: dict) -> dict:
    """One timing row from two runs of the same frames (means over all calls)."""
    seconds = first["s_per_frame_all"] + second["s_per_frame_all"]
    cpu = (first["cpu_s_per_frame_mean"] * first["frames"] + second["cpu_s_per_frame_mean"] * second["frames"])
    calls = first["frames"] + second["frames"]
    return dict(first, frames=calls, s_per_frame_mean=float(np.mean(seconds)), s_per_frame_min=float(np.min(seconds)),
                cpu_s_per_frame_mean=cpu / calls, s_per_frame_all=seconds)


def print_report(report: dict) -> None:
    rows = {k: v for part in ("classic", "vit") for k, v in report.get(part, {}).items() if isinstance(v, dict)
            and "s_per_frame_mean" in v}
    print(f"{report['frame_size']} px synthetic frames, {report['boxes_per_frame']} boxes/frame, torch threads "
          f"{report['environment']['torch_threads']}, load {report['environment']['load_average_before']} -> "
          f"{report['environment']['load_average_after']}")
    print(f"{'encoder':34s} {'frames':>6s} {'wall s/frame':>13s} {'cpu s/frame':>12s}")
    for name, row in rows.items():
        print(f"{name:34s} {row['frames']:6d} {row['s_per_frame_mean']:13.3f} {row['cpu_s_per_frame_mean']:12.3f}")
    classic = report["classic"]
    print(f"classic: reference / fast {classic['classic_reference_over_fast_cpu']:.1f}x CPU, largest vector "
          f"difference {classic['classic_max_abs_difference']:.2e}; v1 / fast "
          f"{classic['classic_v1_over_fast_cpu']:.2f}x CPU; target <= 0.1 CPU-s/frame")
    print("classic v2 - v1, largest |difference| per block (and over the block's v1 range): " + ", ".join(
        f"{name} {row['max_abs']:.2g} ({row['max_abs_over_range']:.1%})"
        for name, row in classic["classic_v2_minus_v1_per_block"].items()))
    if "vit" not in report:
        return
    vit = report["vit"]
    print(f"ViT-S crop / roi: {vit['crop_over_roi_wall']:.1f}x wall, {vit['crop_over_roi_cpu']:.1f}x CPU, "
          f"{vit['crop_over_roi_flops']:.1f}x FLOPs (ceiling at equal efficiency); target >= 80x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames for roi pooling and classic")
    parser.add_argument("--crop-frames", type=int, default=1, help="frames for crop pooling (slow on CPU)")
    parser.add_argument("--boxes", type=int, default=300, help="boxes per frame")
    parser.add_argument("--size", type=int, default=512, help="frame side in px")
    parser.add_argument("--roi-size", type=int, default=512, help="long side of the dense roi pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--v1-commit", default=V1_COMMIT, help="git commit holding classic version 1")
    parser.add_argument("--skip-vit", action="store_true", help="time the classic encoder only")
    parser.add_argument("--out", default="benchmarks/results/encoders.json")
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    frames = load_frames(max(args.frames, args.crop_frames), args.size)
    boxes = [random_boxes(args.boxes, args.size, seed=i) for i in range(len(frames))]
    report = {"benchmark": "encoders", "frame_source": "cs_features.synth.render_embryo", "frame_size": args.size,
              "boxes_per_frame": args.boxes, "targets": {"classic_cpu_s_per_frame": 0.1, "crop_over_roi": 80.0},
              "classic": bench_classic(frames[:args.frames], boxes[:args.frames], args.v1_commit)}
    if not args.skip_vit:
        report["vit"] = bench_vit(frames, boxes, args)
    report["environment"] = {
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "device": args.device, "machine": platform.machine(),
        "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
