"""`csf ingest`: process a dataset folder once into the feature store.

Per frame: read -> preprocess (CLAHE + bilateral) -> GLCM low-texture mask -> region proposals ->
embeddings (the frame pipeline, :mod:`cs_features.frame`) -> weak labels from ground-truth boxes.
Frames are processed by an engine (:mod:`cs_features.ingest.engines`: worker processes on this machine,
or Ray workers on a cluster) and written in batches (:mod:`cs_features.ingest.writer`): proposals first,
then the frame row, then the ``ingest_log`` row that marks the frame done. A run killed at any moment
leaves at most frames without a log row, which the next run redoes; deterministic ids make the redo
write exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from cs_features.datasets import DEFAULT_SPLIT_FRACTIONS, DatasetScan, FrameSource, Problem, scan_dataset
from cs_features.errors import DataLeakageError
from cs_features.ids import content_id
from cs_features.ingest.config import IngestConfig, IngestSummary
from cs_features.ingest.engines import check_engine, run_engine
from cs_features.ingest.workers import frame_workers, make_pipeline
from cs_features.ingest.writer import record_problems
from cs_features.settings import StoreSettings, check_compatible, check_encoder_info

log = logging.getLogger(__name__)


def ingest(
    dataset: str | Path,
    store_uri: str | Path,
    config: IngestConfig = IngestConfig(),
    labels_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    embryo_regex: str | None = None,
    storage_options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    layout: str = "auto",
    labels_csv: str | Path | None = None,
    split_seed: int = 0,
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
) -> IngestSummary:
    """Ingest every frame of ``dataset`` into the store at ``store_uri`` (created if missing).

    ``layout``, ``labels_csv``, ``embryo_regex``, ``split_seed`` and ``split_fractions`` say how to read the
    dataset (:func:`cs_features.datasets.scan_dataset`); what was read (layout, split source and seed,
    counts) is recorded in the store's meta under ``dataset``.

    Raises:
        DataLeakageError: an embryo or an identical image in two splits (nothing is written).
        ConfigError: the store was built with other settings or other encoder weights.
        WeightsError: the encoder's weights are missing or do not fit.
        InputError: an unknown ``config.engine``, or the ``ray`` engine without Ray installed (before anything
            is read or written).
    """
    from cs_features.search import ensure_search_space
    from cs_features.store import FeatureStore, proposals_table_name

    start = time.perf_counter()
    check_engine(config)
    scan = scan_dataset(dataset, labels_dir=labels_dir, manifest=manifest, embryo_regex=embryo_regex or None,
                        layout=layout, labels_csv=labels_csv, split_seed=split_seed, split_fractions=split_fractions)
    frame_ids, duplicates = hash_frames(scan)
    existing = open_existing(store_uri, storage_options)  # nothing is created before the encoder is built
    done: set[str] = set()
    if existing is not None:
        check_stored_settings(existing, config.settings)  # refused before any worker starts
        done = existing.done_frames(config.encoder, config.settings.config_hash())
    todo = [(s, frame_ids[s.path]) for s in scan.frames if s.path not in duplicates and frame_ids[s.path] not in done]
    summary = IngestSummary(store=str(store_uri), encoder=config.encoder, frames_found=len(scan.frames))
    summary.warnings.extend(scan.warnings)
    summary.frames_skipped = len(scan.frames) - len(todo) - len(duplicates)
    problems = list(scan.problems) + [Problem(str(p), "read", f"same image as {dup}") for p, dup in duplicates.items()]

    def noted(done: int, total: int) -> None:
        if done and summary.first_frame_seconds is None:
            summary.first_frame_seconds = time.perf_counter() - start
        if progress:
            progress(done, total)

    with frame_workers(config, len(todo)) as pool:  # the workers start up while this process builds its own
        pipeline = make_pipeline(config)
        store = existing if existing is not None else FeatureStore(str(store_uri), storage_options=storage_options,
                                                                    create=True)
        record_settings(store, config.settings, config.encoder, pipeline.encoder.info())
        store.set_meta("dataset", {"root": str(dataset), **scan.info})
        problems += run_engine(store, todo, config, pipeline, summary, noted, pool)
    record_problems(store, problems)
    if store.count(proposals_table_name(config.encoder)):
        # the first ingest fits the search space; later ones only fill rows written before it existed
        clock = time.perf_counter()
        summary.search_space = ensure_search_space(store, config.encoder)
        summary.search_space["seconds"] = time.perf_counter() - clock
    summary.frames_failed = len([p for p in problems if p.stage != "labels" or "no matching image" not in p.reason])
    summary.failures = [asdict(p) for p in problems]
    summary.seconds = time.perf_counter() - start
    return summary


def open_existing(store_uri: str | Path, storage_options: dict | None):
    """The store at ``store_uri`` if one is there (a local folder, or any object-store URI, where opening writes
    nothing); None for a local path with no folder yet, which is left uncreated."""
    from cs_features.store import FeatureStore

    if "://" not in str(store_uri) and not Path(store_uri).is_dir():
        return None
    return FeatureStore(str(store_uri), storage_options=storage_options, create=True)


def hash_frames(scan: DatasetScan) -> tuple[dict[Path, str], dict[Path, str]]:
    """Content ids of every frame file; refuses one image in two splits.

    Returns:
        ``{path: frame_id}`` and ``{duplicate path: first path}`` for identical files in one split.
    """
    ids: dict[Path, str] = {}
    first: dict[str, FrameSource] = {}
    duplicates: dict[Path, str] = {}
    leaked = []
    for source in scan.frames:
        try:
            data = source.path.read_bytes()
        except OSError:
            data = str(source.path).encode()  # unreadable: the read stage records the reason
        frame_id = content_id(data)
        ids[source.path] = frame_id
        seen = first.setdefault(frame_id, source)
        if seen is not source and data:
            if seen.split != source.split:
                leaked.append(f"{seen.path} ({seen.split}) = {source.path} ({source.split})")
            else:
                duplicates[source.path] = str(seen.path)
    if leaked:
        raise DataLeakageError(f"data leakage: {len(leaked)} identical image(s) in two splits: "
                               + "; ".join(leaked[:10]) + ". Nothing was written.")
    return ids, duplicates


REMEDY = "Vectors and masks made differently never mix in one store: use a new --store for new settings"


def check_stored_settings(store, settings: StoreSettings) -> None:
    """Refuse a run whose settings differ from those the store was built with.

    Raises:
        SettingsMismatchError: naming each setting that differs.
    """
    stored = store.get_meta("settings")
    if stored is not None:
        check_compatible(stored, settings, expected_name=f"store {store.uri!r}", actual_name="this run",
                         remedy=REMEDY)


def record_settings(store, settings: StoreSettings, encoder: str, encoder_info: dict) -> None:
    """Check a run's settings and encoder against what the store holds, then record them.

    Raises:
        SettingsMismatchError: the store was built with other settings, or holds ``encoder`` vectors
            made with other weights or pooling.
    """
    from cs_features.store import STORE_SCHEMA_VERSION

    check_stored_settings(store, settings)
    stored_encoder = store.get_meta(f"encoder:{encoder}")
    if stored_encoder is not None:
        check_encoder_info(stored_encoder, encoder_info, expected_name=f"store {store.uri!r}",
                           actual_name="this run", remedy=REMEDY)
    from cs_features import __version__

    store.set_meta("store", {"schema_version": STORE_SCHEMA_VERSION, "created_by": f"cs_features {__version__}"})
    store.set_meta("settings", settings.to_dict())
    store.set_meta(f"encoder:{encoder}", encoder_info)
