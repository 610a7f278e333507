"""Where an ingest's frames are processed and how its batches are committed: the ingest engines.

An engine takes the frames still to do and returns the files it had to skip; every engine runs the one
frame pipeline (:mod:`cs_features.ingest.stages`), builds a batch's rows with
:class:`~cs_features.ingest.writer.BatchRows` and writes ``ingest_log`` last, so the rows a store holds
do not depend on the engine.

- ``local``: a process pool on this machine (:mod:`cs_features.ingest.workers`), started by the caller so
  that its workers' start-up overlaps the parent's; the parent upserts each batch (:class:`BatchWriter`).
- ``ray``: Ray actors on a cluster write Lance fragments; the driver commits each batch
  (:mod:`cs_features.ingest.ray_engine`).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable

from cs_features.datasets import FrameSource, Problem
from cs_features.errors import InputError
from cs_features.frame import FramePipeline
from cs_features.ingest.config import IngestConfig, IngestSummary
from cs_features.ingest.workers import run_frames
from cs_features.ingest.writer import BatchWriter

ENGINES = ("local", "ray")


def run_engine(store, todo: list[tuple[FrameSource, str]], config: IngestConfig, pipeline: FramePipeline,
               summary: IngestSummary, progress: Callable[[int, int], None] | None,
               pool: Executor | None) -> list[Problem]:
    """Process and write ``todo`` (``(frame, frame id)`` pairs) with ``config.engine``; fills ``summary``.

    ``pool``: the local engine's workers, started by the caller (:func:`~cs_features.ingest.workers.frame_workers`);
    None runs the frames in this process.

    Returns:
        the frames that failed a stage, each with the stage and the reason.

    Raises:
        InputError: an unknown engine, or the ``ray`` engine without Ray installed.
    """
    if config.engine == "local":
        return run_local(store, todo, config, pipeline, summary, progress, pool)
    if config.engine == "ray":
        from cs_features.ingest.ray_engine import run_ray

        return run_ray(store, todo, config, pipeline, summary, progress)
    raise InputError(f"unknown ingest engine {config.engine!r}; engines: {', '.join(ENGINES)}")


def check_engine(config: IngestConfig) -> None:
    """Refuse an unknown engine, a negative GPU share, or the ``ray`` engine without Ray, before any work.

    Raises:
        InputError: naming the value received and what is accepted (for Ray: how to install it).
    """
    if config.engine not in ENGINES:
        raise InputError(f"unknown ingest engine {config.engine!r}; engines: {', '.join(ENGINES)}")
    if config.gpus_per_worker < 0:
        raise InputError(f"gpus per worker must be >= 0 (0: CPU workers), got {config.gpus_per_worker}")
    if config.engine == "ray":
        from cs_features.ingest.ray_engine import import_ray

        import_ray()


def run_local(store, todo: list[tuple[FrameSource, str]], config: IngestConfig, pipeline: FramePipeline,
              summary: IngestSummary, progress: Callable[[int, int], None] | None,
              pool: Executor | None) -> list[Problem]:
    """Frames through a local process pool (:func:`run_frames`), upserted every ``batch_frames``."""
    writer = BatchWriter(store, config, pipeline.encoder.info(), summary)
    problems: list[Problem] = []
    for result in run_frames(todo, config, pipeline, pool, progress):
        if isinstance(result, Problem):
            problems.append(result)
        else:
            writer.add(result)
    writer.flush()
    return problems
