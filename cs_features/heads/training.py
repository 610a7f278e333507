"""Production training of one region head: read a store snapshot, fit, evaluate on test, save.

:func:`train_head` (``csf train head``) fits one head on the train split (validation for early
stopping / selection), evaluates it on the test split and saves it. The pieces are shared with the
multi-head benchmark (:mod:`cs_features.heads.bench`): :func:`load_head_data` reads a snapshot once,
:func:`fit_head` fits, :func:`evaluate_head` measures

- region level (labelled test proposals): average precision, AUROC, IoU MAE;
- frame level (test frames labelled abnormal with ground-truth boxes): the best-scoring box of all the
  frame's proposals hits a string at IoU >= 0.25 / 0.5;
- detection: COCO-style AP25 / AP50 over all test frames after NMS;
- cost: training seconds, inference rows per second, model bytes on disk.

Frame hits and detection AP rank boxes as ``csf detect`` does: region score times the attachment prior
(:mod:`cs_features.attachment`) and the transience prior (:mod:`cs_features.transience`), each read
from the store's frames once per snapshot; ``EvalSettings.attachment`` / ``.transience`` turn them off.
Where the store proposes with the learned ``strings`` source, the region score reads that string map too
(:mod:`cs_features.strings.framing`: p from the head and the map, IoU the box's fit to the map's string);
``EvalSettings.framing`` turns it off.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.attachment import AttachmentPrior
from cs_features.errors import DatasetError
from cs_features.heads import get_head
from cs_features.heads.base import RegionHead, region_score
from cs_features.heads.data import (
    LabelledArrays,
    ProposalArrays,
    check_encoder,
    load_frames,
    load_labelled,
    load_proposals,
    open_store,
)
from cs_features.heads.decision import FrameDecision, choose_frame_decision
from cs_features.metrics import best_box_hit_rate, detection_ap, group_by_frame, proposal_recall, region_metrics
from cs_features.model_dir import write_json
from cs_features.ranking import store_rank_factors
from cs_features.settings import StoreSettings
from cs_features.store import FeatureStore
from cs_features.strings.framing import MapFraming, framed_p, ranking_string_model, store_framing
from cs_features.transience import TransiencePrior

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class EvalSettings:
    """How heads are evaluated (the same for every head of a bench). Per frame, boxes are kept greedily by rank:
    a box is dropped when its IoU with a kept one exceeds ``nms_iou`` or at least ``nms_inside`` of it lies inside
    a kept one (None: by IoU alone); at most ``max_detections`` are kept."""

    nms_iou: float = 0.3
    nms_inside: float | None = 0.9
    hit_ious: tuple = (0.25, 0.5)
    ap_ious: tuple = (0.25, 0.5)
    max_detections: int = 100
    attachment: AttachmentPrior = field(default_factory=AttachmentPrior)
    transience: TransiencePrior = field(default_factory=TransiencePrior)
    framing: MapFraming = field(default_factory=MapFraming)


@dataclass
class HeadData:
    """One store snapshot's arrays: labelled proposals per split, all test proposals, test frames."""

    store_uri: str
    encoder: str
    encoder_info: dict
    version: int | str | None
    labelled: dict[str, LabelledArrays]
    test: ProposalArrays
    frames: list[dict]
    preprocess: dict | None = None
    groups: dict = field(default_factory=dict)
    settings: dict | None = None
    store: FeatureStore | None = None
    rank_factors: dict = field(default_factory=dict)
    framings: dict = field(default_factory=dict)

    def test_attachment(self, prior: AttachmentPrior) -> np.ndarray:
        """``(N,)`` attachment factors of the test proposals under ``prior``."""
        known = [pair for pair in self.rank_factors if pair[0] == prior]
        return self._priors(prior, known[0][1] if known else TransiencePrior(enabled=False))[0]

    def test_transience(self, prior: TransiencePrior) -> np.ndarray:
        """``(N,)`` transience factors of the test proposals under ``prior``."""
        known = [pair for pair in self.rank_factors if pair[1] == prior]
        return self._priors(known[0][0] if known else AttachmentPrior(enabled=False), prior)[1]

    def test_rank_factors(self, settings: EvalSettings) -> np.ndarray:
        """``(N,)`` what each test proposal's region score is multiplied by to rank it (both priors)."""
        attached, transient = self._priors(settings.attachment, settings.transience)
        return attached * transient

    def test_framing(self, framing: MapFraming) -> tuple[np.ndarray, np.ndarray] | None:
        """``(strength, fit)`` of the test proposals under the string map that ranks them, read once per
        setting; None when ``framing`` is off or the store does not propose with the ``strings`` source."""
        directory = ranking_string_model(StoreSettings.from_dict(self.settings).proposals if self.settings else None)
        if not framing.enabled or directory is None:
            return None
        if framing not in self.framings:
            if self.store is None:
                raise ValueError(f"the snapshot of {self.store_uri!r} was loaded without its store; the map framing "
                                 "reads the store's frames (EvalSettings(framing=MapFraming(enabled=False)) ranks "
                                 "without it)")
            self.framings[framing] = store_framing(self.store, self.test.frame_id, self.test.box, directory, framing)
        return self.framings[framing]

    def test_region_score(self, head: RegionHead, p: np.ndarray, iou: np.ndarray, settings: EvalSettings) -> np.ndarray:
        """``(N,)`` the test proposals' region score from the head's ``p`` and ``iou``: read with the string
        map when it ranks them (:meth:`test_framing`), before the priors."""
        framed = self.test_framing(settings.framing)
        if framed is not None:
            p, iou = framed_p(p, framed[0]), framed[1]
        return region_score(p, iou, head.score_mode, head.alpha)

    def _priors(self, attachment: AttachmentPrior, transience: TransiencePrior) -> tuple[np.ndarray, np.ndarray]:
        """Both priors' factors of the test proposals, read from the store once per pair of settings."""
        key = (attachment, transience)
        if key not in self.rank_factors:
            if (attachment.enabled or transience.enabled) and self.store is None:
                raise ValueError(f"the snapshot of {self.store_uri!r} was loaded without its store; the ranking "
                                 "priors read the store's frames (EvalSettings with both priors disabled ranks "
                                 "without them)")
            self.rank_factors[key] = store_rank_factors(self.store, self.test.frame_id, self.test.box, *key)
        return self.rank_factors[key]

    def counts(self) -> dict:
        out = {split: {"rows": len(a), "positives": a.positives} for split, a in self.labelled.items()}
        out["test_all_proposals"] = len(self.test)
        out["test_frames"] = len(self.frames)
        out["test_cs_frames"] = len(cs_frames(self.frames))
        return out


