"""The model folder (cs_features.model_dir): atomic writes, weights hashes, one error for a bad folder."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from cs_features.errors import WeightsError
from cs_features.model_dir import (
    CONFIG_FILE,
    atomic_path,
    file_sha256,
    json_default,
    read_model_config,
    write_config,
    write_json,
)

READ = {"what": "region head", "command": "csf train head --out DIR", "required": ("head", "params")}


def test_config_round_trips_with_numpy_values(tmp_path):
    config = {"head": "logreg", "params": {"C": np.float32(0.5), "n": np.int64(3)}, "mean": np.arange(3.0),
              "flag": np.bool_(True), "path": tmp_path}
    path = write_config(tmp_path / "model", config)
    assert path == tmp_path / "model" / CONFIG_FILE and path.read_text().endswith("}\n")
    loaded = read_model_config(tmp_path / "model", **READ)
    assert loaded == {"head": "logreg", "params": {"C": 0.5, "n": 3}, "mean": [0.0, 1.0, 2.0], "flag": True,
                      "path": str(tmp_path)}
    assert [p.name for p in (tmp_path / "model").iterdir()] == [CONFIG_FILE]  # no temporary file left


def test_json_default_falls_back_to_text():
    assert json_default(np.float64(1.5)) == 1.5 and json_default(np.zeros((1, 2))) == [[0.0, 0.0]]
    assert json_default({1, 2}) in ("{1, 2}", "{2, 1}")


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "weights.npz"
    write_json(tmp_path / "metrics.json", {"ap": 0.5})
    with atomic_path(target) as tmp:
        assert tmp.name == "weights.tmp.npz"  # np.savez appends .npz to other names
        np.savez(tmp, a=np.ones(2))
    assert np.load(target)["a"].tolist() == [1.0, 1.0]
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("disk full")
    assert np.load(target)["a"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "weights.npz"]


def test_file_sha256_is_the_hash_of_the_bytes(tmp_path):
    path = tmp_path / "w.bin"
    data = bytes(range(256)) * 5000  # more than one 1 MiB read
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("damage, text", [
    ("absent", r"model directory '.*absent' does not exist: train one with `csf train head --out DIR`"),
    ("no-config", r"model directory '.*m' has no config.json \('.*config.json' is missing\): expected a region "
                  r"head folder written by `csf train head --out DIR`"),
    ("not-json", r"config.json' is corrupt \(not valid JSON: .*\); expected a file written by `csf train head"),
    ("not-object", r"config.json' is corrupt: expected a JSON object written by `csf train head"),
    ("missing-key", r"config.json' is not a region head config \(missing keys \['params'\]\)"),
    ("newer", r"config.json' has region head schema version 9; this cs_features reads up to 1"),
])
def test_every_bad_folder_is_one_weights_error_naming_the_path(tmp_path, damage, text):
    folder = tmp_path / ("absent" if damage == "absent" else "m")
    if damage != "absent":
        folder.mkdir()
    contents = {"not-json": '{"head": ', "not-object": "[1, 2]", "missing-key": json.dumps({"head": "knn"}),
                "newer": json.dumps({"head": "knn", "params": {}, "schema_version": 9})}
    if damage in contents:
        (folder / CONFIG_FILE).write_text(contents[damage])
    with pytest.raises(WeightsError, match=text):
        read_model_config(folder, **READ, schema_version=1)


def test_kind_is_checked_when_asked(tmp_path):
    write_config(tmp_path, {"kind": "other", "threshold": 1.0})
    with pytest.raises(WeightsError, match=r"is not an anomaly-filter config \(kind 'other', missing keys \[\]\)"):
        read_model_config(tmp_path, what="anomaly-filter", command="csf train ae", required=("threshold",),
                          kind="cs_features.autoencoder.AnomalyFilter")
    assert read_model_config(tmp_path, what="anything", command="csf train ae")["kind"] == "other"
