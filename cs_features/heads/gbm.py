"""``lightgbm``: gradient-boosted trees, a binary classifier (p) and a regressor (IoU) on the same features.

Both boosters stop early on the validation split (average precision for the classifier, L2 for the
regressor). Training is deterministic for a seed (``deterministic=True``, a fixed ``num_threads``,
``force_row_wise``). Weights are LightGBM's text format (``booster.save_model``), never a pickle.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cs_features.boosting import lightgbm_params
from cs_features.heads.base import HEADS, RegionHead
from cs_features.model_dir import atomic_path

log = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.txt"
REGRESSOR_FILE = "iou_regressor.txt"


@HEADS.register("lightgbm")
class LightGBMHead(RegionHead):
    """LightGBM classifier + IoU regressor.

    Args:
        n_estimators: boosting rounds at most (early stopping usually ends sooner).
        learning_rate, num_leaves, min_child_samples, feature_fraction, bagging_fraction, lambda_l2:
            the usual LightGBM settings.
        early_stopping_rounds: rounds without a validation improvement before stopping.
        balanced: weight classes inversely to their frequency (``is_unbalance``).
        num_threads: fixed thread count (part of what makes a run reproducible). The default is 1:
            LightGBM's OpenMP threads spin while waiting, and on cores shared with other processes two
            threads were measured 20-200x slower than one.
    """

    name = "lightgbm"

    def __init__(self, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, feature_fraction: float = 0.8, bagging_fraction: float = 0.8,
                 lambda_l2: float = 1.0, early_stopping_rounds: int = 40, balanced: bool = False,
                 num_threads: int = 1, seed: int = 0, score_mode: str = "product", alpha: float = 0.5) -> None:
        super().__init__(seed=seed, score_mode=score_mode, alpha=alpha)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.early_stopping_rounds = early_stopping_rounds
        self.balanced = balanced
        self.num_threads = num_threads

    def _params(self, objective: str, metric: str) -> dict:
        return lightgbm_params(self, objective, metric, is_unbalance=bool(self.balanced and objective == "binary"))

    def _train(self, params: dict, X, target, X_val, target_val):
        import lightgbm as lgb

        train = lgb.Dataset(X, target, free_raw_data=True)
        valid = lgb.Dataset(X_val, target_val, reference=train)
        return lgb.train(params, train, num_boost_round=self.n_estimators, valid_sets=[valid],
                         callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])

    def _fit(self, X, y, iou, X_val, y_val, iou_val) -> None:
        self.classifier_ = self._train(self._params("binary", "average_precision"), X, y, X_val, y_val)
        known, known_val = np.isfinite(iou), np.isfinite(iou_val)
        self.regressor_ = self._train(self._params("regression", "l2"), X[known], iou[known],
                                      X_val[known_val], iou_val[known_val])
        self.best_iterations_ = [int(self.classifier_.best_iteration), int(self.regressor_.best_iteration)]
        log.info("lightgbm stopped at %s rounds (classifier, regressor)", self.best_iterations_)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.classifier_.predict(X, num_iteration=self.classifier_.best_iteration or None,
                                     num_threads=self.num_threads)
        iou = self.regressor_.predict(X, num_iteration=self.regressor_.best_iteration or None,
                                      num_threads=self.num_threads)
        return p, iou

    def _save_weights(self, directory: Path) -> list[str]:
        # save_model with num_iteration=best keeps only the trees early stopping chose
        for name, booster in ((CLASSIFIER_FILE, self.classifier_), (REGRESSOR_FILE, self.regressor_)):
            with atomic_path(directory / name) as tmp:
                booster.save_model(str(tmp), num_iteration=booster.best_iteration)
        return [CLASSIFIER_FILE, REGRESSOR_FILE]

    def _load_weights(self, directory: Path, config: dict) -> None:
        import lightgbm as lgb

        for file in (CLASSIFIER_FILE, REGRESSOR_FILE):
            if not (directory / file).is_file():
                raise OSError(f"missing {file}")
        self.classifier_ = lgb.Booster(model_file=str(directory / CLASSIFIER_FILE))
        self.regressor_ = lgb.Booster(model_file=str(directory / REGRESSOR_FILE))
        if self.classifier_.num_feature() != self.n_features_:
            raise ValueError(f"classifier has {self.classifier_.num_feature()} features, "
                             f"config says {self.n_features_}")
