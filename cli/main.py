"""`csf`: the command-line face of cs_features. Each command parses options, calls one library
function, prints the result and chooses the exit code."""

from __future__ import annotations

import typer

from cli.common import handle_errors
from cli.ingest_cmd import add_source, ingest, store_app
from cli.quickstart_cmd import quickstart
from cli.synth_cmd import synth

app = typer.Typer(
    name="csf",
    help="Find cytoplasmic strings (CS) in human embryo time-lapse frames: synthetic data, a LanceDB "
    "feature store, an autoencoder anomaly filter, region heads, detection and similarity search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from cs_features import __version__

        typer.echo(f"csf (cs_features) {__version__}")
        raise typer.Exit()


@app.callback()
def _setup(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the library's info-level log."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the package version and exit."),
) -> None:
    """Route the library's log (warnings such as random DINOv3 weights) to stderr."""
    import logging

    from rich.logging import RichHandler

    from cli.common import err_console

    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], format="%(message)s",
                        force=True)


app.command("ingest")(handle_errors(ingest))
app.command("add-source")(add_source)
app.add_typer(store_app, name="store")

from cli.detect_cmd import detect  # noqa: E402
from cli.search_cmd import index, similar  # noqa: E402

app.command("detect")(detect)

app.command("similar")(similar)
app.command("index")(index)

from cli.groups import bench_app, train_app  # noqa: E402
from cli.heads_cmd import bench_heads, train_head  # noqa: E402

train_app.command("head")(train_head)
bench_app.command("heads")(bench_heads)
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")

from cli.ae_cmd import score_ae, show_ae, train_ae  # noqa: E402
from cli.groups import score_app, show_app  # noqa: E402

train_app.command("ae")(train_ae)
score_app.command("ae")(score_ae)
show_app.command("ae")(show_ae)
app.add_typer(score_app, name="score")
app.add_typer(show_app, name="show")

from cli.strings_cmd import score_strings, show_strings, train_strings  # noqa: E402

train_app.command("strings")(train_strings)
score_app.command("strings")(score_strings)
show_app.command("strings")(show_strings)

from cli.screen_cmd import train_screen  # noqa: E402

train_app.command("screen")(train_screen)

from cli.review_cmd import review_app  # noqa: E402

app.add_typer(review_app, name="review")


app.command()(synth)
app.command()(quickstart)


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
