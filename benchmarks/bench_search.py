"""Approximate nearest-neighbour search on proposal-like vectors: build time, latency, recall@10.

Vectors have cluster structure like real region embeddings (a few hundred anisotropic clusters of
varied size, not uniform noise). For each size, the same queries (held-out points drawn from the
clusters) are run exactly (flat scan) and through the index; recall@10 is the overlap with the exact top
10. The crossover is the smallest size at which the indexed p50 beats the exact p50.

    python benchmarks/bench_search.py --sizes 10000 100000 1000000 --dim 384 --out benchmarks/results/search.json
"""

from __future__ import annotations

import argparse
import json
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

    return pa.table({"proposal_id": pa.array([f"p{i}" for i in range(len(vectors))]), "vector": vectors_to_arrow(vectors)})


def timed_queries(table, queries: np.ndarray, k: int, exact: bool) -> tuple[list[list[str]], list[float]]:
    results, times = [], []
    for query in queries:
        search = table.search(query).distance_type("cosine").select(["proposal_id", "_distance"]).limit(k)
        search = search.bypass_vector_index() if exact else search.nprobes(24).refine_factor(10)
        start = time.perf_counter()
        rows = search.to_arrow()
        times.append((time.perf_counter() - start) * 1000)
        results.append(rows.column("proposal_id").to_pylist())
    return results, times


def run_size(db, n: int, dim: int, queries: np.ndarray, seed: int) -> dict:
    from lancedb.index import HnswSq

    rng = np.random.default_rng(seed)
    table = db.create_table(f"v{n}", data=table_of(clustered_vectors(n, dim, 400, rng)), mode="overwrite")
    exact, exact_ms = timed_queries(table, queries, 10, exact=True)
    start = time.perf_counter()
    partitions = max(1, int(np.sqrt(n)))
    table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=partitions))
    build_s = time.perf_counter() - start
    approx, approx_ms = timed_queries(table, queries, 10, exact=False)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    return {"rows": n, "dim": dim, "index": f"IVF_HNSW_SQ cosine, {partitions} partitions, nprobes 24, refine 10",
            "build_s": round(build_s, 1), "recall@10": round(float(recall), 4),
            "exact_p50_ms": round(float(np.percentile(exact_ms, 50)), 2), "exact_p95_ms": round(float(np.percentile(exact_ms, 95)), 2),
            "index_p50_ms": round(float(np.percentile(approx_ms, 50)), 2), "index_p95_ms": round(float(np.percentile(approx_ms, 95)), 2)}


def main() -> None:
    import lancedb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        for n in args.sizes:
            # Queries come from the same cluster structure (same seed for centres) but are not in the table.
            queries = clustered_vectors(n + args.queries, args.dim, 400, np.random.default_rng(7))[-args.queries:]
            row = run_size(db, n, args.dim, queries, seed=7)
            rows.append(row)
            print(json.dumps(row), flush=True)
            db.drop_table(f"v{n}")
    faster = [r["rows"] for r in rows if r["index_p50_ms"] < r["exact_p50_ms"]]
    summary = {"runs": rows, "crossover_rows": min(faster) if faster else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({"crossover_rows": summary["crossover_rows"]}))


if __name__ == "__main__":
    main()
