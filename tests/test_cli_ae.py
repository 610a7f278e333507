"""`csf train ae`, `csf score ae`, `csf show ae` on a tiny store: exit codes, files, JSON keys, errors."""

from __future__ import annotations

import json

import cv2
import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()
FAST = ["--img-size", "32", "--epochs", "1", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def store(tiny_dataset, tmp_path_factory):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    path = tmp_path_factory.mktemp("cli_ae") / "db"
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="ss-single", max_proposals=20))))
    return str(path)


@pytest.fixture(scope="module")
def model(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_ae_model") / "m"
    result = runner.invoke(app, ["train", "ae", "--store", store, "--out", str(out), "--variant", "unweighted",
                                 *FAST, "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_train_ae_json_and_files(model):
    out, summary = model
    assert {"model_id", "store_tag", "best_epoch", "threshold", "metrics", "frames", "hyperparameters"} <= set(summary)
    assert summary["hyperparameters"]["variant"] == "unweighted" and summary["hyperparameters"]["img_size"] == 32
    assert (out / "weights.safetensors").is_file() and (out / "config.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"auroc", "f1", "confusion"} and "test_embryo" in metrics


def test_train_ae_text_summary(store, tmp_path):
    result = runner.invoke(app, ["train", "ae", "--store", store, "--out", str(tmp_path / "m"), *FAST])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and "val AUROC" in result.output
    assert "test_embryo" in result.output and "threshold" in result.output


def test_score_ae_json(store, model):
    out, summary = model
    result = runner.invoke(app, ["score", "ae", "--store", store, "--model", str(out), "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert scored["model_id"] == summary["model_id"] and scored["frames_scored"] == 18
    assert sum(c["frames"] for labels in scored["flagged"].values() for c in labels.values()) == 18
    assert "test" in scored["metrics"]


def test_show_ae_writes_one_png_per_category_and_an_index(store, model, tmp_path):
    out, _ = model
    result = runner.invoke(app, ["show", "ae", "--store", store, "--model", str(out), "--out", str(tmp_path / "p"),
                                 "--per-category", "2", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert sum(shown["counts"].values()) == 6  # the test split's frames, each in one category
    for name in ("TP", "FP", "FN", "TN", "index"):
        image = cv2.imread(str(tmp_path / "p" / f"{name}.png"))
        assert image is not None and image.shape[0] >= 256
    assert len(shown["files"]) == 5


@pytest.mark.parametrize("args, text", [
    (["train", "ae", "--store", "{tmp}/none", "--out", "{tmp}/m"], "error: no feature store at"),
    (["score", "ae", "--store", "{store}", "--model", "{tmp}/none"], "error: model directory"),
    (["train", "ae", "--store", "{store}", "--out", "{tmp}/m", "--variant", "heavy"], "unknown autoencoder variant"),
    (["train", "ae", "--store", "{store}", "--out", "{tmp}/m", "--img-size", "30"], "img_size=30 is invalid"),
])
def test_bad_input_is_one_red_line(store, tmp_path, args, text):
    args = [a.format(tmp=tmp_path, store=store) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert text in result.output and "Traceback" not in result.output
