"""Ingest and detect with a DINOv3 ``roi`` encoder on a GPU: frames/s per stage, worker counts side by side.

One run renders a synthetic dataset (``csf synth``), then, for each ``--ingest-workers`` count, ingests it
into a fresh store with the encoder on ``--device`` (random weights through the real loading path: the
timing does not depend on the weights' values). ``--reference`` adds an ingest with the classic encoder on
the CPU (the default encoder), on the same machine in the same run. It trains a quick autoencoder and a
logreg head on a small store of its own (their quality does not matter to the timing) and times
``csf detect`` on the test split for each ``--detect-workers`` count, with the gate off (every frame
through the whole chain) and on. Each run is timed from the call to its return, so worker start-up
(imports, model build, CUDA context) is charged to it; the rows also give the seconds per frame of each
stage, summed over workers, so the slowest stage is plain, and for ingest the seconds until the first frame
was done and those of the search-space fill. ``--device cpu`` runs everything on the CPU.

    python benchmarks/bench_gpu.py --embryos 40 --ingest-workers 16 8 --detect-workers 1 12 --reference \\
        --out benchmarks/results/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    multiprocessors=props.multi_processor_count)
    return info


def emit(row: dict, rows: list, out: Path) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=2))  # every row on disk as soon as it is measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embryos", type=int, default=80, help="synthetic embryos (6 frames each)")
    parser.add_argument("--preset", default="clean", help="csf synth preset")
    parser.add_argument("--encoder", default="dinov3-vitb16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ingest-workers", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--detect-workers", type=int, nargs="*", default=[1, 8],
                        help="worker processes of each detection (none: ingest only)")
    parser.add_argument("--reference", action="store_true",
                        help="also ingest with the classic encoder on the CPU, first worker count (same machine)")
    parser.add_argument("--train-embryos", type=int, default=6,
                        help="embryos of the small store the detect models are trained on (seed 1)")
    parser.add_argument("--ae-epochs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/gpu_work"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args()

    from cs_features.detect import DetectConfig, detect
    from cs_features.synth import generate_dataset, synth_preset

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_detect import build_models
    from bench_ingest import timed_ingest

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    emit({"step": "machine", **machine(args.device), "loadavg": os.getloadavg()}, rows, args.out)
    data = args.work / "data"
    if not (data / "manifest.csv").exists():
        start = time.perf_counter()
        summary = generate_dataset(data, n_embryos=args.embryos, seed=0, config=synth_preset(args.preset))
        emit({"step": "synth", "frames": summary.n_frames, "seconds": round(time.perf_counter() - start, 2)},
             rows, args.out)
    runs = [(args.encoder, args.device, workers) for workers in args.ingest_workers]
    if args.reference:
        runs.append(("classic", "cpu", args.ingest_workers[0]))
    for encoder, device, workers in runs:
        store = args.work / f"store_{encoder}_{device}_w{workers}"
        shutil.rmtree(store, ignore_errors=True)  # this benchmark's own store: a second run times a full ingest
        row = timed_ingest(str(data), str(store), encoder, "", workers, device)
        emit({"step": "ingest", **row, "loadavg": os.getloadavg()}, rows, args.out)
    if not args.detect_workers:
        return
    start = time.perf_counter()  # the models' quality does not matter here: a small store trains them quickly
    ae, head, _ = build_models(args.work / "train", args.train_embryos, "", seed=1,
                               synth_config=synth_preset(args.preset), encoder=args.encoder, device=args.device,
                               workers=args.ingest_workers[0], ae_epochs=args.ae_epochs)
    emit({"step": "train", "seconds": round(time.perf_counter() - start, 2)}, rows, args.out)
    for gate in (False, True):
        for workers in args.detect_workers:
            start = time.perf_counter()
            summary = detect([data / "test"], ae, head,
                             args.work / f"detect_{gate}_{workers}", DetectConfig(gate=gate), weights="random",
                             device=args.device, workers=workers).to_dict()
            seconds = time.perf_counter() - start
            emit({"step": "detect", "gate": gate, "workers": workers, "frames": summary["frames"],
                  "seconds": round(seconds, 2), "frames_per_s": round(summary["frames"] / seconds, 2),
                  "localized": summary["localized"],
                  "stage_seconds_per_frame": {k: round(v / max(summary["frames"], 1), 4)
                                              for k, v in summary["stage_seconds"].items()},
                  "loadavg": os.getloadavg()}, rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
