"""The anomaly filter: a scikit-learn style wrapper that trains, scores, saves and loads the autoencoder.

Training sees normal frames only. After each epoch the validation frames (both labels) are scored;
the epoch with the best validation AUROC is kept and the threshold, the gate in front of the localizer,
is chosen for recall on that validation set: the highest score that keeps ``gate_sensitivity`` (97 %)
of the validation CS frames (``gate="youden"``: Youden's J instead, which balances both errors and in
the quickstart dropped half the CS frames), applied unchanged to any later frame. When the validation
split holds no abnormal frame the AUROC is undefined: a WARNING is logged, the last epoch is kept, and
the threshold falls back to the 99th percentile of the normal validation scores
(``threshold_method = "p99-normal-val"``).

Defaults are the published recipe improved where the 200-embryo synthetic set showed it (``csf synth
--embryos 200 --seed 0``, 4 epochs, weighted; frame-level test AUROC): the published recipe reaches
0.58; the transposed-convolution decoder paints checkerboard patterns into the cavity after a few
epochs, the nearest-upsampling decoder (``conv-ae-up``) does not; 128-px training crops give four times
the optimiser steps per CPU-minute; scoring the 99th percentile of the high-passed residual in the
eroded cavity (:mod:`~cs_features.autoencoder.score_maps`) instead of the 95th percentile in the
low-texture mask brings it to 0.99. Pass ``model="conv-ae", crop_size=None, reducer="p95",
region="mask", region_erosion=0, highpass_sigma=0`` for the published recipe.

A saved filter is a directory: ``weights.safetensors`` and ``config.json`` (hyperparameters, learned
threshold, package versions, and whatever the caller adds: store, tag, metrics). Loading reads
safetensors only, never a pickle.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cs_features.autoencoder.data import FrameSet
from cs_features.errors import ConfigError, DatasetError, NotFittedError
from cs_features.metrics import auroc, sensitivity_threshold, undefined_reason, youden_threshold

log = logging.getLogger(__name__)

FALLBACK_PERCENTILE = 99.0
HYPERPARAMETERS = ("model", "variant", "epochs", "batch_size", "lr", "img_size", "seed", "device", "reducer",
                   "region", "region_erosion", "highpass_sigma", "line_length", "augment", "crop_size",
                   "score_batch_size", "gate", "gate_sensitivity")
GATES = ("sensitivity", "youden")


class AnomalyFilter:
    """Convolutional-autoencoder anomaly filter for preprocessed frames (see the module docstring).

    Args:
        model: architecture name in ``AE_MODELS`` (``conv-ae-up``; ``conv-ae`` is the published one).
        variant: loss weighting in ``AE_VARIANTS``: ``weighted`` or ``unweighted``.
        epochs, batch_size, lr: Adam training schedule. img_size: side S of the square input (multiple of 8).
        seed: seeds weights, batch order and augmentation. device: ``auto``, ``cpu`` or ``cuda``.
        reducer: score reducer in ``REDUCERS`` (``p99``; ``p95`` as published).
        region, region_erosion, highpass_sigma, line_length: what the reducer sees, in px at ``img_size``
            (see :mod:`~cs_features.autoencoder.score_maps`; ``mask``, 0, 0, 0 is the published score).
        augment: random flips / 90-degree turns of training frames.
        crop_size: train on one random crop of this side per frame (128; None = whole frames, as
            published: 4x fewer pixels per step, 4x more steps per CPU-minute); scoring uses whole frames.
        score_batch_size: frames per inference batch (None: 32 on a GPU, about one 256-px frame's worth
            of pixels on the CPU, where larger batches are slower per frame).
    """

    def __init__(self, model: str = "conv-ae-up", variant: str = "weighted", epochs: int = 4, batch_size: int = 16,
                 lr: float = 1e-3, img_size: int = 256, seed: int = 0, device: str = "auto", reducer: str = "p99",
                 region: str = "cavity", region_erosion: int = 6, highpass_sigma: float = 6.0, line_length: int = 0,
                 augment: bool = True, crop_size: int | None = 128, score_batch_size: int | None = None,
                 gate: str = "sensitivity", gate_sensitivity: float = 0.97) -> None:
        self.model, self.variant, self.epochs, self.batch_size = model, variant, epochs, batch_size
        self.lr, self.img_size, self.seed, self.device = lr, img_size, seed, device
        self.reducer, self.region, self.region_erosion = reducer, region, region_erosion
        self.highpass_sigma, self.line_length = highpass_sigma, line_length
        self.augment, self.crop_size = augment, crop_size
        self.score_batch_size = score_batch_size
        self.gate, self.gate_sensitivity = gate, gate_sensitivity

    # ---- parameters --------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HYPERPARAMETERS}

    def _validate(self) -> None:
        from cs_features.autoencoder.losses import AE_VARIANTS
        from cs_features.autoencoder.model import AE_MODELS
        from cs_features.autoencoder.score_maps import REGIONS
        from cs_features.autoencoder.scoring import REDUCERS

        AE_MODELS.get(self.model), AE_VARIANTS.get(self.variant), REDUCERS.get(self.reducer)
        REGIONS.get(self.region)
        checks = [("epochs", self.epochs, isinstance(self.epochs, int) and self.epochs >= 1, "an int >= 1"),
                  ("batch_size", self.batch_size, isinstance(self.batch_size, int) and self.batch_size >= 2,
                   "an int >= 2"),
                  ("lr", self.lr, isinstance(self.lr, (int, float)) and 0 < self.lr < 1, "a number in (0, 1)"),
                  ("img_size", self.img_size, isinstance(self.img_size, int) and self.img_size >= 16
                   and self.img_size % 8 == 0, "an int >= 16 divisible by 8"),
                  ("crop_size", self.crop_size, self.crop_size is None or isinstance(self.crop_size, int)
                   and 16 <= self.crop_size and self.crop_size % 8 == 0, "None or an int >= 16 divisible by 8"),
                  ("region_erosion", self.region_erosion, isinstance(self.region_erosion, int)
                   and self.region_erosion >= 0, "an int >= 0 (px)"),
                  ("highpass_sigma", self.highpass_sigma, isinstance(self.highpass_sigma, (int, float))
                   and self.highpass_sigma >= 0, "a number >= 0 (px; 0 = no high-pass)"),
                  ("score_batch_size", self.score_batch_size, self.score_batch_size is None
                   or isinstance(self.score_batch_size, int) and self.score_batch_size >= 1, "None or an int >= 1"),
                  ("line_length", self.line_length, isinstance(self.line_length, int) and self.line_length >= 0,
                   "an int >= 0 (px; 0 = no line filter)"),
                  ("gate", self.gate, self.gate in GATES, f"one of {', '.join(GATES)}"),
                  ("gate_sensitivity", self.gate_sensitivity, isinstance(self.gate_sensitivity, (int, float))
                   and 0 < self.gate_sensitivity <= 1, "a number in (0, 1]")]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ConfigError(f"AnomalyFilter {name}={value!r} is invalid: expected {accepted}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError("this AnomalyFilter is not fitted: call fit(...) or AnomalyFilter.load(model_dir)")

    # ---- training ----------------------------------------------------------------------------
    def fit(self, train: FrameSet, val: FrameSet, progress: Callable[[int, int], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None) -> AnomalyFilter:
        """Train on ``train`` (normal frames only) and pick epoch and threshold on ``val``.

        Args:
            train: normal training frames (S = ``img_size``). val: validation frames, both labels.
            progress: ``progress(batches_done, batches_total)``.
            on_epoch: called after each epoch with ``{epoch, epochs, loss, val_auroc, seconds, eta_s}``.
        Raises:
            DatasetError: no training frames, abnormal frames in ``train``, or no normal validation frame.
        """
        from cs_features.autoencoder.training import torch_runtime
        from cs_features.runtime import resolve_device

        self._validate()
        self._check_fit_data(train, val)
        device = resolve_device(self.device)
        with torch_runtime(device):
            module, history, best = self._train(train, val, device, progress, on_epoch)
        self.module_, self.device_, self.history_ = module, device, history
        self.best_epoch_, self.val_auroc_ = best["epoch"], best["auroc"]
        self.threshold_, self.threshold_method_ = self._threshold(val.y_true, best["scores"])
        self.val_scores_ = best["scores"]
        self.weights_sha256_ = self._weights_digest()
        return self

    def _check_fit_data(self, train: FrameSet, val: FrameSet) -> None:
        for name, frames in (("train", train), ("val", val)):
            if len(frames) and frames.images.shape[-1] != self.img_size:
                raise ConfigError(f"{name} frames are {frames.images.shape[-1]} px but img_size={self.img_size}")
        if len(train) < 2:
            raise DatasetError(f"the autoencoder needs at least 2 normal training frames, got {len(train)}")
        if (train.y_true == 1).any():
            raise DatasetError(f"training frames must be normal; got {int(train.y_true.sum())} abnormal ones")
        if not (val.y_true == 0).any():
            raise DatasetError(f"the validation frames hold no normal frame ({len(val)} frames): the threshold "
                               "cannot be chosen")
        self.val_undefined_reason_ = undefined_reason(val.y_true)
        if self.val_undefined_reason_:
            log.warning("validation AUROC is undefined (%s): keeping the last epoch and using the %g th percentile "
                        "of the normal validation scores as threshold", self.val_undefined_reason_, FALLBACK_PERCENTILE)

    def _train(self, train: FrameSet, val: FrameSet, device, progress, on_epoch):
        import torch

        from cs_features.autoencoder.losses import AE_VARIANTS
        from cs_features.autoencoder.model import AE_MODELS
        from cs_features.autoencoder.training import batch_count, memory_format, train_epoch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = AE_MODELS.get(self.model)().to(device, memory_format=memory_format(device))
        optimizer = torch.optim.Adam(module.parameters(), lr=self.lr)
        weight_fn, rng = AE_VARIANTS.get(self.variant), np.random.default_rng(self.seed)
        per_epoch = batch_count(len(train), self.batch_size)
        total, done, history, best, start = per_epoch * self.epochs, [0], [], {"auroc": None}, time.perf_counter()

        def on_batch() -> None:
            done[0] += 1
            if progress:
                progress(done[0], total)

        for epoch in range(1, self.epochs + 1):
            loss = train_epoch(module, optimizer, train.images, train.masks, weight_fn, self.batch_size, rng,
                               device, self.augment, self.crop_size, on_batch)
            scores = self._scores(module, val, device)
            val_auc = None if self.val_undefined_reason_ else auroc(val.y_true, scores)
            improved = val_auc is not None and (best["auroc"] is None or val_auc > best["auroc"])
            if improved or (self.val_undefined_reason_ and epoch == self.epochs):
                best = {"epoch": epoch, "auroc": val_auc, "scores": scores,
                        "state": copy.deepcopy(module.state_dict())}
            seconds = time.perf_counter() - start
            record = {"epoch": epoch, "epochs": self.epochs, "loss": loss, "val_auroc": val_auc,
                      "seconds": seconds, "eta_s": seconds / epoch * (self.epochs - epoch)}
            history.append(record)
            log.info("epoch %d/%d loss %.5f val AUROC %s", epoch, self.epochs, loss, val_auc)
            if on_epoch:
                on_epoch(record)
        module.load_state_dict(best.pop("state"))
        return module, history, best

    def _threshold(self, y_val: np.ndarray, scores: np.ndarray) -> tuple[float, str]:
        if self.val_undefined_reason_:
            return float(np.percentile(scores[y_val == 0], FALLBACK_PERCENTILE)), "p99-normal-val"
        if self.gate == "youden":
            return youden_threshold(y_val, scores), "youden-val"
        # a screening gate is chosen for recall: the localizer never sees a frame the gate drops
        return (sensitivity_threshold(y_val, scores, self.gate_sensitivity),
                f"sensitivity-{self.gate_sensitivity:g}-val")

    # ---- scoring -----------------------------------------------------------------------------
    @property
    def score_settings(self):
        """The :class:`~cs_features.autoencoder.score_maps.ScoreSettings` of this filter."""
        from cs_features.autoencoder.score_maps import ScoreSettings

        return ScoreSettings(self.reducer, self.region, self.region_erosion, float(self.highpass_sigma),
                             self.line_length)

    def _scores(self, module, frames: FrameSet, device) -> np.ndarray:
        from cs_features.autoencoder.score_maps import reduce_scores
        from cs_features.autoencoder.training import inference_copy, iter_residuals

        out, settings = np.empty(len(frames), np.float32), self.score_settings
        masks = frames.masks[:, 0].numpy()
        scoring = inference_copy(module, device)  # the epoch's weights, folded once for this scoring
        for start, residuals in iter_residuals(scoring, frames.images, self.score_batch_size, device):
            out[start:start + len(residuals)] = reduce_scores(residuals, masks[start:start + len(residuals)], settings)
        return out

    def iter_residuals(self, frames: FrameSet):
        """Yield ``(start, residuals (B, S, S) float32, scores (B,) float32)`` batch by batch."""
        from cs_features.autoencoder.score_maps import reduce_scores
        from cs_features.autoencoder.training import iter_residuals, torch_runtime

        self._check_fitted()
        self._check_size(frames)
        masks, settings = frames.masks[:, 0].numpy(), self.score_settings
        with torch_runtime(self.device_):
            for start, residuals in iter_residuals(self._scoring_module(), frames.images, self.score_batch_size,
                                                   self.device_):
                yield start, residuals, reduce_scores(residuals, masks[start:start + len(residuals)], settings)

    def _scoring_module(self):
        """:func:`~cs_features.autoencoder.training.inference_copy` of ``module_``, made once per model (a
        detection run scores embryo by embryo) and again when ``module_`` is replaced (fit, load)."""
        from cs_features.autoencoder.training import inference_copy

        cached = getattr(self, "_scoring", None)
        if cached is None or cached[0] is not self.module_:
            self._scoring = (self.module_, inference_copy(self.module_, self.device_))
        return self._scoring[1]

    def score(self, frames: FrameSet) -> np.ndarray:
        """Anomaly scores ``(N,)`` float32 of a FrameSet (higher = more anomalous)."""
        out = np.empty(len(frames), np.float32)
        for start, _, scores in self.iter_residuals(frames):
            out[start:start + len(scores)] = scores
        return out

    def predict(self, frames: FrameSet) -> np.ndarray:
        """``(N,)`` bool: flagged frames, ``score >= threshold_``."""
        return self.score(frames) >= self.threshold_

    def _check_size(self, frames: FrameSet) -> None:
        if len(frames) and tuple(frames.images.shape[1:]) != (1, self.img_size, self.img_size):
            raise ConfigError(f"frames of shape {tuple(frames.images.shape[1:])} given to a filter trained on "
                              f"(1, {self.img_size}, {self.img_size}): load them with img_size={self.img_size}")

    def _weights_digest(self) -> str:
        digest = hashlib.sha256()
        for name, tensor in sorted(self.module_.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    # ---- persistence -------------------------------------------------------------------------
    def learned(self) -> dict[str, Any]:
        """The fitted state that is not a weight: threshold, best epoch, validation AUROC, history."""
        self._check_fitted()
        return {"threshold": float(self.threshold_), "threshold_method": self.threshold_method_,
                "best_epoch": self.best_epoch_, "val_auroc": self.val_auroc_,
                "val_auroc_undefined_reason": self.val_undefined_reason_, "history": self.history_,
                "weights_sha256": self.weights_sha256_}

    def save(self, model_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``weights.safetensors`` and ``config.json`` (plus ``extra`` keys) into ``model_dir``."""
        from cs_features.autoencoder.persist import save_filter

        self._check_fitted()
        return save_filter(self, Path(model_dir), extra or {})

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> AnomalyFilter:
        """Rebuild a saved filter (safetensors weights only).

        Raises:
            WeightsError: missing or corrupt ``config.json`` / ``weights.safetensors``, or weights that do not
                fit the architecture; the message names the file.
        """
        from cs_features.autoencoder.persist import load_filter

        return load_filter(cls, Path(model_dir), device)

