"""Rows written by distributed workers as uncommitted Lance fragments and committed by one driver.

A worker writes its batch's rows into a table's folder or object-store prefix
(:func:`write_fragments_json`); nothing is visible until the driver appends the fragments in one Lance
commit (:class:`FragmentCommitter`). Fragments never committed (a killed run) are files no version
references. Appends do not replace rows as ``merge_insert`` upserts do, so the committer first deletes
the rows a batch rewrites that the table already holds (found once, when the committer is made): a
redone batch replaces its rows instead of duplicating them.
"""

from __future__ import annotations

import json
import logging
import time

import pyarrow as pa

from cs_features.store import FeatureStore, sql_quote

log = logging.getLogger(__name__)

DELETE_CHUNK = 500  # keys per delete filter


def write_fragments_json(table: pa.Table, uri: str, storage_options: dict | None) -> list[str]:
    """Write ``table`` as uncommitted fragments of the Lance dataset at ``uri``; their metadata as JSON texts."""
    from lance.fragment import write_fragments

    if table.num_rows == 0:
        return []
    written = write_fragments(table, uri, schema=table.schema, storage_options=storage_options or None)
    return [json.dumps(fragment.to_json()) for fragment in written]


class FragmentCommitter:
    """Creates the tables workers append to and commits their fragments, table by table.

    Args:
        store: the feature store.
        schemas: ``{table name: schema}``; each table is created if missing.
        key_column: ``{table name: column}`` naming the rows a batch rewrites (e.g. ``frame_id``).
        keys: every key the run will write; those a table already holds (a killed run's batch committed
            without its marker, rows another encoder or an earlier scoring wrote) are deleted from it just
            before the batch that rewrites them is appended.
    """

    def __init__(self, store: FeatureStore, schemas: dict[str, pa.Schema], key_column: dict[str, str],
                 keys: set[str]) -> None:
        self.store = store
        self.key_column = key_column
        self.stored = {name: self._stored_keys(name, keys) for name in schemas}
        self.datasets = {name: store.ensure_table(name, schema).to_lance() for name, schema in schemas.items()}
        self.uris = {name: dataset.uri for name, dataset in self.datasets.items()}
        self.seconds = 0.0
        for name, stale in self.stored.items():
            if stale:
                log.info("%s: %d %s values to write already have rows: replaced as their batches are committed",
                         name, len(stale), key_column[name])

    def _stored_keys(self, name: str, keys: set[str]) -> set[str]:
        if not self.store.has_table(name):
            return set()
        import pyarrow.compute as pc

        column = self.key_column[name]
        return set(pc.unique(self.store.read(name, [column]).column(column)).to_pylist()) & keys

    def append(self, name: str, fragments_json: list[str], keys: list[str]) -> None:
        """Replace the rows of ``keys`` in table ``name`` by the fragments: old rows deleted, then one append."""
        import lance
        from lance.fragment import FragmentMetadata

        start = time.perf_counter()
        self._delete_stored(name, keys)
        fragments = [FragmentMetadata.from_json(text) for text in fragments_json]
        if fragments:
            dataset = self.datasets[name]
            self.datasets[name] = lance.LanceDataset.commit(
                dataset, lance.LanceOperation.Append(fragments), read_version=dataset.version,
                storage_options=self.store.storage_options or None)
        self.seconds += time.perf_counter() - start

    def _delete_stored(self, name: str, keys: list[str]) -> None:
        stale = sorted(self.stored[name].intersection(keys))
        if not stale:
            return
        import lance

        dataset = lance.dataset(self.uris[name], storage_options=self.store.storage_options or None)
        column = self.key_column[name]
        for i in range(0, len(stale), DELETE_CHUNK):
            chunk = ", ".join(f"'{sql_quote(key)}'" for key in stale[i:i + DELETE_CHUNK])
            dataset.delete(f"{column} IN ({chunk})")
        self.datasets[name] = dataset
        self.stored[name].difference_update(stale)
