"""How fast the review page answers on a store of ~100k proposals (``csf review``).

A small synthetic dataset is ingested once; its frames and proposals are then replicated (new frame ids,
stems and embryos; vectors jittered) until the proposals table holds ``--proposals`` rows, and a
``detections.json`` with ``--boxes`` boxes per frame is written beside it. The review app is built over that
store and every page and API route is timed through FastAPI's test client (in-process HTTP: routing,
rendering, store reads and JSON, no network): the queue (default order, then sorted and filtered, and a
later page), a frame view, its picture and a crop, the nearest regions of a box (exact search, then with
the vector index `csf index` builds), and a decision written. Figures are p50 / p95 / max milliseconds over
``--repeats`` requests (the first request of each route is a warm-up and not counted).

    python benchmarks/bench_review.py --proposals 100000 --out benchmarks/results/review.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def base_store(root: Path) -> Path:
    """The tiny synthetic set (6 embryos x 3 frames, 192 px) ingested with up to 80 proposals per frame."""
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import SynthConfig, generate_dataset

    generate_dataset(root / "data", n_embryos=6, seed=7, config=SynthConfig(image_size=192, frames_per_embryo=3),
                     workers=1)
    settings = StoreSettings(proposals=ProposalConfig(method="ss-single,filament", max_proposals=80))
    ingest(root / "data", root / "db", IngestConfig(workers=1, settings=settings))
    return root / "db"


def replicate(path: Path, proposals: int, seed: int = 0) -> dict:
    """Copy the store's frames and proposals under new ids until the proposals table has ``proposals`` rows."""
    from cs_features.ids import proposal_id, short_hash
    from cs_features.store import (
        FRAMES,
        FeatureStore,
        fixed_list_to_numpy,
        frames_schema,
        proposals_table_name,
        vectors_to_arrow,
    )

    store = FeatureStore(str(path))
    name = proposals_table_name("classic")
    frames = store.read(FRAMES, with_row_id=True)
    blobs = {column: store.table(FRAMES).fetch_blobs(column, frames.column("_rowid").to_pylist()).to_pylist()
             for column in ("image", "preprocessed")}
    frames = frames.drop(["_rowid"])
    props = store.read(name)
    copies = max(0, int(np.ceil(proposals / props.num_rows)) - 1)
    dim = props.schema.field("vector").type.list_size
    vectors = fixed_list_to_numpy(props.column("vector"), dim)
    rng = np.random.default_rng(seed)
    for copy in range(1, copies + 1):
        new_id = {fid: short_hash(fid, "copy", copy) for fid in frames.column("frame_id").to_pylist()}
        rows = frames.to_pydict()
        rows["frame_id"] = [new_id[f] for f in rows["frame_id"]]
        rows["stem"] = [f"{s}_c{copy:03d}" for s in rows["stem"]]
        rows["embryo_id"] = [f"{e}c{copy:03d}" for e in rows["embryo_id"]]
        rows["path"] = [f"{p}#copy{copy}" for p in rows["path"]]
        rows["image"], rows["preprocessed"] = blobs["image"], blobs["preprocessed"]
        store.upsert(FRAMES, pa.Table.from_pydict(rows, schema=frames_schema()), schema=frames_schema())
        copied = props.to_pydict()
        copied["frame_id"] = [new_id[f] for f in copied["frame_id"]]
        copied["proposal_id"] = [proposal_id(f, b) for f, b in zip(copied["frame_id"], copied["box"])]
        copied["embryo_id"] = [f"{e}c{copy:03d}" for e in copied["embryo_id"]]
        jitter = vectors + rng.normal(scale=0.05 * vectors.std(), size=vectors.shape).astype(np.float32)
        table = pa.Table.from_pydict({k: v for k, v in copied.items() if k not in ("vector", "search_vector")},
                                     schema=pa.schema([f for f in props.schema if f.name not in ("vector",
                                                                                                  "search_vector")]))
        table = table.append_column("vector", vectors_to_arrow(jitter))
        if "search_vector" in props.schema.names:  # filled below in the store's search space
            empty = pa.nulls(table.num_rows, props.schema.field("search_vector").type)
            table = table.append_column("search_vector", empty)
        store.table(name).add(table)
    from cs_features.search import fill_search_vectors, load_search_space

    space = load_search_space(store, "classic")
    if space is not None:
        fill_search_vectors(store, "classic", space)
    return {"frames": store.count(FRAMES), "proposals": store.count(name)}