def cs_frames(frames: list[dict]) -> list[dict]:
    """Frames that show strings: labelled abnormal, with ground truth and at least one box."""
    return [f for f in frames if f["label"] == "abnormal" and f["has_gt"] and len(f["gt_boxes"])]


def load_split_data(store: FeatureStore, encoder: str, split: str, version: int | str | None = None,
                    sources: tuple[str, ...] | None = None, labelled: dict | None = None) -> HeadData:
    """One split's proposals and frames as a snapshot whose evaluated arrays (``test``, ``frames``) are that
    split's, with the ``labelled`` rows given (none: what :func:`~cs_features.heads.decision.frame_scores`
    reads on val)."""
    info = check_encoder(store, encoder)
    data = HeadData(store.uri, encoder, info, version, labelled or {},
                    load_proposals(store, encoder, split, version=version, sources=sources),
                    load_frames(store, split, version),
                    preprocess=(store.get_meta("settings") or {}).get("preprocess"),
                    settings=store.get_meta("settings"), store=store)
    data.groups = group_by_frame(data.test.frame_id)
    return data


def load_head_data(store: FeatureStore, encoder: str, version: int | str | None = None,
                   sources: tuple[str, ...] | None = None) -> HeadData:
    """Read everything training and evaluation need, in three scans (labelled rows, test rows, frames).

    ``sources`` restricts training and evaluation to proposals of those sources (e.g. Selective Search
    only), so a bench can show what a proposal source is worth downstream.
    """
    return load_split_data(store, encoder, "test", version, sources,
                           labelled=load_labelled(store, encoder, version=version, sources=sources))


def _has_both(arrays: LabelledArrays) -> bool:
    return 0 < arrays.positives < len(arrays)


def check_classes(data: HeadData) -> None:
    """Refuse a store whose train split lacks positive or negative proposals (validation may lack them:
    :func:`training_splits` then early-stops on part of train)."""
    arrays = data.labelled["train"]
    if not _has_both(arrays):
        raise DatasetError(
            f"the train split of {data.store_uri!r} ({data.encoder}) has {arrays.positives} positive and "
            f"{len(arrays) - arrays.positives} negative labelled proposal(s); training a head needs both "
            "(frames with strings and frames without)")


