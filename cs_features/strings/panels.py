"""Pictures of the string map (``csf show strings``): frame | string map | its transient part | frame with boxes.

One row per frame, CS frames with boxes first (then CS-free frames), from the chosen split. The second
panel is the frame's whole map, the third what of it the embryo's other frames do not show
(:func:`cs_features.transience.transient_part` over the :class:`~cs_features.transience.EmbryoLines`
background of every stored frame of the embryo, whatever its split): a fibre or a membrane ridge that the map
lights in every frame fades there, a string that appears and snaps stays. A frame alone in its embryo keeps
its whole map. Both are drawn with the inferno colour map on a fixed 0..1 scale, so rows and runs compare,
with the outline of the region each peak is read in (cyan: the cavity's core for the map, the embryo's
interior for the transient part, :func:`~cs_features.strings.peak.auto_region`). Every row is captioned with
stem, label, the peak of the whole map (:func:`~cs_features.strings.peak.map_peak`) and of its transient part
(the string peak the frame screen reads, :func:`cs_features.strings.maps.string_peaks`, here from the
map at full precision rather than the stored 8-bit one). The last panel holds the ground-truth boxes (green)
and the learned ``strings`` source's strongest boxes (orange, numbered by rank: what the source keeps first
when a frame's cap is short).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cs_features.errors import DatasetError
from cs_features.store import sql_quote
from cs_features.strings.data import frame_rows, iter_frames, open_store
from cs_features.strings.maps import open_string_model
from cs_features.strings.peak import AUTO_REGION, auto_region, peak_region, region_peak
from cs_features.transience import TransiencePrior


@dataclass
class StringPanels:
    """What :func:`show_strings` drew; ``to_dict()`` is what ``csf show strings --json`` prints."""

    model_id: str
    files: list
    frames: list
    strongest_boxes: dict = field(default_factory=dict)  # frame stem -> the drawn learned boxes, strongest first
    peaks: dict = field(default_factory=dict)  # stem -> {"map": the map's peak, "transient": its transient part's}

    def to_dict(self) -> dict:
        return asdict(self)


def panel_row(image: np.ndarray, probability: np.ndarray, boxes: np.ndarray, caption: str,
              region: np.ndarray | None = None, proposals: np.ndarray | None = None,
              transient: np.ndarray | None = None, transient_region: np.ndarray | None = None) -> np.ndarray:
    """(H, 3 W + 8, 3) BGR uint8 (4 W + 12 with ``transient``): the frame, its string map (inferno, 0..1;
    ``region``'s (H, W) bool outline in cyan), the map's ``transient`` part drawn the same way (with
    ``transient_region``'s outline), and the frame with ``proposals`` (orange, numbered 1.. in their order)
    and boxes (green)."""
    import cv2

    from cs_features.viz import CAPTION_HEIGHT, draw_boxes, to_bgr

    def heat_of(values: np.ndarray, outline: np.ndarray | None) -> np.ndarray:
        heat = cv2.applyColorMap(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
        if outline is not None and not outline.all():
            contours, _ = cv2.findContours(outline.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(heat, contours, -1, (255, 255, 0), 1)
        return heat

    frame = to_bgr(image)
    heats = [heat_of(probability, region)] + ([] if transient is None else [heat_of(transient, transient_region)])
    boxed = frame
    if proposals is not None and len(proposals):
        # drawn weakest first, so the strongest box's number stays on top where captions overlap
        boxed = draw_boxes(frame, np.asarray(proposals)[::-1], [str(k) for k in range(len(proposals), 0, -1)],
                           color=(0, 140, 255))
    boxed = draw_boxes(boxed, np.asarray(boxes).reshape(-1, 4), color=(0, 200, 0), pad=1)
    gap = np.full((frame.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([frame, gap] + [part for heat in heats for part in (heat, gap)] + [boxed], axis=1)
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
                 storage_options: dict | None = None, top_boxes: int = 5,
                 transience: TransiencePrior | None = None) -> StringPanels:
    """Draw ``out_dir/string_maps.png``: ``n_frames`` rows of frame | string map | its transient part |
    ground-truth boxes and the ``top_boxes`` strongest boxes of the learned ``strings`` source.

    ``transience``: the prior whose background and tolerance the transient part is read with (the frame
    screen's default); ``TransiencePrior(enabled=False)`` draws the whole map only.

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
    transience = transience or TransiencePrior()
    rows = _pick(frame_rows(store, f"split = '{sql_quote(split)}'"), n_frames)
    if not rows:
        raise DatasetError(f"store {store.uri!r} has no frames in split {split!r} to draw")
    panels, names, drawn, peaks = [], [], {}, {}
    maps = {frame.frame_id: (frame, model.predict_map(frame.image)) for frame in iter_frames(store, rows)}
    transient = embryo_transient_parts(store, model, {key: value[1] for key, value in maps.items()},
                                       {row["frame_id"]: row["embryo_id"] for row in rows}, transience)
    for row in rows:
        frame, probability = maps[row["frame_id"]]
        region = peak_region(frame.mask, probability.shape)
        height, width = probability.shape
        strongest = finalize_boxes(string_boxes(probability, frame.mask, style), width, height,
                                   ProposalConfig(max_proposals=top_boxes), ranked=True) if top_boxes > 0 else None
        part, background = transient.get(frame.frame_id, (None, False))
        part_region = peak_region(frame.mask, probability.shape, auto_region(AUTO_REGION, background))
        peaks[frame.stem] = {"map": round(region_peak(probability, region), 4),
                             "transient": None if part is None else round(region_peak(part, part_region), 4)}
        read = "" if part is None else f", of its transient part (3rd) {peaks[frame.stem]['transient']:.2f}"
        caption = (f"{frame.stem}  {frame.label}  peak p of the map {peaks[frame.stem]['map']:.2f}{read} (cyan: "
                   f"where read)  max p {probability.max():.2f}  green: truth, orange: strongest learned boxes")
        panels.append(panel_row(frame.image, probability, frame.boxes, caption, region, strongest, part,
                                part_region))
        names.append(frame.stem)
        drawn[frame.stem] = [] if strongest is None else strongest.tolist()
    width = max(p.shape[1] for p in panels)
    panels = [cv2.copyMakeBorder(p, 0, 4, 0, width - p.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
              for p in panels]
    path = save_png(Path(out_dir) / "string_maps.png", np.concatenate(panels, axis=0))
    return StringPanels(config["model_id"], [str(path)], names, drawn, peaks)


def embryo_transient_parts(store, model, maps: dict[str, np.ndarray], embryos: dict[str, str],
                           transience: TransiencePrior) -> dict[str, tuple[np.ndarray, bool]]:
    """Per frame of ``maps`` (frame id -> its ``(H, W)`` string map), what the map shows above the
    :class:`~cs_features.transience.EmbryoLines` background of its embryo's other stored frames' maps (every
    split), and whether there was a background: the whole map and False for a frame without an embryo id,
    alone in its embryo or whose embryo was not found. Empty when ``transience`` is disabled. The other
    frames' maps are computed one at a time and not kept."""
    from cs_features.scale import STORED_CIRCLE_COLUMNS, stored_circle
    from cs_features.store import FRAMES
    from cs_features.transience import EmbryoLines, transient_part

    if not transience.enabled:
        return {}
    out = {frame_id: (values, False) for frame_id, values in maps.items() if not embryos.get(frame_id)}
    wanted = sorted({embryos[frame_id] for frame_id in maps if embryos.get(frame_id)})
    if not wanted:
        return out
    listed = ", ".join(f"'{sql_quote(embryo)}'" for embryo in wanted)
    members = frame_rows(store, f"embryo_id IN ({listed})")
    circles = {row["frame_id"]: stored_circle(row) for row in store.read(
        FRAMES, ["frame_id", *STORED_CIRCLE_COLUMNS], where=f"embryo_id IN ({listed})").to_pylist()}
    for embryo in wanted:
        group = [row for row in members if row["embryo_id"] == embryo]
        lines = EmbryoLines(transience) if len(group) > 1 else None
        for frame in iter_frames(store, group) if lines is not None else ():
            values = maps[frame.frame_id] if frame.frame_id in maps else model.predict_map(frame.image)
            lines.add(frame.frame_id, values, circles[frame.frame_id])
        for frame_id in (f for f in maps if embryos.get(f) == embryo):
            background = None if lines is None else lines.background(frame_id)
            out[frame_id] = (transient_part(maps[frame_id], background), background is not None)
    return out
