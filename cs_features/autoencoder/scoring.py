"""Anomaly scores from residual maps, the compact residual encoding, and the ``error_maps`` table.

**Score reducers** (registry :data:`REDUCERS`) turn a residual map ``|x - x_hat|`` ``(H, W)`` float32 and a
low-texture mask ``(H, W)`` bool into one anomaly score, using the pixels inside the mask (the whole frame
when the mask is empty): ``p95`` (published default), ``p99``, ``mean``, ``max`` and ``topk-mean`` (mean of
the largest 0.5 % of the pixels, at least one). Percentiles interpolate linearly (``numpy.percentile``).

What the reducer sees (the region, a filtered residual) is decided in :mod:`.score_maps`.

**Residual encoding** (column ``residual_png`` + ``residual_scale``): the ``(S, S)`` residual in [0, 1] is
divided by its maximum ``scale`` (1.0 for an all-zero map), quantised to uint8 with
``q = round(255 * r / scale)`` and stored as a grayscale PNG; decoding is ``q * scale / 255``, so the
round-trip error is at most ``scale / 510``. A 256 x 256 map takes a few tens of kB.

**Table ``error_maps``**: one row per (frame, model); ``error_map_id = short_hash(frame_id, model_id)``.
Rows are written in chunks, one ``merge_insert`` per chunk: a crash leaves whole chunks only, and
re-scoring rewrites the same rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cs_features.errors import StoreError
from cs_features.ids import short_hash
from cs_features.registry import Registry
from cs_features.store import FeatureStore, frame_result_fields, now, sql_quote

ERROR_MAPS = "error_maps"
TOPK_FRACTION = 0.005

REDUCERS: Registry = Registry("score reducer")


def _inside(residual: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Residual values inside ``mask`` (all values when the mask is None or empty), float64 1-D."""
    residual = np.asarray(residual, dtype=np.float64)
    if mask is None:
        return residual.ravel()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != residual.shape:
        raise ValueError(f"mask shape {mask.shape} does not match residual shape {residual.shape}")
    return residual[mask] if mask.any() else residual.ravel()


@REDUCERS.register("p95")
def p95(residual: np.ndarray, mask: np.ndarray | None = None) -> float:
    """95th percentile of the residual inside the mask (published score)."""
    return float(np.percentile(_inside(residual, mask), 95))


@REDUCERS.register("p99")
def p99(residual: np.ndarray, mask: np.ndarray | None = None) -> float:
    """99th percentile of the residual inside the mask."""
    return float(np.percentile(_inside(residual, mask), 99))


@REDUCERS.register("mean")
def mean(residual: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean residual inside the mask."""
    return float(_inside(residual, mask).mean())


@REDUCERS.register("max")
def maximum(residual: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Largest residual inside the mask."""
    return float(_inside(residual, mask).max())


@REDUCERS.register("topk-mean")
def topk_mean(residual: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of the largest ``TOPK_FRACTION`` (0.5 %, at least one) of the residuals inside the mask."""
    values = _inside(residual, mask)
    k = max(1, int(round(TOPK_FRACTION * values.size)))
    return float(np.partition(values, values.size - k)[values.size - k:].mean())


# ------------------------------------------------------------------------------ residual encoding


def encode_residual(residual: np.ndarray) -> tuple[bytes, float]:
    """``(H, W)`` float residual in [0, 1] -> (PNG bytes of the uint8 quantisation, scale)."""
    from cs_features.io import encode_png

    residual = np.asarray(residual, dtype=np.float32)
    if residual.ndim != 2:
        raise ValueError(f"residual must be (H, W), got shape {residual.shape}")
    peak = float(residual.max()) if residual.size else 0.0
    scale = peak if peak > 0 else 1.0
    quantised = np.clip(np.rint(residual / scale * 255.0), 0, 255).astype(np.uint8)
    return encode_png(quantised), scale


def decode_residual(png: bytes, scale: float) -> np.ndarray:
    """Inverse of :func:`encode_residual`: ``(H, W)`` float32 (within ``scale / 510`` of the original)."""
    from cs_features.io import decode_png

    return decode_png(png).astype(np.float32) * np.float32(scale / 255.0)


# ------------------------------------------------------------------------------ error_maps table


def error_maps_schema() -> pa.Schema:
    """Explicit schema of the ``error_maps`` table (primary key ``error_map_id``)."""
    return pa.schema([
        *frame_result_fields("error_map_id"),
        pa.field("score", pa.float32()),
        pa.field("threshold", pa.float32()),
        pa.field("flagged", pa.bool_()),
        pa.field("reducer", pa.string()),
        pa.field("map_size", pa.int32()),
        pa.field("residual_png", pa.large_binary()),
        pa.field("residual_scale", pa.float32()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    ])


def error_map_rows(frames, residuals: np.ndarray, scores: np.ndarray, model_id: str, threshold: float,
                   reducer: str) -> pa.Table:
    """Arrow rows for a chunk: ``frames`` a FrameSet of N frames, ``residuals`` ``(N, S, S)``, ``scores`` ``(N,)``."""
    encoded = [encode_residual(r) for r in residuals]
    stamp = now()
    columns = {
        "error_map_id": [short_hash(fid, model_id) for fid in frames.frame_ids],
        "frame_id": frames.frame_ids.tolist(), "model_id": [model_id] * len(frames),
        "stem": frames.stems.tolist(), "split": frames.splits.tolist(), "label": frames.labels.tolist(),
        "embryo_id": frames.embryo_ids.tolist(), "score": np.asarray(scores, np.float32),
        "threshold": [float(threshold)] * len(frames), "flagged": (np.asarray(scores) >= threshold).tolist(),
        "reducer": [reducer] * len(frames), "map_size": [int(residuals.shape[-1])] * len(frames),
        "residual_png": [png for png, _ in encoded], "residual_scale": [scale for _, scale in encoded],
        "scored_at": [stamp] * len(frames),
    }
    return pa.Table.from_pydict(columns, schema=error_maps_schema())


def write_error_maps(store: FeatureStore, rows: pa.Table) -> None:
    """Upsert one chunk of ``error_maps`` rows in a single ``merge_insert``."""
    store.upsert(ERROR_MAPS, rows, key="error_map_id", schema=error_maps_schema())


def read_scores(store: FeatureStore, model_id: str) -> pa.Table:
    """The ``error_maps`` rows of ``model_id`` without the residual blobs."""
    columns = [f.name for f in error_maps_schema() if f.name != "residual_png"]
    if not store.has_table(ERROR_MAPS):
        raise StoreError(f"store {store.uri!r} has no error maps yet: run `csf score ae --store {store.uri} "
                         f"--model MODEL_DIR` first")
    return store.read(ERROR_MAPS, columns, where=f"model_id = '{sql_quote(model_id)}'")


def read_error_map(store: FeatureStore, frame_id: str, model_id: str) -> np.ndarray:
    """The residual map of one frame under one model, decoded to ``(S, S)`` float32.

    Raises:
        StoreError: no ``error_maps`` table, or no row for this frame and model.
    """
    if not store.has_table(ERROR_MAPS):
        raise StoreError(f"store {store.uri!r} has no error_maps table: score it with `csf score ae` first")
    key = short_hash(frame_id, model_id)
    rows = store.read(ERROR_MAPS, ["residual_png", "residual_scale"], where=f"error_map_id = '{sql_quote(key)}'")
    if rows.num_rows == 0:
        raise StoreError(f"no error map for frame {frame_id!r} and model {model_id!r} in {store.uri!r}")
    return decode_residual(rows.column("residual_png")[0].as_py(), rows.column("residual_scale")[0].as_py())
