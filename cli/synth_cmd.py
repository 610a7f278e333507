"""`csf synth`."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, handle_errors, print_json, progress_bar


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
