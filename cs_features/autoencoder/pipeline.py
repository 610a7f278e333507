"""Store-level jobs of the anomaly filter: train from the feature store, score the store, evaluate.

``train_from_store`` reads the ``frames`` table once (train-split normal frames, the val split and the
test split), fits an :class:`AnomalyFilter`, evaluates it on val and test (frame and embryo level),
pins the store's current state under the tag ``ae-<model_id>`` and saves the model directory.
``score_store`` scores every frame of a store with a saved model and writes the ``error_maps`` table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cs_features.autoencoder.data import FrameSet, load_frames, load_split, split_label_counts
from cs_features.autoencoder.filter import AnomalyFilter
from cs_features.errors import DatasetError
from cs_features.ids import short_hash
from cs_features.metrics import binary_report, embryo_report
from cs_features.settings import FRAME_SECTIONS, check_compatible
from cs_features.store import FeatureStore, list_tags, tag_store

log = logging.getLogger(__name__)
WRITE_CHUNK = 64


@dataclass
class TrainResult:
    """What ``train_from_store`` did; ``to_dict()`` is what ``csf train ae --json`` prints."""

    model_dir: str
    model_id: str
    store: str
    store_tag: str
    hyperparameters: dict
    best_epoch: int
    threshold: float
    threshold_method: str
    frames: dict
    metrics: dict
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def store_settings(store: FeatureStore) -> dict:
    """The preprocessing and texture settings a store was built with (what an AE model depends on)."""
    settings = store.get_meta("settings") or {}
    return {key: settings.get(key) for key in FRAME_SECTIONS}


def load_training_frames(store: FeatureStore, img_size: int) -> tuple[FrameSet, FrameSet, FrameSet, dict]:
    """(train normal, val, test) FrameSets and the split/label counts of the store.

    Raises:
        DatasetError: no normal frame in the train split (the message lists the counts per split/label).
    """
    counts = split_label_counts(store)
    if not counts.get("train", {}).get("normal"):
        raise DatasetError(f"store {store.uri!r} has no normal frames in the train split to train the autoencoder "
                           f"on; frames per split/label: {json.dumps(counts, sort_keys=True)}")
    train = load_split(store, "train", img_size, label="normal")
    return train, load_split(store, "val", img_size), load_split(store, "test", img_size), counts


def evaluate(anomaly_filter: AnomalyFilter, val: FrameSet, test: FrameSet,
             val_scores: np.ndarray | None = None, test_scores: np.ndarray | None = None) -> dict[str, Any]:
    """Frame- and embryo-level reports on val and test at the filter's threshold."""
    threshold = anomaly_filter.threshold_
    out: dict[str, Any] = {"threshold": threshold, "threshold_method": anomaly_filter.threshold_method_,
                           "reducer": anomaly_filter.reducer, "score_settings": anomaly_filter.score_settings.to_dict()}
    for name, frames, scores in (("val", val, val_scores), ("test", test, test_scores)):
        if len(frames) == 0:
            out[name] = out[f"{name}_embryo"] = {"n": 0, "auroc": None, "auroc_undefined_reason": "no frames"}
            continue
        scores = anomaly_filter.score(frames) if scores is None else scores
        out[name] = binary_report(frames.y_true, scores, threshold)
        out[f"{name}_embryo"] = embryo_report(frames.embryo_ids, frames.y_true, scores, threshold)
    if out["val"].get("auroc") is None:
        out["val_warning"] = (f"validation AUROC undefined ({out['val'].get('auroc_undefined_reason')}); "
                              f"threshold = {anomaly_filter.threshold_method_}")
    return out


def model_id_of(anomaly_filter: AnomalyFilter) -> str:
    """Short hash of the hyperparameters, the threshold and the weights."""
    params = json.dumps(anomaly_filter.get_params(), sort_keys=True)
    return short_hash(params, repr(anomaly_filter.threshold_), anomaly_filter.weights_sha256_)


def _tag(store: FeatureStore, tag: str) -> str:
    if tag not in list_tags(store):  # retraining the same model on the same store reuses its tag
        tag_store(store, tag)
    return tag


