"""`csf detect`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import console, handle_errors, print_json, progress_bar


@handle_errors
def detect(
    paths: List[Path] = typer.Argument(..., help="Image files, folders of images, or a whole dataset folder."),
    ae: Path = typer.Option(..., "--ae", help="Autoencoder model directory (csf train ae)."),
    head: Path = typer.Option(..., "--head", help="Region head model directory (csf train head)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: detections.json, detections_coco.json, yolo/, overlays/."
    ),
    no_gate: bool = typer.Option(
        False, "--no-gate", help="Run the localizer on every frame, not only frames the autoencoder flags."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Boxes kept per frame after NMS."),
    nms_iou: float = typer.Option(0.3, "--nms-iou", help="NMS IoU threshold between reported boxes."),
    min_score: float = typer.Option(0.0, "--min-score", help="Smallest region score (p * IoU) reported."),
    positive_p: float = typer.Option(
        0.5, "--positive-p", help="A frame is CS-positive when a reported box has string probability p at least this."
    ),
    residual_proposals: bool = typer.Option(
        False, "--residual-proposals",
        help="Add boxes around high-residual regions of the AE error map to the proposals.",
    ),
    embryo_regex: str = typer.Option(
        r"^([^_]+)", "--embryo-regex", help="Regex giving the embryo id from a file stem (first group)."
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="DINOv3 weights file, when the head was trained on DINOv3 vectors."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device: cpu, cuda or auto."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Screen frames for strings: autoencoder gate, then proposals, embeddings and the region head;
    writes boxes (JSON, COCO, YOLO) and a picture per frame."""
    from cs_features.detect import DetectConfig
    from cs_features.detect import detect as run_detect

    config = DetectConfig(gate=not no_gate, top_k=top_k, nms_iou=nms_iou, min_score=min_score,
                          residual_proposals=residual_proposals, embryo_regex=embryo_regex,
                          positive_p=positive_p)
    with progress_bar("detecting", unit="frames", enabled=not json_out) as progress:
        summary = run_detect([str(p) for p in paths], ae, head, out, config, weights=weights, device=device,
                             progress=progress)
    data = summary.to_dict()
    if json_out:
        print_json(data)
    else:
        console.print(detect_summary_text(data))
    if summary.failed:
        raise typer.Exit(1)


def detect_summary_text(s: dict) -> str:
    positive_embryos = sum(e["cs_positive"] for e in s["embryos"].values())
    lines = [
        f"[bold]detect[/] {s['frames']} frames ({s['failed']} failed) in {s['seconds']:.1f} s, "
        f"{s['frames_per_second']:.2f} frames/s; gate {'on' if s['gate'] else 'off'}",
        f"autoencoder flagged {s['flagged']}; localizer ran on {s['localized']}, skipped {s['localizer_skipped']}",
        f"CS-positive frames: {s['cs_positive_frames']}; embryos: {positive_embryos} of {len(s['embryos'])} "
        "CS-positive",
        "per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in s["stage_seconds"].items()),
    ]
    for embryo, e in sorted(s["embryos"].items()):
        if e["cs_positive"]:
            frames = ", ".join(f"{f['stem']} ({f['best_score']:.2f})" for f in e["deciding_frames"][:3])
            lines.append(f"  embryo {embryo}: CS-positive, decided by {frames}")
    lines.append(f"pictures: {s['files']['overlays']}/  boxes: {s['files']['detections']}, {s['files']['coco']}, "
                 f"{s['files']['yolo']}/")
    return "\n".join(lines)
