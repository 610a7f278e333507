"""What a new user meets first: flags shown as flags, --store everywhere, --version, readable store info and
history, one --device default, a short similarity result that says why, a quickstart that never mixes runs."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def _commands():
    group = get_command(app)
    yield [], group
    for name, command in group.commands.items():
        for sub, leaf in (getattr(command, "commands", None) or {None: command}).items():
            yield ([name, sub] if sub else [name]), leaf


@pytest.mark.parametrize("words", [w for w, _ in _commands()], ids=lambda w: " ".join(w) or "csf")
def test_flags_are_shown_without_a_value_type(words):
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help " in result.output


def test_version_prints_the_package_version():
    from cs_features import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"csf (cs_features) {__version__}"


# csf ingest and csf detect still default to cpu: their options belong to other changes in flight.
def test_every_device_option_defaults_to_auto_with_one_help():
    from cli.common import DEVICE_HELP

    checked = []
    for words, command in _commands():
        for param in command.params:
            if param.name == "device":
                assert param.default == "auto", f"csf {' '.join(words)} --device defaults to {param.default!r}"
                assert param.help.startswith(DEVICE_HELP), f"csf {' '.join(words)} --device: {param.help!r}"
                checked.append(" ".join(words))
    assert {"ingest", "detect", "train ae", "score ae", "show ae", "train head"} <= set(checked)


def test_store_commands_take_store_as_option_or_argument(tiny_store, tmp_path):
    store = str(tiny_store)
    by_option = runner.invoke(app, ["store", "info", "--store", store, "--json"])
    by_argument = runner.invoke(app, ["store", "info", store, "--json"])
    assert by_option.exit_code == 0, by_option.output
    assert json.loads(by_option.output) == json.loads(by_argument.output)
    history = runner.invoke(app, ["store", "history", "--store", store, "--json"])
    assert history.exit_code == 0 and len(json.loads(history.output)) >= 4
    errors = runner.invoke(app, ["store", "errors", "--store", store])
    assert errors.exit_code == 0 and "no errors recorded" in errors.output

    copy = str(shutil.copytree(tiny_store, tmp_path / "db"))
    tagged = runner.invoke(app, ["store", "tag", "--store", copy, "pinned"])
    assert tagged.exit_code == 0 and "tagged pinned: " in tagged.output, tagged.output
    tagged_old_way = runner.invoke(app, ["store", "tag", copy, "pinned-too"])
    assert tagged_old_way.exit_code == 0 and "tagged pinned-too" in tagged_old_way.output
    restored = runner.invoke(app, ["store", "restore", "--store", copy, "pinned"])
    assert restored.exit_code == 0 and "restored pinned: " in restored.output, restored.output


@pytest.mark.parametrize(("args", "message"), [
    (["store", "info", "a", "--store", "b"], "the store is given twice ('a' and --store 'b')"),
    (["store", "info"], "no store given; pass --store STORE"),
    (["store", "tag", "--store", "b"], "missing NAME"),
    (["store", "tag", "a", "x", "--store", "b"], "the store is given twice"),
    (["store", "restore", "a", "x", "y"], "too many arguments"),
])
def test_store_given_twice_or_not_at_all_is_one_clear_error(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_store_info_is_readable_lines(tiny_store):
    result = runner.invoke(app, ["store", "info", "--store", str(tiny_store)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "{" not in text and "'" not in text, text
    assert "created_by: cs_features" in text and "schema_version: 2" in text
    assert "encoder classic:" in text and "  dim: 104" in text
    assert "settings:" in text and "clahe_clip: " in text


def test_history_groups_each_tables_versions_into_runs(tiny_store):
    versions = json.loads(runner.invoke(app, ["store", "history", "--store", str(tiny_store), "--json"]).output)
    result = runner.invoke(app, ["store", "history", "--store", str(tiny_store)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    tables = {row["table"] for row in versions}
    assert len(lines) == len(tables) < len(versions)  # one ingest: one line per table
    frames = next(line for line in lines if line.startswith("frames "))
    frame_versions = [row for row in versions if row["table"] == "frames"]
    assert "csf ingest: " in frames and f"rows 0 -> {frame_versions[-1]['rows']}" in frames
    if len(frame_versions) > 1:
        assert f"({len(frame_versions)} versions)" in frames
    every = runner.invoke(app, ["store", "history", "--store", str(tiny_store), "--versions"])
    assert len(every.output.strip().splitlines()) == len(versions)


def test_history_runs_split_at_a_gap_and_name_the_tagging_command():
    from cs_features.store.admin import history_runs

    def row(table, version, time, rows, tags=()):
        return {"table": table, "version": version, "timestamp": f"2026-01-01 {time}", "rows": rows,
                "tags": list(tags)}

    history = [row("frames", 1, "10:00:00", 16), row("frames", 2, "10:00:30", 32),
               row("frames", 3, "10:01:00", 40, ["ae-abc"]), row("frames", 4, "12:00:00", 56),
               row("error_maps", 1, "10:05:00", 40)]
    runs = history_runs(history)
    assert [(r["table"], r["first_version"], r["last_version"]) for r in runs] == [
        ("frames", 1, 3), ("error_maps", 1, 1), ("frames", 4, 4)]
    first, maps, later = runs
    assert (first["versions"], first["rows_before"], first["rows_after"]) == (3, 0, 40)
    assert first["made_by"] == "csf ingest" and first["tags"] == ["ae-abc"] and first["tagged_by"] == ["csf train ae"]
    assert maps["made_by"] == "csf score ae"
    assert (later["rows_before"], later["rows_after"]) == (40, 56)


def test_similar_says_why_fewer_neighbours_came_back(tiny_store):
    from cs_features.store import FeatureStore

    rows = FeatureStore(str(tiny_store)).read("frames", ["stem", "gt_boxes"]).to_pylist()
    stem = next(row["stem"] for row in rows if row["gt_boxes"])  # a frame with a string box to query
    result = runner.invoke(app, ["similar", "--store", str(tiny_store), "--frame", stem, "-k", "500"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "of the 500 asked for" in result.output and "one region per frame" in result.output


def test_quickstart_refuses_a_folder_holding_a_run_with_other_options(tmp_path):
    from cs_features.quickstart import QuickstartConfig, prepare_folder

    out = tmp_path / "demo"
    prepare_folder(out, QuickstartConfig())
    (out / "data").mkdir()
    (out / "data" / "manifest.csv").write_text("kept")
    result = runner.invoke(app, ["quickstart", str(out), "--embryos", "24"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "embryos 48 -> 24" in result.output and "--fresh" in result.output
    assert (out / "data" / "manifest.csv").read_text() == "kept"  # nothing deleted


def test_quickstart_folder_same_options_kept_other_options_rebuilt_only_with_fresh(tmp_path):
    from cs_features.errors import ConfigError
    from cs_features.quickstart import QuickstartConfig, prepare_folder

    out = tmp_path / "demo"
    assert prepare_folder(out, QuickstartConfig())["state"] == "new"
    for name in ("data", "store", "models"):
        (out / name).mkdir()
    assert prepare_folder(out, QuickstartConfig())["state"] == "same options"
    assert (out / "store").is_dir()
    smaller = QuickstartConfig(embryos=24)
    with pytest.raises(ConfigError, match="embryos 48 -> 24"):
        prepare_folder(out, smaller)
    rebuilt = prepare_folder(out, smaller, fresh=True)
    assert rebuilt["state"] == "rebuilt" and {"data", "store", "models"} <= set(rebuilt["removed"])
    assert sorted(p.name for p in out.iterdir()) == ["quickstart.json"]
    assert json.loads((out / "quickstart.json").read_text())["embryos"] == 24
    (out / "thesis.docx").write_text("not ours")
    with pytest.raises(ConfigError, match="files a quickstart did not write"):
        prepare_folder(out, QuickstartConfig(), fresh=True)
    assert (out / "thesis.docx").exists()
