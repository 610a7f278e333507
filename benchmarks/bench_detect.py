"""`csf detect` throughput (frames/s) with and without the autoencoder gate, per stage.

With ``--ae``/``--head`` it uses trained model directories and ``--frames`` (a folder of images);
otherwise it renders a small synthetic dataset, ingests it, trains a quick autoencoder and a logreg
head, and detects on the synthetic test split. Both runs see the same frames in the same process.

    python benchmarks/bench_detect.py --out benchmarks/results/detect.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def build_models(root: Path, embryos: int) -> tuple[Path, Path, Path]:
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.synth import generate_dataset

    data, store = root / "data", str(root / "store")
    generate_dataset(data, n_embryos=embryos, seed=0)
    ingest(data, store, IngestConfig())
    train_from_store(store, root / "ae", AnomalyFilter(epochs=4, seed=0))
    train_head(store, "logreg", root / "head")
    return root / "ae", root / "head", data / "test"


def main() -> None:
    from cs_features.detect import DetectConfig, detect, load_detector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae", type=Path)
    parser.add_argument("--head", type=Path)
    parser.add_argument("--frames", type=Path, help="folder of images to detect on")
    parser.add_argument("--embryos", type=int, default=12, help="synthetic embryos when no models are given")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ae and args.head and args.frames:
            ae, head, frames = args.ae, args.head, args.frames
        else:
            ae, head, frames = build_models(Path(tmp), args.embryos)
        load_detector(ae, head)  # warm-up: imports and first loads are not charged to the first run
        runs = []
        for gate in (True, False):
            summary = detect([frames], ae, head, Path(tmp) / f"out_{gate}", DetectConfig(gate=gate)).to_dict()
            row = {"gate": gate, "frames": summary["frames"], "seconds": round(summary["seconds"], 2),
                   "frames_per_s": summary["frames_per_second"], "localized": summary["localized"],
                   "stage_seconds": {k: round(v, 2) for k, v in summary["stage_seconds"].items()}}
            runs.append(row)
            print(json.dumps(row), flush=True)
    gated, ungated = runs
    result = {"runs": runs, "speedup_from_gate": round(gated["frames_per_s"] / max(ungated["frames_per_s"], 1e-9), 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"speedup_from_gate": result["speedup_from_gate"]}))


if __name__ == "__main__":
    main()
