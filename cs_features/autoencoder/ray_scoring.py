"""``csf score ae --engine ray``: a store's frames scored by Ray actors that write ``error_maps`` fragments.

Each actor loads the saved filter once (the model folder must be readable at the same path on every
node) and opens the store; per chunk of frames it reads their preprocessed frames and masks
(:func:`~cs_features.autoencoder.data.load_frames`), computes residuals and scores
(:meth:`AnomalyFilter.iter_residuals`) and writes the chunk's rows (:func:`error_map_rows`, as
:func:`~cs_features.autoencoder.pipeline.score_store` does) as uncommitted Lance fragments. The driver
commits the chunks in order, each replacing the rows its frames had under the same model
(:class:`~cs_features.ingest.fragments.FragmentCommitter`), so a killed run leaves whole chunks and
re-scoring rewrites rows instead of duplicating them. The summary is the one ``score_store`` returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.autoencoder.data import FrameSet
from cs_features.autoencoder.pipeline import WRITE_CHUNK, ScoreResult, flag_counts, open_model, score_metrics
from cs_features.autoencoder.scoring import ERROR_MAPS, error_map_rows, error_maps_schema
from cs_features.errors import DatasetError
from cs_features.ids import short_hash
from cs_features.ingest.fragments import FragmentCommitter, write_fragments_json
from cs_features.ingest.ray_engine import ray_session, worker_count
from cs_features.store import FRAMES, FeatureStore, sql_quote


@dataclass
class ScoredChunk:
    """An actor's chunk: ``error_maps`` fragments (metadata JSON), their keys, and ``{frame id: score}``."""

    fragments: list
    keys: list
    scores: dict


class ScoreWorker:
    """A Ray actor holding one loaded filter and the store; scores chunks of frames into fragments."""

    def __init__(self, model_dir: str, device: str, store_uri: str, storage_options: dict, uri: str,
                 model_id: str) -> None:
        from cs_features.autoencoder.filter import AnomalyFilter

        self.anomaly_filter = AnomalyFilter.load(model_dir, device=device)
        self.store = FeatureStore(store_uri, storage_options=storage_options)
        self.storage_options = storage_options
        self.uri = uri
        self.model_id = model_id

    def score(self, frame_ids: list[str]) -> ScoredChunk:
        """Score the frames ``frame_ids`` and write their ``error_maps`` rows as fragments."""
        from cs_features.autoencoder.data import load_frames

        where = "frame_id IN (" + ", ".join(f"'{sql_quote(frame_id)}'" for frame_id in frame_ids) + ")"
        frames = load_frames(self.store, where, self.anomaly_filter.img_size)
        parts = list(self.anomaly_filter.iter_residuals(frames))
        residuals = np.concatenate([residual for _, residual, _ in parts])
        scores = np.concatenate([score for _, _, score in parts])
        rows = error_map_rows(frames, residuals, scores, self.model_id, self.anomaly_filter.threshold_,
                              self.anomaly_filter.reducer)
        return ScoredChunk(write_fragments_json(rows, self.uri, self.storage_options),
                           rows.column("error_map_id").to_pylist(), dict(zip(frames.frame_ids.tolist(), scores)))


def frame_labels(store: FeatureStore) -> FrameSet:
    """Every frame's id, stem, split, label and embryo, sorted as :func:`load_frames` sorts; no pixels
    (``images`` and ``masks`` are None): what the score summary needs."""
    table = store.read(FRAMES, ["frame_id", "stem", "split", "label", "embryo_id"])
    table = table.sort_by([("stem", "ascending"), ("frame_id", "ascending")])
    column = lambda name: np.asarray(table.column(name).to_pylist(), dtype=str)  # noqa: E731
    return FrameSet(None, None, column("frame_id"), column("stem"), column("split"), column("label"),
                    column("embryo_id"))


def score_store_on_ray(store_uri: str, model_dir: str | Path, storage_options: dict | None = None,
                       device: str = "auto", progress: Callable[[int, int], None] | None = None,
                       ray_address: str | None = None, workers: int = 0, gpus_per_worker: float = 0.0,
                       chunk_frames: int = WRITE_CHUNK) -> ScoreResult:
    """Score every frame of the store on Ray and write ``error_maps``, as ``score_store`` does locally.

    ``workers`` actors (0: one per CPU, or per ``gpus_per_worker`` GPUs, of the cluster at ``ray_address``;
    a local Ray is started when None) score ``chunk_frames`` frames at a time.

    Raises:
        StoreError, SettingsMismatchError, WeightsError: as ``score_store``. DatasetError: no frames.
        InputError: Ray is not installed, or GPU workers asked of a cluster without enough GPUs.
    """
    start = time.perf_counter()
    store, anomaly_filter, config = open_model(store_uri, model_dir, storage_options, device="cpu")
    frames = frame_labels(store)
    if len(frames) == 0:
        raise DatasetError(f"store {store.uri!r} has no frames to score")
    model_id = config["model_id"]
    ids = frames.frame_ids.tolist()
    chunks = [ids[i:i + chunk_frames] for i in range(0, len(ids), chunk_frames)]
    scores: dict[str, float] = {}
    with ray_session(ray_address, workers) as ray:
        from ray.util import ActorPool

        committer = FragmentCommitter(store, {ERROR_MAPS: error_maps_schema()}, {ERROR_MAPS: "error_map_id"},
                                      {short_hash(frame_id, model_id) for frame_id in ids})
        actor = ray.remote(ScoreWorker).options(num_cpus=1, num_gpus=gpus_per_worker, max_restarts=2,
                                                max_task_retries=2)
        actors = [actor.remote(str(Path(model_dir).resolve()), device, store.uri, store.storage_options,
                               committer.uris[ERROR_MAPS], model_id)
                  for _ in range(worker_count(ray, workers, gpus_per_worker, len(chunks)))]
        try:
            for chunk in ActorPool(actors).map(lambda a, frame_ids: a.score.remote(frame_ids), chunks):
                committer.append(ERROR_MAPS, chunk.fragments, chunk.keys)
                scores.update(chunk.scores)
                if progress:
                    progress(len(scores), len(ids))
        finally:
            for each in actors:
                ray.kill(each)
    ordered = np.asarray([scores[frame_id] for frame_id in ids], np.float32)
    return ScoreResult(store.uri, model_id, len(frames), flag_counts(frames, ordered, anomaly_filter),
                       anomaly_filter.threshold_, score_metrics(frames, ordered, anomaly_filter),
                       round(time.perf_counter() - start, 3))
