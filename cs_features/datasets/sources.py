"""What a dataset scan finds: frame files with split, label, embryo and label file, and files it skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FrameSource:
    """One frame file found in a dataset folder (nothing decoded yet)."""

    path: Path
    stem: str
    split: str
    label: str
    embryo_id: str
    frame_index: int
    label_path: Path | None


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, with the stage that rejected it and why."""

    path: str
    stage: str
    reason: str


@dataclass
class DatasetScan:
    """What :func:`~cs_features.datasets.scan_dataset` found: frames to ingest, files skipped, warnings,
    and ``info`` (layout, where splits came from, counts per split and label), which ingest records in
    the store's ``meta`` under ``dataset``."""

    root: Path
    frames: list[FrameSource]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
