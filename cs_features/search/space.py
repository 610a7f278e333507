"""The search space of similarity search: standardized, L2-normalised encoder vectors.

Cosine distance over raw hand-made descriptors (the ``classic`` encoder mixes intensity statistics,
GLCM, LBP, ridge responses and HOG, each on its own scale) is dominated by the few largest-scale
features. :class:`SearchSpace` centres and scales every dimension with the mean and standard deviation
of the store's train-split vectors, then L2-normalises, so each feature weighs in on its own variation.

Per encoder the fitted space lives in the store's ``meta`` table (key ``search_space:<encoder>``, JSON:
means, scales, the rows and split it was fitted on) and the transformed vectors in the proposals
table's ``search_vector`` column. The first ingest fits the space and fills the column; later ingests
write ``search_vector`` with the stored space as they write ``vector``; ``csf index --refit`` refits it
on the current train split and rewrites the column. The space is marked ``complete`` only once every
row holds its ``search_vector``, so a refit killed half-way is redone rather than half-used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cs_features.errors import InputError, NotFittedError, StoreError
from cs_features.store import FeatureStore, fixed_list_to_numpy, now, proposals_table_name, vectors_to_arrow

log = logging.getLogger(__name__)

SEARCH_COLUMN = "search_vector"
SPACE_SCHEMA_VERSION = 1
SPACE_KIND = "standardized-l2"
# search vectors per column-rewriting merge: Lance sorts each merge's rows in memory and cannot spill that
# sort, so a chunk of 200,000 768-d vectors (600 MB) exhausted its memory pool on a 16-core machine, while
# 64 MiB chunks fill 200,000 rows several times faster than 200,000-row ones
FILL_CHUNK_BYTES = 64 * 2 ** 20


class SearchSpace:
    """Per-dimension standardization followed by L2 normalisation (scikit-learn estimator contract).

    Args:
        min_std: dimensions whose standard deviation is below this count as constant and keep scale 1
            (as scikit-learn's ``StandardScaler`` does), so they neither blow up nor vanish.

    Attributes (after ``fit``):
        mean_: ``(D,)`` float64 per-dimension mean.
        scale_: ``(D,)`` float64 per-dimension standard deviation (1 for constant dimensions).
        n_samples_seen_: rows the space was fitted on.
    """

    def __init__(self, min_std: float = 1e-6) -> None:
        self.min_std = min_std

    def fit(self, X: np.ndarray) -> "SearchSpace":
        """Fit on ``X`` ``(N, D)``; returns self."""
        for name in ("mean_", "scale_", "n_samples_seen_", "_m2"):
            self.__dict__.pop(name, None)
        return self.partial_fit(X)

    def partial_fit(self, X: np.ndarray) -> "SearchSpace":
        """Update the fit with one more batch ``X`` ``(N, D)`` (Chan et al.'s pairwise mean/variance update)."""
        X = _check_matrix(X, getattr(self, "mean_", None))
        if not np.isfinite(X).all():
            raise ValueError("vectors to fit a search space on contain NaN or infinite values")
        n_b = X.shape[0]
        if n_b == 0:
            return self
        mean_b = X.mean(axis=0)
        m2_b = ((X - mean_b) ** 2).sum(axis=0)
        if not hasattr(self, "mean_"):
            self.n_samples_seen_, self.mean_, self._m2 = n_b, mean_b, m2_b
        else:
            n_a, n = self.n_samples_seen_, self.n_samples_seen_ + n_b
            delta = mean_b - self.mean_
            self.mean_ = self.mean_ + delta * (n_b / n)
            self._m2 = self._m2 + m2_b + delta ** 2 * (n_a * n_b / n)
            self.n_samples_seen_ = n
        std = np.sqrt(self._m2 / self.n_samples_seen_)
        self.scale_ = np.where(std < self.min_std, 1.0, std)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(N, D)`` vectors -> ``(N, D)`` float32 standardized then L2-normalised (all-zero rows stay zero)."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("this SearchSpace is not fitted yet; call fit() or load one from the store")
        Z = (_check_matrix(X, self.mean_) - self.mean_) / self.scale_
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        return (Z / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    @property
    def dim(self) -> int:
        return int(self.mean_.shape[0])

    def to_dict(self) -> dict:
        """JSON-ready fitted state (means and scales as lists of floats)."""
        if not hasattr(self, "mean_"):
            raise NotFittedError("this SearchSpace is not fitted yet; nothing to save")
        return {"schema_version": SPACE_SCHEMA_VERSION, "kind": SPACE_KIND, "dim": self.dim,
                "min_std": self.min_std, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "fitted_rows": int(self.n_samples_seen_)}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        """The space saved by :meth:`to_dict`.

        Raises:
            StoreError: another schema version or kind, or means/scales that do not fit together.
        """
        if data.get("schema_version") != SPACE_SCHEMA_VERSION or data.get("kind") != SPACE_KIND:
            raise StoreError(f"stored search space has schema version {data.get('schema_version')!r} and kind "
                             f"{data.get('kind')!r}; this cs_features reads version {SPACE_SCHEMA_VERSION} "
                             f"{SPACE_KIND!r}: run `csf index --refit`")
        mean = np.asarray(data.get("mean", []), np.float64)
        scale = np.asarray(data.get("scale", []), np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or mean.shape[0] != data.get("dim"):
            raise StoreError(f"stored search space is inconsistent: dim {data.get('dim')!r}, {mean.size} means, "
                             f"{scale.size} scales; run `csf index --refit`")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise StoreError("stored search space has non-finite means or non-positive scales; run `csf index --refit`")
        space = cls(min_std=float(data.get("min_std", 1e-6)))
        space.mean_, space.scale_ = mean, scale
        space.n_samples_seen_ = int(data.get("fitted_rows", 0))
        return space


def _check_matrix(X, mean: np.ndarray | None) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"vectors must be a numpy array (N, D), got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"vectors must be 2-D (N, D), got shape {X.shape}")
    if mean is not None and X.shape[1] != mean.shape[0]:
        raise ValueError(f"vectors have dimension {X.shape[1]}, the search space has {mean.shape[0]}")
    return X.astype(np.float64, copy=False)


# ---- the space in the store ---------------------------------------------------------------------

def space_key(encoder: str) -> str:
    return f"search_space:{encoder}"


def search_vector_field(dim: int) -> pa.Field:
    """The ``search_vector`` column: nullable until the encoder's space is fitted."""
    return pa.field(SEARCH_COLUMN, pa.list_(pa.float32(), dim))


def load_search_space(store: FeatureStore, encoder: str) -> SearchSpace | None:
    """The encoder's stored space, or None when none was fitted yet."""
    data = store.get_meta(space_key(encoder))
    return None if data is None else SearchSpace.from_dict(data)


@dataclass
class SpaceStatus:
    """Whether an encoder's proposals can be searched in the standardized space, and if not, why."""

    space: SearchSpace | None
    reason: str | None = None

    @property
    def ready(self) -> bool:
        return self.space is not None


def search_space_status(store: FeatureStore, encoder: str) -> SpaceStatus:
    """The space when every proposal row holds its ``search_vector`` under it; otherwise None and why."""
    fix = f"run `csf index --store {store.uri}` to fit it and fill the column"
    data = store.get_meta(space_key(encoder))
    if data is None:
        return SpaceStatus(None, f"the store has no search space for {encoder!r} (made before search spaces); {fix}")
    if not data.get("complete"):
        return SpaceStatus(None, f"the {encoder!r} search space was not finished filling search_vector; {fix}")
    table = store.table(proposals_table_name(encoder))
    if SEARCH_COLUMN not in table.schema.names:
        return SpaceStatus(None, f"{proposals_table_name(encoder)!r} has no {SEARCH_COLUMN} column; {fix}")
    missing = _rows_missing_search_vector(store, table)
    if missing:
        return SpaceStatus(None, f"{missing} proposal rows have no {SEARCH_COLUMN} yet (an ingest is running or was "
                                 f"stopped before it finished); {fix}")
    return SpaceStatus(SearchSpace.from_dict(data))


# (store uri, table name, table version) -> rows with a null search_vector. A Lance table version never
# changes once committed, so the count (a scan, about 30 ms at 259k rows, which would dominate an indexed
# query of about 5 ms) is taken once per version, not once per query.
_MISSING_BY_VERSION: dict[tuple[str, str, int], int] = {}


def _rows_missing_search_vector(store: FeatureStore, table) -> int:
    key = (store.uri, table.name, int(table.version))
    if key not in _MISSING_BY_VERSION:
        _MISSING_BY_VERSION[key] = table.count_rows(f"{SEARCH_COLUMN} IS NULL")
    return _MISSING_BY_VERSION[key]


def fit_search_space(store: FeatureStore, encoder: str, batch_size: int = 65_536) -> SearchSpace | None:
    """Fit a space on the encoder's train-split vectors; None when the store has no train split.

    A store of test frames only (a lab screening new embryos) is never standardised with its own test
    vectors: it is searched in the raw space until a train split is ingested.
    """
    dim = int(store.encoders()[encoder]["dim"])
    dataset = store.table(proposals_table_name(encoder)).to_lance()
    space = SearchSpace()
    for batch in dataset.to_batches(columns=["vector"], filter="split = 'train'", batch_size=batch_size):
        space.partial_fit(fixed_list_to_numpy(batch.column("vector"), dim))
    return space if hasattr(space, "mean_") else None


def fill_search_vectors(store: FeatureStore, encoder: str, space: SearchSpace, only_missing: bool = True,
                        chunk_bytes: int = FILL_CHUNK_BYTES) -> int:
    """Write ``search_vector = space.transform(vector)`` into the proposals table; returns the rows written.

    Only the new column's data files are written (Lance's column-rewriting merge), in chunks of at most
    ``chunk_bytes`` of search vectors, so memory stays bounded whatever the table's size and ``vector`` and
    its index are left alone. A table made before search spaces first gets the (all-null) column.
    """
    name = proposals_table_name(encoder)
    field = search_vector_field(space.dim)
    table = store.table(name)
    if SEARCH_COLUMN not in table.schema.names:
        table.to_lance().add_columns(field)  # metadata only: every row null until filled below
        table = store.table(name)
    dataset = table.to_lance()
    key = dataset.schema.field("proposal_id")
    where = f"{SEARCH_COLUMN} IS NULL" if only_missing else None
    chunk_rows = max(1, int(chunk_bytes) // (4 * space.dim))
    pending: list[pa.RecordBatch] = []
    pending_rows = written = 0
    for batch in dataset.to_batches(columns=["proposal_id", "vector"], filter=where, batch_size=chunk_rows):
        if pending and pending_rows + batch.num_rows > chunk_rows:
            written += _write_chunk(store, name, pending, space, key, field)
            pending, pending_rows = [], 0
        if batch.num_rows:
            pending.append(batch)
            pending_rows += batch.num_rows
    if pending:
        written += _write_chunk(store, name, pending, space, key, field)
    return written


def _write_chunk(store, name, parts, space: SearchSpace, key: pa.Field, field: pa.Field) -> int:
    rows = pa.Table.from_batches(parts)
    vectors = space.transform(fixed_list_to_numpy(rows.column("vector"), space.dim))
    source = pa.table([rows.column("proposal_id"), vectors_to_arrow(vectors)], schema=pa.schema([key, field]))
    store.patch_columns(name, source, key="proposal_id")
    return rows.num_rows


def ensure_search_space(store: FeatureStore, encoder: str, refit: bool = False) -> dict:
    """Make every proposal of ``encoder`` searchable in a fitted space; returns what was done.

    Without a stored space (or with ``refit``) fit one on the current train split and fill every row;
    with one, fill only rows that lack ``search_vector`` (rows written before the space existed). The
    space is saved as incomplete first and marked complete after the fill, so a run killed in between
    is finished by the next one. Running it again changes nothing.
    """
    key = space_key(encoder)
    stored = store.get_meta(key)
    fitted = refit or stored is None
    if fitted:
        space = fit_search_space(store, encoder)
        if space is None:
            reason = ("no train split to fit the search space on (test vectors are never used to fit it): "
                      "searches use raw vectors until a train split is ingested")
            log.warning("%s: %s", store.uri, reason)
            return {"encoder": encoder, "fitted": False, "rows_filled": 0, "fitted_on": None, "reason": reason}
        table = store.table(proposals_table_name(encoder))
        stored = {**space.to_dict(), "encoder": encoder, "fitted_on": "train", "fitted_at": now().isoformat(),
                  "table_version": int(table.version), "complete": False}
        store.set_meta(key, stored)
    else:
        space = SearchSpace.from_dict(stored)
    only_missing = not fitted and bool(stored.get("complete"))  # an unfinished fill is redone whole
    filled = fill_search_vectors(store, encoder, space, only_missing=only_missing)
    if not stored.get("complete"):
        stored = {**stored, "complete": True}
        store.set_meta(key, stored)
    if fitted or filled:
        log.info("search space %s: %s, %d rows filled", encoder, "fitted" if fitted else "kept", filled)
    return {"encoder": encoder, "fitted": fitted, "rows_filled": filled, "fitted_on": stored["fitted_on"],
            "fitted_rows": stored["fitted_rows"], "fitted_at": stored["fitted_at"]}


SPACES = ("auto", "standardized", "raw")


@dataclass
class SpaceChoice:
    """The space a search runs in: ``"standardized"`` (column ``search_vector``, with its fitted space) or
    ``"raw"`` (column ``vector``), and why raw when a standardized search was not possible."""

    name: str
    column: str
    space: SearchSpace | None = None
    note: str | None = None


def pick_encoder(store: FeatureStore, encoder: str | None) -> str:
    """The encoder to search: the one asked for, or the store's only one."""
    known = store.encoders()
    if not known:
        raise StoreError(f"feature store {store.uri!r} has no proposal vectors; run `csf ingest` first")
    if encoder is None:
        if len(known) > 1:
            raise StoreError(f"store {store.uri!r} holds vectors of several encoders ({', '.join(sorted(known))}); "
                             "pass --encoder")
        return next(iter(known))
    if encoder not in known:
        raise StoreError(f"store {store.uri!r} has no {encoder!r} vectors; it has: {', '.join(sorted(known))}")
    return encoder


def resolve_space(store: FeatureStore, encoder: str, space: str | None = None) -> SpaceChoice:
    """The space to search ``encoder``'s proposals in.

    Args:
        space: ``"auto"``/None (the fitted space when every row holds its ``search_vector``, else raw,
            with the reason in ``note``), ``"standardized"`` (raise when unavailable) or ``"raw"``.

    Raises:
        ValueError: an unknown ``space``.
        StoreError: ``"standardized"`` asked for and the store has no finished space (the message says why).
    """
    space = space or "auto"
    if space not in SPACES:
        raise InputError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    if space == "raw":
        return SpaceChoice("raw", "vector")
    status = search_space_status(store, encoder)
    if status.ready:
        return SpaceChoice("standardized", SEARCH_COLUMN, status.space)
    if space == "standardized":
        raise StoreError(f"cannot search {store.uri!r} in the standardized space: {status.reason}")
    log.info("searching raw %s vectors: %s", encoder, status.reason)  # the result says so too
    return SpaceChoice("raw", "vector", note=f"raw vectors searched: {status.reason}")
