"""The region-head contract: proposal embeddings in, string probability and expected box IoU out.

A head is a scikit-learn style estimator. ``__init__`` stores hyperparameters only; :meth:`RegionHead.fit`
takes ``(N, D)`` float32 embeddings with weak labels (1 string, 0 background) and the proposals' max IoU
with a ground-truth string, for a training and a validation split (used for early stopping / model
selection), sets learned attributes ending in ``_`` and returns ``self``. :meth:`predict_proba` and
:meth:`predict_iou` return ``(N,)`` float32. The region score that ranks proposals is
:func:`region_score` of the two.

A saved head is a directory: ``config.json`` (head name, hyperparameters, feature dimension, the
encoder and store it was trained on, schema version, package versions, metrics, the weights files'
sha256) beside weights files that are never pickles (safetensors, LightGBM text, npz); the folder is
written and read by :mod:`cs_features.model_dir`.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cs_features.errors import ConfigError, NotFittedError, WeightsError
from cs_features.model_dir import CONFIG_FILE, file_sha256, read_model_config, write_config
from cs_features.registry import Registry
from cs_features.runtime import package_versions

log = logging.getLogger(__name__)

HEAD_SCHEMA_VERSION = 1
REQUIRED_KEYS = ("head", "params", "n_features")
WRITTEN_BY = "csf train head --out DIR"
SCORE_MODES = ("product", "exponent")

HEADS: Registry[type["RegionHead"]] = Registry("head")


def region_score(p: np.ndarray, iou: np.ndarray, mode: str = "product", alpha: float = 0.5) -> np.ndarray:
    """Rank score of proposals from string probability and expected IoU.

    ``product`` (default, as published): ``p * clamp(iou, 0, 1)``. ``exponent``: ``p**alpha *
    clamp(iou, 0, 1)**(1 - alpha)``, which lets ``alpha`` trade "is it a string" against "is the box
    tight".

    Args:
        p: ``(N,)`` probabilities; iou: ``(N,)`` expected IoU.

    Returns:
        ``(N,)`` float32 scores in [0, 1].
    """
    p = np.clip(np.asarray(p, np.float64), 0.0, 1.0)
    iou = np.clip(np.nan_to_num(np.asarray(iou, np.float64), nan=0.0), 0.0, 1.0)
    if mode == "product":
        return (p * iou).astype(np.float32)
    if mode == "exponent":
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1] for score_mode 'exponent', got {alpha!r}")
        return (p ** alpha * iou ** (1.0 - alpha)).astype(np.float32)
    raise ConfigError(f"unknown score_mode {mode!r}; accepted: {', '.join(SCORE_MODES)}")


def balanced_undersample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of every minority-class row plus an equal-sized random draw of the majority class.

    Args:
        labels: ``(N,)`` 0/1 labels (both classes present).
        rng: the caller's generator, so each epoch draws a fresh subset and a seed fixes them all.

    Returns:
        ``(2 * min(n_pos, n_neg),)`` int64 indices in random order.
    """
    labels = np.asarray(labels)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n = min(len(positives), len(negatives))
    if n == 0:
        raise ValueError(f"balanced sampling needs both classes, got {len(positives)} positive(s) and "
                         f"{len(negatives)} negative(s)")
    chosen = np.concatenate([rng.choice(positives, n, replace=False), rng.choice(negatives, n, replace=False)])
    return rng.permutation(chosen).astype(np.int64)


def validate_features(X: Any, name: str = "X", dim: int | None = None) -> np.ndarray:
    """Return ``X`` as contiguous ``(N, D)`` float32; raise for another shape, D or non-finite values."""
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (N, D) float32, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"{name} has vectors of dimension {X.shape[1]}, but this head was fitted on dimension "
                         f"{dim}: use vectors of the encoder it was trained on")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(X)).sum())} non-finite value(s); expected finite floats")
    return X


