"""Proposal recall and cost per source, side by side, on `csf synth` frames.

For CS frames: the share of ground-truth strings with a proposal at IoU >= 0.25 and >= 0.5, proposals per
frame and seconds per frame, for each source and their union. Also writes a contact sheet of frames with
ground truth (green) and the best proposal per string (red, captioned with its IoU and source).

    python benchmarks/bench_proposals.py --frames 24 --out benchmarks/results/proposals.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from cs_features.boxes import iou_matrix
from cs_features.io import read_gray
from cs_features.preprocess import preprocess
from cs_features.proposals import ProposalConfig, propose
from cs_features.synth import SynthConfig, generate_dataset, read_synth_manifest
from cs_features.texture import low_texture


def load_cs_frames(dataset: Path, n_frames: int) -> list[dict]:
    rows = [r for r in read_synth_manifest(dataset) if r["label"] == "abnormal"][:n_frames]
    frames = []
    for row in rows:
        image = read_gray(dataset / row["split"] / "abnormal" / f"{row['stem']}.png")
        pre = preprocess(image)
        _, mask = low_texture(pre)
        frames.append({"stem": row["stem"], "pre": pre, "mask": mask,
                       "gt": np.asarray(row["boxes"], np.int32).reshape(-1, 4)})
    return frames


def measure(frames: list[dict], method: str, max_proposals: int) -> tuple[dict, list]:
    config = ProposalConfig(method=method, max_proposals=max_proposals)
    hits25 = hits50 = strings = count = 0
    seconds = 0.0
    best = []
    for frame in frames:
        start = time.perf_counter()
        proposals = propose(frame["pre"], config, low_texture_mask=frame["mask"])
        seconds += time.perf_counter() - start
        iou = iou_matrix(frame["gt"], proposals.boxes)
        top = iou.argmax(axis=1) if len(proposals) else np.zeros(len(frame["gt"]), int)
        score = iou.max(axis=1) if len(proposals) else np.zeros(len(frame["gt"]))
        hits25 += int((score >= 0.25).sum())
        hits50 += int((score >= 0.5).sum())
        strings += len(frame["gt"])
        count += len(proposals)
        best.append([(proposals.boxes[k], float(s), proposals.sources[k]) for k, s in zip(top, score)]
                    if len(proposals) else [])
    row = {"source": method, "frames": len(frames), "strings": strings, "recall@0.25": round(hits25 / strings, 4),
           "recall@0.5": round(hits50 / strings, 4), "proposals_per_frame": round(count / len(frames), 1),
           "seconds_per_frame": round(seconds / len(frames), 3)}
    return row, best


def contact_sheet(frames: list[dict], best: list, out: Path, n: int = 8) -> Path:
    import cv2

    from cs_features.viz import contact_sheet as sheet
    from cs_features.viz import draw_boxes, save_png

    tiles, captions = [], []
    for frame, matches in list(zip(frames, best))[:n]:
        tile = draw_boxes(frame["pre"], frame["gt"], color=(0, 200, 0))
        for box, iou, source in matches:
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(tile, (x1, y1), (x2 - 1, y2 - 1), (0, 0, 255), 1)
            cv2.putText(tile, f"{iou:.2f} {source}", (x1 + 2, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 0, 255), 1)
        tiles.append(tile)
        captions.append(f"{frame['stem']}: green truth, red best proposal")
    return save_png(out, sheet(tiles, captions, columns=4, tile_size=360))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a `csf synth` folder (default: render 20 embryos)")
    parser.add_argument("--frames", type=int, default=24, help="CS frames to measure")
    parser.add_argument("--sources", default="ss-grey;ss-fast;ss-quality;filament;filament,ss-grey;filament,ss-fast")
    parser.add_argument("--max-proposals", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proposals.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset
        if dataset is None:
            dataset = Path(tmp) / "data"
            generate_dataset(dataset, n_embryos=20, seed=0, config=SynthConfig())
        frames = load_cs_frames(dataset, args.frames)
    rows = []
    for method in args.sources.split(";"):
        row, best = measure(frames, method, args.max_proposals)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if method == args.sources.split(";")[-1]:
            sheet = contact_sheet(frames, best, args.out.with_name("proposals_best.png"))
            print(f"contact sheet: {sheet}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows}, indent=2))
    print("| source | recall@0.25 | recall@0.5 | proposals/frame | s/frame |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['recall@0.25']:.3f} | {r['recall@0.5']:.3f} | {r['proposals_per_frame']} "
              f"| {r['seconds_per_frame']} |")


if __name__ == "__main__":
    main()
