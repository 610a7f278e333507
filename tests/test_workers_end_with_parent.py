"""Ingest worker processes end with their parent, and repeat none of its warnings."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cs_features.ingest import IngestConfig
from cs_features.ingest import workers as ingest_workers

ROOT = Path(__file__).resolve().parents[1]

# An ingest with 2 workers that writes a marker once the first frame has come back from a worker.
INGEST_SCRIPT = """
import sys
from pathlib import Path

from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings

marker = Path(sys.argv[3])

def progress(done, total):
    if done >= 1 and not marker.exists():
        marker.write_text(str(done))

config = IngestConfig(workers=2, batch_frames=4,
                      settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=20)))
ingest(sys.argv[1], sys.argv[2], config, progress=progress)
"""


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # the command name in parentheses may hold spaces: the fields after its closing ')' are fixed
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes through /proc")
def test_workers_exit_when_the_parent_is_killed(tiny_dataset, tmp_path):
    marker = tmp_path / "first-frame-done"
    parent = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(tiny_dataset), str(tmp_path / "store"),
                               str(marker)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert parent.poll() is None, f"the ingest ended before the test could kill it: {parent.stderr.read()}"
            assert time.monotonic() < deadline, "no frame came back from a worker within 120 s"
            time.sleep(0.1)
        workers = _children(parent.pid)
        assert parent.poll() is None, "the ingest ended before the test could kill it"
        assert len(workers) >= 2, f"expected 2 worker processes (and a resource tracker), found {workers}"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in workers if _alive(pid)]
        assert not survivors, f"worker processes {survivors} outlived their killed parent by 20 s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in workers:  # a failed run leaves no stray process behind
            if _alive(pid) and b"spawn_main" in _cmdline(pid):  # still ours, not a reused pid
                os.kill(pid, signal.SIGKILL)


def test_worker_start_repeats_none_of_the_parents_warnings(monkeypatch, caplog):
    import torch

    encoder_log = logging.getLogger("cs_features.encoders.dinov3")

    def pipeline_that_warns(config):
        encoder_log.warning("dinov3-vits16 uses RANDOM weights (seed 0): embeddings are meaningless")
        return "pipeline"

    monkeypatch.setattr(ingest_workers, "make_pipeline", pipeline_that_warns)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))  # the worker set-up writes it
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING):
            ingest_workers._init_worker(IngestConfig())
            assert ingest_workers._WORKER_STATE["pipeline"] == "pipeline"
            assert "RANDOM" not in caplog.text
            encoder_log.warning("after the worker started")  # logging works again once the pipeline is built
        assert "after the worker started" in caplog.text
    finally:
        torch.set_num_threads(threads)
        ingest_workers._WORKER_STATE.clear()


def test_two_workers_write_the_same_rows_as_one(tiny_dataset, tiny_store, tmp_path):
    from cs_features.ingest import ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.store import FeatureStore

    settings = StoreSettings(proposals=ProposalConfig(method="ss-single,filament", max_proposals=80))  # tiny_store's
    summary = ingest(tiny_dataset, tmp_path / "db", IngestConfig(workers=2, batch_frames=4, settings=settings))
    assert summary.frames_added == 18 and summary.frames_failed == 0
    ids = [set(FeatureStore(str(path)).read("proposals_classic", ["proposal_id"]).column("proposal_id").to_pylist())
           for path in (tmp_path / "db", tiny_store)]
    assert ids[0] == ids[1] and len(ids[0]) > 18
