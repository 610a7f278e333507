"""Tests of the synthetic blastocyst generator (cs_features.synth)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cs_features.datasets import LABELS, SPLITS
from cs_features.errors import DatasetError
from cs_features.synth import (
    SynthConfig,
    generate_dataset,
    plan_embryos,
    read_synth_manifest,
    render_embryo,
    write_contact_sheet,
)
from cs_features.synth.render import string_contrast
from cs_features.viz import CAPTION_HEIGHT

TINY = SynthConfig(image_size=256, frames_per_embryo=3)


@pytest.fixture(scope="module")
def synth_ds(tmp_path_factory) -> tuple[Path, object, list]:
    out = tmp_path_factory.mktemp("synth") / "ds"
    calls: list[tuple[int, int]] = []
    summary = generate_dataset(
        out, n_embryos=6, seed=3, config=TINY, workers=1, progress=lambda done, total: calls.append((done, total))
    )
    return out, summary, calls


@pytest.fixture(scope="module")
def cs_frames() -> list:
    """Frames of a few CS embryos at the tiny size (rendered once for the geometry tests)."""
    return [f for e in range(8) for f in render_embryo(e, 11, True, TINY)]


def _manifest(out: Path) -> list[dict]:
    with (out / "manifest.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _digests(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_layout_and_manifest(synth_ds):
    out, summary, calls = synth_ds
    pngs = sorted(p for p in out.glob("*/*/*.png"))
    assert {p.parent.parent.name for p in pngs} <= set(SPLITS)
    for split in SPLITS:
        for label in LABELS:
            assert (out / split / label).is_dir()
    rows = _manifest(out)
    assert list(rows[0].keys()) == ["stem", "split", "label", "embryo_id", "frame_index", "boxes"]
    assert len(rows) == len(pngs) == 6 * 3 == summary.n_frames
    by_stem = {r["stem"]: r for r in rows}
    for png in pngs:
        row = by_stem[png.stem]
        assert (row["split"], row["label"]) == (png.parent.parent.name, png.parent.name)
        assert (out / "labels" / f"{png.stem}.txt").is_file()
        assert row["embryo_id"] == png.stem.split("_")[0]
        assert int(row["frame_index"]) == int(png.stem.split("_f")[1])
        image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert image.shape == (256, 256) and image.dtype == np.uint8
        assert (json.loads(row["boxes"]) == []) == (row["label"] == "normal")
    assert calls[-1] == (6, 6) and len(calls) == 6
    assert sum(s["normal_frames"] + s["abnormal_frames"] for s in summary.to_dict()["splits"].values()) == 18
    assert summary.n_strings == sum(len(json.loads(r["boxes"])) for r in rows)


def test_train_normal_holds_no_strings(synth_ds):
    out, _, _ = synth_ds
    stems = [p.stem for p in (out / "train" / "normal").glob("*.png")]
    assert stems
    for stem in stems:
        assert (out / "labels" / f"{stem}.txt").read_text() == ""


def test_label_files_round_trip_to_manifest_boxes(synth_ds):
    out, _, _ = synth_ds
    n_abnormal = 0
    for row in read_synth_manifest(out):
        lines = (out / "labels" / f"{row['stem']}.txt").read_text().splitlines()
        assert len(lines) == len(row["boxes"])
        for line, box in zip(lines, row["boxes"]):
            parts = line.split()
            assert parts[0] == "0" and len(parts) == 5
            assert all(len(p.split(".")[1]) == 6 for p in parts[1:])
            cx, cy, w, h = (float(p) for p in parts[1:])
            assert all(0 < v <= 1 for v in (cx, cy, w, h))
            back = np.array([(cx - w / 2) * 256, (cy - h / 2) * 256, (cx + w / 2) * 256, (cy + h / 2) * 256])
            assert np.abs(back - box).max() <= 1.0
        n_abnormal += row["label"] == "abnormal"
    assert n_abnormal > 0


def test_split_is_at_embryo_level_and_stratified(synth_ds):
    out, summary, _ = synth_ds
    rows = _manifest(out)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["embryo_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of.values())
    for split in SPLITS:
        counts = summary.splits[split]
        assert counts["cs_embryos"] >= 1 and counts["cs_free_embryos"] >= 1
        assert counts["abnormal_frames"] >= 1


def test_plan_default_fractions_and_stratification():
    plan = plan_embryos(20, seed=5, config=SynthConfig())
    sizes = {s: sum(sp == s for _, _, sp in plan) for s in SPLITS}
    assert sizes == {"train": 12, "val": 4, "test": 4}
    assert sum(cs for _, cs, _ in plan) == 10
    for split in SPLITS:
        assert {cs for _, cs, sp in plan if sp == split} == {True, False}
    assert plan == plan_embryos(20, seed=5, config=SynthConfig())
    assert plan != plan_embryos(20, seed=6, config=SynthConfig())


def test_same_seed_gives_identical_files_and_other_seed_differs(synth_ds, tmp_path):
    out, _, _ = synth_ds
    again = tmp_path / "again"
    generate_dataset(again, n_embryos=6, seed=3, config=TINY, workers=1)
    assert _digests(again) == _digests(out)
    other = tmp_path / "other"
    generate_dataset(other, n_embryos=6, seed=4, config=TINY, workers=1)
    theirs = cv2.imread(str(next(other.glob("*/*/E0000_f00.png"))), cv2.IMREAD_GRAYSCALE)
    mine = cv2.imread(str(next(out.glob("*/*/E0000_f00.png"))), cv2.IMREAD_GRAYSCALE)
    assert np.abs(theirs.astype(int) - mine.astype(int)).mean() > 1.0


def test_worker_count_does_not_change_the_files(tmp_path):
    cfg = SynthConfig(image_size=128, frames_per_embryo=2)
    generate_dataset(tmp_path / "one", n_embryos=3, seed=1, config=cfg, workers=1)
    generate_dataset(tmp_path / "two", n_embryos=3, seed=1, config=cfg, workers=2)
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")


def test_boxes_are_tight_around_string_masks(cs_frames):
    n = 0
    for frame in cs_frames:
        assert frame.boxes.dtype == np.int32 and frame.boxes.shape == (len(frame.string_masks), 4)
        for mask, (x1, y1, x2, y2) in zip(frame.string_masks, frame.boxes):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
            assert mask[:, x1].any() and mask[:, x2 - 1].any() and mask[y1].any() and mask[y2 - 1].any()
            n += 1
    assert n >= 8


def test_cs_embryos_have_strings_in_a_subset_of_frames_and_cs_free_none():
    cfg = SynthConfig(image_size=160, frames_per_embryo=4)
    for e in range(6):
        visible = [f.has_strings for f in render_embryo(e, 2, True, cfg)]
        assert any(visible) and not all(visible)
        assert not any(f.has_strings for f in render_embryo(e, 2, False, cfg))


def test_persisting_string_moves_slightly():
    frames = render_embryo(0, 0, True, SynthConfig(image_size=256, frames_per_embryo=6))
    pairs = [(a, b) for a, b in zip(frames, frames[1:]) if a.has_strings and b.has_strings]
    assert pairs
    for a, b in pairs:
        shift = np.abs(a.boxes[0].astype(int) - b.boxes[0].astype(int)).max()
        assert 0 < shift <= 15
        assert not np.array_equal(a.string_masks[0], b.string_masks[0])


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length in px of a 1-px skeleton (H, W) bool: orthogonal links count 1, diagonal ones sqrt(2)."""
    s = skeleton.astype(np.int32)
    straight = (s[:, 1:] & s[:, :-1]).sum() + (s[1:] & s[:-1]).sum()
    diagonal = (s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum()
    return float(straight + np.sqrt(2) * diagonal)


def test_strings_stay_in_the_cavity_with_specified_contrast_and_width(cs_frames):
    from skimage.morphology import skeletonize

    for frame in cs_frames:
        cavity = frame.low_texture_truth
        assert cavity.dtype == bool and 0.2 < cavity.mean() < 0.7
        for mask, contrast in zip(frame.string_masks, frame.string_contrasts):
            assert (mask & cavity).sum() / mask.sum() >= 0.85
            assert 5.0 <= abs(contrast) <= 25.0
            measured = string_contrast(frame.image.astype(np.float32), mask, cavity)  # after noise
            assert abs(measured - contrast) < 2.0
            assert 1.0 <= mask.sum() / _skeleton_length(skeletonize(mask)) <= 3.2


def test_cavity_is_smooth_compared_with_the_icm_and_zona(cs_frames):
    frame = cs_frames[0]
    image = frame.image.astype(np.float32)
    local_std = np.sqrt(np.maximum(cv2.blur(image**2, (7, 7)) - cv2.blur(image, (7, 7)) ** 2, 0))
    cavity = cv2.erode(frame.low_texture_truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    for mask in frame.string_masks:
        cavity &= ~(cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    grown = cv2.dilate(frame.low_texture_truth.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    ring = grown & ~frame.low_texture_truth  # TE, ICM and zona around the cavity
    assert np.median(local_std[cavity]) < 4.0
    assert np.median(local_std[ring]) > 1.5 * np.median(local_std[cavity])


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="n_embryos=2"):
        generate_dataset(tmp_path / "x", n_embryos=2)
    with pytest.raises(ValueError, match="split_fractions"):
        SynthConfig(split_fractions=(0.5, 0.3, 0.3))
    with pytest.raises(ValueError, match="image_size=64"):
        SynthConfig(image_size=64)
    with pytest.raises(ValueError, match="string_contrast"):
        SynthConfig(string_contrast=(20.0, 5.0))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        generate_dataset(foreign, n_embryos=3, config=SynthConfig(image_size=128, frames_per_embryo=1), workers=1)


def test_rerun_over_previous_output_replaces_only_own_files(tmp_path):
    cfg = SynthConfig(image_size=128, frames_per_embryo=2)
    out = tmp_path / "ds"
    generate_dataset(out, n_embryos=4, seed=0, config=cfg, workers=1)
    (out / "notes.txt").write_text("keep me")
    summary = generate_dataset(out, n_embryos=3, seed=1, config=cfg, workers=1)
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(list(out.glob("*/*/*.png"))) == summary.n_frames == 6
    assert len(list((out / "labels").glob("*.txt"))) == 6


def test_contact_sheet_size(synth_ds, tmp_path):
    out, summary, _ = synth_ds
    sheet = cv2.imread(summary.contact_sheet)
    assert Path(summary.contact_sheet) == out / "contact_sheet.png"
    assert sheet.shape == (3 * (320 + CAPTION_HEIGHT) + 2 * 4, 4 * 320 + 3 * 4, 3)
    small = write_contact_sheet(out, tmp_path / "small.png", n_frames=5, columns=3, tile_size=100)
    assert cv2.imread(str(small)).shape == (2 * (100 + CAPTION_HEIGHT) + 4, 3 * 100 + 2 * 4, 3)
