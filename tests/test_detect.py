"""`csf detect`: the chained screen on synthetic frames with planted strings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cs_features.detect import DetectConfig, collect_images, detect, load_detector
from cs_features.errors import ConfigError
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings


@pytest.fixture(scope="module")
def models(tiny_dataset, tmp_path_factory):
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head

    root = tmp_path_factory.mktemp("detect")
    store = str(root / "store")
    settings = StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=150))
    ingest(tiny_dataset, store, IngestConfig(workers=1, settings=settings))
    train_from_store(store, root / "ae", AnomalyFilter(epochs=2, img_size=64, batch_size=8, seed=0))
    train_head(store, "logreg", root / "head", encoder="classic")
    return root


def _with_threshold(models, tmp_path, threshold):
    ae = tmp_path / "ae"
    shutil.copytree(models / "ae", ae)
    config = json.loads((ae / "config.json").read_text())
    config["threshold"] = threshold
    (ae / "config.json").write_text(json.dumps(config))
    return ae


def test_detect_finds_planted_strings(models, tiny_dataset, tmp_path):
    summary = detect([tiny_dataset / "test" / "abnormal"], models / "ae", models / "head", tmp_path / "out",
                     DetectConfig(gate=False, top_k=5))
    frames = json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]
    from cs_features.boxes import iou_matrix
    from cs_features.datasets import read_yolo_labels

    hits = []
    for frame in frames:
        truth = read_yolo_labels(tiny_dataset / "labels" / f"{frame['stem']}.txt", frame["width"], frame["height"])
        found = np.array([b["box"] for b in frame["boxes"]]).reshape(-1, 4)
        hits.append(len(found) > 0 and iou_matrix(truth, found).max() >= 0.25)
    assert summary.frames == len(frames) > 0 and summary.failed == 0
    assert np.mean(hits) >= 0.5, hits
    boxes = [b for frame in frames for b in frame["boxes"]]
    assert boxes and all(0 < b["attachment"] <= 1 and 0 < b["transience"] <= 1 for b in boxes)
    # a box's p is the head's times both priors' factors, its rank score p * IoU (rounded to 4 places in the file)
    assert all(abs(b["p"] - b["head_p"] * b["attachment"] * b["transience"]) < 1e-3 for b in boxes)
    assert all(abs(b["score"] - b["p"] * b["iou"]) < 1e-3 for b in boxes)
    assert all(f["frame_score"] == max((b["p"] for b in f["boxes"]), default=0.0) for f in frames)


def test_detect_can_rank_without_the_attachment_prior(models, tiny_dataset, tmp_path):
    from cs_features.attachment import AttachmentPrior

    detect([tiny_dataset / "test" / "abnormal"], models / "ae", models / "head", tmp_path / "out",
           DetectConfig(gate=False, attachment=AttachmentPrior(enabled=False)))
    frames = json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]
    boxes = [b for frame in frames for b in frame["boxes"]]
    assert boxes and all(b["attachment"] == 1.0 for b in boxes)


def test_a_line_in_every_frame_of_its_embryo_loses_its_score_a_frame_alone_keeps_it(models, tiny_dataset, tmp_path):
    from cs_features.transience import TransiencePrior

    # three copies of one frame make one embryo's time-lapse in which every line persists; the same frame
    # under another embryo's name is alone in its embryo
    source = next((tiny_dataset / "test" / "abnormal").glob("*.png"))
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("E7_f00", "E7_f01", "E7_f02", "E8_f00"):
        shutil.copy(source, folder / f"{name}.png")
    detect([folder], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False, top_k=20))
    frames = {f["stem"]: f for f in json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]}
    floor = TransiencePrior().floor
    for stem in ("E7_f00", "E7_f01", "E7_f02"):
        assert frames[stem]["boxes"] and all(b["transience"] == floor for b in frames[stem]["boxes"]), stem
    assert frames["E8_f00"]["boxes"] and all(b["transience"] == 1.0 for b in frames["E8_f00"]["boxes"])
    detect([folder], models / "ae", models / "head", tmp_path / "plain",
           DetectConfig(gate=False, top_k=20, transience=TransiencePrior(enabled=False)))
    plain = {f["stem"]: f for f in json.loads((tmp_path / "plain" / "detections.json").read_text())["frames"]}
    assert all(b["transience"] == 1.0 for f in plain.values() for b in f["boxes"])
    # without the prior the copies rank their boxes like the frame alone
    assert [b["box"] for b in plain["E7_f01"]["boxes"]] == [b["box"] for b in frames["E8_f00"]["boxes"]]


def test_gate_skips_frames_under_the_threshold(models, tiny_dataset, tmp_path):
    first = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "probe",
                   DetectConfig(gate=False))
    scores = [f["ae_score"] for f in json.loads((tmp_path / "probe" / "detections.json").read_text())["frames"]]
    threshold = float(np.median(scores))
    ae = _with_threshold(models, tmp_path, threshold)
    summary = detect([tiny_dataset / "test"], ae, models / "head", tmp_path / "gated", DetectConfig(gate=True))
    frames = json.loads((tmp_path / "gated" / "detections.json").read_text())["frames"]
    for frame in frames:
        assert frame["flagged"] == (frame["ae_score"] >= threshold)
        assert frame["localized"] == frame["flagged"]
        if not frame["flagged"]:
            assert frame["boxes"] == [] and not frame["cs_positive"]
    assert 0 < summary.localized < summary.frames == first.frames
    assert summary.to_dict()["localizer_skipped"] == summary.frames - summary.localized


def test_output_files_validate(models, tiny_dataset, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    detect([tiny_dataset / "test"], models / "ae", models / "head", out, DetectConfig(gate=False, top_k=3))
    coco = COCO(str(out / "detections_coco.json"))
    detections = json.loads((out / "detections.json").read_text())["frames"]
    assert len(coco.getImgIds()) == len(detections)
    for image in coco.loadImgs(coco.getImgIds()):
        assert image["file_name"].endswith(".png")
    assert len(coco.getAnnIds()) == sum(len(f["boxes"]) for f in detections) > 0
    for frame in detections:
        lines = (out / "yolo" / f"{frame['stem']}.txt").read_text().splitlines()
        assert len(lines) == len(frame["boxes"]) <= 3
        assert (out / "overlays" / f"{frame['stem']}.png").is_file()


def test_bad_frames_are_reported_and_skipped(models, tiny_dataset, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = next((tiny_dataset / "test" / "abnormal").glob("*.png"))
    shutil.copy(good, folder / "E9_f00.png")
    (folder / "E9_f01.png").write_text("not an image")
    summary = detect([folder], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False))
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert summary.frames == 1 and summary.failed == 1  # a file that failed is no frame of its embryo
    assert [f["stem"] for f in written["frames"]] == ["E9_f00"] and written["frames"][0]["error"] is None
    assert written["failed"][0]["stem"] == "E9_f01" and "not an image" in written["failed"][0]["reason"]
    assert summary.embryos["E9"]["frames"] == 1


def test_models_that_disagree_are_refused(models, tmp_path):
    ae = tmp_path / "ae"
    shutil.copytree(models / "ae", ae)
    config = json.loads((ae / "config.json").read_text())
    config["store_settings"]["preprocess"]["clahe_clip"] = 9.0
    (ae / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="preprocess"):
        load_detector(ae, models / "head")


def test_head_made_with_other_encoder_settings_is_refused(models, tmp_path):
    """A head trained on vectors of another version of the encoder (same name, no weights) is refused."""
    head = tmp_path / "head"
    shutil.copytree(models / "head", head)
    config = json.loads((head / "config.json").read_text())
    info = config["provenance"]["encoder_info"]
    assert info["name"] == "classic" and "settings" in info
    info["settings"] = {**info["settings"], "version": 1}
    (head / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"settings\.version: 1 vs 2"):
        load_detector(models / "ae", head)
    load_detector(models / "ae", models / "head")  # the head as trained loads


def test_workers_load_their_models_while_the_parent_loads_its_own(models, tiny_dataset, tmp_path, monkeypatch):
    import multiprocessing

    from cs_features.detect import run

    before = {child.pid for child in multiprocessing.active_children()}  # another test's pool may still be exiting
    during: list[int] = []

    def load(*args, **kwargs):
        during.append(len({child.pid for child in multiprocessing.active_children()} - before))
        return load_detector(*args, **kwargs)

    monkeypatch.setattr(run, "load_detector", load)
    summary = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "out", DetectConfig(),
                     workers=2)
    assert during == [2], f"worker processes running while the parent loaded its models: {during}"
    assert summary.workers == 2 and summary.frames == len(list((tiny_dataset / "test").rglob("*.png")))


def test_collect_images(tmp_path):
    with pytest.raises(ValueError, match="no images found"):
        collect_images([tmp_path])


def test_workers_give_the_same_outputs_as_one_process(models, tiny_dataset, tmp_path):
    """Embryos run side by side in worker processes; the files must not show it."""
    one = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "one", DetectConfig(gate=False))
    two = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "two", DetectConfig(gate=False),
                 workers=2)
    assert (one.workers, two.workers) == (1, 2) and len(two.embryos) > 1
    first, second = (json.loads((tmp_path / name / "detections.json").read_text()) for name in ("one", "two"))
    assert first["frames"] and [f["stem"] for f in first["frames"]] == [f["stem"] for f in second["frames"]]
    assert json.dumps(first["frames"]) == json.dumps(second["frames"])
    for name in ("detections.csv", "embryos.csv", "detections_coco.json"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text(), name
    overlays = sorted(p.name for p in (tmp_path / "one" / "overlays").iterdir())
    assert overlays == sorted(p.name for p in (tmp_path / "two" / "overlays").iterdir()) and overlays
    for name in overlays[:3]:
        pictures = [(tmp_path / run / "overlays" / name).read_bytes() for run in ("one", "two")]
        assert pictures[0] == pictures[1], name
    assert sum(two.stage_seconds.values()) > 0 and two.frames == one.frames
