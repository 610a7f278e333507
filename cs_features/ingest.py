"""`csf ingest`: process a dataset folder once into the feature store.

Per frame: read -> preprocess (CLAHE + bilateral) -> GLCM low-texture mask -> region proposals ->
weak labels from ground-truth boxes -> embeddings. Frames are processed by spawn-started worker
processes (Lance is not fork-safe) and written in batches by the parent: proposals first, then the
frame row, then the ``ingest_log`` row that marks the frame done. A run killed at any moment leaves
at most frames without a log row, which the next run redoes; upserts on deterministic ids make the
redo write exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.dataset import DatasetScan, FrameSource, Problem, scan_dataset
from cs_features.errors import ConfigError, DataLeakageError, FrameError
from cs_features.preprocess import PreprocessConfig
from cs_features.proposals import ProposalConfig
from cs_features.texture import TextureConfig

log = logging.getLogger(__name__)
STAGES = ("read", "preprocess", "texture", "proposals", "encode", "write")


@dataclass(frozen=True)
class IngestConfig:
    """Everything that decides what ``csf ingest`` writes.

    ``preprocess``, ``texture``, ``proposals`` and the weak-label thresholds are store-wide: every frame
    of a store is processed the same way, and a run with other settings is refused. The encoder
    settings are per proposals table.
    """

    encoder: str = "classic"
    weights: str | None = None
    pooling: str = "roi"
    device: str = "cpu"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    positive_iou: float = 0.2
    negative_iou: float = 0.1
    max_pixels: int = 4096 * 4096
    workers: int = 0
    batch_frames: int = 16

    def store_settings(self) -> dict:
        return {
            "preprocess": self.preprocess.to_dict(),
            "texture": self.texture.to_dict(),
            "proposals": self.proposals.to_dict(),
            "weak_labels": {"positive_iou": self.positive_iou, "negative_iou": self.negative_iou},
        }

    def with_settings(self, settings: dict) -> "IngestConfig":
        """A copy with store-wide settings replaced, from a dict shaped like :meth:`store_settings`
        (any subset of ``preprocess``, ``texture``, ``proposals``, ``weak_labels``; each a subset of keys).

        Raises:
            ConfigError: an unknown section or key, naming it and listing the accepted ones.
        """
        unknown = set(settings) - {"preprocess", "texture", "proposals", "weak_labels"}
        if unknown:
            raise ConfigError(f"unknown settings section(s) {sorted(unknown)}; accepted: preprocess, texture, "
                              "proposals, weak_labels")
        current = self.store_settings()
        merged = {key: {**current[key], **settings.get(key, {})} for key in current}
        for key in ("preprocess", "texture", "proposals", "weak_labels"):
            extra = set(merged[key]) - set(current[key])
            if extra:
                raise ConfigError(f"unknown {key} setting(s) {sorted(extra)}; accepted: {sorted(current[key])}")
        return replace(self, preprocess=PreprocessConfig.from_dict(merged["preprocess"]),
                       texture=TextureConfig.from_dict(merged["texture"]),
                       proposals=ProposalConfig.from_dict(merged["proposals"]),
                       positive_iou=float(merged["weak_labels"]["positive_iou"]),
                       negative_iou=float(merged["weak_labels"]["negative_iou"]))

    def config_hash(self) -> str:
        import json

        return hashlib.sha256(json.dumps(self.store_settings(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class IngestSummary:
    """What an ingest run did; ``to_dict()`` is what ``--json`` prints."""

    store: str
    encoder: str
    frames_found: int = 0
    frames_added: int = 0
    frames_skipped: int = 0
    frames_failed: int = 0
    proposals_added: int = 0
    positives: int = 0
    negatives: int = 0
    ignored: int = 0
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    recall_counts: dict = field(default_factory=dict)
    search_space: dict = field(default_factory=dict)

    @property
    def proposal_recall(self) -> dict:
        """Per source: strings seen, recall at IoU >= 0.25 and >= 0.5 (frames added in this run)."""
        return {name: {"strings": n, "recall@0.25": round(h25 / n, 4), "recall@0.5": round(h50 / n, 4)}
                for name, (n, h25, h50) in sorted(self.recall_counts.items()) if n}

    @property
    def frames_per_second(self) -> float:
        return self.frames_added / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frames_per_second"] = round(self.frames_per_second, 3)
        out["proposals_per_frame"] = round(self.proposals_added / self.frames_added, 1) if self.frames_added else 0.0
        out["proposal_recall"] = self.proposal_recall
        del out["recall_counts"]
        return out


@dataclass
class FrameResult:
    """One processed frame, ready to be written (arrays, PNG bytes, timings)."""

    source: FrameSource
    frame_id: str
    row: dict
    boxes: np.ndarray
    sources: np.ndarray
    max_iou: np.ndarray
    weak_label: np.ndarray
    vectors: np.ndarray
    stage_seconds: dict
    warnings: list
    recall: dict


def ingest(
    dataset: str | Path,
    store_uri: str | Path,
    config: IngestConfig = IngestConfig(),
    labels_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    embryo_regex: str | None = None,
    storage_options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestSummary:
    """Ingest every frame of ``dataset`` into the store at ``store_uri`` (created if missing).

    Raises:
        DataLeakageError: an embryo or an identical image in two splits (nothing is written).
        ConfigError: the store was built with other settings or other encoder weights.
        WeightsError: the encoder's weights are missing or do not fit.
    """
    from cs_features.encoders import get_encoder
    from cs_features.search_space import ensure_search_space
    from cs_features.store import FeatureStore, proposals_table_name

    start = time.perf_counter()
    kwargs = {"embryo_regex": embryo_regex} if embryo_regex else {}
    scan = scan_dataset(dataset, labels_dir=labels_dir, manifest=manifest, **kwargs)
    frame_ids, duplicates = hash_frames(scan)
    encoder = get_encoder(config.encoder, weights=config.weights, pooling=config.pooling, device=config.device)
    store = FeatureStore(str(store_uri), storage_options=storage_options, create=True)
    _check_store_settings(store, config, encoder.info())
    summary = IngestSummary(store=str(store_uri), encoder=config.encoder, frames_found=len(scan.frames))
    summary.warnings.extend(scan.warnings)
    done = store.done_frames(config.encoder, config.config_hash())
    todo = [(s, frame_ids[s.path]) for s in scan.frames if s.path not in duplicates and frame_ids[s.path] not in done]
    summary.frames_skipped = len(scan.frames) - len(todo) - len(duplicates)
    problems = list(scan.problems) + [Problem(str(p), "read", f"same image as {dup}") for p, dup in duplicates.items()]
    from cs_features.ingest_writer import BatchWriter

    writer = BatchWriter(store, config, encoder.info(), summary)
    for result in _run_frames(todo, config, encoder, progress):
        if isinstance(result, Problem):
            problems.append(result)
        else:
            writer.add(result)
    writer.flush()
    writer.record_problems(problems)
    if store.count(proposals_table_name(config.encoder)):
        # the first ingest fits the search space; later ones only fill rows written before it existed
        summary.search_space = ensure_search_space(store, config.encoder)
    summary.frames_failed = len([p for p in problems if p.stage != "labels" or "no matching image" not in p.reason])
    summary.failures = [asdict(p) for p in problems]
    summary.seconds = time.perf_counter() - start
    return summary


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
        frame_id = hashlib.sha256(data).hexdigest()[:16]
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


def _check_store_settings(store, config: IngestConfig, encoder_info: dict) -> None:
    import json

    wanted = json.loads(json.dumps(config.store_settings()))  # tuples -> lists, as stored
    settings = store.get_meta("settings")
    if settings is not None and settings != wanted:
        changed = sorted(k for k in set(settings) | set(wanted) if settings.get(k) != wanted.get(k))
        raise ConfigError(f"store {store.uri!r} was built with other {', '.join(changed)} settings "
                          f"({ {k: settings[k] for k in changed} }); use a new --store for new settings")
    stored = store.get_meta(f"encoder:{config.encoder}")
    if stored is not None and stored != encoder_info:
        raise ConfigError(f"store {store.uri!r} holds {config.encoder} vectors made with {stored}, not {encoder_info} "
                          "(other weights or pooling); vectors of different encoders never mix: use a new --store")
    from cs_features import __version__

    store.set_meta("store", {"schema_version": 1, "created_by": f"cs_features {__version__}"})
    store.set_meta("settings", config.store_settings())
    store.set_meta(f"encoder:{config.encoder}", encoder_info)


def _run_frames(todo, config: IngestConfig, encoder, progress):
    """Yield FrameResult or Problem per frame, in input order, with bounded work in flight."""
    total = len(todo)
    workers = min(config.workers or os.cpu_count() or 1, max(total, 1))
    if progress:
        progress(0, total)
    if workers <= 1:
        for index, (source, frame_id) in enumerate(todo, start=1):
            yield process_frame(source, frame_id, config, encoder)
            if progress:
                progress(index, total)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config,)) as pool:
        pending: deque = deque()
        items = iter(todo)
        done = 0
        for source, frame_id in items:
            pending.append(pool.submit(_worker_process, source, frame_id))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(items, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_process, *nxt))
            done += 1
            if progress:
                progress(done, total)
            yield result


_WORKER_STATE: dict = {}


def _init_worker(config: IngestConfig) -> None:
    import torch

    from cs_features.encoders import get_encoder

    torch.set_num_threads(1)  # one process per core already; more threads only fight for the cores
    _WORKER_STATE["config"] = config
    _WORKER_STATE["encoder"] = get_encoder(config.encoder, weights=config.weights, pooling=config.pooling,
                                           device=config.device)


def _worker_process(source: FrameSource, frame_id: str):
    return process_frame(source, frame_id, _WORKER_STATE["config"], _WORKER_STATE["encoder"])


def process_frame(source: FrameSource, frame_id: str, config: IngestConfig, encoder) -> FrameResult | Problem:
    """Run every per-frame stage; a bad file becomes a Problem naming the stage and the reason."""
    from cs_features.ingest_stages import run_stages

    try:
        return run_stages(source, frame_id, config, encoder)
    except FrameError as exc:
        return Problem(exc.path, exc.stage, exc.reason)


def with_workers(config: IngestConfig, workers: int) -> IngestConfig:
    return replace(config, workers=workers)
