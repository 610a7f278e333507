"""A region head trains when the validation split holds no labelled string (a lab with few CS embryos)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from cs_features.errors import DatasetError
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings

SETTINGS = StoreSettings(proposals=ProposalConfig(method="filament", max_proposals=60))


def test_head_early_stops_on_held_out_train_embryos_when_val_has_no_strings(tmp_path, caplog):
    from cs_features.heads.training import train_head
    from cs_features.synth import SynthConfig, generate_dataset

    data = tmp_path / "data"  # 10 embryos: 3 CS embryos in train
    generate_dataset(data, n_embryos=10, seed=0, config=SynthConfig(image_size=192, frames_per_embryo=3), workers=1)
    shutil.rmtree(data / "val" / "abnormal")  # every CS embryo of val leaves: val has no string box
    ingest(data, tmp_path / "store", IngestConfig(workers=1, settings=SETTINGS))
    with caplog.at_level(logging.WARNING):
        result = train_head(str(tmp_path / "store"), "logreg", tmp_path / "head")
    assert result["early_stopping"].startswith("inner split of train") and "embryos" in result["early_stopping"]
    assert result["rows"]["val"]["positives"] == 0
    assert any("early-stopping on" in r.message for r in caplog.records)
    assert (tmp_path / "head" / "config.json").is_file()
    decision = result["frame_decision"]  # nothing to choose csf detect's frame decision on: it stays at 0.5
    assert decision["positive_p"] == 0.5 and not decision["chosen"] and "no CS frame" in decision["reason"]


def test_with_one_cs_embryo_in_train_frames_are_held_out_and_whole_embryos_otherwise():
    from cs_features.heads.data import LabelledArrays
    from cs_features.heads.training import HeadData, training_splits

    rng = np.random.default_rng(0)

    def arrays(embryos, frames, labels):
        n = len(labels)
        return LabelledArrays(rng.normal(size=(n, 4)).astype(np.float32), np.asarray(labels, np.int8),
                              np.zeros(n, np.float32), np.asarray(embryos, object), np.asarray(frames, object))

    # one CS embryo (E1) with strings in two frames, two CS-free embryos; val has no string
    train = arrays(["E1"] * 4 + ["E2"] * 2 + ["E3"] * 2, ["a", "a", "b", "c", "d", "d", "e", "e"],
                   [1, 0, 1, 0, 0, 0, 0, 0])
    val = arrays(["E9"] * 2, ["z", "z"], [0, 0])
    data = HeadData("store", "classic", {}, None, {"train": train, "val": val}, None, [])
    fit_rows, stop_rows, where = training_splits(data)
    assert "frames" in where and fit_rows.positives == 1 and stop_rows.positives == 1
    assert not set(fit_rows.frame_id) & set(stop_rows.frame_id)  # a frame is on one side only
    lonely = arrays(["E1"] * 2 + ["E2"] * 2, ["a", "a", "d", "e"], [1, 0, 0, 0])  # one frame with strings
    with pytest.raises(DatasetError, match="cannot spare any for early stopping"):
        training_splits(HeadData("store", "classic", {}, None, {"train": lonely, "val": val}, None, []))


def test_a_train_split_without_strings_is_refused(tiny_dataset, tmp_path):
    from cs_features.heads.training import train_head

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    shutil.rmtree(data / "train" / "abnormal")
    ingest(data, tmp_path / "store", IngestConfig(workers=1, settings=SETTINGS))
    with pytest.raises(DatasetError, match="the train split .* has 0 positive"):
        train_head(str(tmp_path / "store"), "logreg", tmp_path / "head")
