"""`csf train strings`, `csf score strings`, `csf show strings`: the learned string map."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import STORAGE_HELP, console, handle_errors, parse_storage_options, print_json, progress_bar

STORE_HELP = "Feature store written by `csf ingest`: a local folder or s3://bucket/prefix."
MODEL_HELP = "Model directory written by `csf train strings`."


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@handle_errors
def train_strings(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    out: Path = typer.Option(..., "--out", help="Model directory to write (config.json, string_map.txt)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pixel draws and of LightGBM's sampling."),
    max_pixels_per_frame: int = typer.Option(1500, "--max-pixels-per-frame", min=2,
                                             help="Pixels drawn per frame (half of them on strings in a CS frame)."),
    positive_fraction: float = typer.Option(0.06, "--positive-fraction",
                                            help="Share of a box's pixels (highest line response) taken as string."),
    n_estimators: int = typer.Option(150, "--n-estimators", min=1, help="Boosting rounds at most."),
    input_smoothing: float = typer.Option(
        1.0, "--input-smoothing", min=0.0,  # cs_features.strings.model.INPUT_SMOOTHING (a test holds them equal)
        help="Sigma (px) of the Gaussian each frame gets before the filter bank, in training and in every map "
             "(0: none). Raises the frame screen's string evidence on other cameras' frames; boxes framed on a "
             "smoothed map fit less tightly (README, \"String map\")."),
    unlabelled_store: Optional[str] = typer.Option(
        None, "--unlabelled-store",
        help="Store of unlabelled time-lapses from the camera the map will read (its labels are never read; "
             "--store itself gives its frames outside train and val): the map is trained again with pixels "
             "the first map lights where the embryo's other frames do not (strings) and where they do "
             "(structures that stay) (README, \"Self-training on unlabelled time-lapses\")."),
    self_training_share: float = typer.Option(
        0.5, "--self-training-share", min=0.0,
        help="Total weight of the unlabelled store's pixels, as a share of the labelled pixels' weight."),
    self_training_lit: float = typer.Option(
        0.9, "--self-training-lit", min=0.0, max=1.0,
        help="Level of the first map at which an unlabelled pixel the embryo's other frames do not light is taken "
             "as string (lower it for a map that is seldom this sure on the unlabelled frames)."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train the string map (a LightGBM pixel classifier on a filter bank) from the store's string boxes:
    train split to fit, val split to early-stop and report pixel AUROC/AP."""
    from cs_features.strings import PixelSampling, StringMapModel
    from cs_features.strings import train_strings as run
    from cs_features.strings.selftraining import SelfTraining

    sampling = PixelSampling(max_pixels_per_frame=max_pixels_per_frame, positive_fraction=positive_fraction)
    self_training = SelfTraining(share=self_training_share, lit=self_training_lit)
    with progress_bar("sampling pixels", unit="frames", enabled=not json_out) as progress:
        result = run(store, out, StringMapModel(n_estimators=n_estimators, seed=seed,
                                                   input_smoothing=input_smoothing), sampling,
                     storage_options=parse_storage_options(storage_options), progress=progress,
                     unlabelled=unlabelled_store, self_training=self_training)
    if json_out:
        print_json(result.to_dict())
        return
    val = result.metrics["val"]
    train = result.frames["train"]
    console.print(f"[bold]string map[/] {result.model_id} trained in {result.seconds:.0f} s "
                  f"({result.best_iteration} rounds) on {train['cs_frames']} CS and {train['cs_free_frames']} "
                  f"CS-free train frames: {train['positive_pixels']:,} string and {train['negative_pixels']:,} "
                  "other pixels" + (f"; {train['skipped_cs_without_boxes']} CS frames without boxes left out"
                                    if train.get("skipped_cs_without_boxes") else ""))
    console.print(f"  val pixels: AUROC {_fmt(val.get('auroc'))}  AP {_fmt(val.get('average_precision'))} "
                  f"(vs CS-free frames), hard AUROC {_fmt(val.get('auroc_hard'))}, "
                  f"outside boxes AUROC {_fmt(val.get('auroc_outside_boxes'))}")
    if result.self_training:
        pixels = result.self_training["pixels"]
        console.print(f"  self-trained on {pixels['frames_used']} unlabelled frames of {pixels['embryos']} embryos: "
                      f"{pixels['positive_pixels']} string pixels, {pixels['persistent_negative_pixels']} of "
                      f"structures that stay, {pixels['dark_negative_pixels']} dark; the first map's val AUROC "
                      f"was {_fmt(result.metrics['first_map_val'].get('auroc'))}")
    console.print(f"model: {result.model_dir}")


@handle_errors
def score_strings(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write the string map of every frame of the store to the string_maps table (uint8 PNG per frame)."""
    from cs_features.strings import score_strings as run

    with progress_bar("scoring", unit="frames", enabled=not json_out) as progress:
        result = run(store, model, storage_options=parse_storage_options(storage_options), progress=progress)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]string maps[/] of {result.frames_scored} frames with {result.model_id} in "
                  f"{result.seconds:.1f} s -> table string_maps")
    for split, m in result.frame_metrics.items():
        console.print(f"  {split:<5} {m['frames']} frames ({m['cs_frames']} CS): frame AUROC of the map's peak in "
                      f"the cavity's core {_fmt(m['peak_auroc'])}, of its transient part (what the embryo's other "
                      f"frames do not show) in the interior {_fmt(m['transient_peak_auroc'])}")


@handle_errors
def show_strings(
    store: str = typer.Option(..., "--store", help=STORE_HELP),
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for string_maps.png."),
    frames: int = typer.Option(3, "--frames", min=1, help="Rows drawn (CS frames with boxes first)."),
    split: str = typer.Option("test", "--split", help="Split to draw: train, val or test."),
    top_boxes: int = typer.Option(5, "--top-boxes", min=0,
                                  help="Strongest boxes of the learned 'strings' source drawn per frame (0: none)."),
    whole_map: bool = typer.Option(False, "--whole-map",
                                   help="Draw the whole map only, without what the embryo's other frames do not show."),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw frame | string map | its transient part (what the embryo's other frames do not show, the frame
    screen's string evidence) | ground-truth and strongest learned boxes for a few frames of a split."""
    from cs_features.strings.panels import show_strings as run
    from cs_features.transience import TransiencePrior

    result = run(store, model, out, n_frames=frames, split=split,
                 storage_options=parse_storage_options(storage_options), top_boxes=top_boxes,
                 transience=TransiencePrior(enabled=not whole_map))
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]panels[/] of {', '.join(result.frames)}: {result.files[0]}")
    for stem, peak in result.peaks.items():
        transient = "" if peak["transient"] is None else f", its transient part {peak['transient']:.2f}"
        console.print(f"  {stem}: string peak of the map {peak['map']:.2f}{transient}")
