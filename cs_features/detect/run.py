"""`csf detect`: screen image files or folders and write what was found (:func:`detect`)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from cs_features.datasets.names import compile_embryo_regex, parse_frame_name
from cs_features.detect.chain import STAGES, DetectConfig, FrameDetection, embryo_of, load_detector
from cs_features.detect.store_split import select_split
from cs_features.errors import ConfigError, InputError
from cs_features.heads.base import read_config
from cs_features.heads.decision import saved_positive_p


def collect_inputs(paths: list[str | Path], skip: list[Path] = ()) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files named directly or found (recursively, sorted) in the folders given, and the other files
    found in those folders with the reason they are not read (a dataset's ``labels.csv`` or ``data.yaml``,
    notes: :func:`detect` skips them and lists them).

    Hidden files (a name starting with ".") and the folders in ``skip`` (label folders) are not looked at;
    in a dataset folder only its split folders are.
    """
    from cs_features.datasets.layout import SPLITS
    from cs_features.io import is_image_path

    images: list[Path] = []
    others: list[tuple[Path, str]] = []
    skip = [Path(folder).resolve() for folder in skip]
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            images.append(path)  # missing/unreadable files are reported per frame
            continue
        roots = [path / split for split in SPLITS if (path / split).is_dir()] or [path]
        for found in sorted(p for root in roots for p in root.rglob("*") if p.is_file()):
            if found.name.startswith(".") or any(found.resolve().is_relative_to(folder) for folder in skip):
                continue
            if is_image_path(found):
                images.append(found)
            else:
                others.append((found, f"not an image file (suffix {found.suffix!r})"))
    return images, others


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Image files named directly or found (recursively, sorted) in the folders given.

    Raises:
        InputError: no image file at all.
    """
    images, others = collect_inputs(paths)
    if not images:
        raise InputError(_no_images_message(paths, others))
    return images


def _no_images_message(paths: list, others: list) -> str:
    message = f"no images found in {[str(p) for p in paths]}"
    if others:
        message += f" ({len(others)} other files, e.g. {str(others[0][0])!r}: {others[0][1]})"
    return message + ": expected .png, .jpg, .jpeg, .bmp, .tif or .tiff frames"


def frame_indices(images: list[Path], pattern: re.Pattern | None) -> dict[Path, int]:
    """Each file's frame index as ingest reads it (the number that ends its stem), else its place among its
    embryo's files."""
    indices: dict[Path, int] = {}
    seen: dict[str, int] = {}
    for path in sorted(images, key=lambda p: p.stem):
        embryo, index = parse_frame_name(path.stem, pattern)
        indices[path] = index if path.stem[-1:].isdigit() else seen.get(embryo, 0)
        seen[embryo] = seen.get(embryo, 0) + 1
    return indices


@dataclass
class DetectSummary:
    """What a detection run did; ``to_dict()`` is what ``--json`` prints.

    ``frames`` counts the frames read; ``failed`` the files that could not be read (``failures``: each
    ``{stem, path, reason}``), which are no frame of any embryo; ``skipped`` the files in the folders given
    that are not images (``skipped_files``: each ``{path, reason}``), which are no failure. ``selection``:
    with a store, its split and the files left out (:class:`~cs_features.detect.store_split.SplitSelection`).
    ``positive_p`` is the frame decision and ``positive_p_source`` where it came from (``"given"``, or the head's
    own, :func:`~cs_features.heads.decision.saved_positive_p`).
    ``graded`` holds the headline figures against the labels (None without labels; all of them in
    ``metrics.json``). ``workers``: the processes the embryos ran in; ``stage_seconds`` are summed over them.
    """

    out_dir: str
    frames: int = 0
    failed: int = 0
    skipped: int = 0
    flagged: int = 0
    localized: int = 0
    cs_positive_frames: int = 0
    gate: bool = True
    positive_p: float = 0.5
    positive_p_source: str = "given"
    seconds: float = 0.0
    workers: int = 1
    stage_seconds: dict = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    embryos: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    skipped_files: list = field(default_factory=list)
    selection: dict | None = None
    graded: dict | None = None
    files: dict = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "frames_per_second": round(self.frames_per_second, 3),
                "localizer_skipped": self.frames - self.localized}


