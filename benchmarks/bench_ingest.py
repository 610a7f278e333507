"""Ingest throughput (frames/s), proposal recall and peak memory: today's default beside a fixed reference.

Every configuration ingests the same synthetic dataset in a fresh subprocess (its own peak RSS), one
after another in one run, so the ratios survive machine noise:

- ``reference``: the code and default settings of a pinned commit (``--reference-commit``; by default the
  last commit before the speed work), run from a git worktree of that commit: what "today's default"
  meant, encoder included;
- ``pinned``: this code with the reference's proposal sources pinned as a setting (``--reference-sources``),
  to separate what the proposal sources gained from what the code gained;
- ``default``: this code with its defaults.

Rounds (``--repeats``) interleave the configurations; the summary gives each one's median frames/s and its
ratio to the reference's median. Reported per run: frames/s, seconds per frame per stage (summed over workers),
proposals per frame, proposal recall at IoU 0.25 / 0.5, peak RSS; and the load average before and after.

    python benchmarks/bench_ingest.py --embryos 8 --presets clean hard --out benchmarks/results/ingest.json
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_COMMIT = "9f507d5"  # the last commit before issue 14's speed work
REFERENCE_SOURCES = "filament,ss-fast"


def timed_ingest(dataset: str, store: str, encoder: str, proposals: str, workers: int, device: str = "cpu") -> dict:
    """One ingest in this process (the code on ``sys.path``), timed from call to return; ``proposals`` empty =
    that code's default. DINOv3 encoders get random weights (the timing does not depend on their values)."""
    import resource

    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    weights = "random" if encoder.startswith("dinov3") else None
    settings = StoreSettings(proposals=ProposalConfig(method=proposals)) if proposals else StoreSettings()
    on_device = {"device": device} if device != "cpu" else {}  # the reference's code: its own default device
    config = IngestConfig(encoder=encoder, weights=weights, workers=workers, settings=settings, **on_device)
    start = time.perf_counter()
    summary = ingest(dataset, store, config)
    seconds = time.perf_counter() - start
    frames = max(summary.frames_added, 1)
    recall = summary.proposal_recall.get("all", {})
    return {
        "encoder": encoder, "device": device, "proposals": settings.proposals.method, "workers": workers,
        "frames": summary.frames_added, "seconds": round(seconds, 2),
        "frames_per_s": round(summary.frames_added / seconds, 3),
        # wall seconds besides the frames (None from a reference whose code did not measure them)
        "first_frame_seconds": _rounded(getattr(summary, "first_frame_seconds", None)),
        "search_space_seconds": _rounded((getattr(summary, "search_space", None) or {}).get("seconds")),
        "proposals_per_frame": round(summary.proposals_added / frames, 1),
        "recall@0.25": recall.get("recall@0.25"), "recall@0.5": recall.get("recall@0.5"),
        "strings": recall.get("strings"),
        "stage_seconds_per_frame": {k: round(v / frames, 4) for k, v in summary.stage_seconds.items()},
        "peak_rss_parent_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_largest_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _run(code_root: Path, dataset: Path, store: Path, encoder: str, proposals: str, workers: int) -> dict:
    """Run :func:`timed_ingest` in a subprocess that imports cs_features from ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--workers", str(workers), "--one", str(dataset),
           str(store), encoder, proposals or "-"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(code_root))
    if done.returncode != 0:
        raise RuntimeError(f"ingest run failed ({code_root}, {proposals or 'default'}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worktree(commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
                   check=True, capture_output=True, text=True)
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embryos", type=int, default=8, help="synthetic embryos per preset (6 frames each)")
    parser.add_argument("--presets", nargs="+", default=["clean", "hard"], help="csf synth presets to ingest")
    parser.add_argument("--encoder", default="classic")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reference-commit", default=REFERENCE_COMMIT,
                        help="commit whose code and defaults are the reference ('' to skip)")
    parser.add_argument("--reference-sources", default=REFERENCE_SOURCES,
                        help="proposal sources pinned for the 'pinned' run ('' to skip)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all configurations (medians reported)")
    parser.add_argument("--out", default="benchmarks/results/ingest.json")
    parser.add_argument("--one", nargs=4, metavar=("DATASET", "STORE", "ENCODER", "PROPOSALS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        dataset, store, encoder, proposals = args.one
        print(json.dumps(timed_ingest(dataset, store, encoder, "" if proposals == "-" else proposals, args.workers)))
        return
    from cs_features.synth import generate_dataset, synth_preset

    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    results, summaries = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = []
        if args.reference_commit:
            configs.append(("reference", _worktree(args.reference_commit, tmp / "reference"), ""))
        if args.reference_sources:
            configs.append(("pinned", ROOT, args.reference_sources))
        configs.append(("default", ROOT, ""))
        try:
            for preset in args.presets:
                data = tmp / f"data_{preset}"
                generate_dataset(data, n_embryos=args.embryos, seed=11, config=synth_preset(preset))
                rounds: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
                # Rounds interleave the configurations, so a slow spell of the machine hits them alike.
                for repeat in range(args.repeats):
                    for name, code, sources in configs:
                        row = _run(code, data, tmp / f"store_{preset}_{name}_{repeat}", args.encoder, sources,
                                   args.workers)
                        row.update(run=name, preset=preset, repeat=repeat,
                                   code=args.reference_commit if name == "reference" else "HEAD")
                        rounds[name].append(row)
                        print(json.dumps(row), flush=True)
                medians = {name: statistics.median(r["frames_per_s"] for r in rows) for name, rows in rounds.items()}
                base = medians.get("reference", medians.get("pinned"))
                for name, rows in rounds.items():
                    summary = {"run": name, "preset": preset, "median_frames_per_s": round(medians[name], 3),
                               "frames_per_s": [r["frames_per_s"] for r in rows],
                               "median_ratio_to_reference": round(medians[name] / max(base, 1e-9), 2),
                               "recall@0.5": rows[0]["recall@0.5"],
                               "proposals_per_frame": rows[0]["proposals_per_frame"]}
                    summaries.append(summary)
                    print(json.dumps(summary), flush=True)
                results.extend(row for rows in rounds.values() for row in rows)
        finally:
            if args.reference_commit:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "reference")],
                               capture_output=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    out = {"args": vars(args) | {"one": None}, "cpu_count": os.cpu_count(), "loadavg_before": load_before,
           "loadavg_after": load_after, "summary": summaries, "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out} (load average before {load_before}, after {load_after})")


if __name__ == "__main__":
    main()
