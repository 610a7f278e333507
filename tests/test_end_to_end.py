"""The README's main job, end to end, on a small synthetic dataset."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from cs_features.store import FeatureStore, proposals_table_name


def test_quickstart_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["quickstart", str(out), "--embryos", "6", "--size", "192",
                                      "--proposals", "filament", "--ae-epochs", "1"])
    assert result.exit_code == 0, result.output
    store = FeatureStore(str(out / "store"))
    n_frames = len(list((out / "data").glob("*/*/*.png")))
    assert store.count("frames") == n_frames == 36
    assert store.count(proposals_table_name("classic")) > 0
    assert store.count("error_maps") == n_frames  # the autoencoder scored every frame into the store
    assert (out / "models" / "ae" / "weights.safetensors").is_file()
    assert (out / "models" / "head" / "config.json").is_file()
    table = (out / "bench" / "heads.md").read_text()
    for head in ("mlp", "lightgbm", "logreg", "knn"):
        assert f"| {head} |" in table
    detections = json.loads((out / "detect" / "detections.json").read_text())["frames"]
    assert len(detections) == len(list((out / "data" / "test").glob("*/*.png")))
    assert len(list((out / "detect" / "overlays").glob("*.png"))) == len(detections)
    assert (out / "similar" / "similar.png").is_file() and (out / "data" / "contact_sheet.png").is_file()
    assert "0 failed" in result.output and "pictures to look at" in result.output
    took = next(line for line in result.output.splitlines() if line.startswith("the main job took"))
    assert all(f"{stage} " in took for stage in ("synth", "ingest", "autoencoder", "heads", "detect", "similar"))
