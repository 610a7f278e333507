"""Saving and loading an :class:`~cs_features.autoencoder.filter.AnomalyFilter` model directory.

Layout::

    MODEL_DIR/weights.safetensors   the module's state dict (safetensors: no pickle, no code)
    MODEL_DIR/config.json           schema version, hyperparameters, learned threshold, best epoch,
                                    history, weights sha256, package versions, plus the caller's extra
                                    keys (model_id, store URI and tag, store settings, metrics)
    MODEL_DIR/metrics.json          the ``metrics`` extra key, when given
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cs_features.errors import WeightsError
from cs_features.model_dir import CONFIG_FILE, atomic_path, read_model_config, write_config, write_json
from cs_features.runtime import package_versions, resolve_device

WEIGHTS_FILE, METRICS_FILE = "weights.safetensors", "metrics.json"
SCHEMA_VERSION = 1
KIND = "cs_features.autoencoder.AnomalyFilter"
REQUIRED_KEYS = ("hyperparameters", "threshold", "weights_sha256")
WRITTEN_BY = "csf train ae"


def save_filter(anomaly_filter, model_dir: Path, extra: dict[str, Any]) -> Path:
    """Write weights, config.json (and metrics.json when ``extra`` has ``metrics``); returns ``model_dir``."""
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in anomaly_filter.module_.state_dict().items()}
    with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"model": anomaly_filter.model})
    config = {"schema_version": SCHEMA_VERSION, "kind": KIND, "hyperparameters": anomaly_filter.get_params(),
              **anomaly_filter.learned(), "packages": package_versions(), **extra}
    if "metrics" in extra:
        write_json(model_dir / METRICS_FILE, extra["metrics"])
    write_config(model_dir, config)
    return model_dir


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of an anomaly-filter model directory.

    Raises:
        WeightsError: the directory or file is missing, not JSON, or not an anomaly-filter config.
    """
    return read_model_config(model_dir, what="anomaly-filter", command=WRITTEN_BY, required=REQUIRED_KEYS,
                             kind=KIND, schema_version=SCHEMA_VERSION)


def _read_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} is missing: expected {WEIGHTS_FILE} beside {CONFIG_FILE}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated / foreign files
        raise WeightsError(f"weights file {str(path)!r} is corrupt or not safetensors: {exc}") from exc


def load_filter(cls, model_dir: Path, device: str):
    """Rebuild a fitted filter from ``model_dir`` (see :meth:`AnomalyFilter.load`)."""
    from cs_features.autoencoder.model import AE_MODELS
    from cs_features.autoencoder.training import memory_format

    config = read_config(model_dir)
    params = dict(config["hyperparameters"], device=device)
    try:
        anomaly_filter = cls(**params)
    except TypeError as exc:
        raise WeightsError(f"{str(model_dir / CONFIG_FILE)!r} has unknown hyperparameters: {exc}") from exc
    anomaly_filter._validate()
    state = _read_weights(model_dir / WEIGHTS_FILE)
    module = AE_MODELS.get(anomaly_filter.model)()
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights {str(model_dir / WEIGHTS_FILE)!r} do not fit model "
                           f"{anomaly_filter.model!r}: {str(exc).splitlines()[0]}") from exc
    anomaly_filter.device_ = resolve_device(device)
    anomaly_filter.module_ = module.to(anomaly_filter.device_, memory_format=memory_format(anomaly_filter.device_))
    anomaly_filter.module_.eval()
    _restore_learned(anomaly_filter, config)
    if anomaly_filter._weights_digest() != config["weights_sha256"]:
        raise WeightsError(f"weights {str(model_dir / WEIGHTS_FILE)!r} are not the ones {CONFIG_FILE} was written "
                           "for (sha256 differs): the directory was modified")
    return anomaly_filter


def _restore_learned(anomaly_filter, config: dict) -> None:
    anomaly_filter.threshold_ = float(config["threshold"])
    anomaly_filter.threshold_method_ = config.get("threshold_method")
    anomaly_filter.best_epoch_ = config.get("best_epoch")
    anomaly_filter.val_auroc_ = config.get("val_auroc")
    anomaly_filter.val_undefined_reason_ = config.get("val_auroc_undefined_reason")
    anomaly_filter.history_ = config.get("history", [])
    anomaly_filter.weights_sha256_ = config["weights_sha256"]
