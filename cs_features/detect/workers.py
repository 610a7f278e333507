"""Embryos through the detection chain in spawn-started worker processes, results in input order.

An embryo is one task: its transience prior reads all of its frames, so its frames stay together in one
process. Each worker loads both models once (:func:`~cs_features.detect.chain.load_detector`), single-
threaded (a worker per core already), and sends back the embryo's detections, the pictures its overlays
need and the seconds it spent per stage; the parent draws the overlays and writes the files, so the
outputs are the same as one process gives, whatever the number of workers.

What it gains is bounded by the autoencoder: its convolutions are bound by memory traffic
(:func:`cs_features.autoencoder.training.scoring_batch_size`), so two single-threaded workers on 2 cores
spend 4x the seconds one two-threaded process does on that stage while proposals and encoding scale. On
168 synthetic frames of 28 embryos on 2 cores: 129.6 s with 2 workers, 153.9 s in one process (1.19x);
on the quickstart's 60 frames the workers' start-up ate the gain, so one process stays the default.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from cs_features.detect.chain import STAGES, DetectConfig, Detector, FrameDetection, detect_embryo, load_detector
from cs_features.runtime import in_order, load_in_worker, resolve_device, spawn_pool

Draw = Callable[[FrameDetection, dict], None]


def default_workers(device: str, embryos: int) -> int:
    """One worker per CPU core on the CPU (at most one per embryo); one process on a GPU."""
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(os.cpu_count() or 1, embryos))


@contextmanager
def embryo_workers(workers: int, embryos: int, models: dict) -> Iterator[Executor | None]:
    """The worker pool of a detection run over ``embryos`` embryos, every worker started on entry.

    Each worker loads its models (:func:`load_detector` with ``models``: ``ae_dir``, ``head_dir``, ``weights``,
    ``device``) while the block loads the parent's, instead of after. None where the embryos run in this
    process (one worker, or one embryo).
    """
    if workers <= 1 or embryos <= 1:
        yield None
        return
    with spawn_pool(workers, _init_worker, (models,)) as pool:  # interrupted: embryos not yet started are dropped
        yield pool


def embryo_detections(detector: Detector, embryos: list[list[Path]], config: DetectConfig, pattern: re.Pattern,
                      seconds: dict, draw: Draw, pool: Executor | None, workers: int,
                      progress: Callable[[int], None] | None = None) -> Iterator[list[FrameDetection]]:
    """Each embryo's detections (:func:`~cs_features.detect.chain.detect_embryo`), in the order of ``embryos``.

    Args:
        detector: the parent's loaded models (used where ``pool`` is None).
        seconds: per-stage seconds, added to (summed over workers).
        draw: called with each read frame's detection and picture once its boxes are final, before the
            embryo is yielded.
        pool: the run's :func:`embryo_workers` (``workers`` of them), or None to run in this process.
        progress: called with the number of files done (per batch in one process, per embryo with workers).
    """
    if pool is None:
        for paths in embryos:
            yield detect_embryo(detector, paths, config, pattern, seconds, draw, progress)
        return
    tasks = ((paths, config, pattern) for paths in embryos)
    for (paths, _, _), (detections, drawings, spent) in in_order(pool, _detect_embryo, tasks, 2 * workers):
        for stage, value in spent.items():
            seconds[stage] = seconds.get(stage, 0.0) + value
        for detection, picture in drawings:
            draw(detection, picture)
        if progress:
            progress(len(paths))
        yield detections


_WORKER_STATE: dict = {}


def _init_worker(models: dict) -> None:
    _WORKER_STATE["detector"] = load_in_worker(lambda: load_detector(**models))


def _detect_embryo(paths: list[Path], config: DetectConfig, pattern: re.Pattern
                   ) -> tuple[list[FrameDetection], list[tuple[FrameDetection, dict]], dict]:
    seconds = {stage: 0.0 for stage in STAGES}
    drawings: list[tuple[FrameDetection, dict]] = []
    detections = detect_embryo(_WORKER_STATE["detector"], paths, config, pattern, seconds,
                               lambda detection, picture: drawings.append((detection, picture)))
    # a drawn detection is the same object as the returned one: pickled together, they stay one object
    return detections, drawings, seconds
