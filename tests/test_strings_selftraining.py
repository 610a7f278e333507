"""Self-training of the string map on unlabelled time-lapses (cs_features.strings.selftraining)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cs_features.errors import ConfigError, DatasetError
from cs_features.strings import PixelSampling, StringMapModel, train_strings
from cs_features.strings.selftraining import (
    SelfTraining,
    embryo_groups,
    frame_pseudo_labels,
    pseudo_weights,
)


def _scene():
    """A 40 x 40 map: a lit line the other frames do not show (row 10), a lit line they show too (row 20),
    a lit line outside the embryo (row 30), the rest dark."""
    string_map = np.full((40, 40), 0.05, np.float32)
    background = np.zeros((40, 40), np.float32)
    string_map[10, 5:35] = 0.95
    string_map[20, 5:35] = 0.95
    background[20, :] = 0.9
    string_map[30, 5:35] = 0.95
    inside = np.ones((40, 40), bool)
    inside[26:, :] = False
    return string_map, background, inside


def test_pseudo_labels_tell_a_transient_line_from_one_that_stays():
    string_map, background, inside = _scene()
    index, y, drawn = frame_pseudo_labels(string_map, background, inside, SelfTraining(),
                                          np.random.default_rng(0))
    rows, cols = np.unravel_index(index, string_map.shape)
    assert set(rows[y == 1].tolist()) == {10} and drawn[0] == 30
    persistent = rows[(y == 0) & (string_map.reshape(-1)[index] > 0.5)]
    assert set(persistent.tolist()) == {20} and drawn[1] == 30
    assert not (rows >= 26).any()  # nothing outside the embryo's interior
    assert drawn[2] == 26 * 40 - 60 and len(y) == sum(drawn)  # every dark pixel inside: fewer than the cap


def test_pseudo_labels_are_capped_per_frame_and_seeded():
    string_map, background, inside = _scene()
    settings = SelfTraining(positives=5, persistent_negatives=3, dark_negatives=7)
    first = frame_pseudo_labels(string_map, background, inside, settings, np.random.default_rng(3))
    again = frame_pseudo_labels(string_map, background, inside, settings, np.random.default_rng(3))
    assert first[2] == [5, 3, 7]
    np.testing.assert_array_equal(first[0], again[0])
    assert len(set(first[0].tolist())) == 15  # drawn without replacement


def test_pseudo_weights_give_each_class_half_of_the_share():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0], np.int8)
    w = pseudo_weights(y, labelled_weight=100.0, share=0.5)
    assert w[y == 1].sum() == pytest.approx(25.0) and w[y == 0].sum() == pytest.approx(25.0)


def test_embryo_groups_keep_time_lapses_only():
    rows = [{"embryo_id": "A"}, {"embryo_id": ""}, {"embryo_id": "B"}, {"embryo_id": "A"}, {"embryo_id": None}]
    assert embryo_groups(rows) == [[{"embryo_id": "A"}, {"embryo_id": "A"}]]


def test_bad_self_training_settings_are_refused():
    with pytest.raises(ConfigError, match="quiet"):
        SelfTraining(quiet=0.95)
    with pytest.raises(ConfigError, match="share"):
        SelfTraining(share=0)


@pytest.fixture(scope="module")
def unlabelled_store(tmp_path_factory):
    """4 embryos x 3 frames of 192 px, another seed than the labelled store's."""
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("unlabelled")
    generate_dataset(root / "data", n_embryos=4, seed=8, config=SynthConfig(image_size=192, frames_per_embryo=3),
                     workers=1)
    settings = StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=20))
    ingest(root / "data", root / "db", IngestConfig(workers=1, settings=settings))
    return root / "db"


