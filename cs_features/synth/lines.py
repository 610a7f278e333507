"""Thin lines of the synthetic frames: cytoplasmic strings in the cavity and fibres in the medium.

A string is a smooth cubic Bezier (plus a gentle sinusoidal bend) between two points of the cavity
edge: ICM surface -> TE or TE -> TE. Its ends follow the embryo's slow shape change and its control
points drift a little from frame to frame, so a persisting string moves slightly. Lines are drawn 4x
supersampled, so widths of 1-3 px are exact on average and edges are anti-aliased. Geometry arguments
are the ``EmbryoGeometry`` and ``Tables`` of :mod:`cs_features.synth.geometry`.

Two looks (``SynthConfig.string_style``): ``line`` (:func:`line_layer`, a dark or bright core plus some
HMC relief) and ``doublet`` (:func:`doublet_layer`, Hoffman modulation contrast as a directional
derivative of a soft band: one side bright, the other dark along the shear). Distractor filaments
(:func:`membrane_ridge_paths`, :func:`crossing_fibre_paths`) are drawn by the same code as strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cs_features.synth.geometry import EmbryoGeometry, Tables


def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


_ACROSS_SHEAR = 0.45  # least mean |sine| between a doublet string and the shear


@dataclass
class StringSpec:
    """One cytoplasmic string: ends on the cavity edge at two angles, a curved path, its look and frames."""

    angles: np.ndarray  # (2,) angles of the two ends on the cavity edge (ICM surface or TE)
    offsets: np.ndarray  # (F, 2) Bezier control-point offsets per frame, as a fraction of the chord
    wiggle: tuple[float, float, float]  # amplitude px, number of waves, phase
    width: float  # px
    contrast: float  # signed target contrast, grey levels
    relief: float  # 0..1 share of HMC relief in its look
    bead_spacing: float  # px between swellings, 0 = smooth
    fade: tuple[float, float, float]  # centre (0..1 along the string), width, depth (0 = no fading)
    frames: tuple[int, ...]  # frames in which it is visible
    ramp: float = 0.0  # depth of a fade along the whole string: > 0 towards its end, < 0 towards its start
    span: tuple[float, float] = (0.0, 1.0)  # visible part of the path (path parameter from, to)


def _bezier(p0, p1, p2, p3, t: np.ndarray) -> np.ndarray:
    """Cubic Bezier points at parameters ``t`` (N,) -> (N, 2)."""
    t = t[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def string_path(spec: StringSpec, tables: Tables, frame_index: int) -> np.ndarray:
    """The string's centre line in embryo coordinates for one frame, (N, 2) float64."""
    ends = []
    for angle in spec.angles:  # 1.5 px beyond the cavity edge so the ends touch the ICM / TE
        r = float(tables.at("cavity", angle)) + 1.5
        ends.append(np.array([r * np.cos(angle), r * np.sin(angle)]))
    chord = ends[1] - ends[0]
    length = float(np.linalg.norm(chord))
    normal = np.array([-chord[1], chord[0]]) / max(length, 1e-6)
    o1, o2 = spec.offsets[frame_index] * length
    p1, p2 = ends[0] + chord / 3 + o1 * normal, ends[0] + 2 * chord / 3 + o2 * normal
    t = np.linspace(0.0, 1.0, max(32, int(2 * length)))
    amp, waves, phase = spec.wiggle
    bend = amp * np.sin(2 * np.pi * waves * t + phase) * np.sin(np.pi * t)
    points = _bezier(ends[0], p1, p2, ends[1], t) + bend[:, None] * normal
    if spec.span != (0.0, 1.0):
        points = points[(t >= spec.span[0]) & (t <= spec.span[1])]
    return points


