"""What every compute stage shares about the machine: the torch device, thread counts, package versions.

Thread settings are process-wide in torch and OpenCV, so they are only ever changed inside a context
manager that restores the caller's value.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from contextlib import contextmanager
from importlib import metadata
from typing import Iterator

from cs_features.errors import ConfigError

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
