"""Retrieval quality of `csf similar`: raw cosine versus the fitted standardized search space.

For val-split queries, precision@k of CS-positive neighbours (``weak_label = 1``) among the train-split
proposals, searched exactly (LanceDB flat scan, ``cs_features.search.search``: the function
``similar`` uses) in both spaces:

- positive queries: val proposals with ``max_iou >= 0.5`` (a real string); higher is better.
- negative queries: val proposals with ``weak_label = 0``; lower is better.

Each is measured over all regions (every proposal is a candidate) and with one region per frame (as
``csf similar`` does by default). Queries are drawn with a fixed seed. The store must hold a search
space (``csf index --store STORE`` adds one to a store ingested before search spaces); this script
only reads.

    python benchmarks/bench_similar_quality.py --store STORE [--encoder classic] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

K = 10
TRAIN = "split = 'train'"


def draw_queries(store, encoder: str, n: int, seed: int) -> dict:
    """Positive and negative val queries: ``{kind: (proposal ids, raw vectors (n, D))}``, and the train
    split's positive share (the precision a random neighbour would have)."""
    from cs_features.store import fixed_list_to_numpy, proposals_table_name

    dim = int(store.encoders()[encoder]["dim"])
    rows = store.read(proposals_table_name(encoder), ["proposal_id", "vector", "split", "weak_label", "max_iou"])
    split = np.asarray(rows.column("split").to_pylist())
    label = np.asarray(rows.column("weak_label").to_pylist())
    iou = np.asarray(rows.column("max_iou").to_pylist(), float)  # None -> NaN, never >= 0.5
    vectors = fixed_list_to_numpy(rows.column("vector"), dim)
    ids = np.asarray(rows.column("proposal_id").to_pylist())
    rng = np.random.default_rng(seed)
    queries = {}
    for kind, mask in (("positive", (split == "val") & (iou >= 0.5)), ("negative", (split == "val") & (label == 0))):
        pool = np.flatnonzero(mask)
        if len(pool) == 0:
            raise SystemExit(f"the store has no {kind} val queries")
        pick = rng.choice(pool, min(n, len(pool)), replace=False)
        queries[kind] = (ids[pick], vectors[pick])
    return {"queries": queries, "train_positive_share": float((label[split == "train"] == 1).mean())}


def precision(store, encoder: str, vectors: np.ndarray, space: str, distinct_frames: bool) -> dict:
    from cs_features.search import resolve_space, search

    choice = resolve_space(store, encoder, space)
    shares, returned = [], []
    start = time.perf_counter()
    for vector in vectors:
        neighbours, exact = search(store, encoder, vector, k=K, where=TRAIN, exact=True,
                                   distinct_frames=distinct_frames, space=choice)
        assert exact and neighbours, "an exact search returned nothing"
        shares.append(np.mean([n.weak_label == 1 for n in neighbours]))
        returned.append(len(neighbours))
    seconds = time.perf_counter() - start
    return {f"precision@{K}": round(float(np.mean(shares)), 4), "mean_neighbours": float(np.mean(returned)),
            "seconds_per_query": round(seconds / len(vectors), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="feature store with a search space")
    parser.add_argument("--encoder", default="classic")
    parser.add_argument("--queries", type=int, default=300, help="queries of each kind (positive, negative)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/similar_quality.json")
    args = parser.parse_args()

    from cs_features.search import search_space_status, space_key
    from cs_features.store import FeatureStore, proposals_table_name

    store = FeatureStore(args.store)
    status = search_space_status(store, args.encoder)
    if not status.ready:
        raise SystemExit(f"{status.reason}")
    meta = store.get_meta(space_key(args.encoder))
    drawn = draw_queries(store, args.encoder, args.queries, args.seed)
    results: dict = {}
    for space in ("raw", "standardized"):
        for regions, distinct in (("all_regions", False), ("distinct_frames", True)):
            for kind, (_, vectors) in drawn["queries"].items():
                row = precision(store, args.encoder, vectors, space, distinct)
                results.setdefault(space, {}).setdefault(regions, {})[f"{kind}_queries"] = row
                print(f"{space:<12} {regions:<15} {kind:<8} queries: P@{K} {row[f'precision@{K}']:.3f} "
                      f"({row['seconds_per_query'] * 1000:.0f} ms/query)")
    report = {
        "store": args.store, "encoder": args.encoder, "k": K, "seed": args.seed,
        "queries": {kind: len(ids) for kind, (ids, _) in drawn["queries"].items()},
        "candidates": TRAIN, "train_positive_share": round(drawn["train_positive_share"], 4),
        "search_space": {key: meta[key] for key in ("fitted_on", "fitted_rows", "fitted_at", "kind")},
        "rows": store.count(proposals_table_name(args.encoder)), "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
