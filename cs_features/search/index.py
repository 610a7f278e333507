"""Indexes that make a proposals table searchable: a cosine vector index on the searched column and
scalar indexes on the filter columns.

Below :data:`EXACT_BELOW` rows the vector index is skipped: a flat scan is as fast there. The index is
IVF_HNSW_SQ, refined with exact distances. Rows added after indexing are still found: LanceDB scans
unindexed rows.
"""

from __future__ import annotations

from cs_features.errors import InputError
from cs_features.search.space import ensure_search_space, pick_encoder, resolve_space
from cs_features.store import FeatureStore, proposals_table_name

# From benchmarks/bench_search.py (384-d clustered vectors, 2 cores, 100 queries): exact search takes
# 2.4 / 3.6 / 9.7 / 102 / 1086 ms p50 at 2k / 5k / 20k / 100k / 1M rows; IVF_HNSW_SQ with 4096 rows per
# partition, nprobes 8, ef 320, refine 5 takes 2.7 / 2.8 / 3.8 / 3.5 / 5.5 ms at recall@10 >= 0.988.
EXACT_BELOW = 5_000
ROWS_PER_PARTITION = 4096
NPROBES, HNSW_EF, REFINE_FACTOR = 8, 320, 5
SCALAR_COLUMNS = ("frame_id", "split", "frame_label", "weak_label", "source")


def has_vector_index(table, column: str) -> bool:
    return any(column in index.columns for index in table.list_indices())


def build_index(store: FeatureStore, encoder: str | None = None, index_type: str = "IVF_HNSW_SQ",
                force: bool = False, refit: bool = False) -> dict:
    """Make an encoder's proposals searchable: search space, scalar indexes and a cosine vector index.

    The search space is fitted if missing (``refit``: refitted on the current train split) and
    ``search_vector`` filled, then the vector index is built on ``search_vector``. Below ``EXACT_BELOW``
    rows the vector index is skipped (exact search is as fast) unless ``force``. Returns what was done.
    """
    from lancedb.index import Bitmap, BTree, HnswSq, IvfPq

    kinds = {"IVF_HNSW_SQ": HnswSq, "IVF_PQ": IvfPq}
    if index_type not in kinds:
        raise InputError(f"index type {index_type!r} is not supported; use one of {', '.join(kinds)}")
    encoder = pick_encoder(store, encoder)
    space = ensure_search_space(store, encoder, refit=refit)
    vector_column = resolve_space(store, encoder).column
    table = store.table(proposals_table_name(encoder))
    rows = table.count_rows()
    built = {"encoder": encoder, "rows": rows, "search_space": space, "vector_column": vector_column,
             "vector_index": None, "scalar_indexes": []}
    for column in SCALAR_COLUMNS:
        bitmap = column in ("split", "frame_label", "weak_label", "source")  # few distinct values
        table.create_index(column, config=Bitmap() if bitmap else BTree(), replace=True)
        built["scalar_indexes"].append(f"{column} ({'BITMAP' if bitmap else 'BTREE'})")
    if rows >= EXACT_BELOW or force:
        partitions = max(1, rows // ROWS_PER_PARTITION)
        table.create_index(vector_column, replace=True,
                           config=kinds[index_type](distance_type="cosine", num_partitions=partitions))
        built["vector_index"] = f"{index_type} on {vector_column}, cosine, {partitions} partitions"
    return built
