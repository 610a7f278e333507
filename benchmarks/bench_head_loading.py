"""Loading region-head training arrays: the LanceDB store versus the published one-.npz-per-row layout.

Store path: :func:`cs_features.heads.data.load_labelled` (one projected, filtered Lance scan; the
vector column becomes a contiguous (N, D) array without per-row Python). Published path: one ``.npz``
per proposal (vector, label, IoU) in a folder, read back with ``np.load`` in a loop and stacked.
Both run in the same process on the same rows. The store is either an existing one (``--store``)
or a synthetic proposals table of ``--rows`` random rows per dimension written through the public
store API.

    python benchmarks/bench_head_loading.py --rows 300000 --dims 104 384 --npz-rows 20000 \
        --out benchmarks/results/head_loading.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def synthetic_store(path: Path, rows: int, dim: int, seed: int = 0) -> str:
    """Write a proposals table of ``rows`` random rows with ``dim``-D vectors; returns the encoder name."""
    from cs_features.store import FeatureStore, proposals_schema, proposals_table_name, vectors_to_arrow

    rng = np.random.default_rng(seed)
    encoder = f"bench-d{dim}"
    store = FeatureStore(str(path), create=True)
    split = rng.choice(np.array(["train", "val", "test"]), rows, p=[0.6, 0.2, 0.2])
    label = rng.choice(np.array([1, 0, -1], np.int8), rows, p=[0.15, 0.8, 0.05])
    corner = rng.integers(0, 400, (rows, 2))
    boxes = np.concatenate([corner, corner + rng.integers(4, 100, (rows, 2))], axis=1).astype(np.int32)
    table = pa.table({
        "proposal_id": pa.array(np.char.mod("%012d", np.arange(rows))),
        "frame_id": pa.array(np.char.mod("f%05d", np.arange(rows) // 300)),
        "split": pa.array(split), "frame_label": pa.array(np.where(label == 1, "abnormal", "normal")),
        "embryo_id": pa.array(np.char.mod("e%04d", np.arange(rows) // 1800)),
        "box": pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1)), 4),
        "source": pa.array(np.full(rows, "bench")), "max_iou": pa.array(rng.random(rows).astype(np.float32)),
        "weak_label": pa.array(label), "encoder": pa.array(np.full(rows, encoder)),
        "vector": vectors_to_arrow(rng.standard_normal((rows, dim)).astype(np.float32)),
    }, schema=proposals_schema(dim, search_vector=False))  # heads read `vector` only; no search space needed
    store.db.create_table(proposals_table_name(encoder), data=table, schema=proposals_schema(dim, search_vector=False))
    store.set_meta(f"encoder:{encoder}", {"name": encoder, "dim": dim, "pooling": "none", "weights_hash": "none",
                                          "settings": {}})
    return encoder


def time_store(store_uri: str, encoder: str, repeats: int) -> dict:
    from cs_features.heads.data import load_labelled
    from cs_features.store import FeatureStore

    store = FeatureStore(store_uri)
    seconds, rows = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        data = load_labelled(store, encoder)
        seconds.append(time.perf_counter() - start)
        rows = sum(len(a) for a in data.values())
    return {"rows": rows, "dim": int(data["train"].X.shape[1]), "seconds_first": seconds[0],
            "seconds_median": statistics.median(seconds), "rows_per_s_first": rows / seconds[0],
            "rows_per_s_median": rows / statistics.median(seconds)}


def time_npz(store_uri: str, encoder: str, n_rows: int, folder: Path) -> dict:
    """Write ``n_rows`` labelled rows as one .npz each, then time the published read-back loop."""
    from cs_features.heads.data import load_labelled
    from cs_features.store import FeatureStore

    train = load_labelled(FeatureStore(store_uri), encoder, splits=("train",))["train"]
    n_rows = min(n_rows, len(train))
    start = time.perf_counter()
    for i in range(n_rows):
        np.savez(folder / f"{i:08d}.npz", vector=train.X[i], label=train.y[i], iou=train.iou[i])
    write_seconds = time.perf_counter() - start
    start = time.perf_counter()
    vectors, labels, ious = [], [], []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as item:
            vectors.append(item["vector"])
            labels.append(int(item["label"]))
            ious.append(float(item["iou"]))
    X = np.stack(vectors)
    read_seconds = time.perf_counter() - start
    assert X.shape == (n_rows, train.X.shape[1]) and np.array_equal(X, train.X[:n_rows])
    return {"rows": n_rows, "write_seconds": write_seconds, "read_seconds": read_seconds,
            "rows_per_s": n_rows / read_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="an existing store to read (default: synthetic tables)")
    parser.add_argument("--encoder", default="classic", help="encoder of --store")
    parser.add_argument("--rows", type=int, default=300_000, help="rows of each synthetic table")
    parser.add_argument("--dims", type=int, nargs="+", default=[104, 384], help="vector sizes of synthetic tables")
    parser.add_argument("--npz-rows", type=int, default=20_000, help="rows written as per-row .npz files")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/head_loading.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="csf-bench-heads-") as tmp:
        cases = [(args.store, args.encoder)] if args.store else \
            [(str(Path(tmp) / f"store{d}"), synthetic_store(Path(tmp) / f"store{d}", args.rows, d)) for d in args.dims]
        for uri, encoder in cases:
            npz_dir = Path(tmp) / f"npz_{encoder}"
            npz_dir.mkdir()
            row = {"store": uri if args.store else "synthetic", "encoder": encoder,
                   "lance": time_store(uri, encoder, args.repeats),
                   "npz": time_npz(uri, encoder, args.npz_rows, npz_dir)}
            row["speedup_median"] = row["lance"]["rows_per_s_median"] / row["npz"]["rows_per_s"]
            results.append(row)
            print(json.dumps(row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
