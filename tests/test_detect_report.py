"""`csf detect` reports honestly: failed files, grading against labels, CSV reports, overlays, timelines."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from cs_features.detect import DetectConfig, FrameDetection, detect
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings


@pytest.fixture(scope="module")
def models(tiny_dataset, tmp_path_factory):
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head

    root = tmp_path_factory.mktemp("detect_report")
    store = str(root / "store")
    settings = StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=150))
    ingest(tiny_dataset, store, IngestConfig(workers=1, settings=settings))
    train_from_store(store, root / "ae", AnomalyFilter(epochs=1, img_size=64, batch_size=8, seed=0))
    train_head(store, "logreg", root / "head", encoder="classic")
    return root


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _truth(tiny_dataset, stem, width, height):
    from cs_features.datasets import read_yolo_labels

    return read_yolo_labels(tiny_dataset / "labels" / f"{stem}.txt", width, height)


def test_broken_files_are_listed_as_failed_and_never_embryos(models, tiny_dataset, tmp_path):
    from cli.detect_cmd import detect_summary_text

    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted((tiny_dataset / "test" / "abnormal").glob("*.png"))[:2]
    for path in good:
        shutil.copy(path, folder / path.name)
    (folder / "E0097_f00.png").write_bytes(good[0].read_bytes()[:600])  # truncated PNG
    (folder / "E0098_f00.png").write_text("not an image")  # a fake PNG
    (folder / "E0099_notes.txt").write_text("frame notes")
    summary = detect([folder], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False))
    reasons = {f["stem"]: f["reason"] for f in summary.failures}
    assert summary.frames == 2 and summary.failed == 2
    assert "truncated" in reasons["E0097_f00"] and "not an image" in reasons["E0098_f00"]
    # a file that is no image (notes, a dataset's labels.csv) is skipped and listed, not a failure
    notes = {"path": str(folder / "E0099_notes.txt"), "reason": "not an image file (suffix '.txt')"}
    assert summary.skipped_files == [notes]
    embryo = good[0].stem.split("_")[0]
    assert list(summary.embryos) == [embryo] and summary.embryos[embryo]["frames"] == 2
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert sorted(f["stem"] for f in written["failed"]) == ["E0097_f00", "E0098_f00"]
    assert written["skipped"] == summary.skipped_files
    assert sorted(f["stem"] for f in written["frames"]) == sorted(p.stem for p in good)
    assert [r["embryo"] for r in _rows(tmp_path / "out" / "embryos.csv")] == [embryo]
    assert sorted(p.name for p in (tmp_path / "out" / "timelines").iterdir()) == [f"{embryo}.png"]
    text = detect_summary_text(summary.to_dict())
    assert "2 files failed" in text and "of 1 detected CS" in text
    assert all(str(folder / name) in text for name in ("E0097_f00.png", "E0098_f00.png", "E0099_notes.txt"))
    assert "skipped 1 file that is not an image" in text


def test_a_labelled_dataset_folder_is_graded_as_sklearn_and_pycocotools_grade_it(models, tiny_dataset, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = tmp_path / "out"
    summary = detect([tiny_dataset], models / "ae", models / "head", out, DetectConfig(gate=False))
    metrics = json.loads((out / "metrics.json").read_text())
    frames = json.loads((out / "detections.json").read_text())["frames"]
    truth = {f["stem"]: _truth(tiny_dataset, f["stem"], f["width"], f["height"]) for f in frames}
    y = np.array([len(truth[f["stem"]]) > 0 for f in frames], int)
    best_p = np.array([max((b["p"] for b in f["boxes"]), default=0.0) for f in frames])
    assert [f["frame_score"] for f in frames] == pytest.approx(best_p.tolist())
    assert metrics["frames"] == {"labelled": 18, "unlabelled": 0, "unlabelled_stems": [], "label_errors": {}}
    assert metrics["frame_level"]["auroc"] == pytest.approx(roc_auc_score(y, best_p))
    assert metrics["frame_level"]["average_precision"] == pytest.approx(average_precision_score(y, best_p))
    detected = best_p >= summary.positive_p  # the head's own decision, chosen on its val split
    assert summary.positive_p == json.loads((models / "head" / "config.json").read_text())["frame_decision"][
        "positive_p"] and summary.positive_p_source.startswith("the head's, chosen on its val split")
    assert metrics["confusion"]["frames"]["truth CS"]["detected CS"] == int((detected & (y == 1)).sum())
    assert metrics["confusion"]["frames"]["truth no CS"]["detected CS"] == int((detected & (y == 0)).sum())
    assert metrics["embryo_level"]["n"] == 6 and summary.graded["labelled_frames"] == 18

    detections = json.loads((out / "detections_coco.json").read_text())
    gt = COCO()
    gt.dataset = {"images": detections["images"], "categories": detections["categories"], "annotations": []}
    for image in detections["images"]:
        stem = image["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for x1, y1, x2, y2 in truth[stem].tolist():
            gt.dataset["annotations"].append({"id": len(gt.dataset["annotations"]) + 1, "image_id": image["id"],
                                              "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                              "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    gt.createIndex()
    evaluation = COCOeval(gt, gt.loadRes(detections["annotations"]), "bbox")
    evaluation.params.iouThrs = np.array([0.25, 0.5])
    evaluation.evaluate()
    evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, 0, 0, -1]  # IoU x recall, area "all", 100 detections
    assert metrics["boxes"]["strings"] == len(gt.dataset["annotations"]) > 0
    assert metrics["boxes"]["ap25"] == pytest.approx(precision[0].mean(), abs=1e-9)
    assert metrics["boxes"]["ap50"] == pytest.approx(precision[1].mean(), abs=1e-9)
    assert metrics["boxes"]["ap25"] > 0  # something to compare: the head finds strings in its own dataset
    written = json.loads((out / "ground_truth_coco.json").read_text())["annotations"]
    expected = [(a["image_id"], a["bbox"]) for a in gt.dataset["annotations"]]
    assert [(a["image_id"], a["bbox"]) for a in written] == expected


def _flat_copy(tiny_dataset, folder, beside: bool):
    """The test split's frames in one folder with a labels.csv, their YOLO files in labels/ or beside them."""
    (folder if beside else folder / "labels").mkdir(parents=True)
    rows = ["stem,label"]
    for path in sorted((tiny_dataset / "test").rglob("*.png")):
        shutil.copy(path, folder / path.name)
        label = tiny_dataset / "labels" / f"{path.stem}.txt"
        shutil.copy(label, (folder if beside else folder / "labels") / label.name)
        rows.append(f"{path.stem},{path.parent.name}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("beside", [False, True], ids=["labels-folder", "labels-beside"])
def test_a_flat_dataset_folder_is_graded_and_its_csv_skipped(models, tiny_dataset, tmp_path, beside):
    folder = tmp_path / "flat"
    _flat_copy(tiny_dataset, folder, beside)
    summary = detect([folder], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False))
    reference = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "ref",
                       DetectConfig(gate=False))
    assert summary.failed == 0 and summary.skipped_files == [
        {"path": str(folder / "labels.csv"), "reason": "not an image file (suffix '.csv')"}]
    assert summary.frames == reference.frames == 6
    assert summary.graded == reference.graded and summary.graded["labelled_frames"] == 6
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert written["labels"] == (["label files beside the frames"] if beside else [str(folder / "labels")])


