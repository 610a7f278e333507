"""Shared plumbing of the `csf` commands: one-line errors, progress bars, JSON output."""

from __future__ import annotations

import functools
import json
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from cs_features.errors import CSFeaturesError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DEVICE_HELP = "Torch device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
STORE_HELP = "Feature store: a local folder or s3://bucket/prefix."
ATTACHMENT_WEIGHT_HELP = ("How far the attachment prior may lower a box: its factor is 1 - weight x (1 - the rule's "
                          "factor); 0.5 at most halves a score, 1 is the rule alone.")


def _flags_show_no_value() -> None:
    """Show flags as flags in `--help`.

    typer's rich help (0.2x) prints a value type after every option, flags included (`--json <bool>`,
    `--help <bool>`), though a flag takes no value; its plain help already leaves it out. Patched once, here,
    so every command (and the --help of every group) shows `--json` alone.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_show_no_value", False):
        return

    def display_type_rich(self, ctx):
        if self.is_flag or self.count:
            return None
        return shown(self, ctx)

    display_type_rich.flags_show_no_value = True
    TyperOption.display_type_rich = display_type_rich


_flags_show_no_value()


class OptionError(Exception):
    """An option value the CLI itself cannot parse (a malformed --box, --storage-options, ...)."""


# The library's own errors, files that cannot be read or written, and options the CLI cannot parse: one
# red line, no traceback. Anything else (a ValueError from a bug, say) keeps its traceback.
USER_ERRORS = (CSFeaturesError, OSError, OptionError)


def fail(message: str, code: int = 1) -> None:
    """Print a one-line red error and exit with ``code``."""
    err_console.print(Text(f"error: {message}", style="bold red"))
    raise typer.Exit(code)


def handle_errors(command: Callable) -> Callable:
    """Decorator: library errors become a one-line message and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return wrapper


class RateColumn(ProgressColumn):
    """Items per second, e.g. "12.3 frames/s"."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(description: str, unit: str = "items", enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback that drives a bar with rate and ETA (stderr)."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def print_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (no colour, machine-readable)."""
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


def parse_storage_options(raw: Optional[str]) -> dict | None:
    """``--storage-options`` JSON as a dict of strings (None when not given)."""
    if not raw:
        return None
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OptionError(f"--storage-options must be a JSON object, got {raw!r} ({exc})") from exc
    if not isinstance(options, dict):
        raise OptionError(f"--storage-options must be a JSON object, got {raw!r}")
    return {str(k): str(v) for k, v in options.items()}


STORAGE_HELP = ('Object-store options as JSON, e.g. \'{"aws_endpoint": "http://127.0.0.1:9000", '
                '"aws_access_key_id": "...", "aws_secret_access_key": "...", "aws_region": "us-east-1"}\'.')


def store_and_arguments(option: Optional[str], given: list[Optional[str]],
                        names: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The store and the other positional arguments of a `csf store ...` command.

    The store is `--store STORE`, as everywhere else, or (for older scripts) the first positional argument;
    exactly one of the two. ``names`` are the positional arguments that follow the store (e.g. ``("NAME",)``).
    """
    values = [value for value in given if value is not None]
    usage = " ".join(("--store STORE", *names))
    if len(values) > len(names) + 1:
        raise OptionError(f"too many arguments {values!r}; expected {usage}")
    if option is not None:
        if len(values) > len(names):
            raise OptionError(f"the store is given twice ({values[0]!r} and --store {option!r}); "
                              "give it once, as --store STORE")
        store = option
    elif len(values) > len(names):
        store, values = values[0], values[1:]
    else:
        raise OptionError("no store given; pass --store STORE (a local folder or s3://bucket/prefix)")
    if len(values) < len(names):
        raise OptionError(f"missing {' '.join(names[len(values):])}; expected {usage}")
    return store, values


def open_store(store: str, storage_options: Optional[str]):
    """The feature store at ``store`` (a folder or URI), opened with ``--storage-options``."""
    from cs_features.store import FeatureStore

    return FeatureStore(store, storage_options=parse_storage_options(storage_options))


def key_value_lines(data: dict, indent: str = "  ") -> list[str]:
    """``key: value`` lines of a (nested) dict, nested dicts indented below their key, lists joined."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.extend(key_value_lines(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {_plain(value)}")
    return lines


def _plain(value: Any) -> str:
    if value is None or value == {} or value == "":
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "(none)"
    return str(value)
