"""Frames through the pipeline in spawn-started worker processes (Lance is not fork-safe), in input order."""

from __future__ import annotations

import os
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Callable, Iterator

from cs_features.datasets import FrameSource, Problem
from cs_features.errors import FrameError
from cs_features.frame import FramePipeline
from cs_features.ingest.config import IngestConfig
from cs_features.ingest.stages import FrameResult, run_stages
from cs_features.runtime import in_order, load_in_worker, spawn_pool


def make_pipeline(config: IngestConfig) -> FramePipeline:
    """The frame pipeline of an ingest run: the store's settings and the run's encoder."""
    from cs_features.encoders import get_encoder

    encoder = get_encoder(config.encoder, weights=config.weights, pooling=config.pooling, device=config.device)
    return FramePipeline(config.settings, encoder, max_pixels=config.max_pixels)


def process_frame(source: FrameSource, frame_id: str, pipeline: FramePipeline) -> FrameResult | Problem:
    """Run every per-frame stage; a bad file becomes a Problem naming the stage and the reason."""
    try:
        return run_stages(source, frame_id, pipeline)
    except FrameError as exc:
        return Problem(exc.path, exc.stage, exc.reason)


def worker_count(config: IngestConfig, frames: int) -> int:
    """Processes a local ingest of ``frames`` frames runs: ``config.workers`` (0: one per CPU), at most one per
    frame."""
    return min(config.workers or os.cpu_count() or 1, max(frames, 1))


@contextmanager
def frame_workers(config: IngestConfig, frames: int) -> Iterator[Executor | None]:
    """The worker pool of a local ingest of ``frames`` frames, every worker started on entry.

    A worker's start-up (imports, the encoder's build: seconds for a ViT) then runs while the block does the
    parent's own (its pipeline, the store's checks), instead of after it. None where the frames run in this
    process (one worker or one frame) or on another engine. Leaving the block on an error waits for the
    workers to stop (:func:`~cs_features.runtime.spawn_pool`).
    """
    count = worker_count(config, frames)
    if config.engine != "local" or count <= 1:
        yield None
        return
    with spawn_pool(count, _init_worker, (config,)) as pool:
        yield pool


def run_frames(todo: list[tuple[FrameSource, str]], config: IngestConfig, pipeline: FramePipeline,
               pool: Executor | None, progress: Callable[[int, int], None] | None) -> Iterator[FrameResult | Problem]:
    """Yield a FrameResult or Problem per frame, in input order, with bounded work in flight.

    Frames run in ``pool`` (:func:`frame_workers`), or in this process through ``pipeline`` where it is None.
    """
    total = len(todo)
    if progress:
        progress(0, total)
    if pool is None:
        for index, (source, frame_id) in enumerate(todo, start=1):
            yield process_frame(source, frame_id, pipeline)
            if progress:
                progress(index, total)
        return
    # interrupted (Ctrl-C) or stopped by the caller: frames not yet started are dropped, so only the few in
    # flight finish before the workers exit (a normal end has nothing left to cancel)
    in_flight = 2 * worker_count(config, total)
    for done, (_, result) in enumerate(in_order(pool, _worker_process, todo, in_flight), start=1):
        if progress:
            progress(done, total)
        yield result


_WORKER_STATE: dict = {}


def _init_worker(config: IngestConfig) -> None:
    _WORKER_STATE["pipeline"] = worker_pipeline(config)


def worker_pipeline(config: IngestConfig) -> FramePipeline:
    """The frame pipeline of one worker of many (a pool process or a Ray actor): single-threaded, quiet
    (:func:`~cs_features.runtime.load_in_worker`)."""
    return load_in_worker(lambda: make_pipeline(config))


def _worker_process(source: FrameSource, frame_id: str) -> FrameResult | Problem:
    return process_frame(source, frame_id, _WORKER_STATE["pipeline"])
