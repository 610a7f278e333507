"""Frames through the pipeline in spawn-started worker processes (Lance is not fork-safe), in input order."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

from cs_features.datasets import FrameSource, Problem
from cs_features.errors import FrameError
from cs_features.frame import FramePipeline
from cs_features.ingest.config import IngestConfig
from cs_features.ingest.stages import FrameResult, run_stages
from cs_features.runtime import end_with_parent


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
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config, os.getpid()))
    try:
        yield from _in_order(pool, todo, 2 * workers, progress)
    finally:
        # interrupted (Ctrl-C) or stopped by the caller: frames not yet started are dropped, so only the few in
        # flight finish before the workers exit (a normal end has nothing left to cancel)
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(pool: ProcessPoolExecutor, todo: list[tuple[FrameSource, str]], in_flight: int,
              progress: Callable[[int, int], None] | None) -> Iterator[FrameResult | Problem]:
    total = len(todo)
    pending: deque = deque()
    items = iter(todo)
    for source, frame_id in items:
        pending.append(pool.submit(_worker_process, source, frame_id))
        if len(pending) >= in_flight:
            break
    done = 0
    while pending:
        result = pending.popleft().result()
        nxt = next(items, None)
        if nxt is not None:
            pending.append(pool.submit(_worker_process, *nxt))
        done += 1
        if progress:
            progress(done, total)
        yield result


_WORKER_STATE: dict = {}


def _init_worker(config: IngestConfig, parent_pid: int) -> None:
    end_with_parent(parent_pid)  # first: a parent killed while this worker starts up is noticed as well
    _WORKER_STATE["pipeline"] = worker_pipeline(config)


def worker_pipeline(config: IngestConfig) -> FramePipeline:
    """The frame pipeline of one worker of many (a pool process or a Ray actor): single-threaded, quiet.

    A worker per core already: more threads (torch's or OpenCV's, in this process only) only fight for the
    cores. The parent built this same pipeline before starting the workers and logged its warnings (random
    DINOv3 weights, say) once; each worker's copy would repeat them, once per process.
    """
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return make_pipeline(config)
    finally:
        logging.disable(previous)


def _worker_process(source: FrameSource, frame_id: str) -> FrameResult | Problem:
    return process_frame(source, frame_id, _WORKER_STATE["pipeline"])
