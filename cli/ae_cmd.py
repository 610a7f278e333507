"""`csf train ae`, `csf score ae`, `csf show ae`: the autoencoder anomaly filter."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import (
    DEVICE_HELP,
    STORAGE_HELP,
    OptionError,
    console,
    err_console,
    handle_errors,
    parse_storage_options,
    print_json,
    progress_bar,
)

STORE_HELP = "Feature store written by `csf ingest`: a local folder or s3://bucket/prefix."
MODEL_HELP = "Model directory written by `csf train ae`."


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _epoch_line(record: dict) -> None:
    eta = record["eta_s"]
    err_console.print(f"epoch {record['epoch']}/{record['epochs']}  loss {record['loss']:.5f}  "
                      f"val AUROC {_fmt(record['val_auroc'])}  ({record['seconds']:.0f} s, ETA {eta / 60:.1f} min)")


def gate_text(metrics: dict) -> list[str]:
    """What the gate keeps and skips on val and test: CS frames it would drop are lost to the localizer."""
    lines = [f"gate: frames scoring >= {metrics['threshold']:.5f} go on to the localizer "
             f"({metrics['threshold_method']})"]
    for name in ("val", "test"):
        m = metrics.get(name) or {}
        if not m.get("n"):
            continue
        c = m["confusion"]
        kept, cs = c["tp"], c["tp"] + c["fn"]
        skipped, normal = c["tn"], c["tn"] + c["fp"]
        lines.append(f"  {name:<5} keeps {kept} of {cs} CS frames ({kept / cs:.0%}), skips {skipped} of {normal} "
                     f"CS-free frames ({skipped / normal:.0%})" if cs and normal else f"  {name:<5} {c}")
    return lines


def metrics_text(metrics: dict) -> list[str]:
    """Lines summarising val/test frame metrics and embryo metrics."""
    settings = ", ".join(
        f"{k} {v}" for k, v in (metrics.get("score_settings") or {"reducer": metrics["reducer"]}).items()
    )
    lines = [f"threshold {metrics['threshold']:.5f} ({metrics['threshold_method']}; {settings})"]
    for name in ("val", "test", "val_embryo", "test_embryo"):
        m = metrics.get(name) or {}
        if not m.get("n"):
            lines.append(f"  {name:<11} no frames")
            continue
        c = m["confusion"]
        lines.append(f"  {name:<11} AUROC {_fmt(m['auroc'])}  AP {_fmt(m['average_precision'])}  F1 {m['f1']:.3f}  "
                     f"P {m['precision']:.3f}  R {m['recall']:.3f}  acc {m['accuracy']:.3f}  "
                     f"(tp {c['tp']} fp {c['fp']} tn {c['tn']} fn {c['fn']})")
        if m.get("auroc_undefined_reason"):
            lines.append(f"  [yellow]{name}: {m['auroc_undefined_reason']}[/]")
    return lines


@handle_errors
def train_ae(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Model directory to write (weights.safetensors, config.json, metrics.json)."
    ),
    variant: str = typer.Option(
        "weighted", "--variant", help="Loss weighting: weighted (1 + 0.5 x low-texture mask) or unweighted."
    ),
    architecture: str = typer.Option(
        "conv-ae-up", "--architecture",
        help="Autoencoder: conv-ae-up (nearest-upsampling decoder) or conv-ae (published transposed convolutions).",
    ),
    epochs: int = typer.Option(4, "--epochs", min=1, help="Training epochs (the best by validation AUROC is kept)."),
    batch_size: int = typer.Option(16, "--batch-size", min=2, help="Frames per training batch."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    img_size: int = typer.Option(256, "--img-size", min=16, help="Side of the square model input (multiple of 8)."),
    crop_size: int = typer.Option(
        128, "--crop-size", min=0,
        help="Train on one random crop of this side per frame (0 = whole frames, as published).",
    ),
    reducer: str = typer.Option(
        "p99", "--reducer", help="Score reducer over the scored pixels: p95 (published), p99, mean, max, topk-mean."
    ),
    region: str = typer.Option(
        "cavity", "--region",
        help="Pixels scored: mask (the low-texture mask, published) or cavity (embryo interior without TE/ICM).",
    ),
    region_erosion: int = typer.Option(
        6, "--region-erosion", min=0,
        help="Erode the scored region by this many px (drops the residual rim along cell edges).",
    ),
    highpass_sigma: float = typer.Option(
        6.0, "--highpass-sigma", min=0.0,
        help="Subtract the residual's Gaussian blur of this sigma (px) before scoring (0 = off).",
    ),
    line_length: int = typer.Option(
        0, "--line-length", min=0, help="Score the residual's best mean along segments of this length (px; 0 = off)."
    ),
    augment: bool = typer.Option(
        True, "--augment/--no-augment", help="Random flips and 90-degree turns of training frames."
    ),
    gate: str = typer.Option(
        "sensitivity", "--gate",
        help="How the threshold is chosen on val: sensitivity (keeps --gate-sensitivity of CS frames) or youden."),
    gate_sensitivity: float = typer.Option(
        0.97, "--gate-sensitivity", min=0.01, max=1.0, help="Share of val CS frames the gate keeps."),
    seed: int = typer.Option(0, "--seed", help="Seed for weights, batch order and augmentation."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train the autoencoder anomaly filter on the store's train-split normal frames; pick the epoch and the
    threshold on the val split; report val/test metrics; tag the store and save the model directory."""
    from cs_features.autoencoder import AnomalyFilter, train_from_store

    anomaly_filter = AnomalyFilter(model=architecture, variant=variant, epochs=epochs, batch_size=batch_size, lr=lr,
                                   img_size=img_size, seed=seed, device=device, reducer=reducer, region=region,
                                   region_erosion=region_erosion, highpass_sigma=highpass_sigma,
                                   line_length=line_length, augment=augment, crop_size=crop_size or None,
                                   gate=gate, gate_sensitivity=gate_sensitivity)
    with progress_bar("training", unit="batches", enabled=not json_out) as progress:
        result = train_from_store(store, out, anomaly_filter, storage_options=parse_storage_options(storage_options),
                                  progress=progress, on_epoch=None if json_out else _epoch_line)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]autoencoder[/] {result.model_id} ({variant}) trained in {result.seconds:.0f} s; best epoch "
                  f"{result.best_epoch}/{epochs}; store tagged {result.store_tag}")
    console.print("\n".join(metrics_text(result.metrics)))
    console.print("\n".join(gate_text(result.metrics)))
    console.print(f"model: {result.model_dir}")


