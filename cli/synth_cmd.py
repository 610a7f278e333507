"""`csf synth`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import console, handle_errors, print_json, progress_bar

_PRESETS = "clean, hard, clean-crop, hard-crop"  # kept literal so --help needs no library import


@handle_errors
def synth(
    out: Path = typer.Argument(..., help="Folder to write the dataset into (created if missing)."),
    preset: str = typer.Option("clean", "--preset", "-p",
                               help=f"Synthetic world: {_PRESETS}. 'hard' looks like other renderers and real "
                                    "HMC frames; '-crop' variants are blastocyst-centred crops of 250-450 px."),
    embryos: int = typer.Option(20, "--embryos", "-n", min=3, help="Number of embryos to render."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed; the same seed writes byte-identical files."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Time-lapse frames per embryo (preset default: 6)."),
    size: Optional[int] = typer.Option(None, "--size",
                                       help="Frame width and height in pixels; overrides a crop preset's "
                                            "per-embryo size (preset default: 500)."),
    cs_fraction: Optional[float] = typer.Option(None, "--cs-fraction",
                                                help="Share of embryos that show strings (preset default: 0.5)."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0 = one per CPU core)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write a synthetic blastocyst time-lapse dataset (split/label folders, YOLO labels, manifest.csv,
    contact_sheet.png) so every command can be tried before real data is at hand."""
    from cs_features.synth import generate_dataset, synth_preset

    given = {"frames_per_embryo": frames, "image_size": size, "cs_fraction": cs_fraction}
    config = synth_preset(preset, **{k: v for k, v in given.items() if v is not None})
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
