"""The ray ingest engine: a local Ray cluster writing into a local S3-compatible store (moto) gives the rows a
local-engine ingest gives; a killed driver's run resumes with no duplicate and no missing frame."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from conftest import local_s3

from cs_features.errors import InputError
from cs_features.ingest import IngestConfig, ingest
from cs_features.ingest.ray_engine import init_ray
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import FRAMES, INGEST_LOG, FeatureStore, fixed_list_to_numpy, proposals_table_name

FAST = IngestConfig(workers=1, batch_frames=4,
                    settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=60)))
RAY = replace(FAST, engine="ray", workers=2, batch_frames=3)
PROPOSALS = proposals_table_name("classic")
TIMES = ("ingested_at", "finished_at")  # when a row was written: the one thing two ingests never share


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the module; yields its address (for drivers in other processes)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e \".[ray]\"")
    init_ray(ray, num_cpus=2, include_dashboard=False)  # as the engine starts it, quiet about its forks
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def s3():
    """A local S3-compatible server (moto) with a bucket ``csf``; yields the store's storage options."""
    with local_s3() as options:
        yield options


@pytest.fixture(scope="module")
def local_store(tiny_dataset, tmp_path_factory):
    """``tiny_dataset`` ingested with the local engine: the rows every Ray ingest must reproduce."""
    path = tmp_path_factory.mktemp("local_engine") / "db"
    summary = ingest(tiny_dataset, path, FAST)
    return FeatureStore(str(path)), summary


def _rows(store: FeatureStore, name: str) -> pa.Table:
    """Every column of ``name`` but the write times, sorted by the primary key; blob columns as their bytes."""
    table = store.read(name, with_row_id=True)
    table = table.sort_by(table.schema.names[0])
    for column in ("image", "preprocessed"):
        if column in table.schema.names:
            blobs = store.table(name).fetch_blobs(column, table.column("_rowid").to_pylist())
            table = table.set_column(table.schema.get_field_index(column), column, blobs)
    return table.drop([c for c in (*TIMES, "_rowid") if c in table.schema.names])


def _assert_same_store(store: FeatureStore, expected: FeatureStore) -> None:
    """Same rows in every table (bitwise, vectors included) and the same search space.

    The space is fitted streaming the vectors fragment by fragment (Chan's pairwise update), and a store's
    fragments depend on where it lies and how it was written (a local engine's ingest into a folder and
    into S3 already differ), so its float64 mean and scale agree to rounding, and ``search_vector``
    (float32, derived from them) to 1e-6.
    """
    for name in (FRAMES, PROPOSALS, INGEST_LOG):
        got, want = _rows(store, name), _rows(expected, name)
        assert got.num_rows == want.num_rows > 0, name
        assert got.column_names == want.column_names, name
        for column in want.column_names:
            if column == "search_vector":
                np.testing.assert_allclose(fixed_list_to_numpy(got.column(column), 104),
                                           fixed_list_to_numpy(want.column(column), 104), rtol=0, atol=1e-6)
            else:
                assert got.column(column).equals(want.column(column)), f"{name}.{column} differs"
    space, want_space = store.get_meta("search_space:classic"), expected.get_meta("search_space:classic")
    for key in ("mean", "scale"):
        np.testing.assert_allclose(space.pop(key), want_space.pop(key), rtol=1e-12)
    history = ("fitted_at", "table_version")  # when, and at which version of the table, it was fitted
    assert {k: v for k, v in space.items() if k not in history} == \
        {k: v for k, v in want_space.items() if k not in history}
    for key in ("settings", "encoder:classic", "store"):
        assert store.get_meta(key) == expected.get_meta(key), key


