"""Device, thread and version helpers shared by every compute stage (cs_features.runtime)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")

from cs_features.errors import ConfigError  # noqa: E402
from cs_features.runtime import in_order, package_versions, resolve_device, spawn_pool, torch_threads  # noqa: E402


def test_auto_device_picks_what_torch_sees():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(" cpu ") == torch.device("cpu")


@pytest.mark.parametrize("device, text", [("tpu", "device 'tpu' is not understood"),
                                          ("meta", "device 'meta' is not supported"),
                                          ("", "device '' is not understood")])
def test_unknown_devices_are_config_errors_listing_the_accepted_ones(device, text):
    with pytest.raises(ConfigError, match=text) as info:
        resolve_device(device)
    assert "'auto'" in str(info.value) and "'cuda:N'" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_refused(device):
    with pytest.raises(ConfigError, match=rf"device '{device}' asks for CUDA but torch sees no CUDA device"):
        resolve_device(device)


def test_torch_threads_restores_the_callers_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_package_versions_name_the_installed_packages_and_python():
    versions = package_versions()
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] and versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert "not-a-package-xyz" not in package_versions(("not-a-package-xyz",))


def test_in_order_keeps_the_tasks_order_and_bounds_the_work_in_flight():
    started: list[int] = []
    lock = threading.Lock()

    def work(index: int, delay: float) -> int:
        with lock:
            started.append(index)
        time.sleep(delay)
        return index * 10

    tasks = [(index, 0.05 if index % 3 == 0 else 0.0) for index in range(12)]  # later tasks finish first
    seen, aheads = [], []
    with ThreadPoolExecutor(4) as pool:
        for args, result in in_order(pool, work, tasks, in_flight=3):
            time.sleep(0.02)  # a free thread starts whatever was submitted: the count below is its worst case
            with lock:
                aheads.append(len(started) - len(seen) - 1)  # started beyond the one just returned
            seen.append((args, result))
    assert seen == [(args, args[0] * 10) for args in tasks]
    assert max(aheads) == 3, f"tasks started ahead of the one returned: {aheads}"


def test_spawn_pool_starts_every_worker_on_entry(tmp_path):
    import tempfile

    # each worker's start-up leaves a file; no task is submitted, so the workers started by themselves
    with spawn_pool(2, tempfile.mkstemp, ("", "started-", str(tmp_path))):
        deadline = time.time() + 60
        while len(list(tmp_path.glob("started-*"))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(list(tmp_path.glob("started-*"))) == 2


def test_a_worker_that_failed_to_start_raises_its_error_from_each_task(tmp_path, capfd):
    missing = str(tmp_path / "no-model-here")
    with spawn_pool(2, os.stat, (missing,)) as pool:  # each worker's start-up raises FileNotFoundError
        futures = [pool.submit(os.getpid) for _ in range(4)]
        for future in futures:
            with pytest.raises(FileNotFoundError, match="no-model-here"):
                future.result(timeout=120)
    assert "Exception in initializer" not in capfd.readouterr().err  # no worker died printing its traceback


WORKER_THREADS = """
import sys
import cv2
from cs_features.runtime import load_in_worker
assert load_in_worker(lambda: "built") == "built"
print("torch" in sys.modules, cv2.getNumThreads())
import torch
print(torch.get_num_threads())
"""


def test_a_worker_is_single_threaded_without_importing_torch_for_it():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", WORKER_THREADS], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "1", "1"]  # torch imported afterwards starts with one thread
