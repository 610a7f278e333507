"""Saving and loading an :class:`~cs_features.autoencoder.filter.AnomalyFilter` model directory.

Layout::

    MODEL_DIR/weights.safetensors   the module's state dict (safetensors: no pickle, no code)
    MODEL_DIR/config.json           schema version, hyperparameters, learned threshold, best epoch,
                                    history, weights sha256, package versions, plus the caller's extra
                                    keys (model_id, store URI and tag, store settings, metrics)
    MODEL_DIR/metrics.json          the ``metrics`` extra key, when given
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from cs_features.errors import WeightsError

CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE = "config.json", "weights.safetensors", "metrics.json"
SCHEMA_VERSION = 1
KIND = "cs_features.autoencoder.AnomalyFilter"


def package_versions() -> dict[str, str]:
    """Versions of the packages a saved model depends on."""
    import numpy
    import safetensors
    import torch

    import cs_features

    return {"cs_features": cs_features.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (a temporary file renamed over ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def save_filter(anomaly_filter, model_dir: Path, extra: dict[str, Any]) -> Path:
    """Write weights, config.json (and metrics.json when ``extra`` has ``metrics``); returns ``model_dir``."""
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in anomaly_filter.module_.state_dict().items()}
    tmp = model_dir / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"model": anomaly_filter.model})
    os.replace(tmp, model_dir / WEIGHTS_FILE)
    config = {"schema_version": SCHEMA_VERSION, "kind": KIND, "hyperparameters": anomaly_filter.get_params(),
              **anomaly_filter.learned(), "packages": package_versions(), **extra}
    if "metrics" in extra:
        write_json(model_dir / METRICS_FILE, extra["metrics"])
    write_json(model_dir / CONFIG_FILE, config)
    return model_dir


def read_config(model_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model directory.

    Raises:
        WeightsError: the directory or file is missing, not JSON, or not an anomaly-filter config.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not Path(model_dir).is_dir():
        raise WeightsError(f"model directory {str(model_dir)!r} does not exist: train one with `csf train ae`")
    if not path.is_file():
        raise WeightsError(f"model directory {str(model_dir)!r} has no {CONFIG_FILE} ({str(path)!r} is missing): "
                           "expected a folder written by `csf train ae`")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{str(path)!r} is corrupt (not valid JSON: {exc})") from exc
    if not isinstance(config, dict):
        raise WeightsError(f"{str(path)!r} is corrupt: expected a JSON object written by `csf train ae`")
    missing = [k for k in ("hyperparameters", "threshold", "weights_sha256") if k not in config]
    if config.get("kind") != KIND or missing:
        raise WeightsError(f"{str(path)!r} is not an anomaly-filter config (kind {config.get('kind')!r}, "
                           f"missing keys {missing}): expected a file written by `csf train ae`")
    return config


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
    from cs_features.autoencoder.training import memory_format, resolve_device

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
