"""Train a string map from the store's labelled frames (``csf train strings``).

Train-split frames give the training pixels, val-split frames the early-stopping and reporting pixels,
both drawn by :mod:`cs_features.strings.sampling`: positives from the ground-truth boxes of CS frames
(``label = 'abnormal'`` with ``has_gt``; a CS frame without boxes is skipped, it has no pixel labels),
negatives from CS-free frames and from outside the boxes of CS frames. Each frame's draw is seeded by the
run's seed and the frame id, so it does not depend on the order frames are read in. Classes are balanced
by sample weights. The validation figures are pixel AUROC/AP of the val positives against the pixels of
CS-free val frames (all of them, and the hard ones only), and against the pixels outside val boxes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cs_features.errors import DatasetError
from cs_features.settings import check_compatible
from cs_features.strings.data import StoreFrame, frame_rows, iter_frames, open_store
from cs_features.strings.features import line_response
from cs_features.strings.model import StringMapModel, read_string_map_config
from cs_features.strings.sampling import PixelSampling, frame_rng, sample_frame_pixels
from cs_features.strings.selftraining import SelfTraining, pseudo_pixels, pseudo_weights

log = logging.getLogger(__name__)
STRING_SECTIONS = ("preprocess",)  # the string map reads the preprocessed frames only


@dataclass
class PixelSet:
    """Sampled pixels of several frames: ``X`` (N, F) float32, ``y`` (N,) int8, ``hard`` (N,) bool,
    ``cs_frame`` (N,) bool (the pixel comes from a CS frame), ``counts`` of frames used and skipped."""

    X: np.ndarray
    y: np.ndarray
    hard: np.ndarray
    cs_frame: np.ndarray
    counts: dict = field(default_factory=dict)

    def weights(self) -> np.ndarray:
        """(N,) float32 sample weights giving both classes the same total weight."""
        n_pos, n_neg = int((self.y == 1).sum()), int((self.y == 0).sum())
        return np.where(self.y == 1, n_neg / max(n_pos, 1), 1.0).astype(np.float32)


def frame_pixels(frame: StoreFrame, sampling: PixelSampling, seed: int, model: StringMapModel) -> PixelSet | None:
    """The sampled pixels of one frame, or None for a CS frame without boxes (no pixel labels).

    Which pixels are drawn is read from the frame itself (:func:`line_response`); their features are the
    bank as ``model`` reads the frame (:meth:`StringMapModel.features`, its input smoothing included)."""
    if frame.is_cs and not len(frame.boxes):
        return None
    boxes = frame.boxes if frame.is_cs else np.empty((0, 4), np.int32)
    sample = sample_frame_pixels(line_response(frame.image), boxes, frame_rng(seed, frame.frame_id), sampling)
    features = model.features(frame.image)
    X = features.reshape(-1, features.shape[-1])[sample.index]
    return PixelSet(X, sample.y, sample.hard, np.full(len(sample.y), frame.is_cs))


def collect_pixels(store, rows: list[dict], sampling: PixelSampling, seed: int,
                   model: StringMapModel, progress: Callable[[int, int], None] | None = None, done: int = 0,
                   total: int = 0) -> PixelSet:
    """Sample the pixels of the frames of ``rows`` (see :func:`frame_pixels`)."""
    parts, counts = [], {"cs_frames": 0, "cs_free_frames": 0, "skipped_cs_without_boxes": 0}
    for i, frame in enumerate(iter_frames(store, rows), 1):
        part = frame_pixels(frame, sampling, seed, model)
        if part is None:
            counts["skipped_cs_without_boxes"] += 1
        else:
            parts.append(part)
            counts["cs_frames" if frame.is_cs else "cs_free_frames"] += 1
        if progress:
            progress(done + i, total)
    if not parts:
        return PixelSet(np.empty((0, 0), np.float32), np.empty(0, np.int8), np.empty(0, bool), np.empty(0, bool),
                        counts)
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    pixels = PixelSet(cat("X"), cat("y"), cat("hard"), cat("cs_frame"), counts)
    counts.update(positive_pixels=int((pixels.y == 1).sum()), negative_pixels=int((pixels.y == 0).sum()))
    return pixels


def pixel_metrics(model: StringMapModel, pixels: PixelSet) -> dict[str, Any]:
    """Pixel AUROC/AP of the positives against negatives of CS-free frames (all, hard only) and outside boxes."""
    from cs_features.metrics import auroc, average_precision

    if not len(pixels.y) or not (pixels.y == 1).any():
        return {"n_positive": 0, "auroc": None, "reason": "no positive pixels (no CS frame with boxes)"}
    p = model.predict_proba(pixels.X)
    pos = pixels.y == 1
    out: dict[str, Any] = {"n_positive": int(pos.sum())}
    for name, negatives in (("", (pixels.y == 0) & ~pixels.cs_frame),
                            ("_hard", (pixels.y == 0) & ~pixels.cs_frame & pixels.hard),
                            ("_outside_boxes", (pixels.y == 0) & pixels.cs_frame)):
        select = pos | negatives
        out[f"n_negative{name}"] = int(negatives.sum())
        out[f"auroc{name}"] = auroc(pixels.y[select], p[select]) if negatives.any() else None
        out[f"average_precision{name}"] = average_precision(pixels.y[select], p[select]) if negatives.any() else None
    return out


@dataclass
class StringTrainResult:
    """What :func:`train_strings` did; ``to_dict()`` is what ``csf train strings --json`` prints."""

    model_dir: str
    model_id: str
    store: str
    best_iteration: int
    frames: dict
    metrics: dict
    top_features: dict
    seconds: float
    self_training: dict | None = None  # store, settings and pixel counts of the self-training, if any

    def to_dict(self) -> dict:
        return asdict(self)


def train_strings(store, out_dir: str | Path, model: StringMapModel | None = None,
                  sampling: PixelSampling | None = None, storage_options: dict | None = None,
                  progress: Callable[[int, int], None] | None = None, unlabelled=None,
                  self_training: SelfTraining | None = None) -> StringTrainResult:
    """Train a string map on the store's train split, early-stopped and reported on val; save ``out_dir``.

    Args:
        store: a FeatureStore or its URI.
        model: the (unfitted) estimator; default ``StringMapModel()``.
        sampling: pixel sampling; default ``PixelSampling()``.
        progress: ``progress(frames_read, frames_total)``.
        unlabelled: a FeatureStore or URI of unlabelled time-lapses from the camera the map will read (its
            labels never read; the same store as ``store`` gives its frames outside train and val): the map
            is trained again with pseudo-labels from them (:mod:`cs_features.strings.selftraining`).
        self_training: how those pseudo-labels are drawn and weighed; default ``SelfTraining()``.

    Raises:
        StoreError: missing or empty store. DatasetError: no train-split CS frame with boxes, or no pixel
        of the unlabelled store lit by the first map where its embryo's other frames are dark.
        SettingsMismatchError: the unlabelled store preprocesses frames otherwise than the labelled one.
        ConfigError: a bad ``input_smoothing`` of ``model``.
    """
    start = time.perf_counter()
    store = open_store(store, storage_options)
    model = model if model is not None else StringMapModel()
    sampling = sampling if sampling is not None else PixelSampling()
    train_rows, val_rows = frame_rows(store, "split = 'train'"), frame_rows(store, "split = 'val'")
    unlabelled, unlabelled_rows = _unlabelled_rows(store, unlabelled, storage_options)
    total = len(train_rows) + len(val_rows) + len(unlabelled_rows)
    model.smoothing_sigma()  # a bad input smoothing fails here, before any frame is read
    train = collect_pixels(store, train_rows, sampling, model.seed, model, progress, 0, total)
    if not (train.y == 1).any() or not (train.y == 0).any():
        raise DatasetError(f"store {store.uri!r} has no train-split CS frame with ground-truth boxes (or no "
                           f"negative pixel) to train a string map on: {train.counts}")
    val = collect_pixels(store, val_rows, sampling, model.seed + 1, model, progress, len(train_rows), total)
    has_val = len(val.y) and len(np.unique(val.y)) == 2
    log.info("string map: %d train pixels, %d val pixels", len(train.y), len(val.y))
    val_fit = (val.X, val.y, val.weights()) if has_val else (None, None, None)  # early stopping's pixels
    model.fit(train.X, train.y, train.weights(), *val_fit)
    metrics = {"val": pixel_metrics(model, val), "train": pixel_metrics(model, train),
               "early_stopping": "val" if has_val else "none: the val split has no positive and negative pixels"}
    extra_self = {}
    if unlabelled is not None:
        settings = self_training if self_training is not None else SelfTraining()
        extra_self = _self_train(model, train, val_fit, unlabelled, unlabelled_rows, settings,
                                 progress, len(train_rows) + len(val_rows), total)
        metrics = {"val": pixel_metrics(model, val), "train": pixel_metrics(model, train),
                   "early_stopping": metrics["early_stopping"], "first_map_val": metrics["val"]}
    importance = model.feature_importance()
    top = dict(sorted(importance.items(), key=lambda kv: -kv[1])[:8])
    frames = {"train": train.counts, "val": val.counts}
    extra = {"store_uri": store.uri, "store_settings": _store_settings(store), "sampling": asdict(sampling),
             "frames": frames, "metrics": metrics, "feature_importance": importance,
             "box_style": learned_box_style(store, model, train_rows).to_dict(), **extra_self}
    model.save(out_dir, extra)
    model_id = read_string_map_config(out_dir)["model_id"]
    return StringTrainResult(str(out_dir), model_id, store.uri, model.best_iteration_, frames, metrics, top,
                             round(time.perf_counter() - start, 3), extra_self.get("self_training"))


def _unlabelled_rows(store, unlabelled, storage_options: dict | None) -> tuple[Any, list[dict]]:
    """The unlabelled store and its frames' rows (the labelled store's own: those outside train and val)."""
    if unlabelled is None:
        return None, []
    unlabelled = open_store(unlabelled, storage_options)
    check_compatible(store.get_meta("settings"), unlabelled.get_meta("settings"), sections=STRING_SECTIONS,
                     expected_name=f"labelled store {store.uri!r}", actual_name=f"unlabelled store {unlabelled.uri!r}",
                     remedy="Ingest both with the same preprocessing settings (`csf ingest --settings`).")
    if unlabelled.uri == store.uri:
        return unlabelled, frame_rows(unlabelled, "split NOT IN ('train', 'val')")
    return unlabelled, frame_rows(unlabelled)


def _self_train(model: StringMapModel, train: PixelSet, val_fit: tuple, unlabelled, rows: list[dict],
                settings: SelfTraining, progress, done: int, total: int) -> dict:
    """Fit ``model`` again on ``train`` plus the pseudo-labelled pixels of ``rows`` of ``unlabelled``
    (:mod:`cs_features.strings.selftraining`), early-stopped on ``val_fit`` as the first fit; what
    config.json records of it."""
    first_iteration = model.best_iteration_
    shifted = (lambda read, _total: progress(done + read, total)) if progress else None
    pseudo = pseudo_pixels(unlabelled, rows, model, settings, model.seed + 2, shifted)
    if not (pseudo.y == 1).any() or not (pseudo.y == 0).any():
        raise DatasetError(f"unlabelled store {unlabelled.uri!r} gave no pseudo-labelled pixel of "
                           f"{'a string' if not (pseudo.y == 1).any() else 'the background'} to train on "
                           f"({pseudo.counts}): self-training needs time-lapses (several frames per embryo id, "
                           f"the embryo found) where the first map reaches {settings.lit} (the lit level) on a line "
                           "the other frames do not show")
    weights = train.weights()
    model.fit(np.concatenate([train.X, pseudo.X]), np.concatenate([train.y, pseudo.y]),
              np.concatenate([weights, pseudo_weights(pseudo.y, float(weights.sum()), settings.share)]), *val_fit)
    log.info("string map self-trained on %s: %s", unlabelled.uri, pseudo.counts)
    return {"self_training": {"store_uri": unlabelled.uri, "settings": settings.to_dict(), "pixels": pseudo.counts,
                              "first_map_best_iteration": first_iteration}}


def learned_box_style(store, model: StringMapModel, rows: list[dict], frames: int = 40):
    """How the store's annotators box strings around the map (:func:`cs_features.proposals.learned.learn_box_style`),
    from up to ``frames`` training frames with boxes."""
    from cs_features.proposals.learned import learn_box_style

    maps, truth = [], []
    for frame in iter_frames(store, [row for row in rows if row["gt_boxes"]][:frames]):
        maps.append(model.predict_map(frame.image))
        truth.append(frame.boxes)
    return learn_box_style(maps, truth)


def _store_settings(store) -> dict:
    settings = store.get_meta("settings") or {}
    return {key: settings.get(key) for key in STRING_SECTIONS}
