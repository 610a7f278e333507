"""What every compute stage shares about the machine: the torch device, thread counts, package versions,
and the worker processes that ingest and detect spread their work over.

Thread settings are process-wide in torch and OpenCV, so in the caller's process they are only ever
changed inside a context manager that restores the caller's value; a worker process
(:func:`load_in_worker`) is set single-threaded for its whole life.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import platform
import sys
import threading
import time
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from importlib import metadata
from typing import Callable, Iterable, Iterator, TypeVar

from cs_features.errors import ConfigError

T = TypeVar("T")

DEVICE_HELP = "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'"
VERSIONED_PACKAGES = ("cs_features", "numpy", "torch", "timm", "safetensors", "scikit-learn", "lightgbm",
                      "lancedb", "pylance", "pyarrow", "opencv-contrib-python-headless")


def resolve_device(device: str):
    """The ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ConfigError: an unknown device string, or CUDA asked for where torch sees none.
    """
    import torch

    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device {device!r} is not understood; use {DEVICE_HELP}") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use {DEVICE_HELP}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asks for CUDA but torch sees no CUDA device; use 'cpu' or 'auto'")
    return resolved


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, restoring the caller's count afterwards (None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def cv2_threads(n: int) -> Iterator[None]:
    """Run with ``n`` OpenCV threads, restoring the caller's count afterwards."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def package_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out) and of Python."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def end_with_parent(parent_pid: int, interval_s: float = 0.5) -> threading.Thread:
    """Exit this process soon after ``parent_pid`` is gone, however it ended (SIGKILL included).

    A pool worker whose parent died waits forever on its task queue (it holds that queue's write end
    itself, so it never sees end-of-file). A daemon thread polls the parent pid (``os.getppid()`` changes
    when the process is re-parented) and ends the worker with ``os._exit``. Polling works where
    ``PR_SET_PDEATHSIG`` does not: on macOS, and when the thread that started the worker exits first.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="end-with-parent", daemon=True)
    watcher.start()
    return watcher


@contextmanager
def spawn_pool(workers: int, initializer: Callable[..., None], initargs: tuple = ()
               ) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` spawn-started processes (Lance and torch are not fork-safe).

    Each worker first watches this process (:func:`end_with_parent`), then runs ``initializer(*initargs)``
    (a module-level function: it is pickled). Every worker starts on entry, so their start-up runs while
    the block does its own work before its first task. A worker whose start-up raised raises that error
    from each task, into the task's future (:class:`_WorkerPool`). Interrupted (Ctrl-C, a consumer that
    stopped early, an error), tasks not yet started are dropped and the block waits for those in flight
    before the workers exit. Left normally, with every task done, the workers are told to exit and the
    caller goes on while they do (tearing down torch and the store's libraries takes a worker about a second).
    """
    context = multiprocessing.get_context("spawn")
    pool = _WorkerPool(workers, mp_context=context, initializer=_start_worker,
                       initargs=(os.getpid(), initializer, initargs))
    for _ in range(workers):  # each submit to a pool with no idle worker starts one: all start now, side by side
        pool.submit(_started)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=False, cancel_futures=True)


class _WorkerPool(ProcessPoolExecutor):
    """A process pool whose worker, when its start-up failed, raises that error from each task it is given.

    Without this, the worker would die: ``concurrent.futures`` prints its traceback and breaks the pool. The
    parent usually builds the same models and fails first, with the same error, before any task is sent, so
    the user reads that error once.
    """

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(_run_task, fn, *args, **kwargs)


_START_ERRORS: list[Exception] = []  # in a worker: what its start-up raised


def _run_task(fn: Callable[..., T], *args, **kwargs) -> T:
    if _START_ERRORS:
        raise _START_ERRORS[0]
    return fn(*args, **kwargs)


def _started() -> None:
    """The task that starts a worker (:func:`spawn_pool`): it does nothing once the worker has started."""


def _start_worker(parent_pid: int, initializer: Callable[..., None], initargs: tuple) -> None:
    end_with_parent(parent_pid)  # first: a parent killed while this worker starts up is noticed as well
    try:
        initializer(*initargs)
    except Exception as exc:  # raised from this worker's tasks (_WorkerPool)
        _START_ERRORS.append(exc)


def in_order(pool: Executor, function: Callable[..., T], tasks: Iterable[tuple],
             in_flight: int) -> Iterator[tuple[tuple, T]]:
    """``(args, function(*args))`` for each ``args`` of ``tasks``, in their order, run in ``pool``.

    At most ``in_flight`` tasks are submitted ahead of the one being waited for, so results never pile
    up in memory and an interrupted run loses only those.
    """
    pending: deque = deque()
    items = iter(tasks)
    for args in items:
        pending.append((args, pool.submit(function, *args)))
        if len(pending) >= in_flight:
            break
    while pending:
        args, future = pending.popleft()
        result = future.result()
        following = next(items, None)
        if following is not None:
            pending.append((following, pool.submit(function, *following)))
        yield args, result


def usable_threads() -> int:
    """Threads this process's own work may use: its cores, at most ``OMP_NUM_THREADS`` where that is set
    (1 in a pool worker, :func:`load_in_worker`)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(limit))) if limit.isdigit() and int(limit) > 0 else cores


def load_in_worker(build: Callable[[], T]) -> T:
    """Set this worker process single-threaded and return ``build()``, its warnings silenced.

    A worker per core already: more threads (torch's or OpenCV's, in this process only) only fight for the
    cores. torch is not imported for it: a worker whose work never needs torch (the classic encoder's
    ingest) would spend a second or two of its start importing it; ``OMP_NUM_THREADS`` makes a torch
    imported later in this process start with one thread, and one imported already is set to one. The
    parent builds the same models (before the workers start, or while they do) and logs their warnings
    (random DINOv3 weights, say) once; each worker's copy would repeat them, once per process.
    """
    import cv2

    os.environ["OMP_NUM_THREADS"] = "1"
    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        built = build()
    finally:
        logging.disable(previous)
    if "torch" in sys.modules:  # imported by build(): OMP_NUM_THREADS took effect; made sure of either way
        sys.modules["torch"].set_num_threads(1)
    return built