def test_a_yolo_images_folder_is_graded_with_its_labels_folder_and_no_file_means_cs_free(models, tiny_dataset,
                                                                                            tmp_path):
    from cs_features.detect.truth import find_label_dirs

    images, labels = tmp_path / "yolo" / "images" / "test", tmp_path / "yolo" / "labels" / "test"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for path in sorted((tiny_dataset / "test").rglob("*.png")):
        shutil.copy(path, images / path.name)
        label = tiny_dataset / "labels" / f"{path.stem}.txt"
        if label.read_text().strip():  # Roboflow and Ultralytics exports write no file for a frame without boxes
            shutil.copy(label, labels / label.name)
    assert find_label_dirs([images]) == [labels] and find_label_dirs([tmp_path]) == []
    summary = detect([images], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False))
    reference = detect([tiny_dataset / "test"], models / "ae", models / "head", tmp_path / "ref",
                       DetectConfig(gate=False))
    assert 0 < len(list(labels.iterdir())) < 6 and summary.graded == reference.graded
    assert summary.graded["labelled_frames"] == 6


def test_a_store_split_is_run_and_graded_against_the_store(models, tiny_dataset, tmp_path):
    from cs_features.errors import ConfigError, InputError
    from cs_features.store import FRAMES, FeatureStore

    store = str(models / "store")
    config = DetectConfig(gate=False)
    summary = detect([tiny_dataset], models / "ae", models / "head", tmp_path / "out", config, store=store,
                     split="val")
    reference = detect([tiny_dataset / "val"], models / "ae", models / "head", tmp_path / "ref", config)
    val = FeatureStore(store).read(FRAMES, ["stem", "split"], where="split = 'val'").column("stem").to_pylist()
    frames = json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]
    assert sorted(f["stem"] for f in frames) == sorted(val) and summary.frames == len(val) > 0
    reference_frames = json.loads((tmp_path / "ref" / "detections.json").read_text())["frames"]
    expected = {f["stem"]: f["truth_boxes"] for f in reference_frames}
    assert {f["stem"]: f["truth_boxes"] for f in frames} == expected  # the store's labels are the label files'
    assert summary.graded == reference.graded
    assert summary.selection["other_splits"] == {"test": 6, "train": 18 - 6 - len(val)}
    assert summary.selection["not_in_store"] == 0 and summary.skipped == 0
    with pytest.raises(ConfigError, match="no frame in split 'validation'; its splits: test, train, val"):
        detect([tiny_dataset], models / "ae", models / "head", tmp_path / "x", config, store=store, split="validation")
    with pytest.raises(ConfigError, match="--labels and --store"):
        detect([tiny_dataset], models / "ae", models / "head", tmp_path / "x", config, store=store,
               labels=tiny_dataset / "labels")
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["detect", str(tiny_dataset), "--ae", str(models / "ae"), "--head",
                                      str(models / "head"), "--out", str(tmp_path / "cli"), "--store", store,
                                      "--split", "val", "--no-gate"])
    assert result.exit_code == 0, result.output
    assert f"split val of store {store}: {len(val)} frames run; left out: 6 in test" in " ".join(result.output.split())
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text()) == json.loads(
        (tmp_path / "out" / "metrics.json").read_text())
    stranger = tmp_path / "stranger.png"
    stranger.write_bytes(b"\x89PNG not a frame of the store")
    with pytest.raises(InputError, match="none of the 1 images given is a 'test' frame .*1 not in the store"):
        detect([stranger], models / "ae", models / "head", tmp_path / "x", config, store=store)


