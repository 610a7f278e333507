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


def open_store(store: str, storage_options: Optional[str]):
    """The feature store at ``store`` (a folder or URI), opened with ``--storage-options``."""
    from cs_features.store import FeatureStore

    return FeatureStore(store, storage_options=parse_storage_options(storage_options))
