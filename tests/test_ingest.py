"""Ingest into the feature store: rows, schemas, idempotence, resume after kill -9, concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import FRAMES, INGEST_LOG, FeatureStore, fixed_list_to_numpy, frames_schema, proposals_table_name

FAST = IngestConfig(workers=1, batch_frames=4,
                    settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=60)))


def _search_vectors(store_path) -> tuple[np.ndarray, int]:
    """``search_vector`` of every proposal sorted by id, and how many rows lack one."""
    props = FeatureStore(str(store_path)).read(proposals_table_name("classic"), ["proposal_id", "search_vector"])
    props = props.sort_by("proposal_id")
    column = props.column("search_vector")
    return fixed_list_to_numpy(column.drop_null(), 104), column.null_count


def _snapshot(store_path):
    """Everything that must be identical between two ingests of the same data."""
    store = FeatureStore(str(store_path))
    frames = store.table(FRAMES).to_arrow().select(["frame_id", "split", "label", "embryo_id", "gt_boxes"])
    props = store.table(proposals_table_name("classic")).to_arrow()
    return {
        "frames": sorted(frames.column("frame_id").to_pylist()),
        "n_frames": frames.num_rows,
        "proposals": sorted(props.column("proposal_id").to_pylist()),
        "n_proposals": props.num_rows,
        "labels": dict(zip(props.column("proposal_id").to_pylist(), props.column("weak_label").to_pylist())),
        "log": store.count(INGEST_LOG),
    }


@pytest.fixture(scope="module")
def ingested(tiny_dataset, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "db"
    summary = ingest(tiny_dataset, store, FAST)
    return store, summary


def test_rows_and_weak_labels(ingested, tiny_dataset):
    store_path, summary = ingested
    n_images = len(list(tiny_dataset.glob("*/*/*.png")))
    assert summary.frames_found == n_images == summary.frames_added and summary.frames_failed == 0
    snap = _snapshot(store_path)
    assert snap["n_frames"] == n_images and snap["log"] == n_images
    assert len(set(snap["proposals"])) == snap["n_proposals"] == summary.proposals_added > 0
    store = FeatureStore(str(store_path))
    props = store.table(proposals_table_name("classic")).to_arrow()
    label = np.array(props.column("weak_label").to_pylist())
    frame_label = np.array(props.column("frame_label").to_pylist())
    assert (label[frame_label == "normal"] == 0).all()  # CS-free frames give negatives too
    assert (label[frame_label == "abnormal"] == 1).any()
    vectors = fixed_list_to_numpy(props.column("vector"), 104)
    assert vectors.shape == (props.num_rows, 104) and np.isfinite(vectors).all()
    search = fixed_list_to_numpy(props.column("search_vector"), 104)  # filled by the search space fitted at the end
    assert props.column("search_vector").null_count == 0 and np.allclose(np.linalg.norm(search, axis=1), 1.0, atol=1e-5)
    assert summary.search_space["fitted"] and summary.search_space["rows_filled"] == props.num_rows
    # where the run's wall time went besides the frames: until the first frame was done, and the search space
    assert 0 < summary.first_frame_seconds < summary.seconds
    assert 0 < summary.search_space["seconds"] < summary.seconds - summary.first_frame_seconds


def test_summary_text_says_where_the_time_went(ingested):
    from cli.ingest_cmd import ingest_summary_text

    _, summary = ingested
    text = ingest_summary_text(summary.to_dict())
    assert f"the first frame done after {summary.first_frame_seconds:.1f} s" in text
    assert f"rows filled in {summary.search_space['seconds']:.1f} s" in text


def test_schemas_are_explicit(ingested):
    store = FeatureStore(str(ingested[0]))
    assert store.table(FRAMES).schema.names == frames_schema().names
    vector_type = store.table(proposals_table_name("classic")).schema.field("vector").type
    assert vector_type == pa.list_(pa.float32(), 104)
    info = store.encoders()["classic"]
    assert info["dim"] == 104 and info["weights_hash"] == "none"


def test_stored_frame_round_trips(ingested, tiny_dataset):
    from cs_features.io import decode_png, read_gray

    store = FeatureStore(str(ingested[0]))
    rows = (store.table(FRAMES).search().select(["path", "low_texture_mask", "width", "height"])
            .with_row_id(True).limit(2).to_arrow())
    images = store.table(FRAMES).fetch_blobs("image", rows.column("_rowid").to_pylist())
    masks = rows.column("low_texture_mask").to_pylist()
    for path, blob, mask in zip(rows.column("path").to_pylist(), images.to_pylist(), masks):
        np.testing.assert_array_equal(decode_png(blob), read_gray(path))
        assert decode_png(mask).shape == read_gray(path).shape


def test_reingest_adds_nothing(ingested, tiny_dataset):
    store_path, _ = ingested
    before = _snapshot(store_path)
    summary = ingest(tiny_dataset, store_path, FAST)
    assert summary.frames_added == 0 and summary.frames_skipped == before["n_frames"]
    assert _snapshot(store_path) == before


def test_other_settings_are_refused(ingested, tiny_dataset):
    from cs_features.errors import ConfigError

    other = IngestConfig(workers=1,
                         settings=StoreSettings(proposals=ProposalConfig(method="ss-fast", max_proposals=60)))
    with pytest.raises(ConfigError, match="proposals"):
        ingest(tiny_dataset, ingested[0], other)


def test_other_settings_are_refused_before_any_worker_starts(ingested, tiny_dataset, monkeypatch):
    from cs_features.errors import ConfigError
    from cs_features.ingest import job

    def no_workers(config, frames):
        raise AssertionError(f"{config.workers} workers started for {frames} frames before the settings check")

    monkeypatch.setattr(job, "frame_workers", no_workers)
    settings = StoreSettings(proposals=ProposalConfig(method="ss-fast", max_proposals=60))
    other = IngestConfig(workers=2, settings=settings)
    with pytest.raises(ConfigError, match="proposals"):
        ingest(tiny_dataset, ingested[0], other)


def test_workers_start_while_the_parent_builds_its_pipeline(tiny_dataset, tmp_path, monkeypatch):
    import multiprocessing

    from cs_features.ingest import job

    before = {child.pid for child in multiprocessing.active_children()}  # another test's pool may still be exiting
    during: list[int] = []

    def build(config):
        during.append(len({child.pid for child in multiprocessing.active_children()} - before))
        return make_pipeline(config)

    make_pipeline = job.make_pipeline
    monkeypatch.setattr(job, "make_pipeline", build)
    summary = ingest(tiny_dataset, tmp_path / "db", replace(FAST, workers=2))
    assert during == [2], f"worker processes running while the parent built its pipeline: {during}"
    assert summary.frames_added == len(list(tiny_dataset.glob("*/*/*.png"))) and summary.frames_failed == 0


def _cli_ingest(dataset, store, *extra):
    cmd = [sys.executable, "-m", "cli.main", "ingest", str(dataset), "--store", str(store), "--workers", "1",
           "--proposals", "ss-single", "--max-proposals", "60", "--batch-frames", "2", "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.getcwd())


def test_resume_after_kill_matches_uninterrupted(ingested, tiny_dataset, tmp_path):
    store = tmp_path / "killed"
    proc = _cli_ingest(tiny_dataset, store)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once some, but not all, frames are committed
        try:
            done = FeatureStore(str(store)).count(INGEST_LOG)
        except Exception:
            done = 0
        if done >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = FeatureStore(str(store)).count(INGEST_LOG)
    assert 0 < partial < 18
    rerun = _cli_ingest(tiny_dataset, store)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert _snapshot(store) == _snapshot(ingested[0])
    resumed, missing = _search_vectors(store)
    uninterrupted, _ = _search_vectors(ingested[0])
    assert missing == 0 and np.allclose(resumed, uninterrupted, atol=1e-6)  # the space is fitted on the same rows


def test_two_concurrent_ingests_never_duplicate(ingested, tiny_dataset, tmp_path):
    store = tmp_path / "shared"
    procs = [_cli_ingest(tiny_dataset, store) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert _snapshot(store) == _snapshot(ingested[0])
    shared, missing = _search_vectors(store)
    assert missing == 0 and np.allclose(shared, _search_vectors(ingested[0])[0], atol=1e-6)


def test_settings_override_is_recorded_and_validated(tiny_dataset, tmp_path):
    from cs_features.errors import ConfigError

    settings = FAST.settings.merged({"preprocess": {"clahe_clip": 3.0}, "weak_labels": {"positive_iou": 0.3}})
    assert settings.preprocess.clahe_clip == 3.0 and settings.weak_labels.positive_iou == 0.3
    assert settings.proposals.method == "ss-single"  # untouched sections keep their values
    config = replace(FAST, settings=settings)
    ingest(tiny_dataset, tmp_path / "s", config)
    stored = FeatureStore(str(tmp_path / "s")).get_meta("settings")
    assert stored["preprocess"]["clahe_clip"] == 3.0 and stored["weak_labels"]["positive_iou"] == 0.3
    with pytest.raises(ConfigError, match="unknown texture setting.*windw.*accepted"):
        FAST.settings.merged({"texture": {"windw": 3}})
    with pytest.raises(ConfigError, match="unknown settings section"):
        FAST.settings.merged({"colour": {}})
