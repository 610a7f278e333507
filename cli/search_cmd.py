"""`csf similar` and `csf index`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import STORAGE_HELP, OptionError, console, handle_errors, open_store, print_json
from cs_features.boxes import parse_box
from cs_features.errors import InputError


def _parse_box(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        return parse_box(text, name="--box")
    except InputError as exc:
        raise OptionError(str(exc)) from None


@handle_errors
def similar(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    proposal: Optional[str] = typer.Option(None, "--proposal", help="Query with a stored proposal id."),
    image: Optional[Path] = typer.Option(None, "--image", help="Query with a region of this image file (needs --box)."),
    frame: Optional[str] = typer.Option(
        None, "--frame",
        help="Query with a stored frame, by file stem (E0016_f02) or id (box: --box, or its first string)."
    ),
    box: Optional[str] = typer.Option(None, "--box", help="Query box x1,y1,x2,y2 in frame pixels (exclusive end)."),
    k: int = typer.Option(10, "-k", min=1, help="Neighbours to return."),
    where: Optional[str] = typer.Option(
        None, "--where", help="SQL filter on proposals, e.g. \"split = 'train' AND weak_label >= 0\"."
    ),
    encoder: Optional[str] = typer.Option(
        None, "--encoder", help="Encoder whose vectors to search (default: the store's only one)."
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="DINOv3 weights file, for --image/--frame queries on DINOv3 stores."
    ),
    all_regions: bool = typer.Option(
        False, "--all-regions", help="Keep several regions of one frame (default: nearest per frame)."
    ),
    space: str = typer.Option(
        "auto", "--space",
        help=(
            "Search space: auto (the store's fitted standardized space; raw vectors on a store without one), "
            "standardized, or raw."
        ),
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Folder for the contact sheet similar.png (query crop + neighbours)."
    ),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Find the stored regions most similar to a query region, with a CS vote of the neighbours and a
    contact sheet, so an ambiguous string can be judged against known ones."""
    from cs_features.search import similar as run_similar
    from cs_features.search import similar_sheet

    opened = open_store(store, storage_options)
    result = run_similar(opened, proposal_id=proposal, frame_id=frame, image=image, box=_parse_box(box), k=k,
                         where=where, encoder=encoder, weights=weights, distinct_frames=not all_regions,
                         space=space)
    sheet = None
    if out is not None:
        from cs_features.io import read_gray

        query_image = read_gray(image) if image is not None else None
        sheet = similar_sheet(opened, result, Path(out) / "similar.png", query_image=query_image)
    if json_out:
        print_json({**result.to_dict(), "contact_sheet": str(sheet) if sheet else None})
        return
    vote = "n/a" if result.cs_vote is None else f"{result.cs_vote:.2f}"
    console.print(f"[bold]{len(result.neighbours)} nearest regions[/] ({result.encoder}, {result.space} space, "
                  f"{'exact' if result.exact else 'indexed'} search); CS vote of the neighbours: [bold]{vote}[/]")
    if result.space_note:
        console.print(f"[yellow]{result.space_note}[/]")
    for n in result.neighbours:
        label = {1: "CS", 0: "no CS", -1: "ignored"}.get(n.weak_label, "?")
        iou = "-" if n.max_iou is None else f"{n.max_iou:.2f}"
        console.print(f"  d={n.distance:.4f}  {label:<7} iou={iou:<5} {n.split:<5} {n.frame_label:<8} "
                      f"{n.stem or n.frame_id} box {n.box} ({n.source}) id {n.proposal_id}")
    if result.shortfall_note:
        console.print(f"[yellow]{result.shortfall_note}[/]")
    if sheet:
        console.print(f"contact sheet: {sheet}")


@handle_errors
def index(
    store: str = typer.Option(..., "--store", help="Feature store folder or URI."),
    encoder: Optional[str] = typer.Option(
        None, "--encoder", help="Encoder whose vectors to index (default: the store's only one)."
    ),
    index_type: str = typer.Option("IVF_HNSW_SQ", "--index-type", help="LanceDB vector index: IVF_HNSW_SQ or IVF_PQ."),
    force: bool = typer.Option(
        False, "--force", help="Build the vector index even below the size where exact search is as fast."
    ),
    refit: bool = typer.Option(
        False, "--refit", help="Refit the search space on the current train split and rewrite search_vector."
    ),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help=STORAGE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Fit the search space if missing (or --refit), then build the vector index (cosine, on search_vector)
    and scalar indexes on the filter columns of a proposals table."""
    from cs_features.search import build_index

    built = build_index(open_store(store, storage_options), encoder=encoder, index_type=index_type, force=force,
                        refit=refit)
    if json_out:
        print_json(built)
        return
    vector = built["vector_index"] or "none (below the size where exact search is as fast; --force to build)"
    space = built["search_space"]
    if space.get("reason"):
        console.print(f"[yellow]search space of {built['encoder']}: none: {space['reason']}[/]")
    else:
        console.print(f"search space of {built['encoder']}: {'fitted' if space['fitted'] else 'kept'} "
                      f"({space['fitted_rows']} {space['fitted_on']}-split vectors, {space['fitted_at']}); "
                      f"{space['rows_filled']} rows of search_vector written")
    console.print(f"indexed {built['encoder']} ({built['rows']} rows): vector index {vector}; "
                  f"scalar indexes {', '.join(built['scalar_indexes'])}")
