"""The ``ray`` ingest engine: frames processed by Ray actors that write Lance fragments into the store.

Each actor holds one frame pipeline, as a local worker process does (:func:`worker_pipeline`), takes a
batch of ``batch_frames`` frames, builds the batch's rows as the local writer does
(:class:`~cs_features.ingest.writer.BatchRows`) and writes them as *uncommitted* Lance fragments straight
to the tables' URIs (a local folder or object storage). The driver commits each batch: a Lance append of
the proposals fragments, then of the frames fragments (each one atomic commit), then an upsert of the
batch's ``ingest_log`` rows, the commit marker (:mod:`cs_features.ingest.fragments`). Fragments of a
batch the driver never committed are files no version references (a killed run leaves nothing visible
of them).

A run killed between those commits leaves frames with rows but no log row. Appends do not replace rows
as upserts do, so before committing a batch the driver deletes the rows its frames already have (found
once, at the start of the run): a resumed run, or a second encoder's run over frames already stored,
ends with exactly the rows the local engine writes. One ``ray`` run per store at a time.

:func:`ray_session` and :func:`worker_count` are shared with the other stages that run on Ray.

Every node must see the dataset's files at the paths the driver scanned (a shared or mounted folder);
the store is reached from every node through its URI and storage options.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa

from cs_features.datasets import FrameSource, Problem
from cs_features.errors import CSFeaturesError, InputError
from cs_features.frame import FramePipeline
from cs_features.ingest.config import IngestConfig, IngestSummary
from cs_features.ingest.fragments import FragmentCommitter, write_fragments_json
from cs_features.ingest.workers import process_frame, worker_pipeline
from cs_features.ingest.writer import BatchRows, search_space_for_rows, tally_batch, tally_frame
from cs_features.metrics import add_counts
from cs_features.store import (
    FRAMES,
    INGEST_LOG,
    FeatureStore,
    frames_schema,
    ingest_log_schema,
    now,
    proposals_schema,
    proposals_table_name,
)

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[ray]" in a cs_features checkout, or pip install "cs_features[ray]"'


def import_ray():
    """The ``ray`` module.

    Raises:
        InputError: Ray is not installed, with the command that installs it.
    """
    try:
        import ray
    except ImportError as exc:
        raise InputError(f"the ray engine needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return ray


@dataclass
class BatchFragments:
    """What an actor made of one batch: uncommitted fragments per table (Lance fragment metadata as JSON),
    the batch's ``ingest_log`` rows, the frames that failed, and the batch's tallies."""

    frame_ids: list
    fragments: dict
    log: pa.Table
    problems: list
    tally: IngestSummary


class FrameWorker:
    """A Ray actor: one frame pipeline; each batch becomes uncommitted fragments of the store's tables.

    Args:
        config: the run's settings and encoder (the pipeline is built from them once, in the actor).
        rows: how a batch's rows are built (encoder, vector dimension, settings hash).
        uris: ``{table name: Lance dataset URI}`` of the proposals and frames tables.
        storage_options: object-store options for those URIs.
    """

    def __init__(self, config: IngestConfig, rows: BatchRows, uris: dict, storage_options: dict) -> None:
        self.pipeline = worker_pipeline(config)
        self.rows = rows
        self.uris = uris
        self.storage_options = storage_options or None

    def process(self, batch: list[tuple[FrameSource, str]], with_search: bool, space) -> BatchFragments:
        """Run the frame pipeline on ``batch`` and write its proposals and frame rows as fragments."""
        tally = IngestSummary(store="", encoder=self.rows.encoder)
        results, problems = [], []
        for source, frame_id in batch:
            result = process_frame(source, frame_id, self.pipeline)
            if isinstance(result, Problem):
                problems.append(result)
                continue
            results.append(result)
            tally_frame(tally, result)
        start = time.perf_counter()
        stamp = now()
        proposals = self.rows.proposals(results, with_search, space)
        tables = {proposals_table_name(self.rows.encoder): proposals, FRAMES: self.rows.frames(results, stamp)}
        fragments = {name: write_fragments_json(table, self.uris[name], self.storage_options)
                     for name, table in tables.items()}
        tally_batch(tally, len(results), proposals)
        tally.stage_seconds["write"] = time.perf_counter() - start
        return BatchFragments([r.frame_id for r in results], fragments, self.rows.log(results, stamp), problems,
                              tally)


def run_ray(store: FeatureStore, todo: list[tuple[FrameSource, str]], config: IngestConfig, pipeline: FramePipeline,
            summary: IngestSummary, progress: Callable[[int, int], None] | None) -> list[Problem]:
    """Process ``todo`` on Ray and commit it batch by batch; fills ``summary`` (``commit``: the driver's seconds).

    Returns:
        the frames that failed a stage, each with the stage and the reason.
    """
    if not todo:  # nothing to do: no Ray to start
        if progress:
            progress(0, 0)
        return []
    with ray_session(config.ray_address, config.workers) as ray:
        return _run(ray, store, todo, config, pipeline, summary, progress)


def init_ray(ray, **options) -> None:
    """``ray.init(log_to_driver=False, **options)``, quiet about forking: Ray starts its processes with fork +
    exec, the child runs no Lance code, so the fork-safety warnings Lance and LanceDB give at every fork do
    not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="lance is not fork-safe", category=UserWarning)
        ray.init(log_to_driver=False, **options)


