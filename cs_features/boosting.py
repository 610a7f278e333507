"""LightGBM training parameters shared by the estimators built on it (the ``lightgbm`` region head and the
string map): the usual tree settings read from the estimator, and what makes a fit reproducible for a seed
(``deterministic=True``, a fixed ``num_threads``, ``force_row_wise``) and quiet (``verbosity=-1``)."""

from __future__ import annotations

from typing import Any


def lightgbm_params(estimator: Any, objective: str, metric: str, **extra: Any) -> dict[str, Any]:
    """``lgb.train`` parameters from an estimator's ``learning_rate``, ``num_leaves``, ``min_child_samples``,
    ``feature_fraction``, ``bagging_fraction``, ``lambda_l2``, ``num_threads`` and ``seed``; ``extra`` added.

    Bagging runs every round when ``bagging_fraction < 1`` and never otherwise.
    """
    return {
        "objective": objective, "metric": metric, "learning_rate": estimator.learning_rate,
        "num_leaves": estimator.num_leaves, "min_data_in_leaf": estimator.min_child_samples,
        "feature_fraction": estimator.feature_fraction, "bagging_fraction": estimator.bagging_fraction,
        "bagging_freq": 1 if estimator.bagging_fraction < 1 else 0, "lambda_l2": estimator.lambda_l2,
        "num_threads": estimator.num_threads, "seed": estimator.seed, "deterministic": True,
        "force_row_wise": True, "verbosity": -1, **extra,
    }
