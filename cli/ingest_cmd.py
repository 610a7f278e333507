"""`csf ingest` and `csf store ...`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from cli.common import (
    DEVICE_HELP,
    STORAGE_HELP,
    OptionError,
    console,
    handle_errors,
    key_value_lines,
    open_store,
    parse_storage_options,
    print_json,
    progress_bar,
    store_and_arguments,
)
from cs_features.proposals.config import DEFAULT_SOURCES

store_app = typer.Typer(help="Inspect the feature store: tables, versions, tags.", no_args_is_help=True)


def ingest(
    dataset: Path = typer.Argument(
        ..., help="Dataset folder: {train,val,test}/{normal,abnormal}/, a YOLO dataset, or a flat folder of frames."),
    store: str = typer.Option(..., "--store", help="Feature store: a local folder or s3://bucket/prefix."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="YOLO label folder (default DATASET/labels)."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", help="CSV with stem,embryo_id (default DATASET/manifest.csv if present)."
    ),
    embryo_regex: Optional[str] = typer.Option(
        None, "--embryo-regex",
        help="Regex giving the embryo id from a stem (first group); default: the text before a trailing "
             "'_<frame digits>' (less an '_F<n>' focal plane), else before the first '_'.",
    ),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout: auto, folders, yolo or flat."),
    labels_csv: Optional[Path] = typer.Option(
        None, "--labels-csv",
        help="CSV: stem or path, label[, embryo_id, split, frame_index] (yolo/flat; default DATASET/labels.csv).",
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the automatic split (flat folder, no splits)."),
    encoder: str = typer.Option("classic", "--encoder", help="Encoder: classic, dinov3-vits16, dinov3-vitb16."),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="DINOv3 weights file (.safetensors/.pth), or 'random' (testing only)."
    ),
    pooling: str = typer.Option(
        "roi", "--pooling", help="ViT pooling: roi (one pass per frame) or crop (one pass per box)."
    ),
    proposals: str = typer.Option(
        DEFAULT_SOURCES, "--proposals",
        help=(
            "Proposal sources, comma-separated, earlier sources win duplicates: ss-grey (Selective Search on the grey "
            "frame at two scales, fast), ss-fast, ss-quality, ss-single (OpenCV Selective Search as published), "
            "filament (thin curvilinear paths)."
        ),
    ),
    max_proposals: int = typer.Option(300, "--max-proposals", min=1, help="Cap on proposals per frame."),
    workers: int = typer.Option(
        0, "--workers", min=0,
        help="Worker processes, or Ray workers with --engine ray (0 = one per CPU core, or per GPU share)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_frames: int = typer.Option(16, "--batch-frames", min=1, help="Frames per store commit."),
    engine: str = typer.Option(
        "local", "--engine",
        help="Where frames are processed: local (processes on this machine) or ray (a Ray cluster; workers write "
             "straight into the store, which must be reachable from every node).",
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address",
        help="Ray cluster to join with --engine ray, e.g. auto or 10.0.0.5:6379 (default: a local Ray for the run)."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", min=0.0, help="GPUs each Ray worker holds (0 = CPU workers; 0.5 = two per GPU)."),
    settings: Optional[Path] = typer.Option(
        None, "--settings",
        help=(
            "JSON file overriding store-wide settings, shaped like `csf store info --json`'s settings: "
            "{\"preprocess\": {\"clahe_clip\": 2.0, ...}, \"texture\": {...}, \"proposals\": {...}, \"weak_labels\": "
            "{\"positive_iou\": 0.2, \"negative_iou\": 0.1}}."
        ),
    ),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Process a dataset folder once into the LanceDB feature store (frames, masks, proposals, vectors).
    Re-running adds nothing new; a killed run resumes where it stopped."""
    from cs_features.ingest import IngestConfig
    from cs_features.ingest import ingest as run_ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings

    config = IngestConfig(encoder=encoder, weights=weights, pooling=pooling, device=device, workers=workers,
                          batch_frames=batch_frames, engine=engine, ray_address=ray_address,
                          gpus_per_worker=gpus_per_worker,
                          settings=StoreSettings(proposals=ProposalConfig(method=proposals,
                                                                          max_proposals=max_proposals)))
    if settings is not None:
        config = replace(config, settings=config.settings.merged(_read_settings(settings)))
    with progress_bar("ingesting", unit="frames", enabled=not json_out) as progress:
        summary = run_ingest(dataset, store, config, labels_dir=labels, manifest=manifest, embryo_regex=embryo_regex,
                             storage_options=parse_storage_options(storage_options), progress=progress,
                             layout=layout, labels_csv=labels_csv, split_seed=split_seed)
    if json_out:
        print_json(summary.to_dict())
    else:
        console.print(ingest_summary_text(summary.to_dict()))
    if summary.frames_failed:
        raise typer.Exit(1)


