import numpy as np
import pytest

from cs_features.datasets import read_yolo_labels, scan_dataset
from cs_features.errors import DataLeakageError, DatasetError, LabelError


def _touch_image(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(path)


def _layout(root, files):
    for rel in files:
        _touch_image(root / rel)


def test_scan_finds_split_label_embryo(tmp_path):
    _layout(tmp_path, ["train/normal/E1_f00.png", "val/abnormal/E2_f03.png", "test/normal/E3_f01.png"])
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "E2_f03.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    scan = scan_dataset(tmp_path)
    frames = {f.stem: f for f in scan.frames}
    assert set(frames) == {"E1_f00", "E2_f03", "E3_f01"}
    assert frames["E2_f03"].split == "val" and frames["E2_f03"].label == "abnormal"
    assert frames["E2_f03"].embryo_id == "E2" and frames["E2_f03"].frame_index == 3
    assert frames["E2_f03"].label_path is not None and frames["E1_f00"].label_path is None


def test_manifest_overrides_embryo(tmp_path):
    _layout(tmp_path, ["train/normal/a_1.png", "train/normal/b_1.png"])
    (tmp_path / "manifest.csv").write_text("stem,embryo_id\na_1,EMB9\n")
    frames = {f.stem: f for f in scan_dataset(tmp_path).frames}
    assert frames["a_1"].embryo_id == "EMB9" and frames["b_1"].embryo_id == "b"


def test_custom_regex(tmp_path):
    _layout(tmp_path, ["train/normal/clinicA-emb7-t12.png"])
    frame = scan_dataset(tmp_path, embryo_regex=r"emb\d+").frames[0]
    assert frame.embryo_id == "emb7" and frame.frame_index == 12


def test_embryo_in_two_splits_is_refused(tmp_path):
    _layout(tmp_path, ["train/normal/E1_f00.png", "test/normal/E1_f01.png", "val/normal/E2_f00.png"])
    with pytest.raises(DataLeakageError, match="E1 in test\\+train"):
        scan_dataset(tmp_path)


def test_empty_and_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no frames found"):
        scan_dataset(tmp_path)


def test_orphan_label_and_stray_file_recorded(tmp_path):
    _layout(tmp_path, ["train/normal/E1_f00.png"])
    (tmp_path / "train/normal/notes.txt").write_text("x")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "E5_f00.txt").write_text("")
    scan = scan_dataset(tmp_path)
    reasons = {(p.stage, p.reason) for p in scan.problems}
    assert ("labels", "label file has no matching image") in reasons
    assert any(stage == "scan" and "not an image" in reason for stage, reason in reasons)


def test_read_yolo_labels(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 0.2 0.1\n\n0 0.1 0.1 0.1 0.1\n")
    boxes = read_yolo_labels(path, 100, 200)
    np.testing.assert_array_equal(boxes, [[40, 90, 60, 110], [5, 10, 15, 30]])


@pytest.mark.parametrize("line,fragment", [
    ("0 0.5 0.5 0.2", "expected 5 fields"),
    ("0 a 0.5 0.2 0.2", "must be numbers"),
    ("0 0.95 0.5 0.2 0.2", "outside the image"),
    ("0 0.5 0.5 -0.2 0.2", "must be positive"),
])
def test_malformed_yolo(tmp_path, line, fragment):
    path = tmp_path / "bad.txt"
    path.write_text(line + "\n")
    with pytest.raises(LabelError) as info:
        read_yolo_labels(path, 100, 100)
    assert fragment in str(info.value) and str(path) in str(info.value) and "line 1" in str(info.value)
