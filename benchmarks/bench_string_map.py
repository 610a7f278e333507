"""Benchmark: the learned ``strings`` proposal source, classifying the embryo interior only vs every pixel.

The source reads the string map inside the embryo interior only (:func:`cs_features.embryo.embryo_interior`),
so it classifies only those pixels (``StringMapModel.predict_map(where=...)``). The reference, in the same
run on the same frames, classifies every pixel and then keeps the interior, as the source did before. Both
must give the same boxes: the benchmark checks it on every frame and reports the time of each part (filter
bank, classification) and the interior's share of the frame. Single-threaded, as in ingest workers.

Usage::

    python benchmarks/bench_string_map.py --store STORE --model STRINGS_MODEL --frames 24 \\
        --out benchmarks/results/string_map.json

``STORE``: any ingested store (``csf ingest``); ``STRINGS_MODEL``: a folder written by ``csf train strings``
on a store of the same preprocessing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--model", required=True, help="a `csf train strings` folder")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/string_map.json"))
    args = parser.parse_args()

    from cs_features.embryo import embryo_interior
    from cs_features.proposals import ProposalConfig
    from cs_features.proposals.learned import BoxStyle, string_boxes, strings_source
    from cs_features.strings.data import frame_rows, iter_frames, open_store
    from cs_features.strings.features import string_features
    from cs_features.strings.maps import open_string_model

    load_before = [round(x, 2) for x in os.getloadavg()]
    store = open_store(args.store)
    model, config = open_string_model(store, args.model)
    style = BoxStyle.from_dict(config.get("box_style") or {})
    source_config = ProposalConfig(method="strings", strings_model=str(args.model))
    rows = frame_rows(store)[:args.frames]
    timings = {"source": [], "reference": [], "filter_bank": [], "interior_share": []}
    same = 0
    for frame in iter_frames(store, rows):
        pixels = np.rint(frame.image * 255).astype(np.uint8)
        strings_source(pixels, source_config, low_texture_mask=frame.mask)  # warm (model load, caches)
        start = time.perf_counter()
        boxes = strings_source(pixels, source_config, low_texture_mask=frame.mask)
        timings["source"].append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = string_boxes(model.predict_map(pixels.astype(np.float32) / np.float32(255.0)), frame.mask, style)
        timings["reference"].append(time.perf_counter() - start)
        start = time.perf_counter()
        string_features(frame.image)
        timings["filter_bank"].append(time.perf_counter() - start)
        timings["interior_share"].append(float(embryo_interior(frame.mask, frame.image.shape).mean()))
        same += int(np.array_equal(boxes, reference))
    n = len(timings["source"])
    report = {"benchmark": "string_map", "store": args.store, "model": str(args.model), "frames": n,
              "frame_shape": list(frame.image.shape), "frames_with_identical_boxes": same,
              "source_s_per_frame": float(np.mean(timings["source"])),
              "reference_s_per_frame": float(np.mean(timings["reference"])),
              "filter_bank_s_per_frame": float(np.mean(timings["filter_bank"])),
              "interior_share_mean": float(np.mean(timings["interior_share"])),
              "reference_over_source": float(np.sum(timings["reference"]) / np.sum(timings["source"])),
              "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    print(f"{n} frames {report['frame_shape']}, interior {report['interior_share_mean']:.0%} of each frame; "
          f"identical boxes on {same}/{n}")
    print(f"strings source {report['source_s_per_frame']:.3f} s/frame, every pixel classified (reference) "
          f"{report['reference_s_per_frame']:.3f} s/frame: {report['reference_over_source']:.2f}x; filter bank "
          f"{report['filter_bank_s_per_frame']:.3f} s/frame; load {load_before} -> {report['load_average_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
