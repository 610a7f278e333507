"""Synthetic blastocyst time-lapse dataset: HMC-like frames with and without cytoplasmic strings.

Real embryo frames cannot ship with the project, so tests and first runs use these. Each embryo is a
short time-lapse (drift, focus change, slow shape change); in a CS embryo, 1-4 faint thin strings cross
the blastocoel in a subset of its frames. Distractors (TE cell walls, fibres in the medium, fragments,
specks) appear in every embryo. Images are rendered in :mod:`cs_features.synth.render`; named
settings (clean, hard, crops) are in :mod:`cs_features.synth.presets`.

Layout written by :func:`generate_dataset`::

    OUT/{train,val,test}/{normal,abnormal}/<stem>.png    stem = E{embryo:04d}_f{frame:02d}; square,
                                                         one size per embryo with ``frame_size``
    OUT/labels/<stem>.txt                                YOLO "0 cx cy w h", empty for normal frames
    OUT/manifest.csv                                     stem,split,label,embryo_id,frame_index,boxes
    OUT/contact_sheet.png                                sample frames with ground-truth boxes
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.datasets import LABELS, MANIFEST_FIELDS, SPLITS, read_manifest, write_manifest, yolo_lines
from cs_features.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

_STEM = re.compile(r"^E\d{4,}_f\d{2,}$")
STRING_STYLES = ("line", "doublet")
_VARIATION_STREAM = 0x7A51


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic generator; invalid values raise ConfigError naming the value.

    Ranges are (low, high) pairs sampled uniformly. Every default reproduces the original generator
    (the ``clean`` preset of :mod:`cs_features.synth.presets`); the fields after ``png_compression`` widen
    the world towards other renderers and real frames.

    Attributes:
        string_contrast: grey levels after focus blur. ``line`` strings: mean on the string minus a band
            around it; ``doublet`` strings: half the difference between the two sides along the shear.
        string_width: px (not scaled with the frame). blur_sigma: focus blur in px. noise_sigma: read
            noise in grey levels.
        string_style: ``line`` (a dark or bright core plus some HMC relief) or ``doublet`` (Hoffman
            modulation contrast as a directional derivative of a soft band: a bright/dark pair along the
            shear, polarity random). Distractor filaments are drawn in the same style.
        bead_fraction, fade_fraction: share of strings that are beaded / have a faded stretch.
        fade_ramp: depth range of a fade from one end of the string to the other (0 = none).
        string_span: visible share of each string's path, anchored at one end (1 = ICM/TE to TE).
        shear_angle: HMC shear direction range in degrees. vignetting: strength range (0 = flat).
        shot_noise: variance per grey level of the Poisson-like noise term.
        jpeg_quality: None (lossless frames) or a quality range: each frame is JPEG-compressed at a
            quality drawn from it, decoded and written as PNG (JPEG artefacts, one file format).
        membrane_ridges: count range of ridges along the TE inside the cavity (filament distractors).
        extra_fibres: count range of out-of-focus filament fibres, which may cross the embryo.
        surface_boundaries: draw out-of-focus TE cell boundaries of the embryo's upper surface over it.
        frame_size: None (every frame ``image_size`` square) or a side range: each embryo gets a
            blastocyst-centred square crop with a side drawn from it.
        embryo_fill: range of the outer zona diameter as a share of the frame side.
    """

    image_size: int = 500
    frames_per_embryo: int = 6
    cs_fraction: float = 0.5
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    max_strings: int = 4
    string_contrast: tuple[float, float] = (7.0, 20.0)
    string_width: tuple[float, float] = (1.0, 2.5)
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    noise_sigma: tuple[float, float] = (1.5, 3.0)
    png_compression: int = 3
    string_style: str = "line"
    bead_fraction: float = 0.3
    fade_fraction: float = 0.35
    fade_ramp: tuple[float, float] = (0.0, 0.0)
    string_span: tuple[float, float] = (1.0, 1.0)
    shear_angle: tuple[float, float] = (205.0, 245.0)
    vignetting: tuple[float, float] = (0.08, 0.22)
    shot_noise: tuple[float, float] = (0.01, 0.01)
    jpeg_quality: tuple[int, int] | None = None
    membrane_ridges: tuple[int, int] = (0, 0)
    extra_fibres: tuple[int, int] = (0, 0)
    surface_boundaries: bool = False
    frame_size: tuple[int, int] | None = None
    embryo_fill: tuple[float, float] = (0.72, 0.82)

    def __post_init__(self) -> None:
        checks = [
            ("image_size", self.image_size, isinstance(self.image_size, int) and self.image_size >= 128,
             "an int >= 128"),
            ("frames_per_embryo", self.frames_per_embryo,
             isinstance(self.frames_per_embryo, int) and 1 <= self.frames_per_embryo <= 99, "an int in 1..99"),
            ("cs_fraction", self.cs_fraction, 0.0 <= self.cs_fraction <= 1.0, "a number in [0, 1]"),
            ("split_fractions", self.split_fractions, _fractions_ok(self.split_fractions),
             "three numbers >= 0 (train, val, test) that sum to 1"),
            ("max_strings", self.max_strings, isinstance(self.max_strings, int) and 1 <= self.max_strings <= 6,
             "an int in 1..6"),
            ("string_contrast", self.string_contrast, _range_ok(self.string_contrast, 1.0, 60.0),
             "a (low, high) pair with 1 <= low <= high <= 60"),
            ("string_width", self.string_width, _range_ok(self.string_width, 1.0, 8.0),
             "a (low, high) pair with 1 <= low <= high <= 8"),
            ("blur_sigma", self.blur_sigma, _range_ok(self.blur_sigma, 0.3, 5.0),
             "a (low, high) pair with 0.3 <= low <= high <= 5"),
            ("noise_sigma", self.noise_sigma, _range_ok(self.noise_sigma, 0.0, 20.0),
             "a (low, high) pair with 0 <= low <= high <= 20"),
            ("png_compression", self.png_compression, self.png_compression in range(10), "an int in 0..9"),
            *_variation_checks(self),
        ]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ConfigError(f"SynthConfig.{name}={value!r} is invalid: expected {accepted}")


