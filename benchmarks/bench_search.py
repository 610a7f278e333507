"""Approximate nearest-neighbour search on proposal-like vectors: build time, latency, recall@10.

Vectors have cluster structure like real region embeddings (a few hundred anisotropic clusters of
varied size, not uniform noise). For each size, the same queries (held-out points drawn from the
clusters) are run exactly (flat scan) and through one IVF_HNSW_SQ index per size with a grid of query
settings (nprobes, ef, refine factor); recall@10 is the overlap with the exact top 10. Per size the
"best" setting is the fastest (p50) that reaches the target recall. The crossover is the smallest size
at which that setting's p50 beats the exact p50.

    python benchmarks/bench_search.py --sizes 10000 100000 1000000 --dim 384 --out benchmarks/results/search.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def clustered_vectors(n: int, dim: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, dim)`` float32: cluster centres on a low-dimensional manifold, anisotropic spread, Zipf sizes."""
    basis = rng.normal(size=(32, dim)).astype(np.float32)
    centres = rng.normal(size=(clusters, 32)).astype(np.float32) @ basis
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 200_000):  # chunks keep the temporaries small
        stop = min(start + 200_000, n)
        scale = rng.uniform(0.2, 1.0, size=(stop - start, 1)).astype(np.float32)
        noise = rng.normal(size=(stop - start, dim)).astype(np.float32) * scale * 0.35
        out[start:stop] = centres[labels[start:stop]] / np.sqrt(32) + noise
    return out


def table_of(vectors: np.ndarray) -> pa.Table:
    from cs_features.store import vectors_to_arrow

    return pa.table({"proposal_id": pa.array([f"p{i}" for i in range(len(vectors))]),
                     "vector": vectors_to_arrow(vectors)})


def timed_queries(table, queries: np.ndarray, k: int, setting: dict | None) -> tuple[list[list[str]], list[float]]:
    """Run every query exactly (``setting`` None) or through the index with ``setting``'s parameters."""
    results, times = [], []
    for query in queries:
        search = table.search(query).distance_type("cosine").select(["proposal_id", "_distance"]).limit(k)
        if setting is None:
            search = search.bypass_vector_index()
        else:
            search = search.nprobes(setting["nprobes"]).ef(setting["ef"])
            if setting["refine"]:
                search = search.refine_factor(setting["refine"])
        start = time.perf_counter()
        rows = search.to_arrow()
        times.append((time.perf_counter() - start) * 1000)
        results.append(rows.column("proposal_id").to_pylist())
    return results, times


def settings_grid(nprobes: list[int], efs: list[int], refines: list[int]) -> list[dict]:
    return [{"nprobes": p, "ef": e, "refine": r} for p in nprobes for e in efs for r in refines]


def run_size(db, n: int, dim: int, queries: np.ndarray, seed: int, rows_per_partition: int,
             grid: list[dict], target_recall: float) -> dict:
    from lancedb.index import HnswSq

    rng = np.random.default_rng(seed)
    table = db.create_table(f"v{n}", data=table_of(clustered_vectors(n, dim, 400, rng)), mode="overwrite")
    timed_queries(table, queries[:5], 10, None)  # warm the page cache and the query path
    exact, exact_ms = timed_queries(table, queries, 10, None)
    partitions = max(1, n // rows_per_partition)
    start = time.perf_counter()
    table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=partitions))
    build_s = time.perf_counter() - start
    sweep = []
    for setting in grid:
        timed_queries(table, queries[:5], 10, setting)
        approx, approx_ms = timed_queries(table, queries, 10, setting)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
        sweep.append({**setting, "recall@10": round(recall, 4), "p50_ms": round(float(np.percentile(approx_ms, 50)), 2),
                      "p95_ms": round(float(np.percentile(approx_ms, 95)), 2)})
        print(json.dumps({"rows": n, **sweep[-1]}), flush=True)
    good = [s for s in sweep if s["recall@10"] >= target_recall]
    best = min(good, key=lambda s: s["p50_ms"]) if good else max(sweep, key=lambda s: s["recall@10"])
    return {"rows": n, "dim": dim, "index": f"IVF_HNSW_SQ cosine, {partitions} partitions",
            "build_s": round(build_s, 1),
            "exact_p50_ms": round(float(np.percentile(exact_ms, 50)), 2),
            "exact_p95_ms": round(float(np.percentile(exact_ms, 95)), 2),
            "best": best, "best_meets_target": bool(good), "sweep": sweep}


def main() -> None:
    import lancedb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rows-per-partition", type=int, default=4096, help="IVF partition size (rows)")
    parser.add_argument("--nprobes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--ef", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--refine", type=int, nargs="+", default=[0, 5], help="refine factors (0 = none)")
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        for n in args.sizes:
            # Queries come from the same cluster structure (same seed for centres) but are not in the table.
            queries = clustered_vectors(n + args.queries, args.dim, 400, np.random.default_rng(7))[-args.queries:]
            row = run_size(db, n, args.dim, queries, 7, args.rows_per_partition,
                           settings_grid(args.nprobes, args.ef, args.refine), args.target_recall)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "sweep"}), flush=True)
            db.drop_table(f"v{n}")
    faster = [r["rows"] for r in rows if r["best_meets_target"] and r["best"]["p50_ms"] < r["exact_p50_ms"]]
    summary = {"cpus": os.cpu_count(), "target_recall@10": args.target_recall, "runs": rows,
               "crossover_rows": min(faster) if faster else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({"crossover_rows": summary["crossover_rows"]}))


if __name__ == "__main__":
    main()