def test_ray_ingest_into_object_store_matches_local(ray_cluster, s3, tiny_dataset, local_store):
    expected, local_summary = local_store
    summary = ingest(tiny_dataset, "s3://csf/ray", RAY, storage_options=s3)
    store = FeatureStore("s3://csf/ray", storage_options=s3)
    _assert_same_store(store, expected)
    assert summary.frames_added == local_summary.frames_added == 18
    assert (summary.proposals_added, summary.positives, summary.negatives) == \
        (local_summary.proposals_added, local_summary.positives, local_summary.negatives)
    assert summary.proposal_recall == local_summary.proposal_recall
    assert summary.stage_seconds["commit"] > 0 and summary.search_space["fitted"]
    again = ingest(tiny_dataset, "s3://csf/ray", RAY, storage_options=s3)
    assert again.frames_added == 0 and again.frames_skipped == 18
    assert store.count(PROPOSALS) == summary.proposals_added and store.count(FRAMES) == 18


def test_rows_committed_without_their_log_are_replaced_not_duplicated(ray_cluster, tiny_dataset, local_store,
                                                                      tmp_path):
    # a run killed after a batch's proposals and frames were committed but before its ingest_log rows:
    # the frames are redone, and their old rows replaced by the append
    expected, _ = local_store
    path = tmp_path / "db"
    shutil.copytree(expected.uri, path)
    store = FeatureStore(str(path))
    undone = sorted(store.read(INGEST_LOG, ["frame_id"]).column("frame_id").to_pylist())[:5]
    store.table(INGEST_LOG).delete("frame_id IN (" + ", ".join(f"'{f}'" for f in undone) + ")")
    summary = ingest(tiny_dataset, path, RAY)
    assert summary.frames_added == 5 and summary.frames_skipped == 13
    _assert_same_store(FeatureStore(str(path)), expected)