def _variation_checks(c: SynthConfig) -> list[tuple[str, object, bool, str]]:
    """(name, value, ok, accepted) for the fields that widen the world beyond the original generator."""

    def pair(name: str, low: float, high: float, ints: bool = False, optional: bool = False):
        value = getattr(c, name)
        ok = (optional and value is None) or (_int_range_ok if ints else _range_ok)(value, low, high)
        accepted = f"a (low, high) pair{' of ints' if ints else ''} with {low} <= low <= high <= {high}"
        return name, value, ok, ("None or " if optional else "") + accepted

    def share(name: str):
        value = getattr(c, name)
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        return name, value, number and 0.0 <= value <= 1.0, "a number in [0, 1]"

    return [
        ("string_style", c.string_style, c.string_style in STRING_STYLES, f"one of {', '.join(STRING_STYLES)}"),
        share("bead_fraction"), share("fade_fraction"),
        pair("fade_ramp", 0.0, 0.95), pair("string_span", 0.2, 1.0), pair("shear_angle", -360.0, 720.0),
        pair("vignetting", 0.0, 0.6), pair("shot_noise", 0.0, 1.0), pair("jpeg_quality", 1, 100, True, True),
        pair("membrane_ridges", 0, 12, True), pair("extra_fibres", 0, 12, True),
        ("surface_boundaries", c.surface_boundaries, isinstance(c.surface_boundaries, bool), "True or False"),
        pair("frame_size", 128, 4096, True, True), pair("embryo_fill", 0.3, 1.0),
    ]


def _int_range_ok(pair, low: int, high: int) -> bool:
    try:
        a, b = pair
    except (TypeError, ValueError):
        return False
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (a, b))
    return ints and low <= a <= b <= high


def _fractions_ok(fractions) -> bool:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError):
        return False
    return len(values) == 3 and min(values) >= 0 and abs(sum(values) - 1.0) < 1e-6


def _range_ok(pair, low: float, high: float) -> bool:
    try:
        a, b = (float(v) for v in pair)
    except (TypeError, ValueError):
        return False
    return low <= a <= b <= high


