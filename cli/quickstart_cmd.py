"""`csf quickstart`."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, handle_errors
from cs_features.proposals.config import DEFAULT_SOURCES


@handle_errors
def quickstart(
    out: Path = typer.Argument(Path("csf-demo"), help="Working folder for the demo (data, store, models, pictures)."),
    embryos: int = typer.Option(48, "--embryos", "-n", min=6, help="Synthetic embryos to render."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed for every stage."),
    proposals: str = typer.Option(
        DEFAULT_SOURCES, "--proposals", help="Proposal sources for ingest (comma-separated)."
    ),
    size: int = typer.Option(500, "--size", help="Synthetic frame width and height in pixels."),
    ae_epochs: int = typer.Option(4, "--ae-epochs", min=1, help="Autoencoder training epochs (a quick demo: few)."),
    fresh: bool = typer.Option(
        False, "--fresh",
        help="Delete an earlier run in DIR (data, store, models, pictures) and rebuild all of it; needed when "
             "DIR holds a run with other options."),
) -> None:
    """Run the main job end to end on synthetic data with local defaults (no network, no GPU):
    synth -> ingest -> train and score the autoencoder -> bench the region heads -> detect on the test
    split -> one similarity query. Prints where the pictures are. DIR holding a run with other options is
    refused unless --fresh (data, store and models are rebuilt together or not at all)."""
    from cli.quickstart_view import QuickstartView
    from cs_features.quickstart import QuickstartConfig, run_quickstart

    view = QuickstartView(console)
    config = QuickstartConfig(embryos=embryos, seed=seed, image_size=size, proposals=proposals, ae_epochs=ae_epochs)
    results = run_quickstart(out, config, on_stage=view.stage_done, progress=view.progress, fresh=fresh)
    view.finish(out, results)
    if results["ingest"]["frames_failed"] or results["detect"]["failed"]:
        raise typer.Exit(1)