def _cli_ingest(dataset, store: str, s3: dict, address: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cli.main", "ingest", str(dataset), "--store", store, "--storage-options",
           json.dumps(s3), "--engine", "ray", "--ray-address", address, "--workers", "2", "--batch-frames", "2",
           "--proposals", "ss-single", "--max-proposals", "60", "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.getcwd())


def _logged(store: str, s3: dict) -> int:
    try:
        return FeatureStore(store, storage_options=s3).count(INGEST_LOG)
    except Exception:  # the store is still being created
        return 0


def test_killed_driver_resumes_without_duplicates(ray_cluster, s3, tiny_dataset, local_store):
    expected, _ = local_store
    uri = "s3://csf/killed"
    proc = _cli_ingest(tiny_dataset, uri, s3, ray_cluster)
    deadline = time.time() + 180
    while time.time() < deadline and _logged(uri, s3) < 2 and proc.poll() is None:
        time.sleep(0.1)  # kill once the first batch is committed
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    partial = _logged(uri, s3)
    assert 0 < partial < 18, err.decode()[-2000:]
    rerun = _cli_ingest(tiny_dataset, uri, s3, ray_cluster)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["frames_skipped"] == partial and summary["frames_added"] == 18 - partial
    store = FeatureStore(uri, storage_options=s3)
    ids = store.read(PROPOSALS, ["proposal_id"]).column("proposal_id").to_pylist()
    assert len(ids) == len(set(ids))  # no duplicate
    frames = store.read(FRAMES, ["frame_id"]).column("frame_id").to_pylist()
    assert len(frames) == len(set(frames)) == 18  # no missing frame
    rows, want = _rows(store, PROPOSALS), _rows(expected, PROPOSALS)
    for column in ("proposal_id", "box", "weak_label", "vector"):
        assert rows.column(column).equals(want.column(column)), column


def test_gpu_workers_need_gpus_in_the_cluster(ray_cluster, tiny_dataset, tmp_path):
    import ray

    if ray.cluster_resources().get("GPU", 0) >= 8:  # pragma: no cover - a machine with many GPUs
        pytest.skip("this cluster has 8 GPUs or more")
    with pytest.raises(InputError, match="8 GPU\\(s\\) per worker asked, but the Ray cluster has .* GPU"):
        ingest(tiny_dataset, tmp_path / "db", replace(RAY, gpus_per_worker=8))


def test_worker_failures_are_one_clear_error(ray_cluster):
    import ray

    from cs_features.errors import CSFeaturesError
    from cs_features.ingest.ray_engine import ray_session

    # defined here, so Ray ships them by value (workers cannot import this test module)
    def worker_exits():
        os._exit(1)  # a worker process dying (out of memory, a lost node)

    def worker_refuses():
        raise InputError("bad frame list")

    crashed = r"the Ray run stopped \(WorkerCrashedError: The worker died .+\); .*run the command again to resume"
    with pytest.raises(CSFeaturesError, match=crashed):
        with ray_session(None) as session:
            session.get(ray.remote(worker_exits).options(max_retries=0).remote())
    with pytest.raises(InputError, match="bad frame list"):  # a library error in a worker stays itself
        with ray_session(None) as session:
            session.get(ray.remote(worker_refuses).options(max_retries=0).remote())
    assert ray.is_initialized()  # the session joined the module's Ray, so it leaves it running


@pytest.mark.gpu
def test_gpu_workers_write_the_local_rows(ray_cluster, tiny_dataset, local_store, tmp_path):
    expected, _ = local_store
    ingest(tiny_dataset, tmp_path / "db", replace(RAY, workers=1, gpus_per_worker=0.5))
    _assert_same_store(FeatureStore(str(tmp_path / "db")), expected)


def test_unknown_engine_and_missing_ray_are_clear(tiny_dataset, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown ingest engine 'spark'; engines: local, ray"):
        ingest(tiny_dataset, tmp_path / "db", replace(FAST, engine="spark"))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(InputError, match=r'needs Ray, which is not installed .*pip install -e "\.\[ray\]"'):
        ingest(tiny_dataset, tmp_path / "db", RAY)
    assert not (tmp_path / "db").exists()  # refused before anything was written


def test_cli_refuses_an_unknown_engine(tiny_dataset, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["ingest", str(tiny_dataset), "--store", str(tmp_path / "db"),
                                      "--engine", "spark"])
    assert result.exit_code != 0 and "unknown ingest engine 'spark'" in result.output
    result = CliRunner().invoke(app, ["score", "ae", "--store", str(tmp_path / "db"), "--model", str(tmp_path),
                                      "--engine", "spark"])
    assert result.exit_code != 0 and "--engine must be local or ray, got 'spark'" in result.output


def test_score_ae_on_ray_writes_the_local_error_maps(ray_cluster, local_store, tmp_path):
    from cs_features.autoencoder import AnomalyFilter
    from cs_features.autoencoder.pipeline import score_store, train_from_store
    from cs_features.autoencoder.ray_scoring import score_store_on_ray
    from cs_features.autoencoder.scoring import ERROR_MAPS

    expected, _ = local_store
    for name in ("train", "local", "ray"):
        shutil.copytree(expected.uri, tmp_path / name)
    model = tmp_path / "ae"
    train_from_store(str(tmp_path / "train"), model,
                     AnomalyFilter(img_size=32, epochs=2, batch_size=4, device="cpu", seed=3))
    want = score_store(str(tmp_path / "local"), model, device="cpu")
    got = score_store_on_ray(str(tmp_path / "ray"), model, device="cpu", workers=2, chunk_frames=5)
    assert (got.model_id, got.frames_scored, got.flagged) == (want.model_id, 18, want.flagged)
    assert got.metrics == want.metrics
    rows, want_rows = _rows(FeatureStore(str(tmp_path / "ray")), ERROR_MAPS), \
        _rows(FeatureStore(str(tmp_path / "local")), ERROR_MAPS)
    assert rows.num_rows == want_rows.num_rows == 18
    for column in want_rows.column_names:
        if column != "scored_at":
            assert rows.column(column).equals(want_rows.column(column)), column
    again = score_store_on_ray(str(tmp_path / "ray"), model, device="cpu", workers=1)
    assert again.frames_scored == 18 and FeatureStore(str(tmp_path / "ray")).count(ERROR_MAPS) == 18  # rewritten
