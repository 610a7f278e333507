"""The `csf` command line: help texts, one-line errors, JSON output."""

from __future__ import annotations

import json

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def _all_commands():
    group = get_command(app)
    for name, command in group.commands.items():
        if getattr(command, "commands", None):
            for sub in command.commands:
                yield [name, sub]
        else:
            yield [name]


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("synth", "quickstart", "ingest", "store"):
        assert name in result.output


@pytest.mark.parametrize("words", list(_all_commands()), ids=lambda w: " ".join(w))
def test_every_command_has_help_with_explained_options(words):
    command = get_command(app)
    for word in words:
        command = command.commands[word]
    assert command.help and len(command.help) > 20
    for param in command.params:
        if param.name != "help":
            assert getattr(param, "help", None), f"csf {' '.join(words)}: {param.name} has no help text"
    result = runner.invoke(app, [*words, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_synth_cli_json(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path / "d"), "--embryos", "3", "--frames", "2", "--size", "160",
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_frames"] == 6 and summary["n_embryos"] == 3
    assert (tmp_path / "d" / "contact_sheet.png").is_file()


def test_library_error_is_one_red_line_without_traceback(tmp_path):
    result = runner.invoke(app, ["store", "info", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "error: no feature store at" in result.output
    assert "Traceback" not in result.output


def test_bad_storage_options_named(tmp_path):
    result = runner.invoke(app, ["store", "info", str(tmp_path), "--storage-options", "{nope"])
    assert result.exit_code == 1 and "--storage-options must be a JSON object" in result.output


def test_ingest_then_store_info_json(tiny_dataset, tmp_path):
    store = tmp_path / "store"
    result = runner.invoke(app, ["ingest", str(tiny_dataset), "--store", str(store), "--workers", "1",
                                 "--proposals", "ss-single", "--max-proposals", "20", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["frames_added"] == 18 and summary["frames_failed"] == 0
    assert 0 < summary["first_frame_seconds"] < summary["seconds"] and summary["search_space"]["seconds"] > 0
    info = runner.invoke(app, ["store", "info", str(store), "--json"])
    data = json.loads(info.output)
    assert data["tables"]["frames"]["rows"] == 18
    assert data["encoders"]["classic"]["dim"] == 104
    tagged = runner.invoke(app, ["store", "tag", str(store), "first"])
    assert tagged.exit_code == 0 and "tagged first" in tagged.output
    history = runner.invoke(app, ["store", "history", str(store), "--json"])
    assert any("first" in row["tags"] for row in json.loads(history.output))
