"""`csf`: the command-line face of cs_features. Each command parses options, calls one library
function, prints the result and chooses the exit code."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, handle_errors, print_json, progress_bar
from cli.ingest_cmd import ingest, store_app

app = typer.Typer(
    name="csf",
    help="Find cytoplasmic strings (CS) in human embryo time-lapse frames: synthetic data, a LanceDB "
    "feature store, an autoencoder anomaly filter, region heads, detection and similarity search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the library's info-level log.")) -> None:
    """Route the library's log (warnings such as random DINOv3 weights) to stderr."""
    import logging

    from rich.logging import RichHandler

    from cli.common import err_console

    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], format="%(message)s",
                        force=True)


app.command("ingest")(handle_errors(ingest))
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


@app.command()
@handle_errors
def synth(
    out: Path = typer.Argument(..., help="Folder to write the dataset into (created if missing)."),
    embryos: int = typer.Option(20, "--embryos", "-n", min=3, help="Number of embryos to render."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed; the same seed writes byte-identical files."),
    frames: int = typer.Option(6, "--frames", help="Time-lapse frames per embryo."),
    size: int = typer.Option(500, "--size", help="Frame width and height in pixels."),
    cs_fraction: float = typer.Option(0.5, "--cs-fraction", help="Share of embryos that show strings."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0 = one per CPU core)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write a synthetic blastocyst time-lapse dataset (split/label folders, YOLO labels, manifest.csv,
    contact_sheet.png) so every command can be tried before real data is at hand."""
    from cs_features.synth import SynthConfig, generate_dataset

    config = SynthConfig(image_size=size, frames_per_embryo=frames, cs_fraction=cs_fraction)
    with progress_bar("rendering", unit="embryos", enabled=not json_out) as progress:
        summary = generate_dataset(out, n_embryos=embryos, seed=seed, config=config,
                                   workers=workers or None, progress=progress)
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(synth_summary_text(summary.to_dict()))


def synth_summary_text(summary: dict) -> str:
    lines = [f"[bold]{summary['n_frames']}[/] frames of {summary['n_embryos']} embryos "
             f"written to {summary['out_dir']} in {summary['seconds']:.1f} s"]
    for split, counts in summary.get("splits", {}).items():
        lines.append(f"  {split:<5} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append(f"contact sheet: {summary['contact_sheet']}")
    return "\n".join(lines)


@app.command()
@handle_errors
def quickstart(
    out: Path = typer.Argument(Path("csf-demo"), help="Working folder for the demo (data, store, models, pictures)."),
    embryos: int = typer.Option(48, "--embryos", "-n", min=6, help="Synthetic embryos to render."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed for every stage."),
    proposals: str = typer.Option("filament,ss-fast", "--proposals", help="Proposal sources for ingest (comma-separated)."),
    size: int = typer.Option(500, "--size", help="Synthetic frame width and height in pixels."),
    ae_epochs: int = typer.Option(4, "--ae-epochs", min=1, help="Autoencoder training epochs (a quick demo: few)."),
) -> None:
    """Run the main job end to end on synthetic data with local defaults (no network, no GPU):
    synth -> ingest -> train and score the autoencoder -> bench the region heads -> detect on the test
    split -> one similarity query. Prints where the pictures are."""
    from cs_features.quickstart import QuickstartConfig, run_quickstart

    from cli.quickstart_view import QuickstartView

    view = QuickstartView(console)
    config = QuickstartConfig(embryos=embryos, seed=seed, image_size=size, proposals=proposals, ae_epochs=ae_epochs)
    results = run_quickstart(out, config, on_stage=view.stage_done, progress=view.progress)
    view.finish(out, results)
    if results["ingest"]["frames_failed"] or results["detect"]["failed"]:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