@dataclass
class RenderedFrame:
    """One synthetic frame and its ground truth.

    Attributes:
        image: (H, W) uint8 frame.
        string_masks: one (H, W) bool mask of drawn pixels per visible string.
        boxes: (N, 4) int32 x1, y1, x2, y2 (exclusive end), tight around each string mask.
        low_texture_truth: (H, W) bool blastocoel (cavity) mask.
        string_contrasts: per string, measured on the noise-free frame (signed): for ``line`` strings
            the mean grey level on the string minus a 3-5 px band around it, for ``doublet`` strings
            half the difference between its two sides along the shear (``lines.doublet_contrast``).
        string_widths: per string, the drawn width in px.
        shear_angle: direction of the HMC shear in rad (x right, y down).
    """

    image: np.ndarray
    string_masks: list[np.ndarray]
    boxes: np.ndarray
    low_texture_truth: np.ndarray
    string_contrasts: list[float] = field(default_factory=list)
    string_widths: list[float] = field(default_factory=list)
    shear_angle: float = 0.0

    @property
    def has_strings(self) -> bool:
        return len(self.string_masks) > 0


def boxes_from_masks(masks: list[np.ndarray]) -> np.ndarray:
    """Tight boxes around each non-empty (H, W) bool mask -> (N, 4) int32 x1, y1, x2, y2, exclusive end."""
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(boxes, np.int32).reshape(-1, 4)


def render_embryo(embryo_index: int, seed: int, has_cs: bool, config: SynthConfig) -> list[RenderedFrame]:
    """Render one embryo's time-lapse; depends only on (seed, embryo_index, has_cs, config).

    The original generator's draws come from one stream; what the newer fields add (crop size, shot
    noise, JPEG, distractor filaments, ...) draws from a second one, so the defaults keep writing the
    same bytes as before those fields existed.

    Returns:
        ``config.frames_per_embryo`` frames of (S, S): S = ``image_size``, or drawn per embryo from
        ``frame_size`` when that is set.
    """
    from cs_features.synth.render import render_frames

    rng, variation = _streams(embryo_index, seed)
    frames = []
    for image, masks, contrasts, widths, cavity, shear in render_frames(rng, has_cs, config, variation):
        frames.append(RenderedFrame(image, masks, boxes_from_masks(masks), cavity, contrasts, widths, shear))
    return frames


def embryo_circle(embryo_index: int, seed: int, config: SynthConfig) -> tuple[float, float, float]:
    """The embryo circle ``(cx, cy, radius)`` :func:`render_embryo` draws for this embryo, in its frame's
    pixels (the geometry's first draws; the ground truth for finding the embryo)."""
    from cs_features.synth.render import frame_side, sample_geometry

    rng, variation = _streams(embryo_index, seed)
    geometry = sample_geometry(rng, frame_side(config, variation), config)
    return float(geometry.center[0]), float(geometry.center[1]), float(geometry.radius)


