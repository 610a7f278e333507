"""The model folder every trained model is saved as: ``config.json`` beside weights files.

The autoencoder (``csf train ae``) and every region head (``csf train head``) write a directory holding
``config.json`` (hyperparameters, schema version, package versions, provenance, metrics) and weights
that are never pickles. This module is the one place that writes and reads such a folder:

- :func:`write_json` / :func:`write_config`: JSON written to a temporary file and renamed over the
  target (``os.replace``), so a crash never leaves a half-written ``config.json``;
- :func:`atomic_path`: the same for weights files, whatever library writes them;
- :func:`file_sha256`: the sha256 of a weights file;
- :func:`read_model_config`: the parsed ``config.json``; every problem with the folder (missing,
  not JSON, another kind of model, a newer schema) raises :class:`~cs_features.errors.WeightsError`
  naming the path and the command that writes such a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cs_features.errors import WeightsError

CONFIG_FILE = "config.json"


def json_default(value: Any) -> Any:
    """JSON form of values ``json`` does not know: numpy scalars and arrays, anything else as ``str``."""
    import numpy as np

    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it is renamed over ``path``.

    The temporary name keeps the suffix (``weights.tmp.safetensors``), so writers that append a
    missing suffix (``numpy.savez``) write exactly where they are told. On an exception the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=json_default) + "\n")
    return path


def write_config(directory: str | Path, config: dict) -> Path:
    """Write ``directory/config.json`` atomically (the directory is created if missing); returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return write_json(directory / CONFIG_FILE, config)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_config(directory: str | Path, *, what: str, command: str, required: tuple[str, ...] = (),
                      kind: str | None = None, schema_version: int | None = None) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder.

    Args:
        directory: the model folder.
        what: the kind of model in words (``"anomaly-filter"``, ``"region head"``), for messages.
        command: the command that writes such a folder (``"csf train ae"``), for messages.
        required: keys the config must hold.
        kind: the value the config's ``kind`` key must have (None: not checked).
        schema_version: the newest schema version this code reads (None: not checked).

    Raises:
        WeightsError: the folder or its config.json is missing, not a JSON object, lacks a required
            key, is of another kind or of a newer schema; the message names the path.
    """
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise WeightsError(f"model directory {str(directory)!r} does not exist: train one with `{command}`")
    if not path.is_file():
        raise WeightsError(f"model directory {str(directory)!r} has no {CONFIG_FILE} ({str(path)!r} is missing): "
                           f"expected {_with_article(what)} folder written by `{command}`")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{str(path)!r} is corrupt (not valid JSON: {exc}); expected a file written by "
                           f"`{command}`") from exc
    if not isinstance(config, dict):
        raise WeightsError(f"{str(path)!r} is corrupt: expected a JSON object written by `{command}`")
    missing = [key for key in required if key not in config]
    if missing or (kind is not None and config.get("kind") != kind):
        found = f"kind {config.get('kind')!r}, " if kind is not None else ""
        raise WeightsError(f"{str(path)!r} is not {_with_article(what)} config ({found}missing keys {missing}): "
                           f"expected a file written by `{command}`")
    found_version = config.get("schema_version", 0)
    if schema_version is not None and isinstance(found_version, int) and found_version > schema_version:
        raise WeightsError(f"{str(path)!r} has {what} schema version {found_version}; this cs_features reads up "
                           f"to {schema_version}: upgrade cs_features or retrain with `{command}`")
    return config


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
