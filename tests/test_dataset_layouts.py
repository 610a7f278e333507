"""Dataset layouts labs have: ours, Ultralytics YOLO, a flat folder with a label CSV, EmbryoScope names;
each scanned and ingested end to end into a tmp store."""

from __future__ import annotations

import shutil
from collections import Counter

import cv2
import numpy as np
import pytest
import tifffile

from cs_features.datasets import (
    detect_layout,
    grouped_stratified_split,
    parse_frame_name,
    read_manifest,
    scan_dataset,
)
from cs_features.errors import DataLeakageError, DatasetError
from cs_features.ingest import IngestConfig, ingest
from cs_features.ingest.job import hash_frames
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import FRAMES, FeatureStore

FAST = IngestConfig(workers=1, settings=StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=20)))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Our layout: 6 embryos x 3 frames of 160 px, seed 11; and its manifest rows by stem."""
    from cs_features.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, n_embryos=6, seed=11, config=SynthConfig(image_size=160, frames_per_embryo=3), workers=1)
    return out, {row["stem"]: row for row in read_manifest(out / "manifest.csv")}


def _frames(store_path) -> list[dict]:
    columns = ["stem", "split", "label", "embryo_id", "frame_index", "width", "height", "has_gt"]
    return FeatureStore(str(store_path)).table(FRAMES).to_arrow().select(columns).to_pylist()


def _counts(rows, *keys) -> Counter:
    return Counter(tuple(row[k] for k in keys) for row in rows)


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


# ---- our layout --------------------------------------------------------------------------------------------


def test_folders_layout_ingests_as_before(synth, tmp_path):
    root, manifest = synth
    summary = ingest(root, tmp_path / "db", FAST)
    rows = _frames(tmp_path / "db")
    assert summary.frames_added == len(manifest) == len(rows) and summary.frames_failed == 0
    assert _counts(rows, "split", "label") == _counts(manifest.values(), "split", "label")
    assert {(r["stem"], r["embryo_id"], r["frame_index"]) for r in rows} == {
        (m["stem"], m["embryo_id"], m["frame_index"]) for m in manifest.values()}
    meta = FeatureStore(str(tmp_path / "db")).get_meta("dataset")
    assert meta["layout"] == "folders" and meta["split_source"] == "folders"
    assert sum(sum(c.values()) for c in meta["counts"].values()) == len(manifest)


# ---- YOLO ----------------------------------------------------------------------------------------------------


def _to_yolo(synth, out, splits=("train", "val"), data_yaml=True):
    """images/<split>/, labels/<split>/ from the synthetic set; odd CS-free frames lose their empty label file."""
    root, manifest = synth
    for i, (stem, row) in enumerate(sorted(manifest.items())):
        if row["split"] not in splits:
            continue
        target = out / "images" / row["split"] / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / row["split"] / row["label"] / f"{stem}.png", target)
        label = out / "labels" / row["split"] / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        if row["label"] == "abnormal" or i % 2 == 0:
            shutil.copy(root / "labels" / f"{stem}.txt", label)
    if data_yaml:
        lines = ["# written by hand", "path: .  # the dataset root", *(f"{s}: images/{s}" for s in splits),
                 "names:", "  0: string"]
        (out / "data.yaml").write_text("\n".join(lines) + "\n")
    return {stem: row for stem, row in manifest.items() if row["split"] in splits}


def test_yolo_layout_ingests_labels_from_boxes(synth, tmp_path):
    expected = _to_yolo(synth, tmp_path / "yolo")
    assert all(len(row["boxes"]) for row in expected.values() if row["label"] == "abnormal")
    assert detect_layout(tmp_path / "yolo") == "yolo"
    summary = ingest(tmp_path / "yolo", tmp_path / "db", FAST)
    rows = _frames(tmp_path / "db")
    assert summary.frames_added == len(expected) == len(rows) and summary.frames_failed == 0
    assert _counts(rows, "split", "label") == _counts(expected.values(), "split", "label")
    assert {r["stem"]: r["embryo_id"] for r in rows} == {s: m["embryo_id"] for s, m in expected.items()}
    assert all(r["has_gt"] for r in rows)
    assert FeatureStore(str(tmp_path / "db")).get_meta("dataset")["layout"] == "yolo"


def test_yolo_without_yaml_and_csv_overrides_label(synth, tmp_path):
    expected = _to_yolo(synth, tmp_path / "yolo", data_yaml=False)
    normal = sorted(s for s, m in expected.items() if m["label"] == "normal")[0]
    (tmp_path / "yolo" / "labels.csv").write_text(f"stem,label\n{normal},CS\n")
    frames = {f.stem: f for f in scan_dataset(tmp_path / "yolo").frames}
    assert set(frames) == set(expected)
    assert frames[normal].label == "abnormal"
    assert Counter(f.split for f in frames.values()) == Counter(m["split"] for m in expected.values())


def test_yolo_csv_split_must_agree_with_folders(synth, tmp_path):
    expected = _to_yolo(synth, tmp_path / "yolo")
    stem = sorted(s for s, m in expected.items() if m["split"] == "train")[0]
    (tmp_path / "labels.csv").write_text(f"stem,label,split\n{stem},0,test\n")
    with pytest.raises(DatasetError, match="sits in the 'train' split folder"):
        scan_dataset(tmp_path / "yolo", labels_csv=tmp_path / "labels.csv")


def test_yolo_yaml_naming_a_missing_folder_is_refused(synth, tmp_path):
    _to_yolo(synth, tmp_path / "yolo")
    (tmp_path / "yolo" / "data.yaml").write_text("train: images/train\nval: images/nope\n")
    with pytest.raises(DatasetError, match="images/nope"):
        scan_dataset(tmp_path / "yolo")


def test_test_only_yolo_warns_about_the_search_space(synth, tmp_path):
    expected = _to_yolo(synth, tmp_path / "yolo", splits=("test",))
    summary = ingest(tmp_path / "yolo", tmp_path / "db", FAST)
    assert summary.frames_added == len(expected)
    assert "no train split" in summary.warnings[0] and "search space" in summary.warnings[0]
    assert not summary.search_space["fitted"] and "no train split" in summary.search_space["reason"]


def test_identical_image_in_two_splits_is_refused(synth, tmp_path):
    expected = _to_yolo(synth, tmp_path / "yolo")
    stem = sorted(s for s, m in expected.items() if m["split"] == "train")[0]
    images = tmp_path / "yolo" / "images"
    shutil.copy(images / "train" / f"{stem}.png", images / "val" / "X9_7.png")
    with pytest.raises(DataLeakageError, match="identical image"):
        hash_frames(scan_dataset(tmp_path / "yolo"))


# ---- flat folder + CSV ---------------------------------------------------------------------------------------

_SPELLINGS = {"abnormal": ("1", "CS", "True", "abnormal"), "normal": ("0", "no-cs", "FALSE", "Normal")}


def _to_flat(synth, out, with_csv=True):
    """Every frame in one folder, renamed ``<embryo>_run2_<frame:03d>.png``; a CSV of mixed label spellings."""
    root, manifest = synth
    out.mkdir()
    lines = ["path,label"]
    for i, (stem, row) in enumerate(sorted(manifest.items())):
        name = f"{row['embryo_id']}_run2_{row['frame_index']:03d}.png"
        shutil.copy(root / row["split"] / row["label"] / f"{stem}.png", out / name)
        lines.append(f"{name},{_SPELLINGS[row['label']][i % 4]}")
    if with_csv:
        (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return manifest


def test_flat_folder_with_csv_gets_a_grouped_split_and_ingests(synth, tmp_path):
    manifest = _to_flat(synth, tmp_path / "flat")
    assert detect_layout(tmp_path / "flat") == "flat"
    summary = ingest(tmp_path / "flat", tmp_path / "db", FAST, split_seed=3)
    rows = _frames(tmp_path / "db")
    assert summary.frames_added == len(manifest) == len(rows) and summary.frames_failed == 0
    assert Counter(r["label"] for r in rows) == Counter(m["label"] for m in manifest.values())
    assert {(r["embryo_id"], r["frame_index"]) for r in rows} == {
        (m["embryo_id"] + "_run2", m["frame_index"]) for m in manifest.values()}
    splits_of = {}
    for r in rows:
        splits_of.setdefault(r["embryo_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values()) and {r["split"] for r in rows} == {"train", "val", "test"}
    meta = FeatureStore(str(tmp_path / "db")).get_meta("dataset")
    assert meta["layout"] == "flat" and meta["split_source"] == "automatic" and meta["split_seed"] == 3
    assert meta["split_fractions"] == [0.6, 0.2, 0.2]
    assert meta["counts"] == {s: dict(c) for s, c in _split_label_counts(rows).items()}


def _split_label_counts(rows) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["split"], Counter())[r["label"]] += 1
    return out


def test_automatic_split_is_seeded(synth, tmp_path):
    _to_flat(synth, tmp_path / "flat")

    def split_of(seed):
        return {f.stem: f.split for f in scan_dataset(tmp_path / "flat", split_seed=seed).frames}

    assert split_of(5) == split_of(5)
    assert any(split_of(seed) != split_of(5) for seed in range(6))


def test_grouped_stratified_split_keeps_embryos_whole_and_both_labels_in_each_split():
    embryos, labels = [], []
    for e in range(20):
        for t in range(3 + e % 4):
            embryos.append(f"E{e}")
            labels.append("abnormal" if e % 2 and t == 1 else "normal")
    split = grouped_stratified_split(embryos, labels, seed=1)
    assert split == grouped_stratified_split(embryos, labels, seed=1)
    assert set(split) == set(embryos)
    per_split = {s: Counter(label for e, label in zip(embryos, labels) if split[e] == s)
                 for s in ("train", "val", "test")}
    assert all(c["normal"] and c["abnormal"] for c in per_split.values())
    frames = {s: sum(c.values()) for s, c in per_split.items()}
    assert frames["train"] > frames["val"] and frames["train"] > frames["test"]
    assert 0.45 < frames["train"] / len(embryos) < 0.75


def test_flat_folder_with_yolo_label_files_and_csv_splits(synth, tmp_path):
    root, manifest = synth
    flat = tmp_path / "flat"
    flat.mkdir()
    lines = ["stem,label,embryo_id,split,frame_index"]
    for stem, row in manifest.items():
        shutil.copy(root / row["split"] / row["label"] / f"{stem}.png", flat / f"{stem}.png")
        lines.append(f"{stem},,embryo-{row['embryo_id']},{'valid' if row['split'] == 'val' else row['split']},7")
    shutil.copytree(root / "labels", flat / "labels")
    csv = tmp_path / "elsewhere.csv"
    csv.write_text("\n".join(lines) + "\n")
    scan = scan_dataset(flat, labels_csv=csv)
    frames = {f.stem: f for f in scan.frames}
    assert scan.info["layout"] == "flat" and scan.info["split_source"] == "labels csv"
    assert {s: (f.split, f.label, f.embryo_id, f.frame_index) for s, f in frames.items()} == {
        s: (m["split"], m["label"], f"embryo-{m['embryo_id']}", 7) for s, m in manifest.items()}
    assert all(f.label_path is not None for f in frames.values())


def test_flat_folder_without_any_label_is_refused_and_unlabelled_frames_are_reported(synth, tmp_path):
    _to_flat(synth, tmp_path / "flat", with_csv=False)
    with pytest.raises(DatasetError, match="has a label: give --labels-csv"):
        scan_dataset(tmp_path / "flat")
    names = sorted(p.name for p in (tmp_path / "flat").glob("*.png"))
    (tmp_path / "flat" / "labels.csv").write_text("path,label\n" + "".join(f"{n},0\n" for n in names[:-1])
                                                  + "ghost.png,1\n")
    scan = scan_dataset(tmp_path / "flat")
    reasons = {(p.path.rsplit("/", 1)[-1], p.reason) for p in scan.problems}
    assert (names[-1], "no label: not in the labels CSV and no YOLO label file") in reasons
    assert ("labels.csv", f"line {len(names) + 1}: 'ghost.png' has no matching image") in reasons


def test_partial_splits_in_the_csv_are_refused(synth, tmp_path):
    _to_flat(synth, tmp_path / "flat", with_csv=False)
    names = sorted(p.name for p in (tmp_path / "flat").glob("*.png"))
    (tmp_path / "flat" / "labels.csv").write_text("path,label,split\n" + "".join(f"{n},0,\n" for n in names[1:])
                                                  + f"{names[0]},1,train\n")
    with pytest.raises(DatasetError, match="gives a split for 1 frame"):
        scan_dataset(tmp_path / "flat")


@pytest.mark.parametrize("text,fragment", [
    ("stem,label\na,1\nb,maybe\n", "line 3: label 'maybe' is not accepted"),
    ("name,class\na,1\n", "line 1"),
    ("stem,label\na,1\na,0\n", "line 3: 'a' is already on line 2"),
    ("stem,label,frame_index\na,1,x\n", "line 2: frame_index 'x'"),
    ("stem,label,split\na,1,dev\n", "split 'dev' is not accepted"),
])
def test_bad_label_csv_names_file_line_and_accepted_values(tmp_path, text, fragment):
    _write(tmp_path / "a.png", np.full((40, 40), 90, np.uint8))
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    message = str(info.value)
    assert fragment in message and str(tmp_path / "labels.csv") in message
    if "label 'maybe'" in fragment:
        assert "no-cs" in message and "true" in message and "abnormal" in message


# ---- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem,embryo,frame", [
    ("D2020.01.01_S0001_I0123_W3_F0_0123", "D2020.01.01_S0001_I0123_W3", 123),
    ("D2020.01.01_S0001_I0123_W3_F-15_0123", "D2020.01.01_S0001_I0123_W3", 123),
    ("EMB17_run2_045", "EMB17_run2", 45),
    ("E0001_f03", "E0001", 3),
    ("embryo 4 well_12", "embryo 4 well", 12),
    ("single", "single", 0),
])
def test_embryoscope_names_parse(stem, embryo, frame):
    assert parse_frame_name(stem) == (embryo, frame)


def test_embryoscope_names_in_our_layout_and_a_user_regex(tmp_path):
    for rel in ("train/normal/D2020.01.01_S0001_I0123_W3_F0_0007.jpg",
                "train/abnormal/D2020.01.01_S0001_I0123_W3_F15_0008.jpg", "test/normal/EMB17_run2_045.png"):
        _write(tmp_path / rel, np.full((40, 40), 90, np.uint8))
    frames = {f.stem: f for f in scan_dataset(tmp_path).frames}
    assert {(f.embryo_id, f.frame_index) for f in frames.values()} == {
        ("D2020.01.01_S0001_I0123_W3", 7), ("D2020.01.01_S0001_I0123_W3", 8), ("EMB17_run2", 45)}
    frames = scan_dataset(tmp_path, embryo_regex=r"_(W\d+)_").frames
    assert {f.embryo_id for f in frames} == {"W3", "EMB17_run2_045"}


# ---- files labs have -------------------------------------------------------------------------------------------


def _embryo_image(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 60, np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, 150, -1)
    cv2.line(image, (size // 3, size // 2), (2 * size // 3, size // 2 + size // 20), 40, max(1, size // 120))
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def test_odd_files_ingest_spaces_rgb_jpeg_16bit_tiff_250_and_1200_px(tmp_path):
    flat = tmp_path / "flat frames"
    grey = _embryo_image(250, 1)
    _write(flat / "embryo one_001.png", grey)
    _write(flat / "embryo two_002.jpg", cv2.cvtColor(_embryo_image(300, 2), cv2.COLOR_GRAY2BGR))
    (flat / "sub").mkdir()
    tifffile.imwrite(flat / "sub" / "EMB3_run1_003.tif", _embryo_image(320, 3).astype(np.uint16) * 257)
    _write(flat / "EMB4_run1_004.png", _embryo_image(1200, 4))
    (flat / "EMB4_run1_004.txt").write_text("0 0.5 0.51 0.3 0.1\n")
    (flat / "labels.csv").write_text("path,label,split\nembryo one_001.png,0,train\nembryo two_002.jpg,no-cs,train\n"
                                     "sub/EMB3_run1_003.tif,0,test\nEMB4_run1_004.png,,train\n")
    summary = ingest(flat, tmp_path / "db", FAST)
    assert summary.frames_added == 4 and summary.frames_failed == 0, summary.failures
    rows = {r["stem"]: r for r in _frames(tmp_path / "db")}
    assert {s: (r["width"], r["label"], r["embryo_id"], r["frame_index"]) for s, r in rows.items()} == {
        "embryo one_001": (250, "normal", "embryo one", 1), "embryo two_002": (300, "normal", "embryo two", 2),
        "EMB3_run1_003": (320, "normal", "EMB3_run1", 3), "EMB4_run1_004": (1200, "abnormal", "EMB4_run1", 4)}
    assert rows["EMB4_run1_004"]["has_gt"]


def test_duplicate_frame_within_a_split_is_skipped_and_reported(tmp_path):
    image = _embryo_image(200, 5)
    _write(tmp_path / "EMB1_001.png", image)
    _write(tmp_path / "EMB1_002.png", image)
    _write(tmp_path / "EMB2_001.png", _embryo_image(200, 6))
    (tmp_path / "labels.csv").write_text("stem,label,split\nEMB1_001,0,train\nEMB1_002,0,train\nEMB2_001,1,test\n")
    summary = ingest(tmp_path, tmp_path / "db", FAST)
    assert summary.frames_added == 2
    assert [f["reason"] for f in summary.failures] == [f"same image as {tmp_path / 'EMB1_001.png'}"]


def test_unknown_layout_and_csv_on_our_layout_are_refused(synth, tmp_path):
    root, _ = synth
    with pytest.raises(DatasetError, match="known: auto, folders, yolo, flat"):
        scan_dataset(root, layout="coco")
    (tmp_path / "l.csv").write_text("stem,label\n")
    with pytest.raises(DatasetError, match="for the yolo and flat layouts"):
        scan_dataset(root, labels_csv=tmp_path / "l.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no frames found"):
        scan_dataset(tmp_path / "empty")