@handle_errors
def score_ae(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    engine: str = typer.Option(
        "local", "--engine",
        help="Where frames are scored: local (this process) or ray (Ray workers writing into the store; the model "
             "folder must be readable at the same path on every node)."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to join with --engine ray (default: a local Ray for the run)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Ray workers (0 = one per CPU, or per GPU share)."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", min=0.0, help="GPUs each Ray worker holds (0 = CPU workers)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every frame of the store with a trained filter and write the error_maps table (score, flag and
    the compressed residual map per frame)."""
    from cs_features.autoencoder import score_store

    if engine not in ("local", "ray"):
        raise OptionError(f"--engine must be local or ray, got {engine!r}")
    options = parse_storage_options(storage_options)
    with progress_bar("scoring", unit="frames", enabled=not json_out) as progress:
        if engine == "ray":
            from cs_features.autoencoder.ray_scoring import score_store_on_ray

            result = score_store_on_ray(store, model, storage_options=options, device=device, progress=progress,
                                        ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)
        else:
            result = score_store(store, model, storage_options=options, device=device, progress=progress)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]scored[/] {result.frames_scored} frames with {result.model_id} in {result.seconds:.1f} s "
                  f"(threshold {result.threshold:.5f}) -> table error_maps")
    for split, labels in result.flagged.items():
        console.print(f"  {split:<5} " + ", ".join(f"{label}: {c['flagged']}/{c['frames']} flagged"
                                                   for label, c in labels.items()))
    for name, m in result.metrics.items():
        console.print(f"  {name:<11} AUROC {_fmt(m.get('auroc'))}  F1 {_fmt(m.get('f1'))}")


@handle_errors
def show_ae(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for TP.png, FP.png, FN.png, TN.png and index.png."),
    per_category: int = typer.Option(4, "--per-category", min=1, help="Frames shown per category."),
    split: str = typer.Option("test", "--split", help="Split to draw: train, val or test."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw true/false positives and negatives of the filter: frame, residual heat map, residual inside the
    low-texture mask and an overlay, captioned with stem, label, score and threshold."""
    from cs_features.autoencoder import show_filter

    result = show_filter(store, model, out, per_category=per_category, split=split,
                         storage_options=parse_storage_options(storage_options), device=device)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]panels[/] for {result.model_id} (threshold {result.threshold:.5f}, colour scale "
                  f"0..{result.vmax:.3f}): " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    for path in result.files:
        console.print(f"  {path}")