def validate_targets(X: np.ndarray, y: Any, iou: Any, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check one split's ``(N, D)`` features, ``(N,)`` 0/1 labels and ``(N,)`` IoU targets.

    NaN IoU targets (unknown) are allowed; they are left out of the IoU loss.

    Raises:
        ValueError: lengths differ, labels other than 0/1, IoU outside [0, 1], or a class missing.
    """
    X = validate_features(X, f"X_{split}")
    y = np.asarray(y).reshape(-1)
    iou = np.asarray(iou, np.float32).reshape(-1)
    if not (len(X) == len(y) == len(iou)):
        raise ValueError(f"{split} split: X has {len(X)} rows, y {len(y)} and iou {len(iou)}; they must match")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{split} labels must be 0 or 1 (weak label -1 rows are dropped before fitting), "
                         f"got values {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}")
    known = iou[np.isfinite(iou)]
    if known.size and (known.min() < -1e-6 or known.max() > 1 + 1e-6):
        raise ValueError(f"{split} iou targets must be in [0, 1] (or NaN), got range [{known.min()}, {known.max()}]")
    n_pos = int((y == 1).sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"{split} split has {n_pos} positive and {len(y) - n_pos} negative proposal(s); a head "
                         "needs both (add frames with strings and frames without, or check the weak-label IoU "
                         "thresholds)")
    return X, y.astype(np.int64), iou


class RegionHead:
    """Base class of region heads (see the module docstring for the contract).

    Subclasses set ``name``, list their hyperparameters as ``__init__`` keyword arguments stored
    unchanged on ``self``, and implement ``_fit``, ``_predict`` (-> ``(p, iou)``), ``_save_weights`` and
    ``_load_weights``.
    """

    name: ClassVar[str] = ""

    def __init__(self, seed: int = 0, score_mode: str = "product", alpha: float = 0.5) -> None:
        self.seed = seed
        self.score_mode = score_mode
        self.alpha = alpha

    # ---- hyperparameters -----------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ---- fitting and prediction ----------------------------------------------------------------
    def fit(self, X_train, y_train, iou_train, X_val, y_val, iou_val) -> "RegionHead":
        """Fit on the training split, selecting / early-stopping on the validation split.

        Args:
            X_train, X_val: ``(N, D)`` float32 embeddings; y_*: ``(N,)`` 0/1 weak labels; iou_*: ``(N,)``
                max IoU of each proposal with a ground-truth string (NaN = unknown).

        Returns:
            self, with ``n_features_`` and the head's learned attributes set.
        """
        if self.score_mode not in SCORE_MODES:
            raise ConfigError(f"unknown score_mode {self.score_mode!r}; accepted: {', '.join(SCORE_MODES)}")
        train = validate_targets(X_train, y_train, iou_train, "train")
        val = validate_targets(X_val, y_val, iou_val, "validation")
        if train[0].shape[1] != val[0].shape[1]:
            raise ValueError(f"train vectors have dimension {train[0].shape[1]} but validation vectors "
                             f"{val[0].shape[1]}; both must come from the same encoder")
        self._fit(*train, *val)
        self.n_features_ = int(train[0].shape[1])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(...) or load(dir) first")

    def predict(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(N, D)`` embeddings -> ``(p, iou)``, each ``(N,)`` float32."""
        self._check_fitted()
        X = validate_features(X, "X", self.n_features_)
        if len(X) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        p, iou = self._predict(X)
        return np.asarray(p, np.float32).reshape(-1), np.asarray(iou, np.float32).reshape(-1)

    def predict_proba(self, X) -> np.ndarray:
        """``(N, D)`` -> ``(N,)`` float32 probability that each proposal holds a string."""
        return self.predict(X)[0]

    def predict_iou(self, X) -> np.ndarray:
        """``(N, D)`` -> ``(N,)`` float32 expected IoU of each proposal's box with its string."""
        return self.predict(X)[1]

    def score(self, X) -> np.ndarray:
        """``(N, D)`` -> ``(N,)`` float32 region score (:func:`region_score` with this head's mode)."""
        p, iou = self.predict(X)
        return region_score(p, iou, self.score_mode, self.alpha)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path, provenance: dict | None = None, metrics: dict | None = None,
             frame_decision: dict | None = None) -> Path:
        """Write the weights, then ``config.json``, into ``directory`` (created if missing).

        Args:
            provenance: what the head was trained on (encoder info, store uri and tag, ...).
            metrics: evaluation figures to keep beside the weights.
            frame_decision: the p at which ``csf detect`` calls a frame CS, chosen on val
                (:mod:`cs_features.heads.decision`); read back as ``frame_decision_``.
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = self._save_weights(directory)
        config = {"head": self.name, "schema_version": HEAD_SCHEMA_VERSION, "params": self.get_params(),
                  "n_features": self.n_features_, "provenance": provenance or getattr(self, "provenance_", {}),
                  "packages": package_versions(), "metrics": metrics or getattr(self, "metrics_", {}),
                  "weights": weights, "weights_sha256": {name: file_sha256(directory / name) for name in weights},
                  "frame_decision": frame_decision or getattr(self, "frame_decision_", None)}
        write_config(directory, config)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "RegionHead":
        """Rebuild a saved head (of this class, or of the class named in its config via the base class).

        Raises:
            WeightsError: not a head directory, or weights missing, unreadable or changed since saving.
            ConfigError: the directory holds another head than ``cls``.
        """
        config = read_config(directory)
        head_cls = HEADS.get(config["head"]) if cls is RegionHead else cls
        if head_cls.name != config["head"]:
            raise ConfigError(f"{directory} holds a {config['head']!r} head, not {head_cls.name!r}")
        params = {k: v for k, v in config["params"].items() if k in head_cls.param_names()}
        head = head_cls(**params)
        head.n_features_ = int(config["n_features"])
        head.provenance_ = config.get("provenance", {})
        head.metrics_ = config.get("metrics", {})
        head.frame_decision_ = config.get("frame_decision")
        check_weights_unchanged(Path(directory), config)
        try:
            head._load_weights(Path(directory), config)
        except (OSError, KeyError, ValueError) as exc:
            raise WeightsError(f"cannot load the {config['head']} weights in {str(directory)!r}: {exc}") from exc
        return head

    # ---- subclass hooks ------------------------------------------------------------------------
    def _fit(self, X, y, iou, X_val, y_val, iou_val) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _save_weights(self, directory: Path) -> list[str]:
        """Write the weights; return the file names written."""
        raise NotImplementedError

    def _load_weights(self, directory: Path, config: dict) -> None:
        raise NotImplementedError


def read_config(directory: str | Path) -> dict:
    """The ``config.json`` of a saved head directory.

    Raises:
        WeightsError: no such directory, no or a corrupt config.json, or one of a newer schema.
    """
    return read_model_config(directory, what="region head", command=WRITTEN_BY, required=REQUIRED_KEYS,
                             schema_version=HEAD_SCHEMA_VERSION)


def check_weights_unchanged(directory: Path, config: dict) -> None:
    """Refuse weights files whose sha256 differs from the one ``config.json`` records (heads saved
    before the hashes were recorded have none and are not checked)."""
    for name, expected in (config.get("weights_sha256") or {}).items():
        path = directory / name
        if path.is_file() and file_sha256(path) != expected:
            raise WeightsError(f"weights {str(path)!r} are not the ones {CONFIG_FILE} was written for (sha256 "
                               "differs): the directory was modified")