def test_train_strings_self_trains_on_an_unlabelled_store(tiny_store, unlabelled_store, tmp_path):
    model, sampling = StringMapModel(n_estimators=30), PixelSampling(max_pixels_per_frame=400)
    settings = SelfTraining(lit=0.6, persistent=0.5)  # a 30-round map on 192-px frames is not sure of much
    plain = train_strings(str(tiny_store), tmp_path / "plain", StringMapModel(n_estimators=30), sampling)
    calls = []
    result = train_strings(str(tiny_store), tmp_path / "self", model, sampling, unlabelled=str(unlabelled_store),
                           self_training=settings, progress=lambda done, total: calls.append((done, total)))
    labelled = sum(plain.frames[split][kind] for split in ("train", "val")
                   for kind in ("cs_frames", "cs_free_frames", "skipped_cs_without_boxes"))
    assert calls[-1] == (labelled + 12, labelled + 12)  # the labelled frames, then the 12 unlabelled ones
    pixels = result.self_training["pixels"]
    assert pixels["frames"] == 12 and pixels["embryos"] >= 1 and pixels["positive_pixels"] > 0
    assert pixels["persistent_negative_pixels"] + pixels["dark_negative_pixels"] > 0
    assert result.self_training["store_uri"] == str(unlabelled_store)
    assert result.metrics["first_map_val"]["auroc"] == pytest.approx(plain.metrics["val"]["auroc"])
    config = json.loads((tmp_path / "self" / "config.json").read_text())
    assert config["self_training"]["settings"]["lit"] == 0.6 and config["self_training"]["pixels"] == pixels
    assert config["model_id"] != json.loads((tmp_path / "plain" / "config.json").read_text())["model_id"]
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert not np.array_equal(StringMapModel.load(tmp_path / "self").predict_map(image),
                              StringMapModel.load(tmp_path / "plain").predict_map(image))


def test_self_training_without_a_lit_transient_pixel_is_a_clear_error(tiny_store, unlabelled_store, tmp_path):
    with pytest.raises(DatasetError, match="unlabelled store .* no pseudo-labelled pixel of a string"):
        train_strings(str(tiny_store), tmp_path / "m", StringMapModel(n_estimators=10),
                      PixelSampling(max_pixels_per_frame=200), unlabelled=str(unlabelled_store),
                      self_training=SelfTraining(lit=1.0, quiet=0.0))
    assert not (tmp_path / "m").exists()


def test_the_labelled_store_as_its_own_unlabelled_store_gives_frames_outside_train_and_val(tiny_store, tmp_path):
    from cs_features.store import FeatureStore

    store = tiny_store  # read only
    splits = FeatureStore(str(store)).read("frames", ["split"]).column("split").to_pylist()
    with pytest.raises(DatasetError) as error:
        train_strings(str(store), tmp_path / "m", StringMapModel(n_estimators=10),
                      PixelSampling(max_pixels_per_frame=200), unlabelled=str(store),
                      self_training=SelfTraining(lit=1.0, quiet=0.0))
    assert f"'frames': {sum(s not in ('train', 'val') for s in splits)}," in str(error.value)


def test_cli_train_strings_with_an_unlabelled_store(tiny_store, unlabelled_store, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["train", "strings", "--store", str(tiny_store), "--out", str(tmp_path / "m"),
                                      "--n-estimators", "30", "--max-pixels-per-frame", "400",
                                      "--unlabelled-store", str(unlabelled_store), "--self-training-lit", "0.6"])
    assert result.exit_code == 0, result.output
    assert "self-trained on" in result.output and "unlabelled frames" in result.output
    assert json.loads((tmp_path / "m" / "config.json").read_text())["self_training"]["settings"]["lit"] == 0.6
    unsure = CliRunner().invoke(app, ["train", "strings", "--store", str(tiny_store), "--out", str(tmp_path / "u"),
                                      "--n-estimators", "10", "--unlabelled-store", str(unlabelled_store),
                                      "--self-training-lit", "1.0"])
    assert unsure.exit_code == 1 and "no pseudo-labelled pixel" in unsure.output and "Traceback" not in unsure.output
    assert not (tmp_path / "u").exists()
    missing = CliRunner().invoke(app, ["train", "strings", "--store", str(tiny_store), "--out", str(tmp_path / "n"),
                                       "--unlabelled-store", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no feature store" in missing.output and not (tmp_path / "n").exists()


def test_an_unlabelled_store_preprocessed_otherwise_is_refused_before_training(tiny_store, unlabelled_store, tmp_path):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.preprocess import PreprocessConfig
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import SettingsMismatchError, StoreSettings

    other = tmp_path / "other"
    settings = StoreSettings(preprocess=PreprocessConfig(clahe_clip=3.0),
                             proposals=ProposalConfig(method="filament", max_proposals=20))
    ingest(unlabelled_store.parent / "data", other, IngestConfig(workers=1, settings=settings))
    with pytest.raises(SettingsMismatchError, match="unlabelled store .*preprocess.clahe_clip: 2.0 vs 3.0"):
        train_strings(str(tiny_store), tmp_path / "m", StringMapModel(n_estimators=10),
                      PixelSampling(max_pixels_per_frame=200), unlabelled=str(other))
    assert not (tmp_path / "m").exists()