def _inside_cavity(points: np.ndarray, tables: Tables, margin: float) -> bool:
    """True when the path (N, 2) stays inside the cavity: ``margin`` px clear of its edge over the middle
    70 %, 2 px clear towards the ends, where it may touch the ICM / TE over its last 6 %."""
    n = len(points)
    t = np.linspace(0.0, 1.0, n)
    keep = (t > 0.06) & (t < 0.94)
    rho = np.hypot(points[keep, 0], points[keep, 1])
    edge = tables.at("cavity", np.arctan2(points[keep, 1], points[keep, 0]))
    need = np.where(np.abs(t[keep] - 0.5) < 0.35, margin, 2.0)
    return bool(np.all(rho < edge - need))


def fade_profile(spec: StringSpec, n: int) -> np.ndarray:
    """Visibility along the string, (n,) in (0, 1]: a partly out-of-focus stretch fades."""
    centre, width, depth = spec.fade
    t = np.linspace(0.0, 1.0, n)
    profile = 1.0 - depth * np.exp(-0.5 * ((t - centre) / width) ** 2)
    if spec.ramp:
        profile = profile * (1.0 - abs(spec.ramp) * (t if spec.ramp > 0 else 1.0 - t))
    return profile


def _draw_string(rng, geom: EmbryoGeometry, n_frames: int, frames: tuple[int, ...], config) -> StringSpec:
    """Random string: ICM surface -> TE (60 %) or TE -> TE, smooth curve, sometimes beaded or fading."""
    if rng.random() < 0.6:
        a0 = geom.icm_angle + rng.uniform(-0.6, 0.6) * geom.icm_half_width
        a1 = a0 + np.pi + rng.normal(0, 0.5)
    else:
        a0 = geom.icm_angle + rng.choice([-1, 1]) * (geom.icm_half_width + rng.uniform(0.2, 2.0))
        a1 = a0 + rng.choice([-1, 1]) * rng.uniform(1.0, 2.6)
    walk = np.cumsum(rng.normal(0, 0.01, (n_frames, 2)), axis=0)
    return StringSpec(
        angles=wrap_angle(np.array([a0, a1])),
        offsets=rng.normal(0, 0.16, 2) + walk,
        wiggle=(rng.uniform(0, 5.0), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)),
        width=round(rng.uniform(*config.string_width) * 4) / 4,
        contrast=rng.uniform(*config.string_contrast) * rng.choice([-1.0, 1.0]),
        relief=rng.uniform(0, 1),
        bead_spacing=rng.uniform(7, 14) if rng.random() < config.bead_fraction else 0.0,
        fade=(rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3),
              rng.uniform(0.5, 0.85) if rng.random() < config.fade_fraction else 0.0),
        frames=frames,
    )


