"""`csf detect`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import (
    ATTACHMENT_WEIGHT_HELP,
    DEVICE_HELP,
    STORAGE_HELP,
    console,
    handle_errors,
    parse_storage_options,
    print_json,
    progress_bar,
)
from cs_features.attachment import AttachmentPrior


@handle_errors
def detect(
    paths: List[Path] = typer.Argument(..., help="Image files, folders of images, or a whole dataset folder."),
    ae: Path = typer.Option(..., "--ae", help="Autoencoder model directory (csf train ae)."),
    head: Path = typer.Option(..., "--head", help="Region head model directory (csf train head)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: detections.json, detections_coco.json, detections.csv, embryos.csv, "
        "yolo/, overlays/, timelines/, and metrics.json when labels exist."
    ),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Folder of YOLO label files <stem>.txt (an empty file: CS-free; no file: unlabelled). "
        "Found automatically when PATH is a dataset folder with labels/ beside its split folders, a flat folder "
        "with labels/ in it, or a YOLO images/<split> folder; label files beside the frames count too.",
    ),
    store: Optional[str] = typer.Option(
        None, "--store", help="Run only the files this feature store holds in --split (matched by their bytes, "
        "whatever their path now), graded against the store's labels: for a flat dataset, whose split ingest drew.",
    ),
    split: str = typer.Option("test", "--split", help="With --store: the split whose frames are run."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    no_gate: bool = typer.Option(
        False, "--no-gate", help="Run the localizer on every frame, not only frames the autoencoder flags."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Boxes kept per frame after NMS."),
    nms_iou: float = typer.Option(0.3, "--nms-iou", help="NMS IoU threshold between reported boxes."),
    min_score: Optional[float] = typer.Option(
        None, "--min-score", help="Smallest string probability p of a box drawn on the overlays "
        "(default: --positive-p, only the boxes that count)."
    ),
    min_region_score: float = typer.Option(
        0.0, "--min-region-score", help="Smallest rank score (p * IoU) of a box reported in the files."
    ),
    no_attachment: bool = typer.Option(
        False, "--no-attachment", help="Rank boxes without the attachment prior "
        "(a box whose line floats free of the cavity's edge, or runs along it, ranks lower).",
    ),
    attachment_weight: float = typer.Option(
        AttachmentPrior.weight, "--attachment-weight", min=0.0, max=1.0, help=ATTACHMENT_WEIGHT_HELP,
    ),
    no_transience: bool = typer.Option(
        False, "--no-transience", help="Rank boxes without the transience prior (a box whose line the embryo's "
        "other frames show at the same place ranks lower; frames are grouped by embryo as ingest groups them).",
    ),
    no_framing: bool = typer.Option(
        False, "--no-framing", help="Rank boxes by the head alone where the head's store proposes with the learned "
        "'strings' source (by default its string map reads each box too: p from the head and the map, IoU the "
        "box's fit to the map's string).",
    ),
    positive_p: Optional[float] = typer.Option(
        None, "--positive-p", help="A frame is CS-positive when a reported box has string probability p (the head's, "
        "with the string map's where it ranks boxes, times the attachment and transience factors) at least this. "
        "Default: the head's own decision, chosen on its val split for recall (csf train head "
        "--frame-sensitivity); 0.5 for a head saved without one.", show_default=False,
    ),
    residual_proposals: bool = typer.Option(
        False, "--residual-proposals",
        help="Add boxes around high-residual regions of the AE error map to the proposals.",
    ),
    embryo_regex: Optional[str] = typer.Option(
        None, "--embryo-regex",
        help="Regex giving the embryo id from a file stem (first group); default: the rules csf ingest uses."
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="DINOv3 weights file, when the head was trained on DINOv3 vectors."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int = typer.Option(
        1, "--workers", min=0, help="Processes running embryos side by side (0 = one per CPU core on the CPU, "
        "one on a GPU); the outputs are the same whatever the number. Each loads the models (seconds), and the "
        "autoencoder's convolutions share the memory bandwidth: on 2 cores 2 workers ran 168 frames 1.19x faster."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Screen frames for strings: autoencoder gate, then proposals, embeddings and the region head;
    writes boxes (JSON, COCO, YOLO, CSV), a picture per frame, a timeline per embryo, and metrics.json
    when labels exist."""
    from cs_features.detect import DetectConfig
    from cs_features.detect import detect as run_detect
    from cs_features.strings.framing import MapFraming
    from cs_features.transience import TransiencePrior

    config = DetectConfig(gate=not no_gate, top_k=top_k, nms_iou=nms_iou, min_score=min_region_score,
                          overlay_min_p=min_score, residual_proposals=residual_proposals, embryo_regex=embryo_regex,
                          positive_p=positive_p,
                          attachment=AttachmentPrior(enabled=not no_attachment, weight=attachment_weight),
                          transience=TransiencePrior(enabled=not no_transience),
                          framing=MapFraming(enabled=not no_framing))
    with progress_bar("detecting", unit="frames", enabled=not json_out) as progress:
        summary = run_detect([str(p) for p in paths], ae, head, out, config, weights=weights, device=device,
                             progress=progress, labels=labels, workers=workers or None, store=store,
                             split=split, storage_options=parse_storage_options(storage_options))
    data = summary.to_dict()
    if json_out:
        print_json(data)
    else:
        console.print(detect_summary_text(data))
    if summary.failed:
        raise typer.Exit(1)


