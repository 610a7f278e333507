"""Pictures of the anomaly filter on the test split: true/false positives and negatives.

For each category (TP: abnormal and flagged, FP: normal but flagged, FN: abnormal but missed, TN) the
most telling test frames are shown (TP/FP: highest scores; FN/TN: lowest scores), one row per frame:

1. the preprocessed frame as the model sees it (S x S) with ground-truth string boxes in green;
2. the residual ``|x - x_hat|`` as a heat map (inferno colour map, 0 .. ``vmax``);
3. what the score is computed on: the (filtered) residual inside the score region, outside greyed out
   (with the published settings: the residual inside the low-texture mask);
4. an overlay: the frame with the scored pixels above the 99th percentile of the normal frames' scored
   pixels painted red.

Colour scales are shared by every picture of a run (99.5th percentiles of the shown frames), so colours
compare across frames; captions give stem, label, scale, score and threshold. One PNG per category
plus ``index.png`` with every shown frame's overlay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.autoencoder.data import FrameSet, load_split
from cs_features.autoencoder.score_maps import scoring_map
from cs_features.store import FRAMES, FeatureStore, sql_quote

TILE = 256


@dataclass
class ShowResult:
    """Files written by ``show_filter``; ``to_dict()`` is what ``csf show ae --json`` prints."""

    out_dir: str
    model_id: str
    threshold: float
    counts: dict
    shown: dict
    files: list
    vmax: float

    def to_dict(self) -> dict:
        return asdict(self)


def categorise(y_true: np.ndarray, scores: np.ndarray, threshold: float, per_category: int) -> dict[str, np.ndarray]:
    """Indices per category, most telling first (TP/FP by descending score, FN/TN by ascending score)."""
    flagged = scores >= threshold
    groups = {"TP": (y_true == 1) & flagged, "FP": (y_true == 0) & flagged,
              "FN": (y_true == 1) & ~flagged, "TN": (y_true == 0) & ~flagged}
    out = {}
    for name, sel in groups.items():
        index = np.flatnonzero(sel)
        order = np.argsort(-scores[index] if name in ("TP", "FP") else scores[index], kind="stable")
        out[name] = index[order][:per_category]
    return out


def _heat(values: np.ndarray, vmax: float) -> np.ndarray:
    """``(H, W)`` float -> ``(H, W, 3)`` BGR uint8 inferno heat map of ``values / vmax``."""
    import cv2

    scaled = np.clip(values / max(vmax, 1e-12) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)


def frame_row(image: np.ndarray, residual: np.ndarray, scored: np.ndarray, region: np.ndarray, boxes: np.ndarray,
              vmax: float, scored_vmax: float, hot: float) -> list[np.ndarray]:
    """The four tiles of one frame.

    Args:
        image: ``(S, S)`` uint8 model input. residual: ``(S, S)`` float ``|x - x_hat|``.
        scored: ``(S, S)`` float map the reducer sees; region: ``(S, S)`` bool pixels it sees.
        boxes: ``(N, 4)`` ground truth in S-pixel coordinates. hot: ``scored`` level painted red.
    """
    from cs_features.viz import draw_boxes, to_bgr

    framed = draw_boxes(image, boxes, color=(0, 200, 0), pad=2)
    heat = _heat(residual, vmax)
    in_region = _heat(scored, scored_vmax)
    in_region[~region] = (in_region[~region] * 0.25 + 40).astype(np.uint8)
    overlay = to_bgr(image).astype(np.float32)
    strength = np.clip((scored - hot) / max(scored_vmax - hot, 1e-12), 0, 1)
    alpha = np.where((scored >= hot) & region, 0.45 + 0.55 * strength, 0.0)[..., None]
    overlay = overlay * (1 - alpha) + np.array([0, 0, 255], np.float32) * alpha
    overlay = draw_boxes(overlay.astype(np.uint8), boxes, color=(0, 200, 0), pad=2)
    return [framed, heat, in_region, overlay]


def _scaled_boxes(store: FeatureStore, frame_ids: list[str], size: int) -> dict[str, np.ndarray]:
    """Ground-truth boxes of the given frames, scaled from frame pixels to the S x S model input."""
    if not frame_ids:
        return {}
    quoted = ", ".join(f"'{sql_quote(f)}'" for f in frame_ids)
    table = store.read(FRAMES, ["frame_id", "gt_boxes", "width", "height"], where=f"frame_id IN ({quoted})")
    out = {}
    for row in table.to_pylist():
        boxes = np.asarray(row["gt_boxes"] or [], np.float64).reshape(-1, 4)
        factors = np.array([size / row["width"], size / row["height"]] * 2)
        out[row["frame_id"]] = np.rint(boxes * factors).astype(np.int32)
    return out


def _residuals(anomaly_filter, frames: FrameSet) -> tuple[np.ndarray, np.ndarray]:
    size = anomaly_filter.img_size
    residuals, scores = np.empty((len(frames), size, size), np.float32), np.empty(len(frames), np.float32)
    for start, batch, batch_scores in anomaly_filter.iter_residuals(frames):
        residuals[start:start + len(batch)], scores[start:start + len(batch)] = batch, batch_scores
    return residuals, scores


def show_filter(store_uri: str, model_dir: str | Path, out_dir: str | Path, per_category: int = 4,
                split: str = "test", storage_options: dict | None = None, device: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> ShowResult:
    """Write ``TP.png``, ``FP.png``, ``FN.png``, ``TN.png`` and ``index.png`` for one split into ``out_dir``."""
    from cs_features.autoencoder.pipeline import open_model

    store, anomaly_filter, config = open_model(store_uri, model_dir, storage_options, device)
    frames = load_split(store, split, anomaly_filter.img_size)
    residuals, scores = _residuals(anomaly_filter, frames)
    scored = [scoring_map(r, m, anomaly_filter.score_settings) for r, m in zip(residuals, frames.masks[:, 0].numpy())]
    maps, regions = np.stack([m for m, _ in scored]), np.stack([r for _, r in scored])
    threshold = anomaly_filter.threshold_
    picked = categorise(frames.y_true, scores, threshold, per_category)
    shown = np.concatenate([v for v in picked.values()]).astype(int)
    scales = {"vmax": _percentile_in(residuals[shown], regions[shown], 99.5),
              "scored_vmax": _percentile_in(maps[shown], regions[shown], 99.5),
              "hot": _percentile_in(maps[frames.y_true == 0], regions[frames.y_true == 0], 99.0)}
    boxes = _scaled_boxes(store, [frames.frame_ids[i] for i in shown], anomaly_filter.img_size)
    files = _write_sheets(Path(out_dir), frames, picked, (residuals, maps, regions), scores, boxes, threshold, scales,
                          anomaly_filter.reducer, progress)
    counts = {name: int(len(idx)) for name, idx in categorise(frames.y_true, scores, threshold, len(frames)).items()}
    return ShowResult(str(out_dir), config["model_id"], threshold, counts,
                      {k: frames.stems[v].tolist() for k, v in picked.items()}, [str(f) for f in files],
                      scales["vmax"])


def _percentile_in(maps: np.ndarray, regions: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``(N, S, S)`` maps inside ``(N, S, S)`` regions (1.0 when there is none)."""
    values = maps[regions] if regions.any() else maps.ravel()
    return float(np.percentile(values, q)) if values.size else 1.0