def _string_frames(rng, n_frames: int, n_strings: int) -> list[tuple[int, ...]]:
    """Visible frames per string: a window shared by the first string, sub-windows for the others.

    Strings appear, persist and snap: the window leaves at least one string-free frame when there
    are two or more frames.
    """
    longest = max(1, n_frames - 1)
    length = int(rng.integers(max(1, n_frames // 3), longest + 1))
    start = int(rng.integers(0, n_frames - length + 1))
    out = [tuple(range(start, start + length))]
    for _ in range(n_strings - 1):
        sub = int(rng.integers(1, length + 1))
        first = start + int(rng.integers(0, length - sub + 1))
        out.append(tuple(range(first, first + sub)))
    return out


def _acceptable(spec: StringSpec, geom: EmbryoGeometry, all_tables: list[Tables], others: list[np.ndarray],
                across_shear: float = 0.0) -> bool:
    """Long enough, inside the cavity in each of its frames, and not running alongside another string
    (crossing is fine; a parallel neighbour would make both look like one thicker line).

    ``across_shear`` > 0: the mean |sine| between the path and the HMC shear must reach it (a doublet
    string running along the shear has no contrast, in HMC as here)."""
    paths = [string_path(spec, all_tables[t], t) for t in spec.frames]
    if np.linalg.norm(paths[0][-1] - paths[0][0]) < 0.4 * geom.radius:
        return False
    if across_shear > 0 and _across_shear(paths[0], geom.light_angle) < across_shear:
        return False
    if not all(_inside_cavity(p, all_tables[t], 8 * geom.scale) for p, t in zip(paths, spec.frames)):
        return False
    for other in others:
        near = np.min(np.linalg.norm(paths[0][:, None] - other[None, ::2], axis=2), axis=1) < 7 * geom.scale
        if near.mean() > 0.1:
            return False
    return True


def sample_strings(rng, geom: EmbryoGeometry, all_tables: list[Tables], config) -> list[StringSpec]:
    """1..max_strings strings of a CS embryo, each inside the cavity in every frame it is visible."""
    n_frames = len(all_tables)
    weights = np.array([0.4, 0.3, 0.2, 0.1, 0.05, 0.05][: config.max_strings])
    n_strings = 1 + int(rng.choice(len(weights), p=weights / weights.sum()))
    specs: list[StringSpec] = []
    across = _ACROSS_SHEAR if config.string_style == "doublet" else 0.0
    for k, frames in enumerate(_string_frames(rng, n_frames, n_strings)):
        others = [string_path(s, all_tables[s.frames[0]], s.frames[0]) for s in specs]
        for _ in range(60):
            spec = _draw_string(rng, geom, n_frames, frames, config)
            if _acceptable(spec, geom, all_tables, others, across):
                specs.append(spec)
                break
        if k == 0 and not specs:  # a straight chord opposite the ICM is inside any plausible cavity
            spec.angles = wrap_angle(geom.icm_angle + np.pi + np.array([-0.6, 0.6]))
            spec.offsets[:] = 0.0
            spec.wiggle = (0.0, 1.0, 0.0)
            specs.append(spec)
    return specs


def _across_shear(points: np.ndarray, light_angle: float) -> float:
    """Mean |sine| of the angle between a path's segments (N, 2) and the shear direction."""
    steps = np.diff(points, axis=0)
    lengths = np.maximum(np.linalg.norm(steps, axis=1), 1e-9)
    cross = np.abs(steps[:, 0] * np.sin(light_angle) - steps[:, 1] * np.cos(light_angle)) / lengths
    return float(np.average(cross, weights=lengths))


def vary_strings(variation: np.random.Generator, specs: list[StringSpec], geom: EmbryoGeometry,
                 all_tables: list[Tables], config) -> None:
    """Set each string's visible span and end-to-end fade (in place) from ``string_span`` and ``fade_ramp``.

    A partly visible string keeps the end on the ICM / TE and fades towards its free end. A ``doublet``
    string's visible part must cross the shear as its whole path had to (else it stays whole).
    """
    across = _ACROSS_SHEAR if config.string_style == "doublet" else 0.0
    for spec in specs:
        depth, from_start = variation.uniform(*config.fade_ramp), variation.random() < 0.5
        spec.ramp = float(depth if from_start else -depth)
        for _ in range(8):
            visible = variation.uniform(*config.string_span)
            if visible >= 1.0:
                break
            spec.span = (0.0, float(visible)) if from_start else (float(1.0 - visible), 1.0)
            first = spec.frames[0]
            if _across_shear(string_path(spec, all_tables[first], first), geom.light_angle) >= across:
                break
            spec.span = (0.0, 1.0)


def membrane_ridge_paths(variation: np.random.Generator, geom: EmbryoGeometry, tables: Tables,
                         count: int) -> list[np.ndarray]:
    """``count`` ridges of the TE membrane seen inside the cavity: arcs 2-7 px inside the cavity edge,
    away from the ICM, each (N, 2) in embryo coordinates."""
    paths = []
    for _ in range(count):
        extent = variation.uniform(0.35, 1.1)
        offset = geom.icm_half_width + 0.15 + variation.uniform(0, 2 * np.pi - 2 * geom.icm_half_width - 0.3 - extent)
        theta = geom.icm_angle + offset + np.linspace(0.0, extent, max(32, int(2 * extent * geom.radius)))
        inset = variation.uniform(2.0, 7.0) * geom.scale + 1.0 * np.sin(np.linspace(0, np.pi, len(theta)))
        rho = tables.at("cavity", theta) - inset
        paths.append(np.stack([rho * np.cos(theta), rho * np.sin(theta)], axis=1))
    return paths


def crossing_fibre_paths(variation: np.random.Generator, geom: EmbryoGeometry, count: int) -> list[np.ndarray]:
    """``count`` fibres of the medium above or below the embryo: long gentle curves that may cross it,
    each (N, 2) in embryo coordinates."""
    paths = []
    for _ in range(count):
        heading = variation.uniform(-np.pi, np.pi)
        direction = np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-direction[1], direction[0]])
        centre = variation.uniform(-0.9, 0.9, 2) * geom.radius
        length = variation.uniform(0.6, 1.6) * geom.radius
        start, end = centre - direction * length / 2, centre + direction * length / 2
        p1 = start + direction * length / 3 + variation.normal(0, 0.12) * length * normal
        p2 = start + direction * 2 * length / 3 + variation.normal(0, 0.12) * length * normal
        paths.append(_bezier(start, p1, p2, end, np.linspace(0, 1, int(2 * length))))
    return paths


def fibre_paths(rng, geom: EmbryoGeometry, tables: Tables) -> list[tuple[np.ndarray, float, float, float]]:
    """0-3 fibres in the medium, each (points (N, 2) embryo coords, width, signed contrast, relief).

    They start outside the zona and may cross it; rendering clips them at the inner zona edge.
    """
    fibres = []
    s = geom.scale
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3]))):
        theta = rng.uniform(-np.pi, np.pi)
        rho = float(tables.at("zona_outer", theta)) + rng.uniform(-8, 60) * s
        start = rho * np.array([np.cos(theta), np.sin(theta)])
        heading = theta + np.pi / 2 + rng.normal(0, 0.6)
        length = rng.uniform(60, 220) * s
        direction = np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-direction[1], direction[0]])
        end = start + length * direction
        p1 = start + direction * length / 3 + rng.normal(0, 0.15) * length * normal
        p2 = start + direction * 2 * length / 3 + rng.normal(0, 0.15) * length * normal
        points = _bezier(start, p1, p2, end, np.linspace(0, 1, int(2 * length)))
        width = round(rng.uniform(1.0, 3.0) * 4) / 4
        fibres.append((points, width, rng.uniform(6, 25) * rng.choice([-1.0, 1.0]), rng.uniform(0, 1)))
    return fibres