def write_detections(path: Path, out: Path, boxes: int, seed: int = 0) -> int:
    """A csf-detect-like detections.json: ``boxes`` stored proposals per frame with random p."""
    from cs_features.store import FRAMES, FeatureStore, proposals_table_name

    store = FeatureStore(str(path))
    frames = store.read(FRAMES, ["frame_id", "path", "stem", "embryo_id", "frame_index"]).to_pylist()
    props = store.read(proposals_table_name("classic"), ["frame_id", "box"]).to_pylist()
    by_frame: dict[str, list] = {}
    for row in props:
        by_frame.setdefault(row["frame_id"], []).append(row["box"])
    rng = np.random.default_rng(seed)
    payload = {"positive_p": 0.5, "ae_threshold": 0.1, "frames": [], "failed": []}
    for frame in frames:
        chosen = [{"box": b, "p": float(rng.uniform()), "iou": 0.3, "score": 0.1}
                  for b in by_frame[frame["frame_id"]][:boxes]]
        payload["frames"].append({**{k: frame[k] for k in ("path", "stem", "embryo_id", "frame_index")},
                                  "boxes": chosen, "frame_score": max(b["p"] for b in chosen)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "detections.json").write_text(json.dumps(payload))
    return sum(len(f["boxes"]) for f in payload["frames"])


def timed(client, method: str, url: str | list[str], repeats: int, **kwargs) -> dict:
    """p50 / p95 / max milliseconds of ``repeats`` requests after one warm-up; every answer must be 2xx.

    ``url`` may be a list: request ``i`` goes to ``url[i]`` (a new frame each time: nothing cached).
    """
    times = []
    for attempt in range(repeats + 1):
        target = url[attempt % len(url)] if isinstance(url, list) else url
        start = time.perf_counter()
        answer = getattr(client, method)(target, **kwargs)
        elapsed = (time.perf_counter() - start) * 1000
        if answer.status_code >= 300:
            raise RuntimeError(f"{method.upper()} {target} answered {answer.status_code}: {answer.text[:200]}")
        if attempt:
            times.append(elapsed)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "max_ms": round(times[-1], 1), "requests": len(times)}


def measure(path: Path, detections: Path, repeats: int) -> dict:
    from fastapi.testclient import TestClient

    from cs_features.review.app import ReviewConfig, create_app
    from cs_features.search import build_index

    start = time.perf_counter()
    app = create_app(ReviewConfig(str(path), str(detections), reviewer="bench"))
    startup = time.perf_counter() - start
    client, queue = TestClient(app), app.state.queue
    item = queue.ordered()[0]
    box = queue.frame_boxes(item.frame_id)[0]
    box_text = ",".join(map(str, box["box"]))
    others = queue.ordered(sort="embryo")[::7][:repeats + 1]
    routes = {
        "queue (priority, page 1)": ("get", "/queue", {}),
        "queue (score, split=val)": ("get", "/queue?sort=score&split=val", {}),
        "queue (embryo sort, page 10)": ("get", "/queue?sort=embryo&page=10", {}),
        "frame view": ("get", f"/frame/{item.frame_id}", {}),
        "frame view, a new frame each time": ("get", [f"/frame/{i.frame_id}" for i in others], {}),
        "frame picture (PNG), cached": ("get", f"/img/frame/{item.frame_id}.png", {}),
        "frame picture (PNG), a new frame each": ("get", [f"/img/frame/{i.frame_id}.png" for i in others], {}),
        "crop (PNG)": ("get", f"/img/crop/{item.frame_id}.png?box={box_text}", {}),
        "frame state (JSON)": ("get", f"/api/frame/{item.frame_id}", {}),
        "nearest regions, exact": ("get", f"/api/neighbours/{item.frame_id}?box={box_text}", {}),
    }
    figures = {name: timed(client, method, url, repeats, **kw) for name, (method, url, kw) in routes.items()}
    decision = {"frame_id": item.frame_id, "verdict": "accept", "box": box["box"], "proposal_id": box["proposal_id"]}
    figures["decision (POST, append + refresh)"] = timed(client, "post", "/api/decisions", repeats, json=decision)
    start = time.perf_counter()
    built = build_index(queue.store, encoder="classic")
    index_seconds = time.perf_counter() - start
    figures["nearest regions, indexed"] = timed(client, "get", f"/api/neighbours/{item.frame_id}?box={box_text}",
                                                repeats)
    return {"startup_s": round(startup, 2), "index_build_s": round(index_seconds, 1),
            "vector_index": built.get("vector_index"), "routes": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--boxes", type=int, default=5, help="detections per frame")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/review.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csf-bench-review-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        path = base_store(root)
        sizes = replicate(path, args.proposals)
        sizes["detections"] = write_detections(path, root / "detect", args.boxes)
        sizes["build_s"] = round(time.perf_counter() - start, 1)
        result = {"store": sizes, "cpus": os.cpu_count(), **measure(path, root / "detect", args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"store: {sizes['frames']} frames, {sizes['proposals']} proposals, {sizes['detections']} detections "
          f"(built in {sizes['build_s']} s); app start {result['startup_s']} s; "
          f"index build {result['index_build_s']} s")
    print(f"{'route':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, figure in result["routes"].items():
        print(f"{name:<40} {figure['p50_ms']:>8} {figure['p95_ms']:>8} {figure['max_ms']:>8}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