def detect(paths: list[str | Path], ae_dir: str | Path, head_dir: str | Path, out_dir: str | Path,
           config: DetectConfig = DetectConfig(), weights: str | None = None, device: str = "cpu",
           progress: Callable[[int, int], None] | None = None, labels: str | Path | None = None,
           workers: int | None = 1, store: str | None = None, split: str = "test",
           storage_options: dict | None = None) -> DetectSummary:
    """Detect strings in image files or folders; write detections.json, COCO and YOLO files, CSV reports,
    overlays and timelines, and metrics.json when ground truth is found.

    Args:
        labels: a folder of YOLO label files ``<stem>.txt``; None: the ``labels/`` folder of a dataset
            folder among ``paths``, if any (:mod:`cs_features.detect.truth`).
        workers: processes that run embryos side by side (:mod:`cs_features.detect.workers`; the same
            outputs whatever the number); None: one per CPU core on the CPU (at most one per embryo), one
            on a GPU.
        store: a feature store: only the files it holds in ``split`` are run, graded against its labels
            (:mod:`cs_features.detect.store_split`; ``labels`` must then be None).

    Returns:
        a :class:`DetectSummary`; per-frame results are in ``out_dir/detections.json``.
    """
    from cs_features.detect.grading import graded_summary
    from cs_features.detect.outputs import DetectionWriter
    from cs_features.detect.truth import GroundTruth, find_label_dirs
    from cs_features.detect.workers import default_workers, embryo_detections, embryo_workers

    start = time.perf_counter()
    positive_p, decided_by = (config.positive_p, "given") if config.positive_p is not None else \
        saved_positive_p(read_config(head_dir))
    config = replace(config, positive_p=positive_p)
    if store is not None and labels is not None:
        raise ConfigError("--labels and --store both say what the frames hold: give one (with --store, the "
                          "store's labels grade its frames)")
    label_dirs = find_label_dirs(paths, labels)
    images, others = collect_inputs(paths, skip=label_dirs)
    if not images:
        raise InputError(_no_images_message(paths, others))
    beside = set() if labels is not None else {p.with_suffix(".txt") for p in images} & {p for p, _ in others}
    truth = GroundTruth(label_dirs, sorted(beside))
    if store is not None:  # the dataset's label files are not read, nor listed as skipped
        images, truth, selection = select_split(images, store, split, storage_options)
    skipped = [{"path": str(p), "reason": reason} for p, reason in others if p not in beside]
    pattern = compile_embryo_regex(config.embryo_regex)
    indices = frame_indices(images, pattern)
    places = {Path(path): place for path, place in selection.places.items()} if store is not None else {}
    embryos: dict[str, list[Path]] = {}  # each embryo's frames together (its transience prior reads them all)
    for path in images:
        embryo, indices[path] = places.get(path, (embryo_of(path.stem, pattern), indices[path]))
        embryos.setdefault(embryo, []).append(path)
    groups = list(embryos.values())
    workers = default_workers(device, len(groups)) if workers is None else max(1, int(workers))
    models = {"ae_dir": str(ae_dir), "head_dir": str(head_dir), "weights": weights, "device": device}
    summary = DetectSummary(out_dir=str(out_dir), gate=config.gate, positive_p=config.positive_p,
                            positive_p_source=decided_by)
    done = [0]

    def step(count: int) -> None:
        done[0] += count
        if progress:
            progress(done[0], len(images))

    with embryo_workers(workers, len(groups), models) as pool:  # the workers load their models while this does
        detector = load_detector(**models)
        writer = DetectionWriter(Path(out_dir), detector, config, truth)
        for detections in embryo_detections(detector, groups, config, pattern, summary.stage_seconds, writer.draw,
                                            pool, workers, step):
            for detection in detections:
                detection.frame_index = indices[Path(detection.path)]
                detection.embryo_id = places.get(Path(detection.path), (detection.embryo_id,))[0]
                writer.add(detection)
    summary.workers = workers
    summary.skipped, summary.skipped_files = len(skipped), skipped
    summary.selection = selection.to_dict() if store is not None else None
    summary.files, metrics = writer.finish(skipped)
    summary.graded = graded_summary(metrics) if metrics else None
    _summarise(summary, writer.detections, writer.failed)
    summary.seconds = time.perf_counter() - start
    return summary


def _summarise(summary: DetectSummary, detections: list[FrameDetection], failed: list[dict]) -> None:
    """Counts over the frames read; embryos from the same rows as embryos.csv."""
    from cs_features.detect.report import by_embryo, embryo_row

    summary.frames = len(detections)
    summary.failed = len(failed)
    summary.failures = failed
    summary.flagged = sum(d.flagged for d in detections)
    summary.localized = sum(d.localized for d in detections)
    summary.cs_positive_frames = sum(d.cs_positive for d in detections)
    for embryo, frames in by_embryo(detections).items():
        row = embryo_row(embryo, frames)
        deciding = sorted(({"stem": d.stem, "best_p": d.frame_score, "best_score": max(b["score"] for b in d.boxes)}
                           for d in frames if d.cs_positive), key=lambda f: -f["best_p"])
        summary.embryos[embryo] = {"cs_positive": row["verdict"] == "CS", "frames": row["frames"],
                                   "truth": row["truth"] or None, "deciding_frames": deciding}