def rasterize_path(
    points: np.ndarray, width: float, size: int, fade: np.ndarray | None, bead_spacing: float, pad: int = 16
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Anti-aliased coverage of a polyline ``width`` px wide, drawn 4x supersampled, in a local window.

    Args:
        points: (N, 2) frame pixel coordinates (x, y), pixel centres at integers.
        fade: (N,) visibility along the line or None; bead_spacing: px between swellings, 0 for none.
        pad: px of margin around the line in the window (room for blur and the contrast band).
    Returns:
        coverage and faded coverage, each (h, w) float32 in [0, 1], and the window's (rows, cols)
        slices in the (size, size) frame; h or w is 0 when the line lies outside the frame.
    """
    ss, pad = 4, int(width) + pad
    lo = np.maximum(np.floor(points.min(0)).astype(int) - pad, 0)
    hi = np.maximum(np.minimum(np.ceil(points.max(0)).astype(int) + pad, size), lo)
    window = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    small = (hi[0] - lo[0], hi[1] - lo[1])
    if min(small) == 0:
        return np.zeros(small[::-1], np.float32), np.zeros(small[::-1], np.float32), window
    sub = np.rint(((points - lo + 0.5) * ss - 0.5) * 16).astype(np.int32)  # 4 fractional bits
    thick = max(1, int(round(width * ss)))
    fade = np.ones(len(points)) if fade is None else fade
    canvases = [np.zeros((small[1] * ss, small[0] * ss), np.uint8) for _ in range(2)]
    cv2.polylines(canvases[0], [sub], False, 255, thick, cv2.LINE_8, shift=4)
    for i in range(0, len(sub) - 1, 6):
        value = int(round(255 * fade[i : i + 7].mean()))
        cv2.polylines(canvases[1], [sub[i : i + 7]], False, value, thick, cv2.LINE_8, shift=4)
    if bead_spacing > 0:
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        radius = int(round((width / 2 + 0.5) * ss * 16))
        for pos in np.arange(bead_spacing / 2, arc[-1], bead_spacing):
            i = int(np.searchsorted(arc, pos))
            centre = (int(sub[i, 0]), int(sub[i, 1]))
            cv2.circle(canvases[0], centre, radius, 255, -1, cv2.LINE_8, shift=4)
            cv2.circle(canvases[1], centre, radius, int(round(255 * fade[i])), -1, cv2.LINE_8, shift=4)
    coverage, faded = (cv2.resize(c, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255 for c in canvases)
    return coverage, faded, window


def line_layer(coverage: np.ndarray, polarity: float, relief: float, light_angle: float) -> np.ndarray:
    """A thin line's intensity: darker/brighter core plus an HMC relief part, unit scale, (H, W) float32."""
    soft = cv2.GaussianBlur(coverage, (0, 0), 0.8)
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return polarity * coverage + 2.5 * relief * (np.cos(light_angle) * gx + np.sin(light_angle) * gy)


def doublet_layer(coverage: np.ndarray, polarity: float, width: float, light_angle: float) -> np.ndarray:
    """A filament in HMC as a directional derivative: a soft band (Gaussian of ~a third of the width)
    differentiated along the shear, peak 1, sign ``polarity``, (H, W) float32.

    With ``polarity`` +1 the side of the band towards the shear direction is dark and the other bright.
    """
    soft = cv2.GaussianBlur(coverage, (0, 0), max(0.6, 0.35 * width))
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    layer = np.float32(np.cos(light_angle)) * gx + np.float32(np.sin(light_angle)) * gy
    peak = float(np.abs(layer).max()) if layer.size else 0.0
    return layer * np.float32(polarity / peak) if peak > 1e-9 else layer


def doublet_shift(width: float, light_angle: float) -> tuple[int, int]:
    """Pixel offset (dx, dy) from a string's mask to one of its sides along the shear (about half the width
    plus one px)."""
    reach = 0.5 * width + 1.0
    return int(round(reach * np.cos(light_angle))), int(round(reach * np.sin(light_angle)))


def shifted_mask(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` (H, W) bool moved by (dx, dy) px; what leaves the frame is dropped."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[max(-dy, 0) : h - max(dy, 0),
                                                                        max(-dx, 0) : w - max(dx, 0)]
    return out


def doublet_contrast(image: np.ndarray, mask: np.ndarray, region: np.ndarray | None, width: float,
                     light_angle: float) -> float:
    """The difference between a string's two sides along the shear: mean grey level of the mask moved
    backwards (against the shear) minus the mask moved forwards, by :func:`doublet_shift`.

    Positive for a string bright on the side the shear comes from. Args: image (H, W); mask, region
    (H, W) bool (``region``: where to measure, e.g. the cavity; None for everywhere).
    """
    dx, dy = doublet_shift(width, light_angle)
    back, ahead = shifted_mask(mask, -dx, -dy), shifted_mask(mask, dx, dy)
    if region is not None:
        back, ahead = back & region, ahead & region
    if not back.any() or not ahead.any():
        return 0.0
    return float(image[back].mean(dtype=np.float64) - image[ahead].mean(dtype=np.float64))


def string_contrast(image: np.ndarray, mask: np.ndarray, cavity: np.ndarray) -> float:
    """Mean grey level on a string mask minus a 3-5 px band around it, both inside the cavity.

    Args:
        image: (H, W) float or uint8 frame; mask, cavity: (H, W) bool.
    """
    m8 = mask.astype(np.uint8)
    near = cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    far = cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))) > 0
    band, core = far & ~near & cavity, mask & cavity
    if not core.any() or not band.any():
        return 0.0
    return float(image[core].mean(dtype=np.float64) - image[band].mean(dtype=np.float64))