def test_the_frame_decision_is_chosen_on_val_frames_scored_as_detect_scores_them(models, tiny_dataset, tmp_path):
    from cs_features.heads import load_head
    from cs_features.heads.decision import FrameDecision, choose_frame_decision, frame_scores
    from cs_features.heads.training import EvalSettings, load_split_data
    from cs_features.store import FRAMES, FeatureStore

    head = load_head(models / "head")
    data = load_split_data(FeatureStore(str(models / "store")), "classic", "val")
    scores = frame_scores(head, data, EvalSettings())
    summary = detect([tiny_dataset / "val"], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False))
    detected = {f["stem"]: f["frame_score"] for f in
                json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]}
    rows = FeatureStore(str(models / "store")).read(FRAMES, ["frame_id", "stem"]).to_pylist()
    stem = {row["frame_id"]: row["stem"] for row in rows}
    assert len(detected) == len(scores) > 0 and set(detected) == {stem[f["frame_id"]] for f in data.frames}
    assert [detected[stem[f["frame_id"]]] for f in data.frames] == pytest.approx(scores.tolist(), abs=1e-4)

    y = np.array([f["label"] == "abnormal" for f in data.frames])
    chosen = choose_frame_decision(head, data, EvalSettings(), FrameDecision(sensitivity=1.0))
    assert chosen["chosen"] and chosen["cs_kept"] == y.sum() and (scores[y] >= chosen["positive_p"]).all()
    below = scores[scores < scores[y].min()]  # halfway from the lowest CS frame to the next lower frame
    assert chosen["positive_p"] == pytest.approx((scores[y].min() + below.max()) / 2 if below.size
                                                 else scores[y].min(), abs=1e-6)
    assert summary.positive_p == head.frame_decision_["positive_p"]
    given = detect([tiny_dataset / "val"], models / "ae", models / "head", tmp_path / "given",
                   DetectConfig(gate=False, positive_p=0.9))
    assert given.positive_p == 0.9 and given.positive_p_source == "given"
    assert given.cs_positive_frames == sum(s >= 0.9 for s in detected.values())

    old = tmp_path / "old_head"  # a head saved before the decision was chosen: 0.5
    shutil.copytree(models / "head", old)
    config = json.loads((old / "config.json").read_text())
    del config["frame_decision"]
    (old / "config.json").write_text(json.dumps(config))
    before = detect([tiny_dataset / "val"], models / "ae", old, tmp_path / "before", DetectConfig(gate=False))
    assert before.positive_p == 0.5 and "saved without a frame decision" in before.positive_p_source


