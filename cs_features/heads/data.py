"""Training and evaluation arrays for the region heads, read straight from the feature store.

One projected, filtered Lance scan per request; the fixed-size-list columns become contiguous numpy
arrays with :func:`~cs_features.store.fixed_list_to_numpy` and splits are separated with Arrow
compute, so no Python code runs per row. Any read can be pinned to a table version or tag.

Frames a reviewer decided on (``csf review``, the ``annotations`` table) take their reviewed truth: their
proposals are labelled again against the accepted and drawn boxes, rejected boxes become negatives, a
frame marked CS-free has no strings (:mod:`cs_features.review.truth`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cs_features.errors import StoreError
from cs_features.review.truth import FrameTruth, relabel_rows, review_overrides, reviewed_frame_ids, reviewed_frame_row
from cs_features.store import FRAMES, FeatureStore, fixed_list_to_numpy, proposals_table_name, sql_quote

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class LabelledArrays:
    """Labelled proposals of one split: ``X`` (N, D) float32, ``y`` (N,) int8 0/1, ``iou`` (N,) float32,
    ``embryo_id`` and ``frame_id`` (N,) str (where each proposal comes from; empty when not loaded)."""

    X: np.ndarray
    y: np.ndarray
    iou: np.ndarray
    embryo_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    frame_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def subset(self, mask: np.ndarray) -> LabelledArrays:
        def pick(column: np.ndarray) -> np.ndarray:
            return column[mask] if len(column) else column

        return LabelledArrays(self.X[mask], self.y[mask], self.iou[mask], pick(self.embryo_id), pick(self.frame_id))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def positives(self) -> int:
        return int((self.y == 1).sum())


@dataclass
class ProposalArrays:
    """All proposals of a split, ignored ones included, with where they are.

    ``frame_id`` (N,) str, ``box`` (N, 4) int32, ``X`` (N, D) float32, ``weak_label`` (N,) int8 (1, 0,
    -1), ``max_iou`` (N,) float32 (NaN unknown).
    """

    frame_id: np.ndarray
    box: np.ndarray
    X: np.ndarray
    weak_label: np.ndarray
    max_iou: np.ndarray

    def __len__(self) -> int:
        return len(self.weak_label)


def open_store(store: FeatureStore | str, storage_options: dict | None = None) -> FeatureStore:
    """Accept an open store or a uri (a missing or empty store raises StoreError)."""
    return store if isinstance(store, FeatureStore) else FeatureStore(str(store), storage_options=storage_options)


def check_encoder(store: FeatureStore, encoder: str) -> dict:
    """The store's info for ``encoder`` (``dim``, ``weights_hash``, ...).

    Raises:
        StoreError: the store has no vectors of ``encoder`` (the message lists those it has), or the
            proposals table's vectors do not have the recorded dimension.
    """
    encoders = store.encoders()
    table_name = proposals_table_name(encoder)
    if encoder not in encoders or not store.has_table(table_name):
        have = ", ".join(sorted(encoders)) or "(none)"
        raise StoreError(f"store {store.uri!r} has no vectors of encoder {encoder!r}; it has: {have} "
                         f"(ingest with `csf ingest DATASET --store {store.uri} --encoder {encoder}` to add them)")
    info = encoders[encoder]
    vector_type = store.table(table_name).schema.field("vector").type
    width = getattr(vector_type, "list_size", None)
    if width != int(info["dim"]):
        raise StoreError(f"table {table_name!r} in {store.uri!r} holds vectors of dimension {width}, but encoder "
                         f"{encoder!r} is recorded with dimension {info['dim']}; the store is inconsistent")
    return info


def read_table(store: FeatureStore, name: str, columns: list[str], where: str | None = None,
               version: int | str | None = None) -> pa.Table:
    """Projected, filtered read of ``name`` at its latest version or at ``version`` (number or tag)."""
    table = store.table(name)
    if version is not None:
        try:
            table.checkout(version)
        except Exception as exc:
            raise StoreError(f"table {name!r} in {store.uri!r} has no version or tag {version!r}: {exc}") from exc
    try:
        return table.to_lance().to_table(columns=columns, filter=where)
    except Exception as exc:
        raise StoreError(f"reading {columns} of {name!r} from {store.uri!r} failed (where={where!r}): {exc}") from exc


def source_filter(sources: tuple[str, ...] | None) -> str:
    """SQL that keeps proposals of the given sources (all when ``sources`` is empty or None)."""
    if not sources:
        return ""
    return " AND source IN (" + ", ".join(f"'{sql_quote(s)}'" for s in sources) + ")"


def id_filter(frame_ids, negate: bool = False) -> str:
    """SQL keeping (or, with ``negate``, dropping) the rows of the given frames ("" when there are none)."""
    if not frame_ids:
        return ""
    listed = ", ".join(f"'{sql_quote(f)}'" for f in frame_ids)
    return f"frame_id {'NOT IN' if negate else 'IN'} ({listed})"


def load_reviews(store: FeatureStore, version: int | str | None = None) -> dict[str, FrameTruth]:
    """The reviewed truth of every frame a reviewer decided on (empty without an ``annotations`` table)."""
    ids = reviewed_frame_ids(store, version)
    if not ids:
        return {}
    rows = read_table(store, FRAMES, ["frame_id", "has_gt", "gt_boxes"], where=id_filter(ids), version=version)
    stored = {row["frame_id"]: np.asarray(row["gt_boxes"] or [], np.int32).reshape(-1, 4) if row["has_gt"] else None
              for row in rows.to_pylist()}
    return review_overrides(store, stored, version)


def weak_label_thresholds(store: FeatureStore) -> tuple[float, float]:
    """The store's ``(positive_iou, negative_iou)`` weak-label thresholds."""
    from cs_features.settings import StoreSettings

    labels = StoreSettings.from_dict(store.get_meta("settings") or {}).weak_labels
    return labels.positive_iou, labels.negative_iou


