"""`csf detect` throughput (frames/s) per stage: the default sources beside pinned reference sources, gate on/off.

With ``--ae``/``--head`` it uses trained model directories and ``--frames`` (a folder of images) and times
only the gate on and off. Otherwise, for each configuration (``reference``: the proposal sources pinned by
``--reference-sources``, today's default before the speed work; ``default``: this code's defaults) it
renders the same small synthetic dataset, ingests it, trains a quick autoencoder and a logreg head, and
detects on the test split with the gate on and off (off: every frame through the whole chain). All runs
are in one process, one after another, so the ratios survive machine noise. ``--workers 1 2`` times each
detection with one process and with two worker processes (``csf detect --workers``), side by side.

    python benchmarks/bench_detect.py --out benchmarks/results/detect.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

REFERENCE_SOURCES = "filament,ss-fast"


def build_models(root: Path, embryos: int, sources: str, seed: int = 0, synth_config=None,
                 encoder: str = "classic", device: str = "auto", workers: int = 0,
                 ae_epochs: int = 4) -> tuple[Path, Path, Path]:
    """Render ``embryos`` synthetic embryos into ``root/data``, ingest them (``sources``; empty: the default
    ones), train an autoencoder and a logreg head; returns the two model folders and the test split's folder.
    A DINOv3 ``encoder`` gets random weights (timings do not depend on their values); ``device`` runs it and
    the autoencoder (``auto``: CUDA when present); ``workers`` 0: one ingest worker per core."""
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import generate_dataset

    data, store = root / "data", str(root / "store")
    generate_dataset(data, n_embryos=embryos, seed=seed, config=synth_config)
    settings = StoreSettings(proposals=ProposalConfig(method=sources)) if sources else StoreSettings()
    weights = "random" if encoder.startswith("dinov3") else None
    ingest(data, store, IngestConfig(encoder=encoder, weights=weights, device=device, workers=workers,
                                     settings=settings))
    train_from_store(store, root / "ae", AnomalyFilter(epochs=ae_epochs, seed=0, device=device))
    train_head(store, "logreg", root / "head", encoder=encoder)
    return root / "ae", root / "head", data / "test"


def timed(frames: Path, ae: Path, head: Path, out: Path, gate: bool, name: str, workers: int = 1) -> dict:
    from cs_features.detect import DetectConfig, detect, load_detector

    load_detector(ae, head)  # warm-up: imports and first loads are not charged to the run
    summary = detect([frames], ae, head, out, DetectConfig(gate=gate), workers=workers).to_dict()
    row = {"run": name, "gate": gate, "workers": workers, "frames": summary["frames"],
           "seconds": round(summary["seconds"], 2),
           "frames_per_s": summary["frames_per_second"], "localized": summary["localized"],
           "stage_seconds": {k: round(v, 2) for k, v in summary["stage_seconds"].items()}}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae", type=Path)
    parser.add_argument("--head", type=Path)
    parser.add_argument("--frames", type=Path, help="folder of images to detect on")
    parser.add_argument("--embryos", type=int, default=12, help="synthetic embryos when no models are given")
    parser.add_argument("--reference-sources", default=REFERENCE_SOURCES,
                        help="proposal sources of the reference run ('' to skip it)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="worker processes of each detection (several: each timed, side by side)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.ae and args.head and args.frames:
            for gate in (True, False):
                for workers in args.workers:
                    runs.append(timed(args.frames, args.ae, args.head, tmp / f"out_{gate}_{workers}", gate, "given",
                                      workers))
        else:
            configs = ([("reference", args.reference_sources)] if args.reference_sources else []) + [("default", "")]
            for name, sources in configs:
                ae, head, frames = build_models(tmp / name, args.embryos, sources)
                for gate in (True, False):
                    for workers in args.workers:
                        runs.append(timed(frames, ae, head, tmp / f"out_{name}_{gate}_{workers}", gate, name, workers))
    result = {"runs": runs, "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    one = min(args.workers)
    by = {(r["run"], r["gate"]): r["frames_per_s"] for r in runs if r["workers"] == one}
    for r in runs:  # each worker count against the fewest, same run and gate
        if r["workers"] != one:
            result[f"{r['run']}_gate_{'on' if r['gate'] else 'off'}_workers_{r['workers']}_over_{one}"] = round(
                r["frames_per_s"] / max(by[(r["run"], r["gate"])], 1e-9), 2)
    gated = runs[-1]["run"]  # "given" or "default": the run timed with the gate on and off
    result["speedup_from_gate"] = round(by[(gated, True)] / max(by[(gated, False)], 1e-9), 2)
    for gate, key in ((True, "default_over_reference_gated"), (False, "default_over_reference_every_frame")):
        if ("reference", gate) in by and ("default", gate) in by:
            result[key] = round(by[("default", gate)] / max(by[("reference", gate)], 1e-9), 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
