"""`csf train head` and `csf bench heads`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import (
    ATTACHMENT_WEIGHT_HELP,
    DEVICE_HELP,
    STORAGE_HELP,
    OptionError,
    console,
    handle_errors,
    parse_storage_options,
    print_json,
    progress_bar,
)
from cs_features.attachment import AttachmentPrior

METRIC_LINES = (("average_precision", "region AP"), ("auroc", "region AUROC"), ("iou_mae", "IoU MAE"),
                ("hit@0.25", "frame hit@0.25"), ("hit@0.5", "frame hit@0.5"), ("ap25", "detection AP25"),
                ("ap50", "detection AP50"))


@handle_errors
def train_head(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    model: str = typer.Option(..., "--model", help="Head: mlp, lightgbm, logreg or knn."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (config.json, weights, metrics.json)."),
    encoder: str = typer.Option("classic", "--encoder", help="Which encoder's vectors to train on."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same head)."),
    device: str = typer.Option("auto", "--device", help=f"{DEVICE_HELP} (the mlp head only)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    frame_sensitivity: float = typer.Option(
        0.97, "--frame-sensitivity", min=0.01, max=1.0,
        help="The frame decision csf detect uses by default: the highest best-box p that keeps this share of "
        "the val CS frames, halfway down to the next lower val frame."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a region head on the train split (validation for early stopping), report test metrics, choose
    its frame decision on validation."""
    from cs_features.heads.decision import FrameDecision
    from cs_features.heads.training import train_head as run_train

    params = {"device": device} if model == "mlp" else {}
    with progress_bar(f"training {model}", unit="steps", enabled=not json_out) as progress:
        result = run_train(store, model, out, encoder=encoder, seed=seed, params=params,
                           storage_options=parse_storage_options(storage_options), progress=progress,
                           decision=FrameDecision(sensitivity=frame_sensitivity))
    if json_out:
        print_json(result)
        return
    m, rows = result["metrics"], result["rows"]
    console.print(f"[bold]{model}[/] head on {encoder} vectors of {result['store']}: trained on "
                  f"{rows['train']['rows']} proposals ({rows['train']['positives']} positive) in "
                  f"{m['train_seconds']:.1f} s")
    console.print(f"test ({rows['test']['rows']} labelled proposals, {rows['test_cs_frames']} frames with strings):")
    for key, title in METRIC_LINES:
        value = m[key]
        console.print(f"  {title:<16} " + ("undefined" if value is None or value != value else f"{value:.3f}"))
    console.print(f"  inference        {m['infer_rows_per_s']:,.0f} rows/s;  model size {m['model_bytes']:,} bytes")
    console.print(decision_line(result["frame_decision"]))
    console.print(f"saved to {out} (metrics in {out / 'metrics.json'})")


def decision_line(chosen: dict) -> str:
    """How `csf detect` will call frames with this head, as chosen on val."""
    if not chosen.get("chosen"):
        return f"frame decision: p >= {chosen['positive_p']:g} ({chosen['reason']})"
    return (f"frame decision: p >= {chosen['positive_p']:.3f}, chosen on val for {chosen['sensitivity']:.0%} "
            f"sensitivity: keeps {chosen['cs_kept']} of {chosen['cs_frames']} val CS frames, calls "
            f"{chosen['cs_free_called']} of {chosen['cs_free_frames']} CS-free (csf detect's default; --positive-p "
            "overrides)")


@handle_errors
def bench_heads(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    out: Path = typer.Option(..., "--out", help="Folder for heads.md, heads.json and pr.png."),
    encoder: str = typer.Option("classic", "--encoder", help="Which encoder's vectors to use."),
    models: str = typer.Option("mlp,lightgbm,logreg,knn", "--models", help="Comma-separated heads to compare."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per head (mean and std are reported)."),
    nms_iou: float = typer.Option(0.3, "--nms-iou", min=0.0, max=1.0, help="NMS IoU before detection AP."),
    no_attachment: bool = typer.Option(
        False, "--no-attachment", help="Rank boxes without the attachment prior."
    ),
    attachment_weight: float = typer.Option(
        AttachmentPrior.weight, "--attachment-weight", min=0.0, max=1.0, help=ATTACHMENT_WEIGHT_HELP,
    ),
    no_transience: bool = typer.Option(
        False, "--no-transience", help="Rank boxes without the transience prior (a line the embryo's other "
        "frames show at the same place ranks lower)."
    ),
    no_framing: bool = typer.Option(
        False, "--no-framing", help="Rank boxes by the head alone where the store proposes with the learned "
        "'strings' source (by default its string map reads each box too: p from the head and the map, IoU the "
        "box's fit to the map's string)."
    ),
    sources: str = typer.Option(
        "", "--sources", help="Use only proposals of these sources (comma-separated, e.g. ss-fast); default all."
    ),
    save_best: Optional[Path] = typer.Option(
        None, "--save-best", help="Also save the best head (by frame hit@0.25, its first seed) to this folder, "
        "as `csf train head` would: the model `csf detect` takes, without training it again."
    ),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print heads.json on stdout."),
) -> None:
    """Train and evaluate every head on one tagged snapshot of the store, side by side."""
    from cs_features.heads.bench import BenchConfig, run_heads_bench
    from cs_features.heads.report import markdown_report, strict_json
    from cs_features.heads.training import EvalSettings
    from cs_features.strings.framing import MapFraming
    from cs_features.transience import TransiencePrior

    names = tuple(name.strip() for name in models.split(",") if name.strip())
    if not names:
        raise OptionError(f"--models must name at least one head, got {models!r}")
    settings = EvalSettings(nms_iou=nms_iou,
                            attachment=AttachmentPrior(enabled=not no_attachment, weight=attachment_weight),
                            transience=TransiencePrior(enabled=not no_transience),
                            framing=MapFraming(enabled=not no_framing))
    config = BenchConfig(models=names, seeds=seeds, settings=settings,
                         sources=tuple(x.strip() for x in sources.split(",") if x.strip()))
    with progress_bar("benchmarking heads", unit="runs", enabled=not json_out) as progress:
        result = run_heads_bench(store, out, encoder=encoder, config=config, save_best=save_best,
                                 storage_options=parse_storage_options(storage_options), progress=progress)
    if json_out:
        print_json(strict_json(result))
        return
    console.print(markdown_report(result), markup=False, highlight=False)
    console.print(f"written: {out / 'heads.md'}, {out / 'heads.json'}, {out / 'pr.png'}")
    if save_best is not None:
        console.print(f"best head: {result['saved']['model']} (seed {result['saved']['seed']}), saved to {save_best}")
        console.print(decision_line(result["saved"]["frame_decision"]))
