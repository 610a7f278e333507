"""`csf train screen`: the frame screen from the chain's evidence, compared on test with each stage alone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import STORAGE_HELP, console, handle_errors, parse_storage_options, print_json, progress_bar

ROWS = (("autoencoder", "AE alone"), ("string_peak", "string peak"), ("best_region", "best region"),
        ("chain", "chain (screen)"))


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _table(title: str, figures: dict):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("score", "frame AUROC", "frame AP", "CS kept", "frames skipped", "embryo AUROC max",
                   "embryo AUROC persist"):
        table.add_column(column, justify="left" if column == "score" else "right")
    for key, name in ROWS:
        f = figures[key]
        s = f["screening"]
        table.add_row(name, _fmt(f["frame_auroc"]), _fmt(f["frame_ap"]), f"{s['cs_kept']}/{s['cs_frames']}",
                      f"{s['skipped']}/{s['frames']}", _fmt(f["embryo_auroc_max"]), _fmt(f["embryo_auroc_persistence"]))
    return table


@handle_errors
def train_screen(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    ae: Path = typer.Option(..., "--ae", help="Autoencoder folder (`csf train ae`), scored with `csf score ae`."),
    strings: Path = typer.Option(..., "--strings", help="String-map folder (`csf train strings`), scored with "
                                                        "`csf score strings`."),
    head: Path = typer.Option(..., "--head", help="Region head folder (`csf train head`)."),
    out: Path = typer.Option(..., "--out", help="Screen folder to write (config.json)."),
    target_sensitivity: float = typer.Option(0.97, "--target-sensitivity", min=0.01, max=1.0,
                                             help="Share of val CS frames the screening threshold keeps."),
    window: int = typer.Option(2, "--window", min=1, help="Consecutive frames a string must persist over "
                                                          "(embryo persistence score)."),
    percentile: float = typer.Option(99.9, "--percentile", min=0.0, max=100.0,
                                     help="Percentile of the string map inside the embryo taken as its peak."),
    region: str = typer.Option("auto", "--region", help="Where the string map's peak is read: auto (the embryo's "
                               "interior for the part the embryo's other frames do not show, the core for a whole "
                               "map), core (the cavity without its rim), cavity, interior or frame."),
    whole_map_peak: bool = typer.Option(False, "--whole-map-peak", help="Read the string peak from the whole "
                                        "map, not from what the embryo's other frames do not show there."),
    features: str = typer.Option("all", "--features", help="Comma-separated evidence the screen reads: ae_score, "
                                 "string_peak, best_region and each one's rise over its embryo (ae_score_rise, "
                                 "string_peak_rise, best_region_rise); 'all' (default) is the six. README: "
                                 "\"Frame screening\" on which transfer to frames from another world."),
    c: float = typer.Option(1.0, "--c", min=1e-6, help="Inverse L2 strength of the logistic regression (smaller: "
                            "weights spread more evenly over the features)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the logistic solver."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fit one CS probability per frame from the AE score, string-map peak and best region score on the
    val split; compare it with each stage alone on test (frames and embryos)."""
    from cs_features.screening import FrameScreen, screen_features
    from cs_features.screening import train_screen as run

    screen = FrameScreen(C=c, target_sensitivity=target_sensitivity, features=screen_features(features), seed=seed)
    with progress_bar("reading string maps", unit="frames", enabled=not json_out) as progress:
        result = run(store, ae, strings, head, out, screen, k=window, percentile=percentile, region=region,
                     storage_options=parse_storage_options(storage_options), progress=progress,
                     transient_peak=not whole_map_peak)
    if json_out:
        print_json(result.to_dict())
        return
    counts = ", ".join(f"{s} {c['frames']} ({c['cs_frames']} CS)" for s, c in result.frames.items())
    console.print(f"[bold]frame screen[/] fitted on val in {result.seconds:.1f} s; frames: {counts}")
    weights = ", ".join(f"{n} {c:+.2f}" for n, c in zip(result.screen["features"], result.screen["coef"]))
    console.print(f"  standardised coefficients: {weights}; threshold {result.screen['threshold']:.3f} "
                  f"(keeps >= {target_sensitivity:.0%} of val CS frames)")
    console.print(_table(f"test split (thresholds chosen on val for {target_sensitivity:.0%} sensitivity; "
                         f"persistence over {window} frames)", result.test))
    console.print(f"screen: {result.out}")
