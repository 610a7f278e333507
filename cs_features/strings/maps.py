"""The ``string_maps`` table: every frame's string map under one model (``csf score strings``).

One row per (frame, model); ``string_map_id = short_hash(frame_id, model_id)``, so re-scoring rewrites
the same rows. The map ``p`` (``(H, W)`` float32 in [0, 1]) is stored as a grayscale uint8 PNG of
``round(255 * p)`` (decoded as ``q / 255``, within ``1/510`` of ``p``), beside its maximum and the share of
pixels above 0.5. Rows are written in chunks, one ``merge_insert`` per chunk: a crash leaves whole chunks.
A model trained under other preprocessing settings than the store's is refused.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from cs_features.errors import DatasetError, StoreError
from cs_features.ids import short_hash
from cs_features.scale import STORED_CIRCLE_COLUMNS, stored_circle
from cs_features.store import FRAMES, FeatureStore, frame_result_fields, now, require_frames, sql_quote
from cs_features.strings.data import StoreFrame, frame_rows, iter_frames, open_store
from cs_features.strings.model import StringMapModel, read_string_map_config
from cs_features.strings.peak import AUTO_REGION, auto_region, map_peak
from cs_features.strings.training import STRING_SECTIONS
from cs_features.transience import EmbryoLines, TransiencePrior, transient_part

STRING_MAPS = "string_maps"
WRITE_CHUNK = 32
READ_CHUNK = 64  # frames whose maps and masks are decoded at a time (string_peaks)


def string_maps_schema() -> pa.Schema:
    """Explicit schema of the ``string_maps`` table (primary key ``string_map_id``)."""
    return pa.schema([
        *frame_result_fields("string_map_id"),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("max_probability", pa.float32()),
        pa.field("fraction_above_half", pa.float32()),
        pa.field("map_png", pa.large_binary()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    ])


def encode_map(probability: np.ndarray) -> bytes:
    """``(H, W)`` float probability in [0, 1] -> PNG bytes of ``round(255 * p)`` (uint8)."""
    from cs_features.io import encode_png

    probability = np.asarray(probability, np.float32)
    if probability.ndim != 2:
        raise ValueError(f"a string map must be (H, W), got shape {probability.shape}")
    return encode_png(np.clip(np.rint(probability * 255.0), 0, 255).astype(np.uint8))


def decode_map(png: bytes) -> np.ndarray:
    """Inverse of :func:`encode_map`: ``(H, W)`` float32 ``q / 255``."""
    from cs_features.io import decode_png

    return decode_png(png).astype(np.float32) / np.float32(255.0)


def string_map_rows(frames: list[StoreFrame], maps: list[np.ndarray], model_id: str) -> pa.Table:
    """Arrow rows of ``string_maps`` for frames and their ``(H, W)`` maps."""
    stamp = now()
    columns = {
        "string_map_id": [short_hash(f.frame_id, model_id) for f in frames],
        "frame_id": [f.frame_id for f in frames], "model_id": [model_id] * len(frames),
        "stem": [f.stem for f in frames], "split": [f.split for f in frames], "label": [f.label for f in frames],
        "embryo_id": [f.embryo_id for f in frames], "height": [int(m.shape[0]) for m in maps],
        "width": [int(m.shape[1]) for m in maps], "max_probability": [float(m.max()) for m in maps],
        "fraction_above_half": [float((m > 0.5).mean()) for m in maps], "map_png": [encode_map(m) for m in maps],
        "scored_at": [stamp] * len(frames),
    }
    return pa.Table.from_pydict(columns, schema=string_maps_schema())


def write_string_maps(store: FeatureStore, rows: pa.Table) -> None:
    """Upsert one chunk of ``string_maps`` rows in a single ``merge_insert``."""
    store.upsert(STRING_MAPS, rows, key="string_map_id", schema=string_maps_schema())


@dataclass
class StringScoreResult:
    """What :func:`score_strings` wrote; ``to_dict()`` is what ``csf score strings --json`` prints."""

    store: str
    model_id: str
    frames_scored: int
    frame_metrics: dict
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def open_string_model(store: FeatureStore, model_dir: str | Path) -> tuple[StringMapModel, dict]:
    """The saved model and its config, refusing one trained under other preprocessing than ``store``'s.

    Raises:
        WeightsError: not a string-map folder. SettingsMismatchError: the preprocessing settings differ.
    """
    from cs_features.settings import check_compatible

    config = read_string_map_config(model_dir)
    check_compatible(config.get("store_settings"), store.get_meta("settings"), sections=STRING_SECTIONS,
                     expected_name=f"string-map model {str(model_dir)!r}", actual_name=f"store {store.uri!r}",
                     remedy="Train a string map on this store (`csf train strings`) or score the store it was "
                            f"trained on ({config.get('store_uri')!r})")
    return StringMapModel.load(model_dir), config


def score_strings(store, model_dir: str | Path, storage_options: dict | None = None,
                  progress: Callable[[int, int], None] | None = None) -> StringScoreResult:
    """Write the string map of every frame of ``store`` (a FeatureStore or URI) to ``string_maps``.

    Also reports, per split, the frame AUROC of the map's peak inside the cavity's core (:func:`map_peak`; CS frames
    against CS-free frames), and of the peak of its transient part, what the embryo's other frames do not
    show (:func:`string_peaks` on the stored maps: the frame screen's evidence).

    Raises:
        StoreError: missing store. DatasetError: no frames. WeightsError / SettingsMismatchError: see
            :func:`open_string_model`.
    """
    start = time.perf_counter()
    store = open_store(store, storage_options)
    model, config = open_string_model(store, model_dir)
    rows = frame_rows(store)
    if not rows:
        raise DatasetError(f"store {store.uri!r} has no frames to score")
    chunk: list[tuple[StoreFrame, np.ndarray]] = []
    peaks: list[tuple[str, bool, float]] = []
    for i, frame in enumerate(iter_frames(store, rows), 1):
        chunk.append((frame, model.predict_map(frame.image)))
        peaks.append((frame.split, frame.is_cs, map_peak(chunk[-1][1], frame.mask)))
        if len(chunk) == WRITE_CHUNK or i == len(rows):
            write_string_maps(store, string_map_rows([f for f, _ in chunk], [m for _, m in chunk], config["model_id"]))
            chunk = []
        if progress:
            progress(i, len(rows))
    transient = string_peaks(store, config["model_id"], str(model_dir), [row["frame_id"] for row in rows],
                             embryo_ids=[row["embryo_id"] or "" for row in rows])
    return StringScoreResult(store.uri, config["model_id"], len(rows), _frame_metrics(peaks, transient),
                             round(time.perf_counter() - start, 3))


def _frame_metrics(peaks: list[tuple[str, bool, float]], transient: np.ndarray) -> dict:
    from cs_features.metrics import auroc

    splits = np.array([s for s, _, _ in peaks])
    labels = np.array([cs for _, cs, _ in peaks], np.int8)
    whole = np.array([p for _, _, p in peaks], np.float32)
    transient = np.asarray(transient)
    out = {}
    for split in sorted(set(splits.tolist())):
        mine = splits == split
        y = labels[mine]
        out[split] = {"frames": len(y), "cs_frames": int(y.sum()), "peak_auroc": auroc(y, whole[mine]),
                      "transient_peak_auroc": auroc(y, transient[mine])}
    return out


def read_string_map(store: FeatureStore, frame_id: str, model_id: str) -> np.ndarray:
    """The string map of one frame under one model, decoded to ``(H, W)`` float32 in [0, 1].

    Raises:
        StoreError: no ``string_maps`` table, or no row for this frame and model.
    """
    if not store.has_table(STRING_MAPS):
        raise StoreError(f"store {store.uri!r} has no string_maps table: run `csf score strings --store "
                         f"{store.uri} --model MODEL_DIR` first")
    key = short_hash(frame_id, model_id)
    rows = store.read(STRING_MAPS, ["map_png"], where=f"string_map_id = '{sql_quote(key)}'")
    if rows.num_rows == 0:
        raise StoreError(f"no string map for frame {frame_id!r} and model {model_id!r} in {store.uri!r}")
    return decode_map(rows.column("map_png")[0].as_py())


def string_peaks(store: FeatureStore, model_id: str, strings_dir: str, frame_ids: list[str],
                 percentile: float = 99.9, region: str = AUTO_REGION,
                 progress: Callable[[int, int], None] | None = None, embryo_ids: list[str] | None = None,
                 transience: TransiencePrior | None = None) -> np.ndarray:
    """``(N,)`` float64 :func:`map_peak` of each frame's string map under ``model_id`` (``string_maps``).

    With ``embryo_ids`` (one per frame; ``""`` or None: a frame without a time-lapse) and ``transience``
    enabled (the default prior), a frame's map is first reduced to what its embryo's other frames do not
    show there (:func:`cs_features.transience.transient_part` of the map over the
    :class:`~cs_features.transience.EmbryoLines` background of the embryo's maps, dilated by the prior's
    ``tolerance`` and aligned on the embryo circle): a fibre of the medium or a membrane ridge that the map
    lights in every frame drops out, a string that appears and snaps stays. A frame alone in its embryo,
    or whose embryo was not found, keeps its whole map. ``region`` :data:`~cs_features.strings.peak.AUTO_REGION`
    (the default) reads the transient part in the embryo's interior and a whole map in the cavity's core
    (:func:`~cs_features.strings.peak.auto_region`), frame by frame.

    Raises:
        StoreError: no ``string_maps`` table or no row for some frame; the message names the command.
        ConfigError: an unknown region.
    """
    from cs_features.io import decode_png

    auto_region(region, True)  # an unknown region fails before anything is read
    command = f"csf score strings --store {store.uri} --model {strings_dir}"
    if not store.has_table(STRING_MAPS):
        raise StoreError(f"store {store.uri!r} has no {STRING_MAPS} table: run `{command}` first")
    transience = transience or TransiencePrior()
    groups = _embryo_groups(frame_ids, embryo_ids if transience.enabled else None)
    peaks: dict[str, float] = {}
    done = 0
    for chunk in _chunks(groups, READ_CHUNK):
        listed = ", ".join(f"'{sql_quote(f)}'" for group in chunk for f in group)
        maps = {row["frame_id"]: row["map_png"] for row in store.read(
            STRING_MAPS, ["frame_id", "map_png"],
            where=f"model_id = '{sql_quote(model_id)}' AND frame_id IN ({listed})").to_pylist()}
        frames = {row["frame_id"]: row for row in store.read(
            FRAMES, ["frame_id", "low_texture_mask", *STORED_CIRCLE_COLUMNS],
            where=f"frame_id IN ({listed})").to_pylist()}
        for group in chunk:
            present = [f for f in group if f in maps and f in frames]
            lines = EmbryoLines(transience) if len(present) > 1 else None
            for frame_id in present if lines is not None else ():
                lines.add(frame_id, decode_map(maps[frame_id]), stored_circle(frames[frame_id]))
            for frame_id in present:  # maps decoded again, not held: a time-lapse may have hundreds of frames
                png = frames[frame_id]["low_texture_mask"]
                mask = decode_png(png) > 0 if png else None
                string_map = decode_map(maps[frame_id])
                background = None if lines is None else lines.background(frame_id)
                if background is not None:
                    string_map = transient_part(string_map, background)
                peaks[frame_id] = map_peak(string_map, mask, percentile, auto_region(region, background is not None))
        done += sum(len(group) for group in chunk)
        if progress:
            progress(done, len(frame_ids))
    require_frames(store, frame_ids, peaks, f"{STRING_MAPS} row of string model {model_id!r}", command)
    return np.array([peaks[f] for f in frame_ids], np.float64)


def _embryo_groups(frame_ids: list[str], embryo_ids: list[str] | None) -> list[list[str]]:
    """The frames grouped by embryo (in order of first appearance); a frame without an embryo id, or every
    frame when ``embryo_ids`` is None, is a group of its own."""
    if embryo_ids is None:
        return [[f] for f in frame_ids]
    groups: dict[str, list[str]] = {}
    for frame_id, embryo in zip(frame_ids, embryo_ids):
        groups.setdefault(f"embryo {embryo}" if embryo else f"frame {frame_id}", []).append(frame_id)
    return list(groups.values())


def _chunks(groups: list[list[str]], size: int):
    """Whole groups packed into chunks of about ``size`` frames (a larger group is a chunk of its own)."""
    chunk: list[list[str]] = []
    for group in groups:
        if chunk and sum(map(len, chunk)) + len(group) > size:
            yield chunk
            chunk = []
        chunk.append(group)
    if chunk:
        yield chunk
