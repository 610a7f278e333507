"""`csf train head` and `csf bench heads` on a tiny store: exit codes, files, table rows, errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_store(tiny_dataset, tmp_path_factory):
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    path = tmp_path_factory.mktemp("cli_heads_store") / "store"
    ingest(tiny_dataset, path, IngestConfig(workers=1, settings=StoreSettings(
        proposals=ProposalConfig(method="ss-single", max_proposals=60))))
    return str(path)


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_train_head_writes_a_model_dir_and_prints_metrics(tiny_store, tmp_path, model):
    out = tmp_path / model
    result = runner.invoke(app, ["train", "head", "--store", tiny_store, "--model", model, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "region AP" in result.output and "frame hit@0.25" in result.output and "detection AP50" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["head"] == model and config["provenance"]["encoder"] == "classic"
    assert config["provenance"]["store_uri"] == tiny_store and config["n_features"] == 104
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and 0 <= metrics["metrics"]["auroc"] <= 1


def test_train_head_json(tiny_store, tmp_path):
    result = runner.invoke(app, ["train", "head", "--store", tiny_store, "--model", "lightgbm", "--seed", "3",
                                 "--out", str(tmp_path / "gbm"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["seed"] == 3 and payload["params"]["seed"] == 3 and payload["encoder"] == "classic"
    assert (tmp_path / "gbm" / "classifier.txt").is_file() and (tmp_path / "gbm" / "iou_regressor.txt").is_file()


@pytest.mark.parametrize("args, message", [
    (["--model", "svm"], "unknown head 'svm'; known: knn, lightgbm, logreg, mlp"),
    (["--model", "logreg", "--encoder", "dinov3-vits16"], "has no vectors of encoder 'dinov3-vits16'; it has: classic"),
])
def test_train_head_bad_input_is_one_line(tiny_store, tmp_path, args, message):
    result = runner.invoke(app, ["train", "head", "--store", tiny_store, "--out", str(tmp_path / "m"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_train_head_missing_store(tmp_path):
    result = runner.invoke(app, ["train", "head", "--store", str(tmp_path / "nope"), "--model", "logreg",
                                 "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "no feature store at" in result.output


def test_bench_heads_writes_table_json_and_plot(tiny_store, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["bench", "heads", "--store", tiny_store, "--models", "logreg,lightgbm,knn",
                                 "--seeds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = (out / "heads.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| head | AP | AUROC | IoU MAE | hit@0.25 | hit@0.5 | AP25 | AP50 |")
    assert [row.split("|")[1].strip() for row in table[1:]] == ["logreg", "lightgbm", "knn"]
    assert "±" in table[2] and "proposal recall" in markdown
    report = json.loads((out / "heads.json").read_text())
    assert report["tag"].startswith("bench-") and report["config"]["seeds"] == 2
    assert [len(report["heads"][m]["runs"]) for m in ("logreg", "lightgbm", "knn")] == [2, 2, 2]
    assert set(report["proposal_recall"]) >= {"recall@0.25", "recall@0.5", "proposals_per_frame"}
    assert (out / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["config"]["settings"]["attachment"]["weight"] == 0.5  # the default, recorded with the figures
    again = runner.invoke(app, ["bench", "heads", "--store", tiny_store, "--models", "logreg", "--seeds", "1",
                                "--out", str(tmp_path / "b2"), "--json", "--attachment-weight", "1"])
    assert again.exit_code == 0, again.output
    rerun = json.loads(again.output)
    assert rerun["tag"] == report["tag"]  # same snapshot, same tag
    assert rerun["config"]["settings"]["attachment"]["weight"] == 1.0  # the rule alone, as asked
    refused = runner.invoke(app, ["bench", "heads", "--store", tiny_store, "--models", "logreg", "--seeds", "1",
                                  "--out", str(tmp_path / "b3"), "--attachment-weight", "1.5"])
    assert refused.exit_code != 0 and "attachment-weight" in refused.output


def test_bench_heads_save_best_saves_the_model_train_head_would(tiny_store, tmp_path):
    """The quickstart keeps the bench's best head instead of training it again: it must be the same model."""
    result = runner.invoke(app, ["bench", "heads", "--store", tiny_store, "--models", "logreg,lightgbm",
                                 "--seeds", "1", "--out", str(tmp_path / "bench"),
                                 "--save-best", str(tmp_path / "best")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench" / "heads.json").read_text())
    from cs_features.heads.report import chosen_head

    best = chosen_head(report)
    assert f"best head: {best} (seed 0), saved to {tmp_path / 'best'}" in result.output.replace("\n", "")
    trained = runner.invoke(app, ["train", "head", "--store", tiny_store, "--model", best,
                                  "--out", str(tmp_path / "t")])
    assert trained.exit_code == 0, trained.output
    saved, again = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("best", "t"))
    assert saved["head"] == again["head"] == best and saved["weights_sha256"] == again["weights_sha256"]
    assert saved["provenance"]["store_tag"] == report["tag"]
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["model"] == best and metrics["metrics"]["ap25"] == report["heads"][best]["runs"][0]["ap25"]


def test_bench_heads_unknown_model(tiny_store, tmp_path):
    result = runner.invoke(app, ["bench", "heads", "--store", tiny_store, "--models", "logreg,forest",
                                 "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "unknown head 'forest'" in result.output
    assert not (tmp_path / "b").exists()


def test_best_head_breaks_hit_rate_ties_by_average_precision():
    from cs_features.heads.report import best_head, chosen_head

    def head(hit, ap):
        return {"summary": {"hit@0.25": {"mean": hit}, "average_precision": {"mean": ap}}}

    result = {"heads": {"mlp": head(1.0, 0.85), "lightgbm": head(1.0, 0.86), "logreg": head(0.9, 0.99),
                        "knn": head(float("nan"), 1.0)}}
    # the report and the saved head (quickstart, --save-best) name the same one
    assert best_head(result) == ("lightgbm", 1.0) and chosen_head(result) == "lightgbm"
    assert best_head({"heads": {"knn": head(float("nan"), 0.5)}}) is None
    assert chosen_head({"heads": {"knn": head(float("nan"), 0.5), "mlp": head(float("nan"), 0.9)}}) == "knn"