def detect_summary_text(s: dict) -> str:
    """The terminal summary of a detection run (also shown by `csf quickstart`)."""
    positive_embryos = sum(e["cs_positive"] for e in s["embryos"].values())
    lines = [
        f"[bold]detect[/] {s['frames']} frames read, {s['failed']} files failed, in {s['seconds']:.1f} s, "
        f"{s['frames_per_second']:.2f} frames/s; gate {'on' if s['gate'] else 'off'}",
        f"autoencoder flagged {s['flagged']}; localizer ran on {s['localized']}, skipped {s['localizer_skipped']}",
        f"detected CS in {s['cs_positive_frames']} of {s['frames']} frames; embryos: {positive_embryos} of "
        f"{len(s['embryos'])} detected CS (failed files are no embryo's frames)",
        f"frame decision: best box p >= {s['positive_p']:.3f} ({s.get('positive_p_source', 'given')})",
        ("per stage: " if s.get("workers", 1) == 1 else f"per stage (summed over {s['workers']} workers): ")
        + ", ".join(f"{k} {v:.1f} s" for k, v in s["stage_seconds"].items()),
    ]
    for embryo, e in sorted(s["embryos"].items()):
        if e["cs_positive"]:
            frames = ", ".join(f"{f['stem']} (p {f['best_p']:.2f})" for f in e["deciding_frames"][:3])
            truth = f"; truth: {e['truth']}" if e.get("truth") else ""
            lines.append(f"  embryo {embryo}: detected CS, decided by {frames}{truth}")
    lines += _selection_lines(s.get("selection"))
    lines += _failed_lines(s.get("failures", []))
    lines += _skipped_lines(s.get("skipped_files", []))
    lines += _graded_lines(s.get("graded"))
    files = s["files"]
    lines.append(f"pictures: {files['overlays']}/, {files['timelines']}/  tables: {files['embryos']}, {files['csv']}")
    lines.append(f"boxes: {files['detections']}, {files['coco']}, {files['yolo']}/"
                 + (f"  metrics: {files['metrics']}" if "metrics" in files else ""))
    return "\n".join(lines)


def _failed_lines(failures: list) -> list[str]:
    if not failures:
        return []
    lines = [f"[bold red]failed[/] ({len(failures)} files not read, not counted as frames or embryos):"]
    lines += [f"  {f['path']}: {f['reason']}" for f in failures[:20]]
    if len(failures) > 20:
        lines.append(f"  ... and {len(failures) - 20} more (all under 'failed' in detections.json)")
    return lines


def _selection_lines(selection: dict | None) -> list[str]:
    if not selection:
        return []
    return [f"split {selection['split']} of store {selection['store']}: {selection['frames']} frames run"
            + (f"; left out: {selection['left_out']}" if selection["left_out"] else "")]


def _skipped_lines(skipped: list) -> list[str]:
    if not skipped:
        return []
    shown = ", ".join(f["path"] for f in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    files = "file that is not an image" if len(skipped) == 1 else "files that are not images"
    return [f"skipped {len(skipped)} {files}: {shown}{more} (under 'skipped' in detections.json)"]


def _graded_lines(g: dict | None) -> list[str]:
    if not g:
        return []

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    frame, embryo = g["frame"], g["embryo"]
    c = frame["confusion"]
    return [
        f"[bold]graded[/] against labels: {g['labelled_frames']} labelled frames, {g['unlabelled_frames']} unlabelled "
        f"(left out); frame score = best box p, CS when >= {g['positive_p']:.3g}",
        f"  frames: AUROC {fmt(frame['auroc'])}, AP {fmt(frame['average_precision'])}, F1 {fmt(frame['f1'])}; "
        f"TP {c['tp']} FP {c['fp']} FN {c['fn']} TN {c['tn']}",
        f"  embryos ({embryo['n']}): AUROC {fmt(embryo['auroc'])}, AP {fmt(embryo['average_precision'])}, "
        f"F1 {fmt(embryo['f1'])}; TP {embryo['confusion']['tp']} FP {embryo['confusion']['fp']} "
        f"FN {embryo['confusion']['fn']} TN {embryo['confusion']['tn']}",
        f"  boxes ({g['strings']} strings): AP25 {fmt(g['ap25'])}, AP50 {fmt(g['ap50'])}",
    ]
