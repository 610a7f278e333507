"""Deterministic ids: the same input always gets the same id, so re-running a stage writes the same rows."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def short_hash(*parts: Any) -> str:
    """16 hex digits of sha256 over the parts' text (deterministic ids)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def proposal_id(frame_id: str, box) -> str:
    """Deterministic proposal id from the frame id and the box coordinates."""
    return short_hash(frame_id, *(int(v) for v in box))


def content_id(data: bytes) -> str:
    """16 hex digits of sha256 over a file's bytes: a frame's id."""
    return hashlib.sha256(data).hexdigest()[:16]


def config_hash(settings: dict) -> str:
    """16 hex digits of sha256 over the sorted JSON of a settings dict (what the ingest log records)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
