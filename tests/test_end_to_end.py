"""The README's main job, end to end, on a small synthetic dataset."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app
from cs_features.store import FeatureStore, proposals_table_name


def test_quickstart_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["quickstart", str(out), "--embryos", "3", "--size", "192",
                                      "--proposals", "ss-single"])
    assert result.exit_code == 0, result.output
    assert (out / "data" / "contact_sheet.png").is_file()
    store = FeatureStore(str(out / "store"))
    n_frames = len(list((out / "data").glob("*/*/*.png")))
    assert store.count("frames") == n_frames == 18
    assert store.count(proposals_table_name("classic")) > 0
    assert "0 failed" in result.output and "contact_sheet.png" in result.output