def reviewed_rows(store: FeatureStore, name: str, columns: list[str], where: str, reviews: dict[str, FrameTruth],
                  version: int | str | None = None) -> pa.Table:
    """``columns`` of the proposals matching ``where``, the reviewed frames' rows labelled by their review."""
    extra = [c for c in ("frame_id", "box", "weak_label", "max_iou") if c not in columns]
    rows = read_table(store, name, columns + extra, where=where, version=version)
    return relabel_rows(rows, reviews, *weak_label_thresholds(store)).select(columns)


def load_labelled(store: FeatureStore, encoder: str, splits=SPLITS,
                  version: int | str | None = None,
                  sources: tuple[str, ...] | None = None) -> dict[str, LabelledArrays]:
    """Labelled proposals (weak label 1 or 0; ignored rows dropped) of each split, one scan for all, in
    ``proposal_id`` order (the same arrays however the store's rows were written, so training is repeatable).

    ``sources`` restricts the rows to proposals of those sources (e.g. ``("ss-fast",)``).

    Returns:
        ``{split: LabelledArrays}`` for every split in ``splits`` (empty arrays where a split has none).
    """
    dim = int(check_encoder(store, encoder)["dim"])
    columns = ["split", "weak_label", "max_iou", "vector", "embryo_id", "frame_id", "proposal_id"]
    name, reviews = proposals_table_name(encoder), load_reviews(store, version)
    rows = read_table(store, name, columns, version=version,
                      where=" AND ".join(filter(None, ["weak_label >= 0" + source_filter(sources),
                                                       id_filter(list(reviews), negate=True)])))
    if reviews:  # every proposal of a reviewed frame: its review may label rows the stored truth ignored
        relabelled = reviewed_rows(store, name, columns, id_filter(list(reviews)) + source_filter(sources), reviews,
                                   version)
        relabelled = relabelled.filter(pc.greater_equal(relabelled.column("weak_label"), 0))
        rows = pa.concat_tables([rows, relabelled.cast(rows.schema)])
    rows = rows.sort_by("proposal_id")  # storage order depends on which ingest worker committed first
    X = fixed_list_to_numpy(rows.column("vector"), dim).astype(np.float32, copy=False)
    y = rows.column("weak_label").to_numpy().astype(np.int8)
    iou = rows.column("max_iou").to_numpy(zero_copy_only=False).astype(np.float32)
    embryo = np.asarray(rows.column("embryo_id").to_pylist(), dtype=object)
    frame = np.asarray(rows.column("frame_id").to_pylist(), dtype=object)
    split = rows.column("split")
    out = {}
    for name in splits:
        mask = pc.equal(split, name).to_numpy(zero_copy_only=False)
        out[name] = LabelledArrays(X[mask], y[mask], iou[mask], embryo[mask], frame[mask])
    log.info("loaded %d labelled %s proposals from %s (%s)", len(y), encoder, store.uri,
             ", ".join(f"{k} {len(v)}" for k, v in out.items()))
    return out


def load_proposals(store: FeatureStore, encoder: str, split: str = "test",
                   version: int | str | None = None, sources: tuple[str, ...] | None = None) -> ProposalArrays:
    """Every proposal of ``split`` (weak label -1 included): frame ids, boxes, vectors and labels, in
    ``proposal_id`` order."""
    dim = int(check_encoder(store, encoder)["dim"])
    rows = reviewed_rows(store, proposals_table_name(encoder),
                         ["frame_id", "box", "weak_label", "max_iou", "vector", "proposal_id"],
                         f"split = '{split}'" + source_filter(sources), load_reviews(store, version), version)
    rows = rows.sort_by("proposal_id")
    return ProposalArrays(
        frame_id=rows.column("frame_id").to_numpy(zero_copy_only=False).astype(str),
        box=fixed_list_to_numpy(rows.column("box"), 4).astype(np.int32, copy=False),
        X=fixed_list_to_numpy(rows.column("vector"), dim).astype(np.float32, copy=False),
        weak_label=rows.column("weak_label").to_numpy().astype(np.int8),
        max_iou=rows.column("max_iou").to_numpy(zero_copy_only=False).astype(np.float32),
    )


def load_frames(store: FeatureStore, split: str = "test", version: int | str | None = None) -> list[dict]:
    """Frames of ``split``: ``frame_id``, ``label``, ``has_gt``, ``width``, ``height`` and ``gt_boxes``
    as an ``(G, 4)`` int32 array (one dict per frame: frames are few, proposals are many); reviewed frames
    carry their reviewed truth. In ``frame_id`` order."""
    rows = read_table(store, FRAMES, ["frame_id", "label", "has_gt", "width", "height", "gt_boxes"],
                      where=f"split = '{split}'", version=version).sort_by("frame_id").to_pylist()
    reviews = load_reviews(store, version)
    rows = [reviewed_frame_row(row, reviews[row["frame_id"]]) if row["frame_id"] in reviews else row for row in rows]
    for row in rows:
        row["gt_boxes"] = np.asarray(row["gt_boxes"] or [], np.int32).reshape(-1, 4)
    return rows