def test_a_frame_decision_that_would_call_every_frame_is_not_taken():
    from types import SimpleNamespace

    from cs_features.heads.decision import choose_frame_decision
    from cs_features.heads.training import EvalSettings

    class Snapshot:  # two frames whose boxes all have p 0 (the priors' factors 0)
        test = SimpleNamespace(X=np.zeros((2, 3), np.float32), box=np.array([[0, 0, 10, 10], [5, 5, 20, 20]]))
        frames = [{"frame_id": "a", "label": "abnormal"}, {"frame_id": "b", "label": "normal"}]
        groups = {"a": np.array([0]), "b": np.array([1])}

        def test_rank_factors(self, settings):
            return np.zeros(2)

        def test_region_score(self, head, p, iou, settings):
            return p * iou

        def test_framing(self, framing):
            return None

    head = SimpleNamespace(predict=lambda X: (np.full(len(X), 0.9), np.full(len(X), 0.5)))
    chosen = choose_frame_decision(head, Snapshot(), EvalSettings())
    assert chosen["positive_p"] == 0.5 and not chosen["chosen"] and "score 0" in chosen["reason"]


def test_a_store_split_takes_its_embryos_and_frame_indices_from_the_store(models, tiny_dataset, tmp_path):
    """Files named without their embryo (a lab's export), the embryos given by the labels CSV at ingest."""
    rows = list(csv.DictReader((tiny_dataset / "manifest.csv").open()))
    folder = tmp_path / "flat"
    folder.mkdir()
    lines = ["stem,label,embryo_id,split,frame_index"]
    for k, row in enumerate(rows):
        shutil.copy(tiny_dataset / row["split"] / row["label"] / f"{row['stem']}.png", folder / f"img_{k:03d}.png")
        lines.append(f"img_{k:03d},{row['label']},{row['embryo_id']},{row['split']},{row['frame_index']}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    settings = StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=50))
    ingest(folder, str(tmp_path / "store"), IngestConfig(workers=1, settings=settings))
    summary = detect([folder], models / "ae", models / "head", tmp_path / "out", DetectConfig(gate=False),
                     store=str(tmp_path / "store"), split="test")
    test = [row for row in rows if row["split"] == "test"]
    assert sorted(summary.embryos) == sorted({row["embryo_id"] for row in test})  # not "img" from the names
    frames = json.loads((tmp_path / "out" / "detections.json").read_text())["frames"]
    expected = {f"img_{rows.index(row):03d}": (row["embryo_id"], int(row["frame_index"])) for row in test}
    assert {f["stem"]: (f["embryo_id"], f["frame_index"]) for f in frames} == expected
    cs_free = sum(row["label"] == "normal" for row in test)  # a CS frame labelled by the CSV alone has no boxes
    assert (summary.graded["labelled_frames"], summary.graded["unlabelled_frames"]) == (cs_free, len(test) - cs_free)


def test_per_embryo_report_with_an_unlabelled_frame(models, tiny_dataset, tmp_path):
    frames_dir = tiny_dataset / "test"
    stems = sorted(p.stem for p in frames_dir.rglob("*.png"))
    labels = tmp_path / "labels"
    shutil.copytree(tiny_dataset / "labels", labels)
    (labels / f"{stems[0]}.txt").unlink()
    out = tmp_path / "out"
    summary = detect([frames_dir], models / "ae", models / "head", out, DetectConfig(gate=False), labels=labels)
    frames = {f["stem"]: f for f in json.loads((out / "detections.json").read_text())["frames"]}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"]["unlabelled_stems"] == [stems[0]] and frames[stems[0]]["truth_boxes"] is None

    boxes = _rows(out / "detections.csv")
    assert len(boxes) == sum(len(f["boxes"]) for f in frames.values()) > 0
    for row in boxes:
        frame = frames[row["stem"]]
        assert int(row["frame_index"]) == int(row["stem"].rsplit("_f", 1)[1]) == frame["frame_index"]
        assert row["embryo"] == frame["embryo_id"] == row["stem"].split("_")[0]
        assert any([int(row[k]) for k in ("x1", "y1", "x2", "y2")] == b["box"] and float(row["p"]) == b["p"]
                   for b in frame["boxes"])

    embryos = {r["embryo"]: r for r in _rows(out / "embryos.csv")}
    assert sorted(embryos) == sorted({s.split("_")[0] for s in stems}) == sorted(summary.embryos)
    for embryo, row in embryos.items():
        mine = [f for f in frames.values() if f["embryo_id"] == embryo]
        cs = sorted(f["frame_index"] for f in mine if f["frame_score"] >= summary.positive_p)
        labelled = [f for f in mine if f["truth_boxes"] is not None]
        assert int(row["frames"]) == len(mine) and int(row["cs_frames_detected"]) == len(cs)
        assert (row["first_cs_frame"], row["last_cs_frame"]) == ((str(cs[0]), str(cs[-1])) if cs else ("", ""))
        assert float(row["max_frame_score"]) == pytest.approx(max(f["frame_score"] for f in mine), abs=1e-4)
        assert row["verdict"] == ("CS" if cs else "no CS")
        assert int(row["labelled_frames"]) == len(labelled)
        assert row["truth"] == ("CS" if any(f["truth_boxes"] for f in labelled) else "no CS")
    assert sorted(p.name for p in (out / "timelines").glob("*.png")) == [f"{e}.png" for e in sorted(embryos)]
    assert sorted(p.stem for p in (out / "overlays").glob("*.png")) == stems


def test_overlay_header_names_verdict_truth_and_only_the_boxes_that_count():
    from cs_features.detect.overlay import header_lines

    boxes = [{"box": [0, 0, 9, 9], "p": 0.3, "iou": 0.9, "score": 0.27},
             {"box": [5, 5, 20, 20], "p": 0.8, "iou": 0.2, "score": 0.16}]
    detection = FrameDetection("a/E1_f03.png", "E1_f03", "E1", frame_index=3, ae_score=0.2, flagged=True,
                               localized=True, boxes=boxes, frame_score=0.8, cs_positive=True, truth_boxes=[])
    drawn = [b for b in boxes if b["p"] >= 0.5]
    text = [line for line, _ in header_lines(detection, 0.1, 0.5, 0.5, drawn, labelled_run=True)]
    assert text[0] == "E1_f03  detected: CS (best p 0.80 >= 0.50)"
    assert text[1] == "truth: no CS"
    assert text[-1] == "red, boxes with p >= 0.50: #1 p 0.80"  # p, not p x IoU 0.16; the 0.3 box is not drawn
    detection.truth_boxes = None
    assert [line for line, _ in header_lines(detection, 0.1, 0.5, 0.5, drawn, True)][1] == \
        "truth: unknown (no label file)"
    # a decision chosen on val reads with three decimals, as the timeline and the terminal print it, or more where
    # a frame sits so close to it that three would read the wrong way round
    for score, threshold, verdict in [(0.3911, 0.3918, "no CS (best p 0.391 < 0.392)"),
                                      (0.8, 0.241633, "CS (best p 0.800 >= 0.242)"),
                                      (0.2417, 0.241633, "CS (best p 0.2417 >= 0.2416)"),
                                      (0.3915, 0.3918, "no CS (best p 0.391 < 0.392)"),
                                      (0.4996, 0.5, "no CS (best p 0.49 < 0.50)")]:
        detection.frame_score, detection.cs_positive = score, score >= threshold
        assert header_lines(detection, 0.1, threshold, threshold, [], True)[0][0] == f"E1_f03  detected: {verdict}"
    drawn = [{"box": [0, 0, 9, 9], "p": 0.2417}]
    assert header_lines(detection, 0.1, 0.241633, 0.241633, drawn, True)[-1][0] == \
        "red, boxes with p >= 0.2416: #1 p 0.2417"


def test_box_tags_never_overlap():
    from cs_features.detect.overlay import place_tags

    canvas = np.zeros((200, 200, 3), np.uint8)
    boxes = np.array([[50, 50, 80, 80]] * 4 + [[0, 0, 200, 200], [190, 190, 200, 200]])
    spots = place_tags(canvas, boxes, [f"#{k}" for k in range(1, 7)], (0, 0, 255))
    assert len(spots) == 6
    for i, a in enumerate(spots):
        assert 0 <= a[0] and 0 <= a[1] and a[2] <= 200 and a[3] <= 200
        for b in spots[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