def _streams(embryo_index: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """One embryo's two random streams: the original generator's and the newer fields' variation."""
    return (np.random.default_rng(np.random.SeedSequence([seed, embryo_index])),
            np.random.default_rng(np.random.SeedSequence([seed, embryo_index, _VARIATION_STREAM])))


# ------------------------------------------------------------------------------------ dataset plan


def _allocate(count: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``count`` items by ``fractions`` (largest remainder); each used split gets one if it can."""
    raw = np.asarray(fractions, float) * count
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: count - out.sum()]:
        out[i] += 1
    used = [i for i, f in enumerate(fractions) if f > 0]
    if count >= len(used):
        for i in used:
            if out[i] == 0:
                out[int(np.argmax(out))] -= 1
                out[i] = 1
    return out.tolist()


def plan_embryos(n_embryos: int, seed: int, config: SynthConfig) -> list[tuple[int, bool, str]]:
    """(embryo_index, has_cs, split) per embryo, split at embryo level and stratified by CS/CS-free."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_embryos, 0x5EED]))
    order = rng.permutation(n_embryos)
    n_cs = int(round(config.cs_fraction * n_embryos))
    split_of: dict[int, str] = {}
    for group in (order[:n_cs], order[n_cs:]):
        counts = _allocate(len(group), config.split_fractions)
        bounds = np.cumsum([0, *counts])
        for k, name in enumerate(SPLITS):
            for idx in group[bounds[k] : bounds[k + 1]]:
                split_of[int(idx)] = name
    cs = set(int(i) for i in order[:n_cs])
    for k, name in enumerate(SPLITS):  # tiny datasets: no split with a positive fraction stays empty
        members = [i for i, sp in split_of.items() if sp == name]
        if config.split_fractions[k] > 0 and not members:
            largest = max(SPLITS, key=lambda sp: sum(v == sp for v in split_of.values()))
            split_of[max(i for i, sp in split_of.items() if sp == largest)] = name
    return [(i, i in cs, split_of[i]) for i in range(n_embryos)]


def _render_and_write(out_dir: str, embryo_index: int, has_cs: bool, split: str, seed: int,
                      config: SynthConfig) -> list[dict]:
    """Worker: render one embryo, write its PNGs and label files, return its manifest rows."""
    import cv2

    out = Path(out_dir)
    rows = []
    for t, frame in enumerate(render_embryo(embryo_index, seed, has_cs, config)):
        stem = f"E{embryo_index:04d}_f{t:02d}"
        label = "abnormal" if frame.has_strings else "normal"
        path = out / split / label / f"{stem}.png"
        if not cv2.imwrite(str(path), frame.image, [cv2.IMWRITE_PNG_COMPRESSION, config.png_compression]):
            raise DatasetError(f"cannot write {str(path)!r}: check that the folder is writable")
        height, width = frame.image.shape
        lines = yolo_lines(frame.boxes, width, height)
        (out / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
        rows.append({"stem": stem, "split": split, "label": label, "embryo_id": stem.split("_")[0],
                     "frame_index": t, "boxes": json.dumps(frame.boxes.tolist()), "n_strings": len(frame.boxes),
                     "has_cs": has_cs})
    return rows


# ------------------------------------------------------------------------------------ dataset files


@dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote. ``splits`` maps split -> counts of frames and embryos."""

    out_dir: str
    n_embryos: int
    n_frames: int
    n_strings: int
    seconds: float
    contact_sheet: str
    splits: dict[str, dict[str, int]]

    def to_dict(self) -> dict:
        return asdict(self)


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``, or clear our own files from a previous synth run there; refuse anything else."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output path {str(out)!r} is a file; expected a new, empty or previous synth folder")
    if out.exists() and any(out.iterdir()):
        manifest = out / "manifest.csv"
        header = manifest.read_text().splitlines()[:1] if manifest.is_file() else []
        if header != [",".join(MANIFEST_FIELDS)]:
            raise DatasetError(
                f"output folder {str(out)!r} is not empty and holds no manifest.csv from a previous synth run; "
                "choose a new or empty folder"
            )
        own = [out / sp / lb for sp in SPLITS for lb in LABELS] + [out / "labels"]
        for folder in own:
            for path in folder.glob("*.*") if folder.is_dir() else []:
                if path.suffix in (".png", ".txt") and _STEM.match(path.stem):
                    path.unlink()
        for name in ("manifest.csv", "contact_sheet.png"):
            (out / name).unlink(missing_ok=True)
    for folder in [out / sp / lb for sp in SPLITS for lb in LABELS] + [out / "labels"]:
        folder.mkdir(parents=True, exist_ok=True)


def _init_worker(parent_pid: int) -> None:
    """Pool initializer: the worker ends with its parent; one OpenCV thread per worker process, so workers
    do not oversubscribe cores."""
    import cv2

    from cs_features.runtime import end_with_parent

    end_with_parent(parent_pid)
    cv2.setNumThreads(1)


def _render_all(out: Path, plan, seed: int, config: SynthConfig, workers: int,
                progress: Callable[[int, int], None] | None) -> list[dict]:
    """Render every planned embryo, in a spawn-started process pool when ``workers`` > 1."""
    rows: list[dict] = []
    total = len(plan)
    if workers <= 1:
        for done, (idx, has_cs, split) in enumerate(plan, 1):
            rows += _render_and_write(str(out), idx, has_cs, split, seed, config)
            if progress:
                progress(done, total)
        return rows
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_render_and_write, str(out), i, cs, sp, seed, config) for i, cs, sp in plan]
        for done, future in enumerate(as_completed(futures), 1):
            rows += future.result()
            if progress:
                progress(done, total)
    return rows


def read_synth_manifest(dataset_dir: str | Path) -> list[dict]:
    """Rows of ``dataset_dir/manifest.csv``; ``boxes`` parsed to (N, 4) int32, ``frame_index`` to int.

    Raises:
        DatasetError: no manifest.csv (not a folder written by :func:`generate_dataset`).
    """
    path = Path(dataset_dir) / "manifest.csv"
    if not path.is_file():
        raise DatasetError(f"no manifest.csv in {str(dataset_dir)!r}; expected a folder written by generate_dataset")
    return read_manifest(path, columns=MANIFEST_FIELDS)


def _summarise(out: Path, rows: list[dict], seconds: float, sheet: Path) -> SynthSummary:
    splits = {}
    for name in SPLITS:
        mine = [r for r in rows if r["split"] == name]
        cs_embryos = {r["embryo_id"] for r in mine if r["has_cs"]}
        splits[name] = {
            "normal_frames": sum(r["label"] == "normal" for r in mine),
            "abnormal_frames": sum(r["label"] == "abnormal" for r in mine),
            "cs_embryos": len(cs_embryos),
            "cs_free_embryos": len({r["embryo_id"] for r in mine} - cs_embryos),
        }
    return SynthSummary(str(out), len({r["embryo_id"] for r in rows}), len(rows),
                        sum(r["n_strings"] for r in rows), round(seconds, 3), str(sheet), splits)


def generate_dataset(
    out_dir: str | Path,
    n_embryos: int = 20,
    seed: int = 0,
    config: SynthConfig | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic dataset (PNGs, YOLO labels, manifest, contact sheet) to ``out_dir``.

    Same seed and config -> byte-identical files, whatever ``workers`` is.

    Args:
        n_embryos: at least 3 (one per split). workers: processes (default ``os.cpu_count()``).
        progress: called as ``progress(embryos_done, n_embryos)``.
    Raises:
        DatasetError: bad ``n_embryos``, or ``out_dir`` is non-empty and not a previous synth output.
    """
    config = config or SynthConfig()
    if isinstance(n_embryos, bool) or not isinstance(n_embryos, (int, np.integer)) or n_embryos < 3:
        raise DatasetError(f"n_embryos={n_embryos!r} is invalid: expected an int >= 3 (one embryo per split)")
    start = time.perf_counter()
    out = Path(out_dir)
    _prepare_out_dir(out)
    plan = plan_embryos(int(n_embryos), seed, config)
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(plan)))
    rows = _render_all(out, plan, seed, config, workers, progress)
    write_manifest(out / "manifest.csv", rows)
    sheet = write_contact_sheet(out, seed=seed)
    summary = _summarise(out, rows, time.perf_counter() - start, sheet)
    logger.info("synthetic dataset: %d embryos, %d frames, %d strings in %.1f s -> %s",
                summary.n_embryos, summary.n_frames, summary.n_strings, summary.seconds, out)
    return summary


def write_contact_sheet(dataset_dir: str | Path, out_png: str | Path | None = None, n_frames: int = 12,
                        seed: int = 0, columns: int = 4, tile_size: int = 320) -> Path:
    """Save a sheet of sample frames (half with strings) with ground-truth boxes and stem/split/label captions.

    Returns:
        the PNG path (default ``dataset_dir/contact_sheet.png``).
    """
    import cv2

    from cs_features.viz import contact_sheet, draw_boxes, save_png

    dataset_dir = Path(dataset_dir)
    rows = read_synth_manifest(dataset_dir)
    rng = np.random.default_rng(seed)
    abnormal = [r for r in rows if r["label"] == "abnormal"]
    normal = [r for r in rows if r["label"] == "normal"]
    n_ab = min(len(abnormal), (n_frames + 1) // 2)
    n_no = min(len(normal), n_frames - n_ab)
    n_ab = min(len(abnormal), n_frames - n_no)
    picked = [abnormal[i] for i in rng.choice(len(abnormal), n_ab, replace=False)] if n_ab else []
    picked += [normal[i] for i in rng.choice(len(normal), n_no, replace=False)] if n_no else []
    tiles, captions = [], []
    for row in sorted(picked, key=lambda r: r["stem"]):
        image = cv2.imread(str(dataset_dir / row["split"] / row["label"] / f"{row['stem']}.png"), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f"cannot read {row['stem']}.png listed in {str(dataset_dir / 'manifest.csv')!r}")
        tiles.append(draw_boxes(image, row["boxes"], color=(0, 255, 0), pad=3))
        captions.append(f"{row['stem']} {row['split']} {row['label']} n={len(row['boxes'])}")
    sheet = contact_sheet(tiles, captions, columns=columns, tile_size=tile_size)
    return save_png(Path(out_png) if out_png else dataset_dir / "contact_sheet.png", sheet)
