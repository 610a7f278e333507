"""Contact sheets of similarity results: the query crop, then each neighbour's crop with label and distance."""

from __future__ import annotations

import numpy as np

from cs_features.search.query import SimilarResult
from cs_features.store import FRAMES, FeatureStore, sql_quote


def similar_sheet(store: FeatureStore, result: SimilarResult, out_png, query_image: np.ndarray | None = None):
    """Contact sheet PNG: the query crop, then each neighbour's crop captioned with label and distance."""
    from cs_features.viz import contact_sheet, save_png

    frames = {fid: None for fid in [result.query_frame_id, *(n.frame_id for n in result.neighbours)] if fid}
    rows = store.read(FRAMES, ["frame_id"],
                      where="frame_id IN (" + ", ".join(f"'{sql_quote(f)}'" for f in frames) + ")",
                      with_row_id=True) if frames else None
    if rows is not None and rows.num_rows:
        images = store.frame_images(rows.column("_rowid").to_pylist(), column="image")
        frames.update(zip(rows.column("frame_id").to_pylist(), images))
    query = query_image if query_image is not None else frames.get(result.query_frame_id)
    tiles = [_crop(query, result.query_box)]
    captions = [f"QUERY  CS vote {result.cs_vote:.2f}" if result.cs_vote is not None else "QUERY"]
    for n in result.neighbours:
        label = {1: "CS", 0: "no CS", -1: "ignored"}.get(n.weak_label, "?")
        tiles.append(_crop(frames.get(n.frame_id), n.box))
        captions.append(f"{label} d={n.distance:.3f} {n.split}")
    return save_png(out_png, contact_sheet(tiles, captions, columns=min(6, len(tiles)), tile_size=160))


def _crop(image: np.ndarray | None, box, margin: int = 12) -> np.ndarray:
    """The box with a margin, the box outlined, as BGR; a grey tile when the frame is unavailable."""
    import cv2

    if image is None:
        return np.full((64, 64, 3), 96, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    h, w = image.shape[:2]
    cx1, cy1, cx2, cy2 = max(x1 - margin, 0), max(y1 - margin, 0), min(x2 + margin, w), min(y2 + margin, h)
    tile = cv2.cvtColor(image[cy1:cy2, cx1:cx2], cv2.COLOR_GRAY2BGR)
    cv2.rectangle(tile, (x1 - cx1, y1 - cy1), (x2 - cx1 - 1, y2 - cy1 - 1), (0, 200, 255), 1)
    return tile