def _read_settings(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise OptionError(f"--settings {str(path)!r} is not a readable JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise OptionError(f"--settings {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


@handle_errors
def add_source(
    source: str = typer.Argument(
        ..., help="Proposal source to add, e.g. strings (boxes around the learned string map)."),
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    strings_model: Optional[Path] = typer.Option(
        None, "--strings-model", help="String-map model folder (csf train strings), for the strings source."),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="DINOv3 weights file, for stores with DINOv3 vectors."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Add a proposal source to an existing store from its stored preprocessed frames (no image is read
    again): every frame gets the proposals a fresh ingest with the source would give."""
    from cs_features.ingest.add_source import add_proposal_source

    overrides = {"strings_model": str(strings_model.resolve())} if strings_model is not None else {}
    with progress_bar(f"adding {source}", unit="frames", enabled=not json_out) as progress:
        summary = add_proposal_source(store, source, overrides, weights=weights,
                                      storage_options=parse_storage_options(storage_options), progress=progress)
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(f"{source} added to {summary.store}: {summary.frames} frames "
                  f"({summary.frames_skipped} already done), {summary.proposals_added} proposals added, "
                  f"{summary.proposals_removed} dropped by the shared cap, in {summary.seconds:.1f} s")
    for encoder, per_source in summary.recall.items():
        for name, r in per_source.items():
            console.print(f"  proposal recall {encoder}/{name}: {r['recall@0.25']:.3f} at IoU>=0.25, "
                          f"{r['recall@0.5']:.3f} at IoU>=0.5 over {r['strings']} strings")


def ingest_summary_text(s: dict) -> str:
    lines = [
        f"[bold]ingest[/] {s['frames_found']} frames found: {s['frames_added']} added, {s['frames_skipped']} "
        f"already in the store, [{'red' if s['frames_failed'] else 'green'}]{s['frames_failed']} failed[/]",
        f"proposals: {s['proposals_added']} added ({s['positives']} positive, {s['negatives']} negative, "
        f"{s['ignored']} ignored) with encoder {s['encoder']}",
        f"time: {s['seconds']:.1f} s ({s['frames_per_second']:.2f} frames/s)"
        + (f", the first frame done after {s['first_frame_seconds']:.1f} s" if s.get("first_frame_seconds") else "")
        + "; per stage (summed over workers): " + ", ".join(f"{k} {v:.1f} s" for k, v in s["stage_seconds"].items()),
        f"store: {s['store']}",
    ]
    space = s.get("search_space") or {}
    if space.get("fitted"):
        lines.append(f"search space: fitted on {space['fitted_rows']} {space['fitted_on']}-split vectors, "
                     f"{space['rows_filled']} rows filled{_took(space)}")
    elif space.get("rows_filled"):
        lines.append(f"search space: {space['rows_filled']} rows filled with the stored space{_took(space)}")
    elif space.get("reason"):
        lines.append(f"[yellow]search space: none fitted: {space['reason']}[/]")
    for source, r in s.get("proposal_recall", {}).items():
        lines.append(f"proposal recall ({source}): {r['recall@0.25']:.3f} at IoU>=0.25, {r['recall@0.5']:.3f} at "
                     f"IoU>=0.5 ({r['strings']} strings; {s['proposals_per_frame']} proposals/frame overall)")
    for failure in s["failures"][:20]:
        lines.append(f"  [red]failed[/] {failure['path']} ({failure['stage']}): {failure['reason']}")
    if len(s["failures"]) > 20:
        lines.append(f"  ... and {len(s['failures']) - 20} more (see `csf store errors`)")
    if s["warnings"]:
        lines.append(f"[yellow]{len(s['warnings'])} warning(s)[/], first: {s['warnings'][0]}")
    return "\n".join(lines)


def _took(space: dict) -> str:
    return f" in {space['seconds']:.1f} s" if space.get("seconds") is not None else ""


STORE_ARG_HELP = "Feature store folder or URI (older form of --store STORE)."
STORE_OPTION_HELP = "Feature store folder or URI."


@store_app.command("info")
@handle_errors
def info(
    store_arg: Optional[str] = typer.Argument(None, metavar="[STORE]", help=STORE_ARG_HELP, show_default=False),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_OPTION_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show tables, row counts, frames per split, encoders, settings and tags."""
    from cs_features.store import store_info

    uri, _ = store_and_arguments(store, [store_arg])
    data = store_info(open_store(uri, storage_options))
    if json_out:
        print_json(data)
        return
    console.print("\n".join(store_info_lines(data)), markup=False, highlight=False)


def store_info_lines(data: dict) -> list[str]:
    """`csf store info` as readable lines: one `key: value` per line, nested settings indented."""
    lines = [f"store {data['uri']}", *key_value_lines(data["store"] or {}), "tables:"]
    lines += [f"  {name:<28} {t['rows']:>9} rows   version {t['version']}" for name, t in data["tables"].items()]
    lines.append("frames:" if data["frames"] else "frames: (none)")
    for split, counts in sorted(data["frames"].items()):
        lines.append(f"  {split:<6} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for name, enc in data["encoders"].items():
        lines += [f"encoder {name}:", *key_value_lines(enc)]
    for name, per_source in data["proposal_recall"].items():
        for source, r in per_source.items():
            lines.append(f"proposal recall {name}/{source}: {r['recall@0.25']:.3f} at IoU>=0.25, "
                         f"{r['recall@0.5']:.3f} at IoU>=0.5 over {r['strings']} strings, "
                         f"{r['proposals_per_frame']} proposals per CS frame")
    lines += ["settings:", *key_value_lines(data["settings"] or {})]
    lines.append(f"errors recorded: {data['errors']}")
    lines.append(f"tags: {', '.join(data['tags']) or '(none)'}")
    return lines


@store_app.command("history")
@handle_errors
def history(
    store_arg: Optional[str] = typer.Argument(None, metavar="[STORE]", help=STORE_ARG_HELP, show_default=False),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_OPTION_HELP),
    every_version: bool = typer.Option(False, "--versions", help="One line per version instead of per run."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print every version as JSON."),
) -> None:
    """What happened to the store: per table, each run of versions (an ingest writes one per batch of
    frames) with the command that writes the table, the versions, rows before -> after, the time span and
    tags; --versions lists every version, --json every version as JSON."""
    from cs_features.store import store_history
    from cs_features.store.admin import history_runs

    uri, _ = store_and_arguments(store, [store_arg])
    rows = store_history(open_store(uri, storage_options))
    if json_out:
        print_json(rows)
        return
    if every_version:
        for row in rows:
            tags = f"  tags: {', '.join(row['tags'])}" if row["tags"] else ""
            console.print(f"{row['table']:<28} v{row['version']:<4} {row['timestamp']}  {row['rows']:>8} rows{tags}",
                          markup=False, highlight=False)
        return
    console.print("\n".join(history_lines(history_runs(rows))), markup=False, highlight=False)


def history_lines(runs: list[dict]) -> list[str]:
    """One line per run of versions: table, what writes it, versions, rows before -> after, time span, tags."""
    lines = []
    for run in runs:
        versions = (f"v{run['first_version']}" if run["versions"] == 1
                    else f"v{run['first_version']}-v{run['last_version']} ({run['versions']} versions)")
        span = run["first_time"][:19] + ("" if run["versions"] == 1 else f" - {run['last_time'][:19]}")
        tags = ""
        if run["tags"]:
            tags = f"; tags {', '.join(run['tags'])}" + (f" ({', '.join(run['tagged_by'])})" if run["tagged_by"]
                                                           else "")
        lines.append(f"{run['table']:<20} {run['made_by']}: {versions}, rows {run['rows_before']} -> "
                     f"{run['rows_after']}, {span}{tags}")
    return lines


@store_app.command("tag")
@handle_errors
def tag(
    arguments: Optional[list[str]] = typer.Argument(
        None, metavar="[STORE] NAME", show_default=False,
        help="Tag name (letters, digits, '.', '_', '-'), after the store in the older form without --store."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_OPTION_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
) -> None:
    """Pin the current version of every table under a tag name: `csf store tag --store STORE NAME`."""
    from cs_features.store import tag_store

    uri, (name,) = store_and_arguments(store, arguments or [], ("NAME",))
    pinned = tag_store(open_store(uri, storage_options), name)
    console.print(f"tagged {name}: " + ", ".join(f"{t} v{v}" for t, v in pinned.items()))


@store_app.command("restore")
@handle_errors
def restore(
    arguments: Optional[list[str]] = typer.Argument(
        None, metavar="[STORE] NAME", show_default=False,
        help="Tag to restore, after the store in the older form without --store."),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_OPTION_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
) -> None:
    """Make a tagged state the latest again (as a new version: nothing in the history is lost):
    `csf store restore --store STORE NAME`."""
    from cs_features.store import restore_store

    uri, (name,) = store_and_arguments(store, arguments or [], ("NAME",))
    restored = restore_store(open_store(uri, storage_options), name)
    console.print(f"restored {name}: " + ", ".join(f"{t} v{v}" for t, v in restored.items()))


@store_app.command("errors")
@handle_errors
def errors(
    store_arg: Optional[str] = typer.Argument(None, metavar="[STORE]", help=STORE_ARG_HELP, show_default=False),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_OPTION_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the files that could not be ingested, with the stage and the reason."""
    from cs_features.store import ERRORS

    uri, _ = store_and_arguments(store, [store_arg])
    opened = open_store(uri, storage_options)
    rows = opened.table(ERRORS).to_arrow().sort_by("path").to_pylist() if opened.has_table(ERRORS) else []
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no errors recorded")
    for row in rows:
        console.print(f"{row['path']} ({row['stage']}): {row['reason']}", markup=False)
