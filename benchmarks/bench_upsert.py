"""Upserts into a growing table: the store's key index against scanning the key column, side by side.

An ingest writes each batch of frames with one ``merge_insert`` per table, joined on the table's
primary key (``FeatureStore.upsert``). Without an index on the key, every batch reads the whole key
column, so a batch's cost grows with the store. The store indexes the key once a table holds
``KEY_INDEX_FROM_ROWS`` rows and folds new rows into the index every ``KEY_INDEX_REFRESH_ROWS``.

Two proposals-like tables (a 16-hex-digit key, a frame id, a 104-d float32 vector: the classic
encoder's rows) grow to each size; at each size both take ``--repeats`` upserts of ``--batch`` rows
(a few replacing rows already stored, the rest new, as a resumed batch would), interleaved: one through
the store as it is, one with the key index turned off. Reports seconds per upsert (median) and the ratio.

    python benchmarks/bench_upsert.py --sizes 300000 1200000 3000000 --batch 1200
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

from cs_features.store import FeatureStore
from cs_features.store import db as store_db

SCHEMA = pa.schema([("proposal_id", pa.string()), ("frame_id", pa.string()),
                    ("vector", pa.list_(pa.float32(), 104))])


def rows(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    ids = np.arange(start, start + n)
    vectors = rng.normal(size=(n, 104)).astype(np.float32)
    return pa.table({"proposal_id": [f"{i:016x}" for i in ids], "frame_id": [f"f{i // 300:08d}" for i in ids],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 104)}, schema=SCHEMA)


def timed_upsert(store: FeatureStore, name: str, batch: pa.Table, indexed: bool) -> float:
    saved = store_db.KEY_INDEX_FROM_ROWS
    store_db.KEY_INDEX_FROM_ROWS = saved if indexed else 1 << 62
    try:
        start = time.perf_counter()
        store.upsert(name, batch, key="proposal_id", schema=SCHEMA)
        return time.perf_counter() - start
    finally:
        store_db.KEY_INDEX_FROM_ROWS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300_000, 1_200_000, 3_000_000])
    parser.add_argument("--batch", type=int, default=1200, help="rows per upsert (a batch of 4 frames of 300)")
    parser.add_argument("--replaced", type=int, default=100, help="of them, rows already stored")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/upsert.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="csf-bench-upsert-") as tmp:
        store = FeatureStore(str(Path(tmp) / "store"), create=True)
        tables = {"indexed": "rows_indexed", "scan": "rows_scan"}
        next_id = {name: 0 for name in tables.values()}
        for size in sorted(args.sizes):
            for name in tables.values():
                table = store.ensure_table(name, SCHEMA)
                while next_id[name] < size:
                    n = min(300_000, size - next_id[name])
                    table.add(rows(next_id[name], n, rng))
                    next_id[name] += n
            seconds = {kind: [] for kind in tables}
            for _ in range(args.repeats + 1):  # the first round builds or refreshes the index: reported apart
                for kind, name in tables.items():
                    new = rows(next_id[name], args.batch - args.replaced, rng)
                    old = rows(int(rng.integers(0, next_id[name] - args.replaced)), args.replaced, rng)
                    next_id[name] += args.batch - args.replaced
                    seconds[kind].append(timed_upsert(store, name, pa.concat_tables([old, new]), kind == "indexed"))
            row = {"rows": size, "batch": args.batch,
                   "first_upsert_s": {kind: round(s[0], 3) for kind, s in seconds.items()},
                   "upsert_s_median": {kind: round(statistics.median(s[1:]), 4) for kind, s in seconds.items()}}
            median = row["upsert_s_median"]
            row["ratio_scan_over_indexed"] = round(median["scan"] / median["indexed"], 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"\n| rows in the table | upsert of {args.batch} rows, key indexed (s) | key scanned (s) | ratio "
          "| first upsert, indexed (index built or refreshed) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['upsert_s_median']['indexed']:.3f} | {r['upsert_s_median']['scan']:.3f} | "
              f"{r['ratio_scan_over_indexed']}x | {r['first_upsert_s']['indexed']:.2f} |")


if __name__ == "__main__":
    main()
