"""Pictures of the string map (``csf show strings``): frame | string map | frame with boxes.

One row per frame, CS frames with boxes first (then CS-free frames), from the chosen split; every row is
captioned with stem, label, the peak of the frame's whole map (as :func:`~cs_features.strings.peak.map_peak`;
the frame screen reads the same peak of what the embryo's other frames do not show,
:func:`cs_features.screening.evidence.string_peaks`) and the map's maximum. The map is drawn with the inferno
colour map on a fixed 0..1 scale, so rows and runs compare, with the outline of the region the peak is read
in (cyan). The third panel holds the ground-truth boxes (green) and the learned ``strings`` source's
strongest boxes (orange, numbered by rank: what the source keeps first when a frame's cap is short).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cs_features.errors import DatasetError
from cs_features.store import sql_quote
from cs_features.strings.data import frame_rows, iter_frames, open_store
from cs_features.strings.maps import open_string_model
from cs_features.strings.peak import peak_region, region_peak


@dataclass
class StringPanels:
    """What :func:`show_strings` drew; ``to_dict()`` is what ``csf show strings --json`` prints."""

    model_id: str
    files: list
    frames: list
    strongest_boxes: dict = field(default_factory=dict)  # frame stem -> the drawn learned boxes, strongest first

    def to_dict(self) -> dict:
        return asdict(self)


def panel_row(image: np.ndarray, probability: np.ndarray, boxes: np.ndarray, caption: str,
              region: np.ndarray | None = None, proposals: np.ndarray | None = None) -> np.ndarray:
    """(H, 3 W + 8, 3) BGR uint8: the frame, its string map (inferno, 0..1; ``region``'s (H, W) bool outline
    in cyan) and the frame with ``proposals`` (orange, numbered 1.. in their order) and boxes (green)."""
    import cv2

    from cs_features.viz import CAPTION_HEIGHT, draw_boxes, to_bgr

    frame = to_bgr(image)
    heat = cv2.applyColorMap(np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    if region is not None and not region.all():
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(heat, contours, -1, (255, 255, 0), 1)
    boxed = frame
    if proposals is not None and len(proposals):
        # drawn weakest first, so the strongest box's number stays on top where captions overlap
        boxed = draw_boxes(frame, np.asarray(proposals)[::-1], [str(k) for k in range(len(proposals), 0, -1)],
                           color=(0, 140, 255))
    boxed = draw_boxes(boxed, np.asarray(boxes).reshape(-1, 4), color=(0, 200, 0), pad=1)
    gap = np.full((frame.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([frame, gap, heat, gap, boxed], axis=1)
    band = np.zeros((CAPTION_HEIGHT, row.shape[1], 3), np.uint8)
    cv2.putText(band, caption, (4, CAPTION_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.concatenate([band, row], axis=0)


def _pick(rows: list[dict], n_frames: int) -> list[dict]:
    with_boxes = [r for r in rows if r["label"] == "abnormal" and r["gt_boxes"]]
    without = [r for r in rows if r["label"] != "abnormal"]
    picked = with_boxes[:max(n_frames - 1, 1)]
    return picked + without[:n_frames - len(picked)]


def show_strings(store, model_dir: str | Path, out_dir: str | Path, n_frames: int = 3, split: str = "test",
                 storage_options: dict | None = None, top_boxes: int = 5) -> StringPanels:
    """Draw ``out_dir/string_maps.png``: ``n_frames`` rows of frame | string map | ground-truth boxes and
    the ``top_boxes`` strongest boxes of the learned ``strings`` source.

    Raises:
        DatasetError: the split has no frames. WeightsError / SettingsMismatchError: see ``open_string_model``.
    """
    import cv2

    from cs_features.proposals import ProposalConfig, finalize_boxes
    from cs_features.proposals.learned import BoxStyle, string_boxes
    from cs_features.viz import save_png

    store = open_store(store, storage_options)
    model, config = open_string_model(store, model_dir)
    style = BoxStyle.from_dict(config.get("box_style") or {})
    rows = _pick(frame_rows(store, f"split = '{sql_quote(split)}'"), n_frames)
    if not rows:
        raise DatasetError(f"store {store.uri!r} has no frames in split {split!r} to draw")
    panels, names, drawn = [], [], {}
    for frame in iter_frames(store, rows):
        probability = model.predict_map(frame.image)
        region = peak_region(frame.mask, probability.shape)
        height, width = probability.shape
        strongest = finalize_boxes(string_boxes(probability, frame.mask, style), width, height,
                                   ProposalConfig(max_proposals=top_boxes), ranked=True) if top_boxes > 0 else None
        caption = (f"{frame.stem}  {frame.label}  map peak p {region_peak(probability, region):.2f} (cyan: where it "
                   f"is read)  max p {probability.max():.2f}  green: truth, orange: strongest learned boxes")
        panels.append(panel_row(frame.image, probability, frame.boxes, caption, region, strongest))
        names.append(frame.stem)
        drawn[frame.stem] = [] if strongest is None else strongest.tolist()
    width = max(p.shape[1] for p in panels)
    panels = [cv2.copyMakeBorder(p, 0, 4, 0, width - p.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
              for p in panels]
    path = save_png(Path(out_dir) / "string_maps.png", np.concatenate(panels, axis=0))
    return StringPanels(config["model_id"], [str(path)], names, drawn)
