"""Ingest throughput of the local and the Ray engine on one machine, and what a Ray batch commit costs.

Ingests one `csf synth` dataset (500x500 frames, the default proposals and classic encoder) into a fresh
store per run: the local engine (process pool) and the Ray engine (actors writing Lance fragments, the
driver committing each batch), each with 1 and 2 workers. Ray is started once, before the timed runs,
with as many CPUs as the most workers asked (its start-up is reported apart); the local runs come first,
so no Ray process competes with them.

Per run: frames/s (wall clock of the whole ingest, search space included), per-frame stage seconds,
and per batch the write seconds (local: the parent's upserts; Ray: the worker's fragment writes) and the
Ray driver's commit seconds (proposals and frames appends, the ingest_log upsert). From the 1-worker
runs: CPU-hours a 100k-frame ingest costs (one worker per core).

    python benchmarks/bench_scale.py --embryos 4 --workers 1 2 --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path


def _run(dataset: Path, store: Path, engine: str, workers: int, batch_frames: int) -> dict:
    from cs_features.ingest import IngestConfig, ingest

    config = IngestConfig(engine=engine, workers=workers, batch_frames=batch_frames)
    start = time.perf_counter()
    summary = ingest(dataset, store, config)
    seconds = time.perf_counter() - start
    frames = max(summary.frames_added, 1)
    batches = math.ceil(frames / batch_frames)
    stages = summary.stage_seconds
    return {
        "engine": engine, "workers": workers, "frames": summary.frames_added, "batches": batches,
        "seconds": round(seconds, 2), "frames_per_s": round(summary.frames_added / seconds, 3),
        "proposals_per_frame": round(summary.proposals_added / frames, 1),
        "stage_seconds_per_frame": {k: round(v / frames, 4) for k, v in stages.items() if k not in ("write", "commit")},
        "write_seconds_per_batch": round(stages.get("write", 0.0) / batches, 4),
        "commit_seconds_per_batch": round(stages["commit"] / batches, 4) if "commit" in stages else None,
    }


def _cpu_hours_per_100k(row: dict) -> float:
    """Core-hours for 100k frames at this run's rate (one worker per core)."""
    return round(100_000 * row["workers"] / row["frames_per_s"] / 3600, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embryos", type=int, default=4, help="synthetic embryos, 6 frames each (at least 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-frames", type=int, default=4, help="frames per batch (per commit)")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args = parser.parse_args()

    from cs_features.ingest.ray_engine import ray_session
    from cs_features.synth import generate_dataset

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_dataset(data, n_embryos=args.embryos, seed=0)
        for workers in args.workers:
            runs.append(_run(data, Path(tmp) / f"local{workers}", "local", workers, args.batch_frames))
            print(json.dumps(runs[-1]))
        start = time.perf_counter()
        with ray_session(None, num_cpus=max(args.workers)):  # the runs join this Ray instead of starting one each
            ray_start_s = round(time.perf_counter() - start, 2)
            for workers in args.workers:
                runs.append(_run(data, Path(tmp) / f"ray{workers}", "ray", workers, args.batch_frames))
                print(json.dumps(runs[-1]))
    one = {row["engine"]: row for row in runs if row["workers"] == 1}
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "dataset": {"embryos": args.embryos, "frames": runs[0]["frames"], "image_size": 500},
        "batch_frames": args.batch_frames, "ray_start_seconds": ray_start_s, "runs": runs,
        "cpu_hours_per_100k_frames": {engine: _cpu_hours_per_100k(row) for engine, row in one.items()},
        "command": f"python benchmarks/bench_scale.py --embryos {args.embryos} --workers "
                   f"{' '.join(map(str, args.workers))} --batch-frames {args.batch_frames}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ray_start_seconds", "cpu_hours_per_100k_frames")}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
