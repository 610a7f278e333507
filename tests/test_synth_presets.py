"""Tests of the named synthetic worlds (cs_features.synth.presets) and of the factors the `hard` ones add."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from cs_features.datasets import read_yolo_labels
from cs_features.errors import ConfigError
from cs_features.synth import (
    SYNTH_PRESETS,
    SynthConfig,
    generate_dataset,
    read_synth_manifest,
    render_embryo,
    synth_preset,
)
from cs_features.synth.lines import doublet_contrast

runner = CliRunner()
SMALL = {"clean": {"image_size": 192}, "hard": {"image_size": 192},
         "clean-crop": {"frame_size": (160, 240)}, "hard-crop": {"frame_size": (160, 240)}}


def _small(name: str, frames: int = 2) -> SynthConfig:
    return synth_preset(name, frames_per_embryo=frames, **SMALL[name])


def _digests(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def preset_sets(tmp_path_factory) -> dict[str, Path]:
    """A 4-embryo, 2-frame dataset per preset (small frames)."""
    root = tmp_path_factory.mktemp("presets")
    for name in SYNTH_PRESETS:
        generate_dataset(root / name, n_embryos=4, seed=5, config=_small(name), workers=1)
    return {name: root / name for name in SYNTH_PRESETS}


@pytest.fixture(scope="module")
def hard_frames() -> list:
    """Frames of CS embryos in the hard world at 256 px."""
    cfg = synth_preset("hard", image_size=256, frames_per_embryo=3)
    return [f for e in range(6) for f in render_embryo(e, 21, True, cfg)]


def test_registry_names_clean_default_and_unknown_name():
    assert list(SYNTH_PRESETS) == ["clean", "hard", "clean-crop", "hard-crop"]
    assert SYNTH_PRESETS["clean"] == SynthConfig()
    assert SYNTH_PRESETS["hard"].string_style == "doublet" and SYNTH_PRESETS["hard"].jpeg_quality == (60, 90)
    assert SYNTH_PRESETS["hard-crop"].frame_size == (250, 450) and SYNTH_PRESETS["clean-crop"].string_style == "line"
    with pytest.raises(ConfigError, match="unknown synth preset 'dark'; known: clean, hard, clean-crop, hard-crop"):
        synth_preset("dark")
    with pytest.raises(ConfigError, match="unknown SynthConfig field"):
        synth_preset("clean", image_sise=200)


def test_overrides_replace_preset_values_and_size_fixes_the_frame():
    cfg = synth_preset("hard-crop", image_size=300, frames_per_embryo=2)
    assert (cfg.image_size, cfg.frame_size, cfg.frames_per_embryo) == (300, None, 2)
    assert cfg.string_style == "doublet"
    assert synth_preset("hard-crop", cs_fraction=0.2).frame_size == (250, 450)


@pytest.mark.parametrize(("field", "value"), [("jpeg_quality", (90, 60)), ("frame_size", (100, 300)),
                                              ("string_style", "hmc"), ("string_width", (1.0, 9.0)),
                                              ("membrane_ridges", (1.5, 2)), ("embryo_fill", (0.9, 1.2))])
def test_new_fields_are_validated(field, value):
    with pytest.raises(ConfigError, match=f"SynthConfig.{field}="):
        SynthConfig(**{field: value})


@pytest.mark.parametrize("name", list(SYNTH_PRESETS))
def test_each_preset_renders_and_labels_round_trip(preset_sets, name):
    out = preset_sets[name]
    rows = read_synth_manifest(out)
    assert len(rows) == 8 and sum(r["label"] == "abnormal" for r in rows) >= 1
    sizes = set()
    for row in rows:
        image = cv2.imread(str(out / row["split"] / row["label"] / f"{row['stem']}.png"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.ndim == 2 and image.shape[0] == image.shape[1]
        side = image.shape[0]
        sizes.add(side)
        boxes = read_yolo_labels(out / "labels" / f"{row['stem']}.txt", side, side)
        assert boxes.shape == row["boxes"].shape
        assert np.abs(boxes - row["boxes"]).max(initial=0) <= 1
        assert (row["boxes"][:, :2] >= 0).all() and (row["boxes"][:, 2:] <= side).all()
    if name.endswith("crop"):
        assert all(160 <= s <= 240 for s in sizes) and len(sizes) >= 2
    else:
        assert sizes == {192}
    assert (out / "contact_sheet.png").is_file()


def test_crop_frames_keep_the_embryo_centred_and_filling_the_frame():
    cfg = synth_preset("clean-crop", frames_per_embryo=1)
    for e in range(3):
        frame = render_embryo(e, 2, True, cfg)[0]
        side = frame.image.shape[0]
        assert 250 <= side <= 450
        ys, xs = np.nonzero(frame.low_texture_truth)
        assert abs(xs.mean() - side / 2) < 0.2 * side and abs(ys.mean() - side / 2) < 0.2 * side
        assert 0.2 < frame.low_texture_truth.mean() < 0.7


def _side_means(image: np.ndarray, mask: np.ndarray, angle: float) -> tuple[float, float]:
    """Mean grey level, minus the local background, of the pixels 1-3 px beyond a string along the shear
    (ahead) and against it (back); background: a ring 8-12 px from the string."""
    ux, uy = np.cos(angle), np.sin(angle)
    h, w = mask.shape

    def moved(k: float) -> np.ndarray:
        matrix = np.float32([[1, 0, k * ux], [0, 1, k * uy]])
        return cv2.warpAffine(mask.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0

    ahead = (moved(1) | moved(2) | moved(3)) & ~mask
    back = (moved(-1) | moved(-2) | moved(-3)) & ~mask
    ahead, back = ahead & ~back, back & ~ahead
    m8 = mask.astype(np.uint8)
    ring = (cv2.dilate(m8, np.ones((25, 25), np.uint8)) > 0) & ~(cv2.dilate(m8, np.ones((17, 17), np.uint8)) > 0)
    background = float(np.median(image[ring]))
    return float(image[ahead].mean()) - background, float(image[back].mean()) - background


def test_hard_strings_are_doublets_of_random_polarity_within_the_contrast_range(hard_frames):
    n, opposite, agrees, signs = 0, 0, 0, set()
    for frame in hard_frames:
        image = frame.image.astype(np.float32)
        for mask, contrast in zip(frame.string_masks, frame.string_contrasts):
            assert 4.5 <= abs(contrast) <= 25.5
            ahead, back = _side_means(image, mask, frame.shear_angle)
            opposite += np.sign(ahead) == -np.sign(back)
            agrees += np.sign(back - ahead) == np.sign(contrast)
            signs.add(float(np.sign(contrast)))
            n += 1
    assert n >= 10
    assert opposite / n >= 0.85 and agrees / n >= 0.85
    assert signs == {-1.0, 1.0}


def test_hard_contrast_survives_noise_and_jpeg(hard_frames):
    errors = []
    for frame in hard_frames:
        for mask, contrast, width in zip(frame.string_masks, frame.string_contrasts, frame.string_widths):
            measured = doublet_contrast(frame.image.astype(np.float32), mask, frame.low_texture_truth, width,
                                        frame.shear_angle)
            errors.append(abs(measured - contrast))
    assert np.median(errors) < 2.0


def test_hard_strings_are_wider_and_shorter_than_clean(hard_frames):
    widths = [w for f in hard_frames for w in f.string_widths]
    assert max(widths) > 3.0 and min(widths) >= 1.5
    clean = [f for e in range(6) for f in render_embryo(e, 21, True, synth_preset("clean", image_size=256,
                                                                                 frames_per_embryo=3))]

    def long_side(frames):
        return np.median([max(b[2] - b[0], b[3] - b[1]) for f in frames for b in f.boxes])
    assert long_side(hard_frames) < 0.8 * long_side(clean)


def test_hard_cavity_holds_string_like_distractors_in_cs_free_embryos():
    """CS-free hard embryos: more oriented structure in the cavity (surface cell boundaries, ridges) than clean."""
    def cavity_edges(name: str) -> float:
        cfg = synth_preset(name, image_size=256, frames_per_embryo=1)
        values = []
        for e in range(3):
            frame = render_embryo(e, 8, False, cfg)[0]
            smooth = cv2.GaussianBlur(frame.image.astype(np.float32), (0, 0), 1.5)
            grad = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
            inner = cv2.erode(frame.low_texture_truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            values.append(np.percentile(grad[inner], 95))
        return float(np.mean(values))

    assert cavity_edges("hard") > 1.5 * cavity_edges("clean")


@pytest.mark.parametrize("name", ["hard", "hard-crop"])
def test_same_seed_gives_identical_files(preset_sets, tmp_path, name):
    generate_dataset(tmp_path / "again", n_embryos=4, seed=5, config=_small(name), workers=1)
    assert _digests(tmp_path / "again") == _digests(preset_sets[name])
    assert _digests(preset_sets[name]) != _digests(preset_sets[name.replace("hard", "clean")])


def test_cli_preset_listed_unknown_refused_and_size_overrides(tmp_path):
    result = runner.invoke(app, ["synth", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in SYNTH_PRESETS:
        assert name in result.output
    bad = runner.invoke(app, ["synth", str(tmp_path / "bad"), "--preset", "dark"])
    assert bad.exit_code != 0 and "known: clean, hard, clean-crop, hard-crop" in bad.output
    assert "Traceback" not in bad.output
    out = tmp_path / "d"
    result = runner.invoke(app, ["synth", str(out), "--preset", "hard-crop", "--embryos", "3", "--frames", "1",
                                 "--size", "160", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n_frames"] == 3
    assert {cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape for p in out.glob("*/*/*.png")} == {(160, 160)}
