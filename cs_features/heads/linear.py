"""``logreg``: standardised features -> balanced logistic regression (p) and ridge regression (IoU).

The cheapest head and the baseline the others must beat. Weights are saved as an ``.npz`` of plain
float arrays (read back with ``allow_pickle=False``), never a pickled estimator.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from cs_features.heads.base import HEADS, RegionHead
from cs_features.model_dir import atomic_path

log = logging.getLogger(__name__)

WEIGHTS_FILE = "logreg.npz"


@HEADS.register("logreg")
class LogRegHead(RegionHead):
    """Logistic regression (``class_weight="balanced"``) + ridge IoU regressor on standardised features.

    Args:
        C: inverse L2 strength of the logistic regression, chosen on validation AP from ``C`` times
            ``c_grid`` (the published setting is ``c_grid=(1.0,)``: no search).
        ridge_alpha: L2 strength of the IoU ridge regression.
        max_iter: solver iterations.
    """

    name = "logreg"

    def __init__(self, C: float = 1.0, c_grid: tuple = (0.1, 1.0, 10.0), ridge_alpha: float = 1.0,
                 max_iter: int = 1000, seed: int = 0, score_mode: str = "product", alpha: float = 0.5) -> None:
        super().__init__(seed=seed, score_mode=score_mode, alpha=alpha)
        self.C = C
        self.c_grid = c_grid
        self.ridge_alpha = ridge_alpha
        self.max_iter = max_iter

    def _fit(self, X, y, iou, X_val, y_val, iou_val) -> None:
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.metrics import average_precision_score

        self.mean_ = X.mean(axis=0)
        self.scale_ = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0).astype(np.float32)
        Z, Z_val = self._standardise(X), self._standardise(X_val)
        best = None
        for factor in self.c_grid or (1.0,):
            model = LogisticRegression(C=self.C * float(factor), class_weight="balanced", max_iter=self.max_iter,
                                       random_state=self.seed)
            model.fit(Z, y)
            ap = average_precision_score(y_val, model.decision_function(Z_val))
            if best is None or ap > best[0]:
                best = (ap, float(factor), model)
        self.val_average_precision_, self.chosen_C_ = best[0], self.C * best[1]
        self.coef_ = best[2].coef_.reshape(-1).astype(np.float64)
        self.intercept_ = float(best[2].intercept_[0])
        known = np.isfinite(iou)
        with warnings.catch_warnings(record=True) as caught:
            # handcrafted descriptors hold near-collinear columns; the ridge penalty is what handles them
            warnings.simplefilter("always")
            ridge = Ridge(alpha=self.ridge_alpha).fit(Z[known], iou[known])
        for warning in caught:
            log.info("IoU ridge regression: %s", warning.message)
        self.iou_coef_ = ridge.coef_.reshape(-1).astype(np.float64)
        self.iou_intercept_ = float(ridge.intercept_)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = self._standardise(X).astype(np.float64)
        logit = Z @ self.coef_ + self.intercept_
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
        return p, Z @ self.iou_coef_ + self.iou_intercept_

    def _save_weights(self, directory: Path) -> list[str]:
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            np.savez(tmp, mean=self.mean_, scale=self.scale_, coef=self.coef_, intercept=np.float64(self.intercept_),
                     iou_coef=self.iou_coef_, iou_intercept=np.float64(self.iou_intercept_),
                     chosen_C=np.float64(self.chosen_C_))
        return [WEIGHTS_FILE]

    def _load_weights(self, directory: Path, config: dict) -> None:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as data:
            self.mean_, self.scale_ = data["mean"], data["scale"]
            self.coef_, self.intercept_ = data["coef"], float(data["intercept"])
            self.iou_coef_, self.iou_intercept_ = data["iou_coef"], float(data["iou_intercept"])
            self.chosen_C_ = float(data["chosen_C"])
        if self.coef_.shape != (self.n_features_,):
            raise ValueError(f"coefficients have shape {self.coef_.shape}, config says {self.n_features_} features")
