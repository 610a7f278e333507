"""Region heads: score each region proposal of the store (string probability p, expected box IoU).

Registered heads (:data:`HEADS`): ``mlp`` (torch, the published head), ``lightgbm``, ``logreg`` and
``knn``. All share the estimator contract of :class:`~cs_features.heads.base.RegionHead`. Build one
with :func:`get_head`, load a saved one with :func:`load_head` (which refuses a head trained on
vectors of another encoder than the store's).

Importing this package imports torch (the ``mlp`` module); scikit-learn and LightGBM are imported
when a head is fitted or loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cs_features.errors import ConfigError
from cs_features.heads import gbm as _gbm  # noqa: F401  (registers "lightgbm")
from cs_features.heads import knn as _knn  # noqa: F401  (registers "knn")
from cs_features.heads import linear as _linear  # noqa: F401  (registers "logreg")
from cs_features.heads import mlp as _mlp  # noqa: F401  (registers "mlp")
from cs_features.heads.base import HEADS, RegionHead, balanced_undersample, read_config, region_score
from cs_features.settings import check_compatible, check_encoder_info

log = logging.getLogger(__name__)

__all__ = ["HEADS", "RegionHead", "get_head", "head_names", "load_head", "check_head_compatible",
           "region_score", "balanced_undersample"]


def head_names() -> list[str]:
    """Names of the registered heads, sorted."""
    return HEADS.names()


def get_head(name: str, **params: Any) -> RegionHead:
    """Build an unfitted head registered as ``name`` with hyperparameters ``params``.

    Raises:
        RegistryError: unknown name (the message lists the known ones).
        ConfigError: a hyperparameter the head does not take (the message lists those it takes).
    """
    cls = HEADS.get(name)
    accepted = cls.param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"head {name!r} does not take {unknown}; accepted: {accepted}")
    return cls(**params)


def load_head(directory: str | Path, store=None, encoder: str | None = None) -> RegionHead:
    """Load a saved head; with ``store`` (and ``encoder``), check it fits that store's vectors.

    Raises:
        WeightsError: not a head directory, or the weights files are missing, unreadable or changed.
        ConfigError: trained on another encoder / other vectors / other preprocessing than the
            store's (see :func:`check_head_compatible`).
    """
    config = read_config(directory)
    if store is not None:
        check_head_compatible(config, store, encoder, f"head {str(directory)!r}")
    return RegionHead.load(directory)


def check_head_compatible(config: dict, store, encoder: str | None = None, where: str = "this head") -> dict:
    """Check that a head's ``config`` was trained on vectors like the store's ``encoder`` vectors.

    The encoder name, dimension, pooling, settings and weights hash must be those the store records,
    and the store's preprocessing must be the one the head saw. Another store built the same way is
    accepted (that is how a head scores new embryos); a different store uri is logged.

    Returns:
        the store's encoder info.

    Raises:
        ConfigError: no encoder recorded or given, another encoder, or vectors of another dimension.
        SettingsMismatchError: the encoder info or the preprocessing settings differ from the store's.
        StoreError: the store's vectors table is inconsistent with its recorded encoder info.
    """
    from cs_features.heads.data import check_encoder

    provenance = config.get("provenance", {})
    trained = provenance.get("encoder_info") or {}
    name = encoder or trained.get("name")
    if not name:
        raise ConfigError(f"{where} records no encoder; pass the encoder it was trained on")
    if trained and trained.get("name") != name:
        raise ConfigError(f"{where} was trained on encoder {trained.get('name')!r} vectors "
                          f"(dim {trained.get('dim')}), not {name!r}; train a head for {name!r} or use "
                          f"--encoder {trained.get('name')}")
    have = store.encoders()
    if name not in have:
        raise ConfigError(f"{where} was trained on {name!r} vectors, but store {store.uri!r} holds vectors of: "
                          f"{', '.join(sorted(have)) or '(none)'}; train a head on this store's vectors")
    info = check_encoder(store, name)
    if int(info["dim"]) != int(config["n_features"]):
        raise ConfigError(f"{where} expects {config['n_features']}-dimensional vectors but the store's {name!r} "
                          f"vectors have dimension {info['dim']}")
    remedy = "Retrain the head on this store."
    if trained:
        check_encoder_info(trained, info, expected_name=where, actual_name=f"store {store.uri!r}", remedy=remedy)
    seen = provenance.get("preprocess")
    current = (store.get_meta("settings") or {}).get("preprocess")
    if seen is not None and current is not None:  # heads and stores of old versions record none
        check_compatible({"preprocess": seen}, {"preprocess": current}, sections=("preprocess",),
                         expected_name=where, actual_name=f"store {store.uri!r}", remedy=remedy)
    if provenance.get("store_uri") not in (None, store.uri):
        log.info("%s was trained on store %s, applied to %s", where, provenance["store_uri"], store.uri)
    return info
