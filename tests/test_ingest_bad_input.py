"""Bad input during ingest: each file is recorded with its reason; good files still land."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from cs_features.errors import DataLeakageError
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import ERRORS, FRAMES, FeatureStore, proposals_table_name

CONFIG = IngestConfig(workers=1, settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=30)),
                      max_pixels=700 * 700)


def _frame(seed=0, size=96):
    rng = np.random.default_rng(seed)
    return np.clip(120 + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


@pytest.fixture()
def messy(tmp_path):
    root = tmp_path / "data"
    for folder in ("train/normal", "val/normal", "val/abnormal", "test/normal", "labels"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(_frame(1)).save(root / "train/normal/E1_f00.png")                 # good
    tifffile.imwrite(root / "train/normal/E1_f01.tif", (_frame(2).astype(np.uint16) * 257))  # 16-bit: good
    rgba = np.dstack([np.repeat(_frame(3)[..., None], 3, 2), np.full((96, 96), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "train/normal/E1_f02.png")               # RGBA: good
    (root / "train/normal/E1_f03.png").write_bytes(b"")                                 # empty
    (root / "train/normal/E1_f04.png").write_text("not an image at all")                # not an image
    good = (root / "train/normal/E1_f00.png").read_bytes()
    Image.fromarray(_frame(9, 200)).save(root / "train/normal/E1_f05.png")
    cut = (root / "train/normal/E1_f05.png").read_bytes()
    (root / "train/normal/E1_f05.png").write_bytes(cut[: len(cut) // 2])                # truncated
    Image.fromarray(_frame(4, 20)).save(root / "train/normal/E1_f06.png")              # smaller than window
    Image.fromarray(_frame(5, 800)).save(root / "train/normal/E1_f07.png")             # too large
    Image.fromarray(_frame(6)).save(root / "val/abnormal/E2_f00.png")
    (root / "labels/E2_f00.txt").write_text("0 0.5 0.5 0.3\n")                           # malformed YOLO
    Image.fromarray(_frame(7)).save(root / "val/abnormal/E2_f01.png")
    (root / "labels/E2_f01.txt").write_text("0 0.9 0.5 0.5 0.2\n")                       # box outside image
    Image.fromarray(_frame(8)).save(root / "val/abnormal/E2_f02.png")                  # CS frame, no labels
    Image.fromarray(_frame(10)).save(root / "test/normal/E3_f00.png")
    (root / "labels/E9_f00.txt").write_text("0 0.5 0.5 0.1 0.1\n")                       # label without image
    assert good
    return root


def test_bad_files_are_recorded_and_good_ones_ingested(messy, tmp_path):
    store_path = tmp_path / "store"
    summary = ingest(messy, store_path, CONFIG)
    store = FeatureStore(str(store_path))
    errors = {row["path"].split("/")[-1]: (row["stage"], row["reason"])
              for row in store.table(ERRORS).to_arrow().to_pylist()}
    assert errors["E1_f03.png"] == ("read", "the file is empty (0 bytes)")
    assert errors["E1_f04.png"][0] == "read" and "not an image" in errors["E1_f04.png"][1]
    assert "truncated" in errors["E1_f05.png"][1]
    assert errors["E1_f06.png"][0] == "texture" and "smaller than the 31x31 GLCM window" in errors["E1_f06.png"][1]
    assert "more than the limit" in errors["E1_f07.png"][1]
    assert errors["E2_f00.png"][0] == "labels" and "expected 5 fields" in errors["E2_f00.png"][1]
    assert "outside the image" in errors["E2_f01.png"][1]
    assert errors["E9_f00.txt"] == ("labels", "label file has no matching image")
    ingested = sorted(store.table(FRAMES).to_arrow().column("stem").to_pylist())
    assert ingested == ["E1_f00", "E1_f01", "E1_f02", "E2_f02", "E3_f00"]
    assert summary.frames_failed == 7 and summary.frames_added == 5
    assert any("E2_f02" in w and "without boxes" in w for w in summary.warnings)
    props = store.table(proposals_table_name("classic")).to_arrow()
    cs_no_boxes = [lab for lab, frame_label in zip(props.column("weak_label").to_pylist(),
                                                   props.column("frame_label").to_pylist())
                   if frame_label == "abnormal"]
    assert cs_no_boxes and set(cs_no_boxes) == {-1}


def test_cli_exit_code_non_zero_on_bad_files(messy, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["ingest", str(messy), "--store", str(tmp_path / "s"), "--workers", "1",
                                      "--proposals", "ss-single", "--max-proposals", "30"])
    assert result.exit_code == 1
    assert "6 failed" in result.output and "E1_f03.png" in result.output


def test_same_image_in_two_splits_refused_before_writing(messy, tmp_path):
    shutil.copy(messy / "train/normal/E1_f00.png", messy / "test/normal/E3_f01.png")
    store_path = tmp_path / "store"
    with pytest.raises(DataLeakageError, match="identical image"):
        ingest(messy, store_path, CONFIG)
    assert not store_path.exists() or not FeatureStore(str(store_path), create=True).table_names()


def test_embryo_in_two_splits_refused_and_existing_store_untouched(messy, tmp_path):
    store_path = tmp_path / "store"
    ingest(messy, store_path, CONFIG)
    before = FeatureStore(str(store_path)).count(FRAMES)
    Image.fromarray(_frame(11)).save(messy / "test/normal/E1_f09.png")
    with pytest.raises(DataLeakageError, match="E1 in test\\+train"):
        ingest(messy, store_path, CONFIG)
    assert FeatureStore(str(store_path)).count(FRAMES) == before


@pytest.fixture()
def no_network(monkeypatch):
    """Every attempt to resolve a host or open a connection is recorded and refused at once."""
    import socket

    attempts = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append((what, args))
            raise OSError(f"network access in a test: {what}")
        return refused

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    return attempts


@pytest.mark.parametrize("weights, message", [
    (None, "'dinov3-vits16' needs a weights file.*Meta's DINOv3 release page.*--weights PATH"),
    ("nope/dinov3_vits16.pth", "weights file '.*nope/dinov3_vits16.pth' does not exist"),
], ids=["no-weights", "missing-file"])
def test_missing_dinov3_weights_fail_fast_before_writing(messy, tmp_path, no_network, weights, message):
    # fail fast = refused before anything is written, with no download tried (the licence makes users fetch
    # the weights themselves); sockets are closed here, so a download attempt is recorded, not waited for
    from cs_features.errors import WeightsError

    store_path = tmp_path / "store"
    if weights is not None:
        weights = str(tmp_path / weights)
    with pytest.raises(WeightsError, match=message):
        ingest(messy, store_path, IngestConfig(encoder="dinov3-vits16", weights=weights, workers=1))
    assert not store_path.exists()
    assert no_network == []