@contextmanager
def ray_session(address: str | None, num_cpus: int = 0) -> Iterator:
    """The ``ray`` module, connected: to ``address``, or the Ray this process already joined, or a local Ray
    started for the block (``num_cpus`` CPUs, 0 = all) and shut down after it.

    Raises:
        InputError: Ray is not installed, or no Ray cluster answers at ``address``.
        CSFeaturesError: a worker died (after Ray's retries) or Ray failed; what was committed is kept.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        options = {"address": address} if address else {"num_cpus": num_cpus or None, "include_dashboard": False}
        try:
            init_ray(ray, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"join the Ray cluster at {address!r}" if address else "start a local Ray"
            raise InputError(f"could not {where}: {exc}") from exc
    try:
        yield ray
    except ray.exceptions.RayError as exc:
        if isinstance(exc, (CSFeaturesError, OSError, ValueError)):
            raise  # a library error raised in a worker: Ray's error is also an instance of it
        raise CSFeaturesError(f"the Ray run stopped ({ray_failure(exc)}); the batches committed so far are kept: "
                              "run the command again to resume") from exc
    finally:
        if started:
            ray.shutdown()


def ray_failure(exc: Exception) -> str:
    """A Ray error in one line: the worker's own error when Ray wraps one, without colour codes."""
    cause = getattr(exc, "cause", None) or exc
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1].strip() if lines else 'no message'}"


def _run(ray, store: FeatureStore, todo, config: IngestConfig, pipeline: FramePipeline, summary: IngestSummary,
         progress) -> list[Problem]:
    from ray.util import ActorPool

    if progress:
        progress(0, len(todo))
    rows = BatchRows(config.encoder, int(pipeline.encoder.info()["dim"]), config.settings.config_hash())
    with_search, space = search_space_for_rows(store, config.encoder)
    committer = BatchCommitter(store, config.encoder, rows.dim, with_search, {frame_id for _, frame_id in todo})
    batches = [todo[i:i + config.batch_frames] for i in range(0, len(todo), config.batch_frames)]
    workers = worker_count(ray, config.workers, config.gpus_per_worker, len(batches))
    actor = ray.remote(FrameWorker).options(num_cpus=1, num_gpus=config.gpus_per_worker, max_restarts=2,
                                            max_task_retries=2)
    actors = [actor.remote(config, rows, committer.uris, store.storage_options) for _ in range(workers)]
    log.info("ingesting %d frames in %d batches on %d Ray workers", len(todo), len(batches), workers)
    problems: list[Problem] = []
    done = 0
    try:
        pool = ActorPool(actors)
        # committed in input order (the results of later batches wait): the tables' rows then lie in the order a
        # local ingest writes them, and the search space fitted on them at the end streams them in that order
        for outcome in pool.map(lambda a, batch: a.process.remote(batch, with_search, space), batches):
            committer.commit(outcome)
            merge_tally(summary, outcome.tally)
            problems += outcome.problems
            done += len(outcome.frame_ids) + len(outcome.problems)
            if progress:
                progress(done, len(todo))
    finally:
        for each in actors:
            ray.kill(each)
    summary.stage_seconds["commit"] = committer.fragments.seconds
    return problems


def worker_count(ray, workers: int, gpus_per_worker: float, n_batches: int) -> int:
    """``workers``, or one worker per CPU (per ``gpus_per_worker`` GPUs) of the cluster; at most one per batch.

    Raises:
        InputError: GPU workers asked of a cluster with fewer GPUs than one worker holds.
    """
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        gpus = resources.get("GPU", 0)
        if gpus < gpus_per_worker:
            raise InputError(f"{gpus_per_worker:g} GPU(s) per worker asked, but the Ray cluster has {gpus:g} "
                             "GPU(s): pass --gpus-per-worker 0 for CPU workers")
        fits = int(gpus // gpus_per_worker)
    else:
        fits = int(resources.get("CPU", 1))
    return max(1, min(workers or fits, n_batches))


def merge_tally(summary: IngestSummary, part: IngestSummary) -> None:
    """Add a batch's tallies (made by an actor) to the run's summary."""
    for stage, seconds in part.stage_seconds.items():
        summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + seconds
    summary.warnings.extend(part.warnings)
    add_counts(summary.recall_counts, part.recall_counts)
    for name in ("frames_added", "proposals_added", "positives", "negatives", "ignored"):
        setattr(summary, name, getattr(summary, name) + getattr(part, name))


class BatchCommitter:
    """The driver's side of an ingest: creates the tables the actors append to and commits each batch,
    proposals, then frames (each replacing rows its frames already had), then ``ingest_log``."""

    def __init__(self, store: FeatureStore, encoder: str, dim: int, with_search: bool, todo_ids: set[str]) -> None:
        self.store = store
        self.proposals = proposals_table_name(encoder)
        schemas = {self.proposals: proposals_schema(dim, search_vector=with_search), FRAMES: frames_schema()}
        self.fragments = FragmentCommitter(store, schemas, {name: "frame_id" for name in schemas}, todo_ids)
        self.uris = self.fragments.uris

    def commit(self, batch: BatchFragments) -> None:
        """Make one batch visible: proposals, frames, then the log rows that mark its frames done."""
        for name in (self.proposals, FRAMES):
            self.fragments.append(name, batch.fragments[name], batch.frame_ids)
        start = time.perf_counter()
        self.store.upsert(INGEST_LOG, batch.log, schema=ingest_log_schema())
        self.fragments.seconds += time.perf_counter() - start
