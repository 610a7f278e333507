"""The README's two set-up commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.startswith("```bash"):
            inside, current = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append("\n".join(current).strip())
        elif inside:
            current.append(line)
    return blocks


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 2, blocks
    main_job, tests = blocks
    assert "csf quickstart" in main_job and "pip install -e ." in main_job
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_readme_lists_every_command():
    from typer.main import get_command

    from cli.main import app

    readme = (ROOT / "README.md").read_text()
    group = get_command(app)
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        for sub in (subcommands or {None: None}):
            shown = f"csf {name} {sub}" if sub else f"csf {name}"
            assert shown in readme, f"README does not document `{shown}`"
