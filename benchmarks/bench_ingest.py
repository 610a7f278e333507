"""End-to-end ingest throughput (frames/s) and peak memory, per encoder, on `csf synth` frames.

Each configuration runs in a fresh subprocess so its peak RSS (parent and workers) is its own. Peak RSS
is measured on two dataset sizes to show it does not grow with the dataset.

    python benchmarks/bench_ingest.py --embryos 4 8 --encoders classic dinov3-vits16 --out benchmarks/results/ingest.json
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one_run(dataset: str, store: str, encoder: str, proposals: str, workers: int) -> dict:
    import resource

    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    weights = "random" if encoder.startswith("dinov3") else None
    config = IngestConfig(encoder=encoder, weights=weights, workers=workers,
                          settings=StoreSettings(proposals=ProposalConfig(method=proposals)))
    start = time.perf_counter()
    summary = ingest(dataset, store, config)
    seconds = time.perf_counter() - start
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "encoder": encoder, "proposals": proposals, "workers": workers, "frames": summary.frames_added,
        "seconds": round(seconds, 2), "frames_per_s": round(summary.frames_added / seconds, 3),
        "proposals_per_frame": round(summary.proposals_added / max(summary.frames_added, 1), 1),
        "stage_seconds_per_frame": {k: round(v / max(summary.frames_added, 1), 4)
                                    for k, v in summary.stage_seconds.items()},
        "peak_rss_parent_mb": round(self_kb / 1024, 1), "peak_rss_largest_worker_mb": round(child_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embryos", type=int, nargs="+", default=[3, 6],
                        help="dataset sizes (embryos, 6 frames each; at least 3)")
    parser.add_argument("--encoders", nargs="+", default=["classic", "dinov3-vits16"])
    parser.add_argument("--proposals", default="ss-fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ingest.json")
    parser.add_argument("--one", nargs=4, metavar=("DATASET", "STORE", "ENCODER", "PROPOSALS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_run(*args.one, workers=args.workers)))
        return
    from cs_features.synth import generate_dataset

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for embryos in args.embryos:
            data = Path(tmp) / f"data{embryos}"
            generate_dataset(data, n_embryos=embryos, seed=0)
            for encoder in args.encoders:
                store = Path(tmp) / f"store_{embryos}_{encoder}"
                cmd = [sys.executable, __file__, "--workers", str(args.workers), "--one", str(data), str(store),
                       encoder, args.proposals]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                row["embryos"] = embryos
                results.append(row)
                print(json.dumps(row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