def train_from_store(store_uri: str, model_dir: str | Path, anomaly_filter: AnomalyFilter,
                     storage_options: dict | None = None, progress: Callable[[int, int], None] | None = None,
                     on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``anomaly_filter`` from a feature store, evaluate it, tag the store, save ``model_dir``.

    Raises:
        StoreError: missing or empty store. DatasetError: no normal training frames (counts listed).
    """
    start = time.perf_counter()
    store = FeatureStore(store_uri, storage_options=storage_options)
    anomaly_filter._validate()
    train, val, test, counts = load_training_frames(store, anomaly_filter.img_size)
    log.info("training on %d normal frames, validating on %d", len(train), len(val))
    anomaly_filter.fit(train, val, progress=progress, on_epoch=on_epoch)
    metrics = evaluate(anomaly_filter, val, test, val_scores=anomaly_filter.val_scores_)
    model_id = model_id_of(anomaly_filter)
    tag = _tag(store, f"ae-{model_id}")
    extra = {"model_id": model_id, "store_uri": store.uri, "store_tag": tag, "store_settings": store_settings(store),
             "frames": counts, "metrics": metrics}
    anomaly_filter.save(model_dir, extra)
    return TrainResult(str(model_dir), model_id, store.uri, tag, anomaly_filter.get_params(),
                       anomaly_filter.best_epoch_, anomaly_filter.threshold_, anomaly_filter.threshold_method_,
                       counts, metrics, anomaly_filter.history_, round(time.perf_counter() - start, 3))


def check_settings(config: dict, store: FeatureStore, model_dir: str | Path | None = None) -> None:
    """Refuse a model trained under other preprocessing/texture settings than ``store`` was built with.

    Raises:
        SettingsMismatchError: listing each differing setting with the model's and the store's value.
    """
    model = f"model {str(model_dir)!r}" if model_dir is not None else "the model"
    check_compatible(config.get("store_settings"), store.get_meta("settings"), sections=FRAME_SECTIONS,
                     expected_name=model, actual_name=f"store {store.uri!r}",
                     remedy=f"Train a model on this store or score the store it was trained on "
                            f"({config.get('store_uri')!r})")


def open_model(store_uri: str, model_dir: str | Path, storage_options: dict | None = None,
               device: str = "auto") -> tuple[FeatureStore, AnomalyFilter, dict]:
    """Open the store and the saved model, checking that their settings agree."""
    from cs_features.autoencoder.persist import read_config

    store = FeatureStore(store_uri, storage_options=storage_options)
    config = read_config(model_dir)
    check_settings(config, store, model_dir)
    return store, AnomalyFilter.load(model_dir, device=device), config


@dataclass
class ScoreResult:
    """What ``score_store`` wrote; ``to_dict()`` is what ``csf score ae --json`` prints."""

    store: str
    model_id: str
    frames_scored: int
    flagged: dict
    threshold: float
    metrics: dict
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_store(store_uri: str, model_dir: str | Path, storage_options: dict | None = None, device: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> ScoreResult:
    """Score every frame of the store and upsert the ``error_maps`` table, one chunk per merge_insert."""
    from cs_features.autoencoder.scoring import error_map_rows, write_error_maps

    start = time.perf_counter()
    store, anomaly_filter, config = open_model(store_uri, model_dir, storage_options, device)
    frames = load_frames(store, None, anomaly_filter.img_size)
    if len(frames) == 0:
        raise DatasetError(f"store {store.uri!r} has no frames to score")
    scores = np.empty(len(frames), np.float32)
    chunk: list[tuple[int, np.ndarray, np.ndarray]] = []
    for start_row, residuals, batch_scores in anomaly_filter.iter_residuals(frames):
        scores[start_row:start_row + len(batch_scores)] = batch_scores
        chunk.append((start_row, residuals, batch_scores))
        if sum(len(c[2]) for c in chunk) >= WRITE_CHUNK or start_row + len(batch_scores) == len(frames):
            _flush(store, frames, chunk, config["model_id"], anomaly_filter, error_map_rows, write_error_maps)
            chunk = []
        if progress:
            progress(start_row + len(batch_scores), len(frames))
    return ScoreResult(store.uri, config["model_id"], len(frames), flag_counts(frames, scores, anomaly_filter),
                       anomaly_filter.threshold_, score_metrics(frames, scores, anomaly_filter),
                       round(time.perf_counter() - start, 3))


def _flush(store, frames: FrameSet, chunk, model_id: str, anomaly_filter, make_rows, write) -> None:
    first = chunk[0][0]
    residuals = np.concatenate([c[1] for c in chunk])
    scores = np.concatenate([c[2] for c in chunk])
    subset = frames.subset(np.arange(first, first + len(scores)))
    write(store, make_rows(subset, residuals, scores, model_id, anomaly_filter.threshold_, anomaly_filter.reducer))


def flag_counts(frames: FrameSet, scores: np.ndarray, anomaly_filter: AnomalyFilter) -> dict:
    """``{split: {label: {"frames": n, "flagged": n}}}`` of ``scores`` ``(N,)`` at the filter's threshold."""
    flagged = scores >= anomaly_filter.threshold_
    out: dict[str, dict[str, int]] = {}
    for split in sorted(set(frames.splits.tolist())):
        for label in sorted(set(frames.labels.tolist())):
            sel = (frames.splits == split) & (frames.labels == label)
            if sel.any():
                out.setdefault(split, {})[label] = {"frames": int(sel.sum()), "flagged": int(flagged[sel].sum())}
    return out


def score_metrics(frames: FrameSet, scores: np.ndarray, anomaly_filter: AnomalyFilter) -> dict:
    """Frame (AUROC, AP, F1) and embryo reports of ``scores`` ``(N,)`` on val and test at the threshold."""
    out = {}
    for split in ("val", "test"):
        sel = frames.splits == split
        if sel.any():
            report = binary_report(frames.y_true[sel], scores[sel], anomaly_filter.threshold_)
            out[split] = {k: report[k] for k in ("auroc", "average_precision", "f1", "auroc_undefined_reason")}
            out[f"{split}_embryo"] = {k: v for k, v in embryo_report(frames.embryo_ids[sel], frames.y_true[sel],
                                                                     scores[sel], anomaly_filter.threshold_).items()
                                      if k in ("auroc", "f1", "n", "n_positive")}
    return out