def training_splits(data: HeadData, seed: int = 0, inner_fraction: float = 0.25
                    ) -> tuple[LabelledArrays, LabelledArrays, str]:
    """The rows a head trains on and the rows it early-stops on, and where those came from.

    Normally the train and val splits. A lab with a handful of CS embryos often has none in val: then
    part of train is held out to early-stop on, with a warning: about ``inner_fraction`` of the train
    embryos (whole embryos, CS and CS-free alike, seeded) when train has two CS embryos or more, else
    about ``inner_fraction`` of the frames with strings and of those without (frames of one embryo look
    alike, so that stopping point is optimistic).
    """
    train, val = data.labelled["train"], data.labelled["val"]
    if _has_both(val):
        return train, val, "val"
    rng = np.random.default_rng(seed)
    positive = sorted(set(train.embryo_id[train.y == 1].tolist()))
    if len(positive) >= 2:
        unit, column = "embryos", train.embryo_id
        negative = sorted(set(train.embryo_id.tolist()) - set(positive))
        groups = [positive, negative]
    else:
        unit, column = "frames", train.frame_id
        with_strings = sorted(set(train.frame_id[train.y == 1].tolist()))
        groups = [with_strings, sorted(set(train.frame_id.tolist()) - set(with_strings))]
    held = set()
    for group in groups:
        if len(group) > 1:
            held.update(rng.permutation(np.asarray(group, dtype=object))[:max(1, round(inner_fraction * len(group)))])
    inner = np.isin(column, list(held))
    if not _has_both(train.subset(inner)) or not _has_both(train.subset(~inner)):
        raise DatasetError(f"the val split of {data.store_uri!r} has {val.positives} positive proposals and the train "
                           f"split cannot spare any for early stopping; label more CS frames or move one CS embryo "
                           "into val")
    log.warning("the val split of %s has no labelled strings (%d positive of %d proposals): early-stopping on %d "
                "train %s held out instead", data.store_uri, val.positives, len(val), len(held), unit)
    return train.subset(~inner), train.subset(inner), f"inner split of train ({len(held)} {unit})"


def fit_head(head: RegionHead, data: HeadData, splits: tuple | None = None) -> float:
    """Fit ``head`` on the snapshot's training rows, early-stopped on :func:`training_splits`' rows (or on
    the ``splits`` a caller already chose); returns the training seconds."""
    check_classes(data)
    train, val, _ = splits or training_splits(data, seed=getattr(head, "seed", 0))
    start = time.perf_counter()
    head.fit(train.X, train.y, train.iou, val.X, val.y, val.iou)
    return time.perf_counter() - start


def evaluate_head(head: RegionHead, data: HeadData, settings: EvalSettings | None = None) -> tuple[dict, dict]:
    """Test-split metrics of a fitted head.

    Returns:
        ``(metrics, curve)``: flat ``{name: float}`` and ``{"precision": (K,), "recall": (K,)}``, the
        region-level precision-recall curve on labelled test proposals.
    """
    from sklearn.metrics import precision_recall_curve

    settings = settings or EvalSettings()
    start = time.perf_counter()
    p, iou = head.predict(data.test.X)
    seconds = time.perf_counter() - start
    labelled = data.test.weak_label >= 0
    y = data.test.weak_label[labelled]
    metrics = region_metrics(y, p[labelled], data.test.max_iou[labelled], iou[labelled])
    score = _ranked_scores(head, data, p, iou, settings)
    metrics.update(best_box_hit_rate(_frame_triples(data, score, cs_frames(data.frames)), settings.hit_ious))
    metrics.pop("frames")
    metrics.update(detection_ap(_frame_triples(data, score, data.frames), settings.ap_ious, settings.nms_iou,
                                settings.max_detections, settings.nms_inside))
    metrics["infer_rows_per_s"] = len(p) / seconds if seconds > 0 else float("inf")
    curve = {"precision": np.zeros(0), "recall": np.zeros(0)}
    if 0 < y.sum() < len(y):
        precision, recall, _ = precision_recall_curve(y, p[labelled])
        curve = {"precision": precision, "recall": recall}
    return metrics, curve


def frame_detections(head: RegionHead, data: HeadData, settings: EvalSettings | None = None) -> list[tuple]:
    """Per test frame (``data.frames`` order, CS-free frames included): ``(boxes (N, 4), scores (N,), gt_boxes
    (G, 4))``, every proposal scored as :func:`evaluate_head` ranks it for its AP (before the per-frame NMS)."""
    settings = settings or EvalSettings()
    p, iou = head.predict(data.test.X)
    return _frame_triples(data, _ranked_scores(head, data, p, iou, settings), data.frames)


