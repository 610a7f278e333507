"""``knn``: a proposal looks like its nearest labelled training proposals.

p is the distance-weighted share of positive neighbours and the IoU the distance-weighted mean of
their max IoU (weights ``1 / (distance + eps)``). Two ways to find neighbours:

- arrays (``fit``): exact search over the standardised training matrix in numpy, in blocks of query
  rows so memory stays bounded. The saved head holds the reference matrix (``.npz``).
- the store (:meth:`KNNHead.from_store`): LanceDB vector search on the encoder's proposals table,
  pre-filtered to labelled train-split rows, on the raw vectors (the table's own distance). The saved
  head holds only where to search (store uri, table, tag); loading it reopens the store.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cs_features.errors import ConfigError, StoreError
from cs_features.heads.base import HEADS, RegionHead
from cs_features.model_dir import atomic_path
from cs_features.runtime import usable_threads

WEIGHTS_FILE = "knn_reference.npz"
_EPS = 1e-6


@HEADS.register("knn")
class KNNHead(RegionHead):
    """Distance-weighted k nearest neighbours.

    Args:
        k: neighbours per query.
        standardise: scale features by the training mean/std before the exact search (arrays only).
        max_reference: cap on reference rows kept (a seeded draw keeping every positive); None keeps all.
        block_rows: query rows per distance block in the exact search (memory ~ block_rows * N_ref * 4 B per
            thread; blocks run on this process's cores side by side).
    """

    name = "knn"

    def __init__(self, k: int = 25, standardise: bool = True, max_reference: int | None = 100_000,
                 block_rows: int = 256, seed: int = 0, score_mode: str = "product", alpha: float = 0.5) -> None:
        super().__init__(seed=seed, score_mode=score_mode, alpha=alpha)
        self.k = k
        self.standardise = standardise
        self.max_reference = max_reference
        self.block_rows = block_rows

    # ---- exact search over arrays --------------------------------------------------------------
    def _fit(self, X, y, iou, X_val, y_val, iou_val) -> None:
        keep = self._reference_rows(y)
        X, y, iou = X[keep], y[keep], iou[keep]
        self.mean_ = X.mean(axis=0) if self.standardise else np.zeros(X.shape[1], np.float32)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-6, scale, 1.0).astype(np.float32) if self.standardise \
            else np.ones(X.shape[1], np.float32)
        self.reference_ = ((X - self.mean_) / self.scale_).astype(np.float32)
        self.reference_labels_ = y.astype(np.float32)
        self.reference_iou_ = np.nan_to_num(iou, nan=0.0).astype(np.float32)
        self.store_source_ = None

    def _reference_rows(self, y: np.ndarray) -> np.ndarray:
        if self.max_reference is None or len(y) <= self.max_reference:
            return np.arange(len(y))
        rng = np.random.default_rng(self.seed)
        positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        n_neg = max(int(self.max_reference) - len(positives), 0)
        chosen = np.concatenate([positives, rng.choice(negatives, min(n_neg, len(negatives)), replace=False)])
        return np.sort(chosen)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.store_source_ is not None:
            return self._predict_store(X)
        Z = ((X - self.mean_) / self.scale_).astype(np.float32)
        ref = self.reference_
        k = min(int(self.k), len(ref))
        ref_sq = (ref.astype(np.float64) ** 2).sum(1).astype(np.float32)
        ref_t = np.ascontiguousarray(ref.T)
        p, iou = np.empty(len(Z), np.float32), np.empty(len(Z), np.float32)

        def block(start: int) -> None:
            rows = Z[start:start + int(self.block_rows)]
            # |z|^2 - 2 z.r + |r|^2 in place, the same float operations in the same order as written out
            d2 = rows @ ref_t
            d2 *= -2.0
            d2 += (rows ** 2).sum(1, keepdims=True)
            d2 += ref_sq
            nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
            dist = np.sqrt(np.maximum(np.take_along_axis(d2, nearest, axis=1), 0.0))
            p[start:start + len(rows)], iou[start:start + len(rows)] = self._vote(
                dist, self.reference_labels_[nearest], self.reference_iou_[nearest])

        starts = range(0, len(Z), int(self.block_rows))
        # numpy's partition and arithmetic release the GIL: blocks run side by side (one thread in a pool worker)
        with ThreadPoolExecutor(max(1, min(len(starts), usable_threads()))) as pool:
            list(pool.map(block, starts))
        return p, iou

    @staticmethod
    def _vote(distance: np.ndarray, labels: np.ndarray, ious: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, k)`` neighbour distances, labels and IoUs -> ``(Q,)`` p and ``(Q,)`` IoU."""
        weight = 1.0 / (distance + _EPS)
        total = weight.sum(axis=1)
        return (weight * labels).sum(axis=1) / total, (weight * ious).sum(axis=1) / total

    # ---- LanceDB search in the store -----------------------------------------------------------
    @classmethod
    def from_store(cls, store, encoder: str, k: int = 25, tag: str | None = None, seed: int = 0,
                   score_mode: str = "product", alpha: float = 0.5) -> "KNNHead":
        """A fitted head whose neighbours are the store's labelled train-split proposals of ``encoder``."""
        from cs_features.heads.data import check_encoder

        info = check_encoder(store, encoder)
        head = cls(k=k, standardise=False, max_reference=None, seed=seed, score_mode=score_mode, alpha=alpha)
        head.store_source_ = {"uri": store.uri, "encoder": encoder, "tag": tag}
        head.n_features_ = int(info["dim"])
        head._table = None
        head._store = store
        return head

    def _open_table(self):
        if getattr(self, "_table", None) is None:
            from cs_features.store import FeatureStore, proposals_table_name

            store = getattr(self, "_store", None) or FeatureStore(self.store_source_["uri"])
            self._table = store.table(proposals_table_name(self.store_source_["encoder"]))
            if self.store_source_.get("tag"):
                self._table.checkout(self.store_source_["tag"])
        return self._table

    def _predict_store(self, X: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        table = self._open_table()
        k = int(self.k)
        p, iou = np.zeros(len(X), np.float32), np.zeros(len(X), np.float32)
        for start in range(0, len(X), batch):
            queries = X[start:start + batch]
            rows = (table.search(list(queries), vector_column_name="vector")
                    .where("split = 'train' AND weak_label >= 0", prefilter=True)
                    .select(["weak_label", "max_iou"]).limit(k).to_arrow())
            q = rows.column("query_index").to_numpy().astype(np.int64) if "query_index" in rows.column_names \
                else np.zeros(rows.num_rows, np.int64)
            if rows.num_rows == 0:
                raise StoreError(f"the store's proposals of {self.store_source_['encoder']!r} have no labelled "
                                 "train-split rows to search")
            dist = np.sqrt(np.maximum(rows.column("_distance").to_numpy(), 0.0))
            weight = 1.0 / (dist + _EPS)
            labels = rows.column("weak_label").to_numpy().astype(np.float64)
            known = np.nan_to_num(rows.column("max_iou").to_numpy(zero_copy_only=False).astype(np.float64), nan=0.0)
            total = np.bincount(q, weight, minlength=len(queries))
            p[start:start + len(queries)] = np.bincount(q, weight * labels, minlength=len(queries)) / total
            iou[start:start + len(queries)] = np.bincount(q, weight * known, minlength=len(queries)) / total
        return p, iou

    # ---- persistence ---------------------------------------------------------------------------
    def _save_weights(self, directory: Path) -> list[str]:
        if self.store_source_ is not None:
            return []
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            np.savez(tmp, mean=self.mean_, scale=self.scale_, reference=self.reference_,
                     labels=self.reference_labels_, iou=self.reference_iou_)
        return [WEIGHTS_FILE]

    def save(self, directory, provenance: dict | None = None, metrics: dict | None = None) -> Path:
        self._check_fitted()
        provenance = dict(provenance or getattr(self, "provenance_", {}))
        if self.store_source_ is not None:
            provenance["knn_store_source"] = self.store_source_
        return super().save(directory, provenance, metrics)

    def _load_weights(self, directory: Path, config: dict) -> None:
        source = config.get("provenance", {}).get("knn_store_source")
        if source is not None:
            self.store_source_, self._table, self._store = source, None, None
            return
        if not (directory / WEIGHTS_FILE).is_file():
            raise ConfigError(f"{str(directory)!r} holds a knn head without {WEIGHTS_FILE} or a store source")
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as data:
            self.mean_, self.scale_, self.reference_ = data["mean"], data["scale"], data["reference"]
            self.reference_labels_, self.reference_iou_ = data["labels"], data["iou"]
        self.store_source_ = None
