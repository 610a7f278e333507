"""Frames through the pipeline in spawn-started worker processes (Lance is not fork-safe), in input order."""

from __future__ import annotations

import os
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


def run_frames(todo: list[tuple[FrameSource, str]], config: IngestConfig, pipeline: FramePipeline,
               progress: Callable[[int, int], None] | None) -> Iterator[FrameResult | Problem]:
    """Yield a FrameResult or Problem per frame, in input order, with bounded work in flight."""
    total = len(todo)
    workers = min(config.workers or os.cpu_count() or 1, max(total, 1))
    if progress:
        progress(0, total)
    if workers <= 1:
        for index, (source, frame_id) in enumerate(todo, start=1):
            yield process_frame(source, frame_id, pipeline)
            if progress:
                progress(index, total)
        return
    with spawn_pool(workers, _init_worker, (config,)) as pool:
        # interrupted (Ctrl-C) or stopped by the caller: frames not yet started are dropped, so only the few in
        # flight finish before the workers exit (a normal end has nothing left to cancel)
        for done, (_, result) in enumerate(in_order(pool, _worker_process, todo, 2 * workers), start=1):
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