def _ranked_scores(head: RegionHead, data: HeadData, p: np.ndarray, iou: np.ndarray,
                   settings: EvalSettings) -> np.ndarray:
    """Each test proposal's ranking score: its region score times the priors' (and framing's) factors."""
    return data.test_region_score(head, p, iou, settings) * data.test_rank_factors(settings)


def _frame_triples(data: HeadData, score: np.ndarray, frames: list[dict]) -> list[tuple]:
    empty = np.zeros(0, np.int64)
    out = []
    for frame in frames:
        rows = data.groups.get(frame["frame_id"], empty)
        out.append((data.test.box[rows], score[rows], frame["gt_boxes"]))
    return out


def snapshot_recall(data: HeadData, thresholds=(0.25, 0.5)) -> dict:
    """Proposal recall of the test strings (the ceiling of the hit rate) and proposals per test frame."""
    empty = np.zeros(0, np.int64)
    frames = [(data.test.box[data.groups.get(f["frame_id"], empty)], f["gt_boxes"]) for f in data.frames]
    return proposal_recall(frames, thresholds)


def provenance(data: HeadData, tag: str | None = None) -> dict:
    return {"encoder": data.encoder, "encoder_info": data.encoder_info, "store_uri": data.store_uri,
            "store_tag": tag, "store_version": data.version, "preprocess": data.preprocess,
            "store_settings": data.settings, "rows": data.counts()}


def model_bytes(head: RegionHead, data: HeadData) -> int:
    """Bytes on disk of the saved head (config.json included)."""
    with tempfile.TemporaryDirectory(prefix="csf-head-") as tmp:
        head.save(tmp, provenance(data))
        return sum(path.stat().st_size for path in Path(tmp).iterdir() if path.is_file())


def train_head(store: FeatureStore | str, model: str, out_dir: str | Path | None = None, encoder: str = "classic",
               seed: int = 0, params: dict | None = None, settings: EvalSettings | None = None,
               storage_options: dict | None = None, progress: Progress | None = None,
               decision: FrameDecision | None = None) -> dict:
    """Train one head on the store's train split, evaluate on test, choose its frame decision on val
    (:mod:`cs_features.heads.decision`), save it to ``out_dir``.

    Returns:
        ``{"model", "encoder", "store", "out", "rows", "metrics", "frame_decision"}``; ``out_dir/metrics.json``
        holds the same.

    Raises:
        StoreError: missing or empty store, or no vectors of ``encoder``.
        DatasetError: no positives or no negatives in the train or validation split.
        RegistryError / ConfigError: unknown head or hyperparameter.
    """
    settings = settings or EvalSettings()
    store = open_store(store, storage_options)
    head = get_head(model, seed=seed, **(params or {}))
    data = load_head_data(store, encoder)
    if progress:
        progress(0, 2)
    check_classes(data)
    splits = training_splits(data, seed=seed)
    train_seconds = fit_head(head, data, splits)
    if progress:
        progress(1, 2)
    metrics, _ = evaluate_head(head, data, settings)
    metrics.update(train_seconds=train_seconds, model_bytes=model_bytes(head, data))
    result = save_head(head, data, metrics, out_dir, seed=seed, early_stopping=splits[2], settings=settings,
                       decision=decision)
    if progress:
        progress(2, 2)
    return result


def save_head(head: RegionHead, data: HeadData, metrics: dict, out_dir: str | Path | None, seed: int,
              early_stopping: str, settings: EvalSettings | None = None, tag: str | None = None,
              decision: FrameDecision | None = None) -> dict:
    """What :func:`train_head` returns for a fitted and evaluated ``head``, its frame decision chosen on the
    val split of the same snapshot; saved to ``out_dir`` (the head's model folder with ``metrics.json``
    holding the same) unless ``out_dir`` is None."""
    settings = settings or EvalSettings()
    chosen = choose_frame_decision(head, load_split_data(data.store, data.encoder, "val", data.version), settings,
                                   decision or FrameDecision())
    result = {"model": head.name, "encoder": data.encoder, "store": data.store_uri, "seed": seed,
              "params": head.get_params(), "rows": data.counts(),
              "proposal_recall": snapshot_recall(data, settings.hit_ious), "metrics": metrics,
              "out": str(out_dir) if out_dir else None, "early_stopping": early_stopping, "frame_decision": chosen}
    if out_dir is not None:
        head.save(out_dir, provenance(data, tag), metrics, frame_decision=chosen)
        write_json(Path(out_dir) / "metrics.json", result)
    return result
