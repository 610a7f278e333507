"""`csf review` (the review page) and `csf review export`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Optional

import typer

from cli.common import STORAGE_HELP, OptionError, console, handle_errors, parse_storage_options, print_json

review_app = typer.Typer(help="Review detections in the browser and send the labels back into the store.",
                         invoke_without_command=True, no_args_is_help=False)


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


@review_app.callback()
@handle_errors
def review(
    ctx: typer.Context,
    store: Optional[str] = typer.Option(None, "--store", help="Feature store folder or URI."),
    detections: Optional[Path] = typer.Option(
        None, "--detections", help="Output folder of `csf detect` (its detections.json) whose boxes to review."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to bind; anything but localhost requires the printed access token."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Name recorded with each decision "
                                                                    "(default: the login name)."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
) -> None:
    """Start the review page: a queue of frames (boxes near the decision threshold first), each frame with its
    boxes, the autoencoder's residual map, the embryo's timeline and the nearest labelled regions; accept,
    reject, draw or mark CS-free with the keyboard and mouse. Every decision is a row of the store's
    `annotations` table, which `csf train head` and `csf train strings` read as ground truth."""
    if ctx.invoked_subcommand is not None:
        return
    if store is None:
        raise OptionError("no store given; pass --store STORE")
    from cs_features.review.app import ReviewConfig, create_app
    from cs_features.review.serve import allowed_hosts, needs_token, new_token, review_url, serve

    token = new_token() if needs_token(host) else None
    config = ReviewConfig(store, str(detections) if detections else None, reviewer or _default_reviewer(), token,
                          parse_storage_options(storage_options), allowed_hosts(host))
    app = create_app(config)
    queue = app.state.queue
    console.print(f"[bold]review[/] {len(queue.frames)} frames of {store}"
                  + (f", boxes from {detections}" if detections else " (no --detections: truth and drawn boxes)")
                  + f"; reviewer {config.reviewer}")
    if queue.detections.unmatched:
        console.print(f"[yellow]{len(queue.detections.unmatched)} detected frame(s) are not in the store and are "
                      f"left out (e.g. {queue.detections.unmatched[0]})[/]")
    console.print(f"open [bold]{review_url(host, port, token)}[/]  (Ctrl+C stops)")
    serve(app, host, port)


@review_app.command("export")
@handle_errors
def export(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    out: Path = typer.Option(..., "--out", help="Folder for labels/<stem>.txt (YOLO) and reviewed_coco.json."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write the reviewed labels (stored truth with the reviewers' decisions applied) as YOLO label files and
    a COCO json."""
    from cs_features.review.export import export_reviews
    from cs_features.store import FeatureStore

    result = export_reviews(FeatureStore(store, storage_options=parse_storage_options(storage_options)), out)
    if json_out:
        print_json(result)
        return
    console.print(f"{result['frames']} reviewed frames ({result['cs_free']} CS-free, {result['boxes']} string boxes) "
                  f"-> {result['labels']} and {result['coco']}"
                  + (f"; {result['unknown']} frame(s) with only rejections and no known truth left out"
                     if result["unknown"] else ""))
