"""``StringMapModel``: a LightGBM pixel classifier on the filter bank, the learned string map.

The estimator follows scikit-learn: ``__init__`` stores hyperparameters, :meth:`StringMapModel.fit` takes
pixel rows ``(N, F)`` of :func:`~cs_features.strings.features.string_features` with labels ``(N,)`` (1 on a
string) and sets the learned attributes (``booster_``, ``best_iteration_``, ``n_features_``); predicting
before ``fit`` raises :class:`~cs_features.errors.NotFittedError`. :meth:`StringMapModel.predict_map`
turns a whole frame into a ``(H, W)`` float32 string probability.

Saved as a model folder (:mod:`cs_features.model_dir`): ``config.json`` (hyperparameters, the bank's
feature names and version, schema version, package versions, training counts and metrics) beside
``string_map.txt`` (LightGBM text, only the trees early stopping kept). Loading never unpickles.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cs_features.boosting import lightgbm_params
from cs_features.errors import ConfigError, NotFittedError, WeightsError
from cs_features.ids import short_hash
from cs_features.model_dir import atomic_path, file_sha256, read_model_config, write_config
from cs_features.strings.features import FILTER_BANK_VERSION, feature_names, string_features

log = logging.getLogger(__name__)

KIND = "string-map"
SCHEMA_VERSION = 1
WEIGHTS_FILE = "string_map.txt"
TRAIN_COMMAND = "csf train strings"
HYPERPARAMETERS = ("n_estimators", "learning_rate", "num_leaves", "min_child_samples", "feature_fraction",
                   "bagging_fraction", "lambda_l2", "early_stopping_rounds", "num_threads", "seed", "input_smoothing")
INPUT_SMOOTHING = 1.0  # px; see StringMapModel
UNSMOOTHED = 0.0  # the input smoothing of a model saved before the setting existed: none


class StringMapModel:
    """Binary LightGBM classifier of string pixels.

    Args:
        n_estimators: boosting rounds at most (early stopping on a validation sample usually ends sooner).
        learning_rate, num_leaves, min_child_samples, feature_fraction, bagging_fraction, lambda_l2: the
            usual LightGBM settings.
        early_stopping_rounds: rounds without a validation improvement (binary log-loss) before stopping.
        num_threads: LightGBM threads; 1 by default (its OpenMP threads spin on shared cores, see heads.gbm).
        seed: seed of bagging and feature sampling; with ``deterministic=True`` a fit is reproducible.
        input_smoothing: sigma (px) of the Gaussian the frame gets before the filter bank, in training and in
            every map (:func:`~cs_features.strings.features.string_features`'s ``smoothing``). Chosen on the
            transfer protocol: trained on ``clean``, the frame AUROC of the map's transient peak goes from
            0.80 / 0.74 to 0.86 / 0.81 on the ``hard`` test worlds (seeds 2 / 3) and from 0.91 / 0.87 to
            0.93 / 0.93 on ``hard-crop`` with 1 px, and stays 1.00 on ``clean`` itself (0.7 px and 1.2 px
            measured within 0.025 of 1 px); why it helps that much was not traced. It costs the finest lines
            (on generated 1-2.5 px strings the pixel AUROC against cell edges is 0.86 with 1 px and 0.92
            without, ``tests/test_strings.py``) and box tightness: boxes framed on the smoothed map lose AP50
            (in-world 0.34 -> 0.26 on ``hard``, 0.48 -> 0.38 on ``clean``) while AP25 holds. 0 turns it off.
    """

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.1, num_leaves: int = 31,
                 min_child_samples: int = 20, feature_fraction: float = 0.8, bagging_fraction: float = 0.8,
                 lambda_l2: float = 1.0, early_stopping_rounds: int = 20, num_threads: int = 1,
                 seed: int = 0, input_smoothing: float = INPUT_SMOOTHING) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads
        self.seed = seed
        self.input_smoothing = input_smoothing

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HYPERPARAMETERS}

    def _params(self) -> dict[str, Any]:
        return lightgbm_params(self, "binary", "binary_logloss")

    def _validate_rows(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        width = len(feature_names())
        if X.ndim != 2 or X.shape[1] != width:
            raise ValueError(f"{name} must be (N, {width}) filter-bank rows, got shape {X.shape}")
        return X

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            sample_weight_val: np.ndarray | None = None) -> StringMapModel:
        """Fit on pixel rows ``X`` (N, F) with labels ``y`` (N,) in {0, 1}; early-stop on (X_val, y_val) if given.

        Raises:
            ValueError: wrong shapes, or ``y`` lacks one of the two classes.
        """
        import lightgbm as lgb

        X = self._validate_rows(X)
        y = np.asarray(y).astype(np.int8).ravel()
        if len(y) != len(X) or set(np.unique(y).tolist()) != {0, 1}:
            raise ValueError(f"y must hold {len(X)} labels with both classes 0 and 1, got {len(y)} labels "
                             f"with classes {sorted(set(np.unique(y).tolist()))}")
        train = lgb.Dataset(X, y, weight=sample_weight, feature_name=_safe_names(), free_raw_data=True)
        valid_sets, callbacks = [], []
        if X_val is not None and y_val is not None and len(np.unique(y_val)) == 2:
            X_val = self._validate_rows(X_val, "X_val")
            valid_sets = [lgb.Dataset(X_val, np.asarray(y_val).astype(np.int8), weight=sample_weight_val,
                                      reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster_ = lgb.train(self._params(), train, num_boost_round=self.n_estimators, valid_sets=valid_sets,
                                  callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.n_features_ = X.shape[1]
        log.info("string map: %d boosting rounds kept", self.best_iteration_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this StringMapModel is not fitted yet: call fit() or StringMapModel.load() first")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """String probability of pixel rows ``X`` (N, F) -> (N,) float32."""
        self._check_fitted()
        X = self._validate_rows(X)
        p = self.booster_.predict(X, num_iteration=self.best_iteration_, num_threads=self.num_threads)
        return np.asarray(p, dtype=np.float32)

    def smoothing_sigma(self) -> float:
        """``input_smoothing`` as a float, checked.

        Raises:
            ConfigError: not a number >= 0.
        """
        value = self.input_smoothing
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f"input_smoothing must be a sigma >= 0 (px), got {value!r}")
        return float(value)

    def features(self, image: np.ndarray) -> np.ndarray:
        """The filter bank of one preprocessed frame as this model reads it (after its ``input_smoothing``):
        ``(H, W, F)`` float32.

        Raises:
            ConfigError: a bad ``input_smoothing``.
        """
        return string_features(image, self.smoothing_sigma())

    def predict_map(self, image: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """The string map of one preprocessed frame: ``(H, W)`` float32 in [0, 1] -> ``(H, W)`` float32 probability.

        ``where``: an ``(H, W)`` bool mask; only its pixels are classified and every other one is 0. The
        filter bank still runs on the whole frame, so a pixel inside gets exactly the value it gets without
        the mask; classifying the pixels is most of the cost, so a mask of 40 % of the frame (the embryo
        interior of a whole-well frame) takes about half the time.

        Raises:
            ValueError: ``where`` is not of the frame's shape.
        """
        self._check_fitted()
        features = self.features(image)
        h, w, f = features.shape
        if where is None:
            return self.predict_proba(features.reshape(h * w, f)).reshape(h, w)
        where = np.asarray(where, bool)
        if where.shape != (h, w):
            raise ValueError(f"where must be a ({h}, {w}) mask of the frame, got shape {where.shape}")
        out = np.zeros((h, w), np.float32)
        if where.any():
            out[where] = self.predict_proba(features[where])
        return out

    def feature_importance(self) -> dict[str, float]:
        """Total split gain per filter-bank feature."""
        self._check_fitted()
        gains = self.booster_.feature_importance("gain", iteration=self.best_iteration_)
        return {name: float(g) for name, g in zip(feature_names(), gains)}

    # ---- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write ``string_map.txt`` and ``config.json`` (``extra`` merged in) into ``directory``; returns it.

        The config's ``model_id`` is ``short_hash(hyperparameters, weights sha256)``: the same fit, the same id.
        """
        from cs_features.runtime import package_versions

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            self.booster_.save_model(str(tmp), num_iteration=self.best_iteration_)
        weights_sha256 = file_sha256(directory / WEIGHTS_FILE)
        config = {**(extra or {}), "kind": KIND, "schema_version": SCHEMA_VERSION,
                  "model_id": short_hash(json.dumps(self.get_params(), sort_keys=True), weights_sha256),
                  "hyperparameters": self.get_params(), "feature_names": feature_names(),
                  "filter_bank_version": FILTER_BANK_VERSION, "best_iteration": self.best_iteration_,
                  "weights_file": WEIGHTS_FILE, "weights_sha256": weights_sha256,
                  "package_versions": package_versions()}
        write_config(directory, config)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> StringMapModel:
        """A fitted model from a folder written by :meth:`save` (LightGBM text; nothing unpickled).

        Raises:
            WeightsError: missing/corrupt folder, another kind of model, another filter bank, missing weights.
        """
        import lightgbm as lgb

        directory = Path(directory)
        config = read_string_map_config(directory)
        # a model saved before input_smoothing existed was trained on unsmoothed frames, and maps them so
        model = cls(**{"input_smoothing": UNSMOOTHED, **config["hyperparameters"]})
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise WeightsError(f"string-map model {str(directory)!r} has no {WEIGHTS_FILE}: retrain with "
                               f"`{TRAIN_COMMAND}`")
        try:
            model.booster_ = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise WeightsError(f"{str(path)!r} is not a LightGBM text model ({exc}): retrain with "
                               f"`{TRAIN_COMMAND}`") from exc
        model.best_iteration_ = model.booster_.current_iteration()
        model.n_features_ = model.booster_.num_feature()
        if model.n_features_ != len(feature_names()):
            raise WeightsError(f"{str(path)!r} has {model.n_features_} features, this filter bank "
                               f"{len(feature_names())}: retrain with `{TRAIN_COMMAND}`")
        return model


def read_string_map_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a string-map model folder, checked against this code's filter bank.

    Raises:
        WeightsError: not a string-map folder, a newer schema, or a filter bank with other features.
    """
    config = read_model_config(directory, what="string-map model", command=TRAIN_COMMAND,
                               required=("hyperparameters", "feature_names", "model_id"), kind=KIND,
                               schema_version=SCHEMA_VERSION)
    if config["feature_names"] != feature_names() or config.get("filter_bank_version") != FILTER_BANK_VERSION:
        raise WeightsError(f"string-map model {str(directory)!r} was trained on filter bank version "
                           f"{config.get('filter_bank_version')} ({len(config['feature_names'])} features); this "
                           f"cs_features computes version {FILTER_BANK_VERSION} ({len(feature_names())} features): "
                           f"retrain with `{TRAIN_COMMAND}`")
    return config


def _safe_names() -> list[str]:
    # LightGBM refuses some characters in feature names; dots are fine but keep them plain
    return [name.replace(".", "p") for name in feature_names()]
