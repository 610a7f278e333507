"""The frame screen: one calibrated CS probability per frame from the chain's three pieces of evidence.

:class:`FrameScreen` standardises its features and fits a logistic regression on the **validation split
only**. The features (:data:`SCREEN_FEATURES`) are the evidence columns (``ae_score``, ``string_peak``,
``best_region``) and each one's **rise** over its embryo (``ae_score_rise``, ...): the frame's value minus
the lowest value among the frames of its embryo in the same evidence table (:func:`embryo_rise`). A
string appears, persists for some frames and snaps; a fibre of the medium, a membrane ridge, the embryo's
own texture and the optics of its well stay, and raise every frame of the embryo alike. The rise keeps
what is new in a frame against the embryo's quietest one. On the transfer protocol (24 embryos, chain
frame AUROC with the rise against without, each screen fitted on the training world's val split):
clean -> hard 0.63 -> 0.73, clean -> hard-crop 0.65 -> 0.74, hard -> clean 0.91 -> 0.88, in-world
hard 0.67 -> 0.83 and clean 0.94 -> 0.93. A frame without a time-lapse (no embryo id, or its embryo's only
frame in the table) has no rise; it gets the val mean, so only its raw evidence counts.

The stages were trained on the train split, so their scores there are optimistic, and the test split
stays untouched for reporting. A logistic model on six numbers is already calibrated in the sense that
matters here (its probabilities are fitted to the val labels by maximum likelihood); an isotonic step on
the same few val frames would only overfit them.

A screening threshold is then chosen on the same val frames for a target sensitivity: halfway between
the highest probability that still keeps at least ``target_sensitivity`` of the val CS frames and the next
lower val probability (:func:`cs_features.metrics.sensitivity_threshold` with ``midgap``: the same val
frames kept, with room for unseen CS frames that score a little lower). Frames below it are the ones a
reader could skip.

Saved as a model folder: ``config.json`` alone, with the standardisation, coefficients and intercept as
JSON numbers in the order of ``features``, the threshold and the ids of the three source models. Nothing
is pickled; a loaded screen computes exactly the probabilities of the saved one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cs_features.errors import ConfigError, DatasetError, NotFittedError, WeightsError
from cs_features.metrics import sensitivity_threshold
from cs_features.model_dir import read_model_config, write_config
from cs_features.screening.evidence import EVIDENCE_COLUMNS

KIND = "cs_features.screening.FrameScreen"
SCHEMA_VERSION = 1
WRITTEN_BY = "csf train screen"
FIT_SPLIT = "val"
POSITIVE_LABEL = "abnormal"


RISE = "_rise"
SCREEN_FEATURES = EVIDENCE_COLUMNS + tuple(name + RISE for name in EVIDENCE_COLUMNS)


def screen_features(features: Any) -> tuple[str, ...]:
    """The screen features named by ``features`` (a comma-separated string, or names), checked.

    ``"all"`` (or None) is :data:`SCREEN_FEATURES`.

    Raises:
        ConfigError: an unknown name, a name given twice, or none.
    """
    if features is None or (isinstance(features, str) and features.strip().lower() == "all"):
        return SCREEN_FEATURES
    names = [n.strip() for n in features.split(",")] if isinstance(features, str) else [str(n) for n in features]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in SCREEN_FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        why = (f"unknown {unknown}" if unknown else "none given" if not names else
               f"{sorted({n for n in names if names.count(n) > 1})} given twice")
        raise ConfigError(f"screen features: {why}; choose among {', '.join(SCREEN_FEATURES)} (or 'all')")
    return tuple(names)


def embryo_rise(values: Any, embryo_ids: Any) -> np.ndarray:
    """``(N,)`` float64: each value minus the lowest value among the rows of its embryo.

    NaN for a row without an embryo id (``""`` or None) and for the only row of its embryo: a frame with
    no other frame to compare with has no rise.
    """
    values = np.asarray(values, np.float64)
    embryos = np.asarray(["" if e is None else str(e) for e in embryo_ids], dtype=object)
    out = np.full(len(values), np.nan)
    if len(values) == 0:
        return out
    names, inverse, counts = np.unique(embryos, return_inverse=True, return_counts=True)
    lowest = np.full(len(names), np.inf)
    np.minimum.at(lowest, inverse, values)
    has_rise = (counts[inverse] > 1) & (embryos != "")
    out[has_rise] = values[has_rise] - lowest[inverse][has_rise]
    return out


def evidence_matrix(evidence, features: tuple[str, ...] = EVIDENCE_COLUMNS) -> np.ndarray:
    """``(N, F)`` float64 matrix of the ``features`` of an evidence table (pyarrow Table or mapping).

    A feature is an evidence column, or a column's name + ``"_rise"``: its :func:`embryo_rise` among the
    table's rows, grouped by ``embryo_id`` (so pass every frame of an embryo together). Rise features are
    NaN where a frame has no rise; evidence columns must be finite.

    Raises:
        TypeError: not a table or mapping. ValueError: a column missing, or NaN/inf evidence values.
    """
    if not hasattr(evidence, "column_names") and not isinstance(evidence, Mapping):
        raise TypeError(f"evidence must be a pyarrow Table or a mapping of columns, got {type(evidence).__name__}")
    names = evidence.column_names if hasattr(evidence, "column_names") else list(evidence)
    bases = [f[:-len(RISE)] if f.endswith(RISE) and f not in names else f for f in features]
    rises = any(f != b for f, b in zip(features, bases))
    needed = list(dict.fromkeys(bases + ["embryo_id"] * rises))
    missing = [f for f in needed if f not in names]
    if missing:
        raise ValueError(f"evidence lacks columns {missing}; it has {list(names)} (build it with "
                         "cs_features.screening.collect_evidence)")
    raw = {b: np.asarray(_column(evidence, b), np.float64) for b in dict.fromkeys(bases)}
    bad = {b: int((~np.isfinite(v)).sum()) for b, v in raw.items() if not np.isfinite(v).all()}
    if bad:
        raise ValueError(f"evidence holds {sum(bad.values())} NaN/inf values in {list(bad)}")
    embryos = _column(evidence, "embryo_id") if "embryo_id" in needed else None
    columns = [raw[b] if f == b else embryo_rise(raw[b], embryos) for f, b in zip(features, bases)]
    return np.column_stack(columns).reshape(-1, len(features))


def _column(evidence, name: str) -> list:
    column = evidence[name]
    return column.to_pylist() if hasattr(column, "to_pylist") else list(column)


def evidence_labels(evidence) -> np.ndarray:
    """``(N,)`` int8: 1 where the evidence row's ``label`` is ``abnormal`` (a CS frame)."""
    return (np.asarray(_column(evidence, "label"), dtype=str) == POSITIVE_LABEL).astype(np.int8)