def _write_sheets(out: Path, frames: FrameSet, picked, arrays, scores, boxes, threshold, scales, reducer,
                  progress) -> list[Path]:
    from cs_features.viz import contact_sheet, save_png

    residuals, maps, regions = arrays
    files, index_tiles, index_captions = [], [], []
    for done, (name, index) in enumerate(picked.items(), 1):
        tiles, captions = [], []
        for i in index:
            row = frame_row(frames.images[i, 0].numpy(), residuals[i], maps[i], regions[i],
                            boxes.get(frames.frame_ids[i], np.zeros((0, 4))), scales["vmax"], scales["scored_vmax"],
                            scales["hot"])
            tiles += row
            captions += [f"{name} {frames.stems[i]} {frames.labels[i]}", f"|x - x_hat| 0..{scales['vmax']:.3f}",
                         f"scored: {reducer} = {scores[i]:.4f}", f"threshold {threshold:.4f}"]
            index_tiles.append(row[3])
            index_captions.append(f"{name} {frames.stems[i]} {scores[i]:.4f}")
        if not tiles:
            tiles, captions = [np.full((TILE, TILE), 40, np.uint8)], [f"{name}: no frame in this category"]
        files.append(save_png(out / f"{name}.png", contact_sheet(tiles, captions, columns=4, tile_size=TILE)))
        if progress:
            progress(done, len(picked) + 1)
    if not index_tiles:
        index_tiles, index_captions = [np.full((TILE, TILE), 40, np.uint8)], ["no frames"]
    files.append(save_png(out / "index.png", contact_sheet(index_tiles, index_captions, columns=4, tile_size=TILE)))
    if progress:
        progress(len(picked) + 1, len(picked) + 1)
    return files