def split_mask(evidence, split: str) -> np.ndarray:
    """``(N,)`` bool: rows of the evidence table in ``split``."""
    return np.asarray(_column(evidence, "split"), dtype=str) == split


def keep_report(y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """What screening at ``threshold`` does: frames kept/skipped, CS frames kept/missed, CS-free skipped."""
    y, s = np.asarray(y_true).astype(bool), np.asarray(scores, np.float64)
    kept = s >= threshold
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return {"threshold": float(threshold), "frames": int(y.size), "kept": int(kept.sum()),
            "skipped": int((~kept).sum()), "skipped_share": float((~kept).mean()) if y.size else 0.0,
            "cs_frames": n_pos, "cs_kept": int((kept & y).sum()), "cs_missed": int((~kept & y).sum()),
            "sensitivity": float((kept & y).sum() / n_pos) if n_pos else None,
            "cs_free_skipped_share": float((~kept & ~y).sum() / n_neg) if n_neg else None}


class FrameScreen:
    """Standardise + logistic regression on the evidence and its rise over the embryo, fitted on the val split only.

    Args:
        C: inverse L2 strength of the logistic regression.
        target_sensitivity: share of val CS frames the screening threshold keeps (default 0.97).
        features: evidence columns and rises (:func:`evidence_matrix`) used, in order; :data:`SCREEN_FEATURES`
            by default.
        seed: ``random_state`` of the solver (lbfgs is deterministic; kept for the contract).
    """

    def __init__(self, C: float = 1.0, target_sensitivity: float = 0.97,
                 features: tuple[str, ...] = SCREEN_FEATURES, seed: int = 0) -> None:
        self.C = C
        self.target_sensitivity = target_sensitivity
        self.features = features
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"C": self.C, "target_sensitivity": self.target_sensitivity, "features": list(self.features),
                "seed": self.seed}

    def __repr__(self) -> str:
        return f"FrameScreen({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def fit(self, evidence) -> FrameScreen:
        """Fit on the evidence rows of the val split (other rows are ignored); returns self.

        Raises:
            ConfigError: bad hyperparameters (features not among :data:`SCREEN_FEATURES` included).
            DatasetError: val lacks CS or CS-free frames.
        """
        from sklearn.linear_model import LogisticRegression

        if not (isinstance(self.C, (int, float)) and self.C > 0):
            raise ConfigError(f"C must be a positive number, got {self.C!r}")
        if not 0.0 < self.target_sensitivity <= 1.0:
            raise ConfigError(f"target_sensitivity must be in (0, 1], got {self.target_sensitivity!r}")
        screen_features(self.features)
        X, y = evidence_matrix(evidence, tuple(self.features)), evidence_labels(evidence)
        val = split_mask(evidence, FIT_SPLIT)
        X, y = X[val], y[val]
        defined = np.isfinite(X)
        sums, counts = np.where(defined, X, 0.0).sum(axis=0), defined.sum(axis=0)
        self.fill_ = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)  # a frame without a rise: val's mean
        X = self._filled(X)
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            raise DatasetError(f"the frame screen is fitted on the {FIT_SPLIT} split, which has {n_pos} CS and "
                               f"{len(y) - n_pos} CS-free frame(s); it needs both (put embryos with and without "
                               "strings in val)")
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        model = LogisticRegression(C=float(self.C), random_state=self.seed, max_iter=1000)
        model.fit((X - self.mean_) / self.scale_, y)
        self.coef_ = model.coef_.ravel().astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        self.threshold_ = sensitivity_threshold(y, self._probability(X), self.target_sensitivity, midgap=True)
        self.val_report_ = keep_report(y, self._probability(X), self.threshold_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this FrameScreen is not fitted yet: call fit(evidence) or FrameScreen.load(dir)")

    def _filled(self, X: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(X), X, self.fill_)

    def _probability(self, X: np.ndarray) -> np.ndarray:
        z = ((self._filled(X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, evidence) -> np.ndarray:
        """``(N,)`` float64 CS probability of every row of an evidence table."""
        self._check_fitted()
        return self._probability(evidence_matrix(evidence, tuple(self.features)))

    def predict(self, evidence) -> np.ndarray:
        """``(N,)`` bool: the frame is kept by the screen (probability >= the val-chosen threshold)."""
        return self.predict_proba(evidence) >= self.threshold_

    def learned(self) -> dict[str, Any]:
        """The fitted numbers, as JSON-ready lists and floats (what config.json holds)."""
        self._check_fitted()
        return {"features": list(self.features), "fill": self.fill_.tolist(), "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(), "intercept": self.intercept_, "threshold": self.threshold_,
                "val_report": self.val_report_}

    def save(self, directory: str | Path, sources: dict | None = None, metrics: dict | None = None) -> Path:
        """Write ``directory/config.json`` (hyperparameters, learned numbers, source model ids, metrics)."""
        from cs_features.runtime import package_versions

        config = {"kind": KIND, "schema_version": SCHEMA_VERSION, "fit_split": FIT_SPLIT,
                  "hyperparameters": self.get_params(), **self.learned(), "sources": sources or {},
                  "metrics": metrics or {}, "packages": package_versions()}
        return write_config(directory, config).parent

    @classmethod
    def load(cls, directory: str | Path) -> FrameScreen:
        """Rebuild a saved screen. Raises WeightsError: not a frame-screen folder."""
        config = read_model_config(directory, what="frame-screen", command=WRITTEN_BY, kind=KIND,
                                   schema_version=SCHEMA_VERSION,
                                   required=("hyperparameters", "mean", "scale", "coef", "intercept", "threshold"))
        params = dict(config["hyperparameters"])
        params["features"] = tuple(params.get("features", EVIDENCE_COLUMNS))
        sizes = {key: len(config[key]) for key in ("mean", "scale", "coef", "fill") if key in config}
        if set(sizes.values()) != {len(params["features"])}:
            raise WeightsError(f"{str(Path(directory) / 'config.json')!r} is corrupt: {sizes} numbers for features "
                               f"{list(params['features'])}; retrain with `{WRITTEN_BY}`")
        screen = cls(**params)
        screen.mean_ = np.asarray(config["mean"], np.float64)
        screen.fill_ = np.asarray(config.get("fill", config["mean"]), np.float64)  # screens saved before the rise
        screen.scale_ = np.asarray(config["scale"], np.float64)
        screen.coef_ = np.asarray(config["coef"], np.float64)
        screen.intercept_ = float(config["intercept"])
        screen.threshold_ = float(config["threshold"])
        screen.val_report_ = config.get("val_report", {})
        screen.sources_ = config.get("sources", {})
        return screen
