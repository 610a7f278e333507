"""Rendering of one synthetic Hoffman-modulation-contrast (HMC) blastocyst time-lapse.

An embryo is a set of nested star-shaped boundaries in its own polar coordinates: zona pellucida outer
and inner edge, trophectoderm (TE) inner edge, and the cavity edge, where the inner cell mass (ICM)
bulges in. A frame is an optical height map (zona, TE with cell walls and nuclei, packed ICM cells,
fragments) shaded with a directional derivative, which is how HMC turns phase gradients into a bright
side and a dark side, plus an intensity layer of thin lines: cytoplasmic strings inside the cavity
and fibres in the medium. Focus blur, illumination gradient, vignetting and sensor noise come last.

Per-frame drift, rotation, zoom and slow shape change make a short time-lapse. Textures are drawn once
per embryo on a canvas in embryo coordinates and resampled per frame, so they move with the embryo.
Lengths are chosen for a 500 px frame and scale with the image size; string widths do not scale.

What the newer ``SynthConfig`` fields add (:class:`Extras`: filament distractors, out-of-focus TE cell
boundaries of the upper surface, Poisson-like shot noise, JPEG) is drawn from a second random stream, so
the original generator's draws, and its files, stay as they were.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from cs_features.synth.geometry import ANGLES, EmbryoGeometry, FrameState, Tables
from cs_features.synth.lines import (
    StringSpec,
    crossing_fibre_paths,
    doublet_contrast,
    doublet_layer,
    fade_profile,
    fibre_paths,
    line_layer,
    membrane_ridge_paths,
    rasterize_path,
    sample_strings,
    string_contrast,
    string_path,
    vary_strings,
    wrap_angle,
)

_REF_SIZE = 500.0
_RELIEF_GAIN = 150.0  # grey levels per unit of height gradient (1/px): a zona edge gives about +-45
_REF_FILL = (0.72, 0.82)  # outer zona diameter over frame side the lengths were chosen for


def sample_geometry(rng: np.random.Generator, size: int, config) -> EmbryoGeometry:
    """Draw one embryo's shape and imaging parameters for a ``size`` x ``size`` frame.

    ``config`` (a ``SynthConfig``) gives the ranges of embryo fill, shear angle and vignetting; embryo
    lengths follow the embryo's size when its fill differs from the reference.
    """
    fill = tuple(config.embryo_fill)
    s = size / _REF_SIZE
    if fill != _REF_FILL:
        s *= (fill[0] + fill[1]) / (_REF_FILL[0] + _REF_FILL[1])
    amplitudes = np.concatenate([[rng.uniform(0.015, 0.06)], rng.uniform(0.0, 0.012, 3)])
    harmonics = np.stack([np.arange(2.0, 6.0), amplitudes, rng.uniform(-np.pi, np.pi, 4)], axis=1)
    radius = rng.uniform(fill[0] / 2, fill[1] / 2) * size
    zona, te = rng.uniform(10, 17) * s, rng.uniform(5, 8.5) * s
    n_lumps, n_nuclei = 5, int(rng.integers(6, 13))
    lumps = [rng.integers(9, 24, n_lumps), rng.uniform(0.02, 0.06, n_lumps), rng.uniform(-np.pi, np.pi, n_lumps)]
    return EmbryoGeometry(
        size=size,
        scale=s,
        center=size / 2 + rng.uniform(-0.04, 0.04, 2) * size,
        radius=radius,
        harmonics=harmonics,
        zona_thickness=zona,
        te_thickness=te,
        icm_angle=rng.uniform(-np.pi, np.pi),
        icm_half_width=rng.uniform(0.5, 0.85),
        icm_depth=rng.uniform(0.26, 0.40) * (radius - zona - te),
        icm_lumps=np.stack(lumps, axis=1).astype(np.float64),
        nuclei=np.stack([rng.uniform(-np.pi, np.pi, n_nuclei), rng.uniform(2.5, 5.5, n_nuclei) * s], axis=1),
        light_angle=np.deg2rad(rng.uniform(*config.shear_angle)),
        background=rng.uniform(115, 135),
        gradient=rng.normal(0, 0.04, 2),
        vignetting=rng.uniform(*config.vignetting),
    )


def sample_frame_states(
    rng: np.random.Generator,
    geom: EmbryoGeometry,
    n_frames: int,
    blur_range: tuple[float, float],
    noise_range: tuple[float, float],
) -> list[FrameState]:
    """Random-walk drift, rotation and shape change over ``n_frames``; focus varies per frame."""
    steps = rng.normal(0, 1.2 * geom.scale, (n_frames, 2))
    steps[0] = 0
    shifts = np.clip(np.cumsum(steps, axis=0), -6 * geom.scale, 6 * geom.scale)
    rotations = np.cumsum(np.concatenate([[0.0], rng.normal(0, np.deg2rad(0.5), n_frames - 1)]))
    growth = rng.uniform(-0.002, 0.008)
    jitter = np.cumsum(rng.normal(0, 0.002, (n_frames, len(geom.harmonics))), axis=0)
    icm = 1 + np.cumsum(rng.normal(0, 0.02, n_frames))
    blur_mid, noise = rng.uniform(*blur_range), rng.uniform(*noise_range)
    blurs = np.clip(blur_mid + rng.normal(0, 0.3, n_frames), *blur_range)
    return [
        FrameState(
            shift=shifts[t],
            rotation=float(rotations[t]),
            zoom=1 + growth * t,
            harmonic_jitter=jitter[t],
            icm_factor=float(icm[t]),
            blur_sigma=float(blurs[t]),
            noise_sigma=float(noise * rng.uniform(0.9, 1.1)),
        )
        for t in range(n_frames)
    ]


def radial_tables(geom: EmbryoGeometry, state: FrameState) -> Tables:
    """Boundary radii over ``ANGLES`` for one frame, in embryo coordinates (before zoom)."""
    th = ANGLES
    order, amp, phase = geom.harmonics.T
    amp = amp + state.harmonic_jitter
    zona_outer = geom.radius * (1 + (amp[:, None] * np.cos(order[:, None] * th + phase[:, None])).sum(0))
    zona_inner = zona_outer - geom.zona_thickness * (1 + 0.12 * np.cos(th - phase[0]))
    bulge = np.zeros_like(th)
    for angle, depth in geom.nuclei:
        bulge += depth * np.exp(-0.5 * (wrap_angle(th - angle) * geom.radius / (7 * geom.scale)) ** 2)
    te_inner = zona_inner - geom.te_thickness - bulge
    d = wrap_angle(th - geom.icm_angle) / geom.icm_half_width
    bump = np.clip(1 - d**2, 0, None) ** 1.2
    l_order, l_amp, l_phase = geom.icm_lumps.T
    lumps = 1 + (l_amp[:, None] * np.cos(l_order[:, None] * th + l_phase[:, None])).sum(0)
    cavity = te_inner - geom.icm_depth * state.icm_factor * bump * lumps
    return Tables(zona_outer, zona_inner, te_inner, cavity, bulge / max(float(bulge.max()), 1e-6))


def to_frame(points: np.ndarray, geom: EmbryoGeometry, state: FrameState) -> np.ndarray:
    """Embryo coordinates (N, 2) -> frame pixel coordinates (N, 2) under this frame's drift."""
    c, s = np.cos(state.rotation), np.sin(state.rotation)
    rot = np.array([[c, -s], [s, c]])
    return geom.center + state.shift + state.zoom * points @ rot.T


@functools.lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates, 2 x (size, size) float32 (read-only, shared)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def embryo_coords(geom: EmbryoGeometry, state: FrameState) -> tuple[np.ndarray, np.ndarray]:
    """Embryo coordinates (x, y) of every frame pixel: the inverse of :func:`to_frame`, 2 x (H, W) float32."""
    xs, ys = _pixel_grid(geom.size)
    px = xs - np.float32(geom.center[0] + state.shift[0])
    py = ys - np.float32(geom.center[1] + state.shift[1])
    c, s = np.float32(np.cos(state.rotation) / state.zoom), np.float32(np.sin(state.rotation) / state.zoom)
    return c * px + s * py, -s * px + c * py


# ----------------------------------------------------------------------------------------- textures


def _noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """White noise blurred with ``sigma`` px and scaled to unit std, (n, n) float32.

    Wide blurs are done on a coarser grid and resized up, which looks the same and is much cheaper.
    """
    factor = max(1, int(sigma // 3))
    m = -(-n // factor)
    field = cv2.GaussianBlur(rng.standard_normal((m, m), dtype=np.float32), (0, 0), sigma / factor)
    if factor > 1:
        field = cv2.resize(field, (n, n), interpolation=cv2.INTER_CUBIC)
    return field / max(float(field.std()), 1e-6)


def _voronoi_walls(rng: np.random.Generator, n: int, spacing: float) -> np.ndarray:
    """Cell walls of a jittered-grid Voronoi tessellation (packed cells), (n, n) bool."""
    grid = np.arange(spacing / 2, n, spacing)
    gx, gy = np.meshgrid(grid, grid)
    pts = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-0.38, 0.38, (gx.size, 2)) * spacing
    pts = np.clip(np.rint(pts), 0, n - 1).astype(np.int64)
    src = np.full((n, n), 255, np.uint8)
    src[pts[:, 1], pts[:, 0]] = 0
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    walls = np.zeros((n, n), bool)
    walls[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    walls[:-1] |= labels[:-1] != labels[1:]
    return walls


def _objects(rng: np.random.Generator, geom: EmbryoGeometry, tables: Tables, n: int) -> np.ndarray:
    """Fragments and debris specks as height bumps (medium, and occasionally the cavity), (n, n) float32."""
    canvas = np.zeros((n, n), np.uint8)
    s = geom.scale
    groups = [  # (count, radius range px, height, where)
        (int(rng.integers(3, 9)), (2.0, 6.0), 0.7, "medium"),
        (int(rng.integers(8, 25)), (0.8, 1.6), 0.5, "medium"),
        (int(rng.choice([0, 0, 1, 2])), (2.0, 5.0), 0.6, "cavity"),
        (int(rng.choice([0, 1, 2, 3])), (0.8, 1.5), 0.4, "cavity"),
    ]
    for count, (r_lo, r_hi), height, where in groups:
        for _ in range(count):
            theta = rng.uniform(-np.pi, np.pi)
            if where == "medium":
                rho = float(tables.at("zona_outer", theta)) + rng.uniform(6, 0.2 * geom.size)
            else:
                rho = float(tables.at("cavity", theta)) * rng.uniform(0.2, 0.8)
            center = (int(n / 2 + rho * np.cos(theta)), int(n / 2 + rho * np.sin(theta)))
            axes = (max(1, round(rng.uniform(r_lo, r_hi) * s)), max(1, round(rng.uniform(r_lo, r_hi) * s)))
            value = int(255 * height * rng.uniform(0.6, 1.0))
            cv2.ellipse(canvas, center, axes, rng.uniform(0, 180), 0, 360, value, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), 1.0)


def sample_textures(rng: np.random.Generator, geom: EmbryoGeometry, tables: Tables) -> tuple[np.ndarray, np.ndarray]:
    """Per-embryo texture canvases in embryo coordinates (origin at the canvas centre).

    Returns:
        (n, n, 4) float32 zona, TE walls, TE grain, ICM cells and (n, n, 3) float32 cavity, medium,
        fragments (packed so one remap per frame moves each stack).
    """
    n = int(np.ceil(1.25 * geom.size))
    s = geom.scale
    icm_walls = _voronoi_walls(rng, n, rng.uniform(11, 15) * s)
    spacing = 12 * s
    dist = cv2.distanceTransform((~icm_walls).astype(np.uint8), cv2.DIST_L2, 3)
    dome = np.sqrt(np.clip(dist / (0.45 * spacing), 0, 1))
    droplets = (rng.random((n, n)) < 0.004).astype(np.float32)
    droplets = cv2.GaussianBlur(droplets, (0, 0), 1.0) * 6
    icm = 0.35 * dome + 0.15 * _noise(rng, n, 0.8) - 0.3 * droplets
    te_walls = cv2.GaussianBlur(_voronoi_walls(rng, n, rng.uniform(26, 36) * s).astype(np.float32), (0, 0), 0.6)
    cells = [_noise(rng, n, 1.3), te_walls / max(float(te_walls.max()), 1e-6), _noise(rng, n, 1.0), icm]
    fluid = [_noise(rng, n, 25 * s), _noise(rng, n, 6 * s), _objects(rng, geom, tables, n)]
    return np.dstack(cells).astype(np.float32), np.dstack(fluid).astype(np.float32)


# ----------------------------------------------------------------------------------------- one frame


def _step(rho: np.ndarray, radius: np.ndarray, edge: np.float32) -> np.ndarray:
    """Soft indicator of ``rho > radius`` across an edge of ``edge`` px, (H, W) float32."""
    out = rho - radius
    out *= np.float32(1.0) / edge
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _height_map(geom, tables, textures, ex, ey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optical height (H, W) float32, cavity mask (H, W) bool, radius over inner-zona radius (H, W)."""
    rho = cv2.magnitude(ex, ey)
    radii = tables.image(np.arctan2(ey, ex))
    edge = np.float32(1.2 * geom.scale)
    s_zo, s_zi = _step(rho, radii["zona_outer"], edge), _step(rho, radii["zona_inner"], edge)
    s_te, s_cav = _step(rho, radii["te_inner"], edge), _step(rho, radii["cavity"], edge)
    mid_zona = _step(rho, np.float32(0.5) * (radii["zona_outer"] + radii["zona_inner"]), 3 * edge)
    half = np.float32(textures[0].shape[0] / 2)
    mx, my = ex + half, ey + half
    zona, walls, grain, icm = cv2.split(cv2.remap(textures[0], mx, my, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT101))
    fluid, medium, objects = cv2.split(cv2.remap(textures[1], mx, my, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT101))
    f = np.float32
    # zona: two layers (inner one denser) with a faint texture; TE: flat cells above it, walls as
    # grooves and nuclei as bumps; ICM: a dome of packed cells; cavity: flat fluid.
    h = s_zi * (1 - s_zo) * (f(0.8) - f(0.15) * mid_zona + f(0.08) * zona)
    h += s_te * (1 - s_zi) * (f(1.0) - f(1.2) * walls + f(0.12) * grain + f(0.5) * radii["nucleus"])
    depth = (radii["te_inner"] - rho) / np.maximum(radii["te_inner"] - radii["cavity"], f(1.0))
    h += s_cav * (1 - s_te) * (f(0.75) + f(0.35) * np.sin(f(np.pi) * np.clip(depth, 0, 1, out=depth)) + icm)
    h += (1 - s_cav) * f(0.03) * fluid + s_zo * f(0.04) * medium + objects
    return h, rho < radii["cavity"], rho / radii["zona_inner"]


def _shade(h: np.ndarray, geom: EmbryoGeometry) -> np.ndarray:
    """HMC relief: background + gain * derivative of the smoothed height along the shear, (H, W) float32."""
    hb = cv2.GaussianBlur(h, (0, 0), 0.9 * geom.scale + 0.3)
    gx = cv2.Sobel(hb, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(hb, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    relief = np.cos(geom.light_angle) * gx + np.sin(geom.light_angle) * gy
    return geom.background + _RELIEF_GAIN * relief + 6.0 * hb


def _illumination(geom: EmbryoGeometry) -> np.ndarray:
    """Multiplicative illumination gradient and vignetting, (H, W) float32 around 1."""
    c = np.linspace(-1, 1, geom.size, dtype=np.float32)
    xn, yn = np.meshgrid(c, c)
    r2 = (xn * xn + yn * yn) / 2
    return (1 + geom.gradient[0] * xn + geom.gradient[1] * yn) * (1 - 1.5 * geom.vignetting * r2 * r2)


def _measure(image, mask, region, width, geom, style) -> float:
    """A filament's contrast as its style defines it (``line``: core minus band; ``doublet``: the two
    sides along the shear)."""
    if style == "doublet":
        return doublet_contrast(image, mask, region, width, geom.light_angle)
    return string_contrast(image, mask, region)


def _add_strings(clean, frame_strings, frame_index, geom, state, tables, cavity, illum, style="line"):
    """Add each string's layer to ``clean`` (in place) scaled to its target contrast.

    Returns:
        masks [(H, W) bool], windows [(rows, cols) slices], widths [px] of the strings drawn.
    """
    masks, windows, widths = [], [], []
    for spec in frame_strings:
        points = to_frame(string_path(spec, tables, frame_index), geom, state)
        coverage, faded, win = rasterize_path(points, spec.width, geom.size, fade_profile(spec, len(points)),
                                              spec.bead_spacing)
        mask = coverage >= 0.5
        if style == "doublet":
            layer = doublet_layer(faded, float(np.sign(spec.contrast)), spec.width, geom.light_angle)
        else:
            layer = line_layer(faded, float(np.sign(spec.contrast)), spec.relief, geom.light_angle)
        layer = cv2.GaussianBlur(layer, (0, 0), state.blur_sigma) * illum[win]
        unit = _measure(layer, mask, cavity[win], spec.width, geom, style)
        if mask.any() and abs(unit) > 1e-6:
            clean[win] += layer * np.float32(abs(spec.contrast) / abs(unit))
            full = np.zeros(cavity.shape, bool)
            full[win] = mask
            masks.append(full)
            windows.append(win)
            widths.append(spec.width)
    return masks, windows, widths


# ------------------------------------------------------------------------------ distractors, sensor


@dataclass
class Filament:
    """A distractor drawn with the strings' filament model: path (N, 2) in embryo coordinates, width px,
    signed contrast (grey levels, measured as for strings), extra defocus blur sigma px."""

    points: np.ndarray
    width: float
    contrast: float
    defocus: float


@dataclass
class Extras:
    """What the newer ``SynthConfig`` fields add to one embryo (drawn from the second random stream).

    Attributes:
        shot_noise: variance per grey level of the Poisson-like noise term.
        jpeg_quality: per frame, a JPEG quality or None (lossless).
        filaments: membrane ridges along the TE and out-of-focus fibres.
        surface: (n, n) float32 canvas (embryo coordinates, like the textures) of the upper surface's TE
            cell boundaries, or None; drawn with ``surface_contrast`` and ``surface_defocus`` (px).
    """

    shot_noise: float
    jpeg_quality: list
    filaments: list[Filament] = field(default_factory=list)
    surface: np.ndarray | None = None
    surface_contrast: float = 0.0
    surface_defocus: float = 0.0


def _signed(variation: np.random.Generator, low_high) -> float:
    return float(variation.uniform(*low_high) * variation.choice([-1.0, 1.0]))


def _surface_canvas(variation: np.random.Generator, geom: EmbryoGeometry, n: int) -> np.ndarray:
    """Boundaries of the TE cells on the embryo's upper surface, about half of them (the rest out of the
    focal slab), inside the TE's inner edge: (n, n) float32 in [0, 1], embryo coordinates."""
    s = geom.scale
    walls = _voronoi_walls(variation, n, variation.uniform(24, 34) * s).astype(np.float32)
    visible = _noise(variation, n, 18 * s) > variation.uniform(-0.3, 0.3)
    c = np.arange(n, dtype=np.float32) - n / 2
    inside = np.hypot(c[None, :], c[:, None]) < geom.radius - geom.zona_thickness - geom.te_thickness
    return walls * (visible & inside)


def sample_extras(variation: np.random.Generator, geom: EmbryoGeometry, all_tables: list[Tables],
                  strings: list[StringSpec], config) -> Extras:
    """Draw the embryo's :class:`Extras` and set its strings' span and end-to-end fade (in place)."""
    quality = config.jpeg_quality
    extras = Extras(
        shot_noise=float(variation.uniform(*config.shot_noise)),
        jpeg_quality=[None if quality is None else int(variation.integers(quality[0], quality[1] + 1))
                      for _ in all_tables],
    )
    vary_strings(variation, strings, geom, all_tables, config)
    low, high = config.string_contrast
    width = (config.string_width[0], max(config.string_width[0], min(config.string_width[1], 3.0)))
    n_ridges = int(variation.integers(*config.membrane_ridges, endpoint=True))
    for points in membrane_ridge_paths(variation, geom, all_tables[0], n_ridges):
        extras.filaments.append(Filament(points, variation.uniform(*width), _signed(variation, (low, high)),
                                         variation.uniform(0.0, 1.0)))
    for points in crossing_fibre_paths(variation, geom, int(variation.integers(*config.extra_fibres, endpoint=True))):
        extras.filaments.append(Filament(points, variation.uniform(*config.string_width),
                                         _signed(variation, (0.5 * low, 0.7 * high)), variation.uniform(1.5, 3.5)))
    if config.surface_boundaries:
        extras.surface = _surface_canvas(variation, geom, int(np.ceil(1.25 * geom.size)))
        extras.surface_contrast = _signed(variation, (3.0, 8.0))
        extras.surface_defocus = float(variation.uniform(2.0, 3.5))
    return extras


def _add_surface(clean, extras: Extras, geom: EmbryoGeometry, ex, ey, illum, style: str) -> None:
    """Add the out-of-focus surface cell boundaries to ``clean`` (in place)."""
    half = np.float32(extras.surface.shape[0] / 2)
    coverage = cv2.remap(extras.surface, ex + half, ey + half, cv2.INTER_LINEAR, None, cv2.BORDER_CONSTANT, 0)
    sign = float(np.sign(extras.surface_contrast))
    if style == "doublet":
        layer = doublet_layer(coverage, sign, extras.surface_defocus / 0.35, geom.light_angle)
    else:
        layer = cv2.GaussianBlur(coverage, (0, 0), extras.surface_defocus)
        layer *= np.float32(sign / max(float(np.abs(layer).max()), 1e-6))
    clean += np.float32(abs(extras.surface_contrast)) * layer * illum


def _add_filament(clean, filament: Filament, geom, state, illum, style: str) -> None:
    """Add one distractor filament to ``clean`` (in place), scaled like a string of its contrast."""
    coverage, _, win = rasterize_path(to_frame(filament.points, geom, state), filament.width, geom.size, None, 0.0)
    mask = coverage >= 0.5
    if not mask.any():
        return
    sign = float(np.sign(filament.contrast))
    if style == "doublet":
        layer = doublet_layer(coverage, sign, filament.width, geom.light_angle)
    else:
        layer = line_layer(coverage, sign, 0.5, geom.light_angle)
    layer = cv2.GaussianBlur(layer, (0, 0), float(np.hypot(state.blur_sigma, filament.defocus))) * illum[win]
    unit = abs(_measure(layer, mask, None, filament.width, geom, style))
    # a filament along the shear barely registers in the doublet measure: scale it by its peak instead
    clean[win] += layer * np.float32(abs(filament.contrast) / max(unit, 0.3 * float(np.abs(layer).max()), 1e-6))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (H, W) uint8 after a JPEG round trip at ``quality``."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else image


# ----------------------------------------------------------------------------------------- time-lapse


def _render_frame(rng, geom, state, tables, frame_index, textures, fibres, frame_strings, illum, config, extras):
    """One frame: height map, shading, fibres, focus blur, illumination, distractors, strings, noise, JPEG."""
    style = config.string_style
    ex, ey = embryo_coords(geom, state)
    h, cavity, rel_radius = _height_map(geom, tables, textures, ex, ey)
    base = _shade(h, geom)
    for points, width, contrast, relief in fibres:
        coverage, _, win = rasterize_path(to_frame(points, geom, state), width, geom.size, None, 0.0, pad=6)
        if coverage.size == 0:
            continue
        coverage *= rel_radius[win] > 1.0 + 2.0 / geom.radius  # clipped at the inner zona edge
        if style == "doublet":
            base[win] += abs(contrast) * doublet_layer(coverage, float(np.sign(contrast)), width, geom.light_angle)
        else:
            base[win] += abs(contrast) * line_layer(coverage, float(np.sign(contrast)), relief, geom.light_angle)
    clean = cv2.GaussianBlur(base, (0, 0), state.blur_sigma) * illum
    if extras.surface is not None:
        _add_surface(clean, extras, geom, ex, ey, illum, style)
    for filament in extras.filaments:
        _add_filament(clean, filament, geom, state, illum, style)
    masks, windows, widths = _add_strings(clean, frame_strings, frame_index, geom, state, tables, cavity, illum, style)
    contrasts = [_measure(clean[w], m[w], cavity[w], width, geom, style) for m, w, width in zip(masks, windows, widths)]
    # Gaussian read noise plus a shot-noise term whose variance grows with the grey level
    sigma = np.sqrt(np.float32(state.noise_sigma**2) + np.float32(extras.shot_noise) * np.maximum(clean, 0))
    noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * sigma
    image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if extras.jpeg_quality[frame_index] is not None:
        image = _jpeg(image, extras.jpeg_quality[frame_index])
    return image, masks, contrasts, widths, cavity, float(geom.light_angle)


def frame_side(config, variation: np.random.Generator) -> int:
    """One embryo's frame side: ``image_size``, or drawn from ``frame_size`` (the variation stream's first draw)."""
    if config.frame_size is None:
        return config.image_size
    return int(variation.integers(*config.frame_size, endpoint=True))


def render_frames(rng: np.random.Generator, has_cs: bool, config, variation: np.random.Generator) -> list[tuple]:
    """Render one embryo's time-lapse with the settings of a ``SynthConfig``.

    Args:
        rng: the original generator's stream; variation: the stream of what the newer fields add.
    Returns:
        one tuple per frame: image (S, S) uint8, string masks [(S, S) bool], string contrasts (signed
        grey levels on the noise-free frame, as ``string_style`` measures them), string widths (px),
        cavity mask (S, S) bool, shear angle (rad). S is ``image_size`` or drawn from ``frame_size``.
    """
    geom = sample_geometry(rng, frame_side(config, variation), config)
    states = sample_frame_states(rng, geom, config.frames_per_embryo, config.blur_sigma, config.noise_sigma)
    all_tables = [radial_tables(geom, st) for st in states]
    textures = sample_textures(rng, geom, all_tables[0])
    strings: list[StringSpec] = sample_strings(rng, geom, all_tables, config) if has_cs else []
    fibres = fibre_paths(rng, geom, all_tables[0])
    illum = _illumination(geom)
    extras = sample_extras(variation, geom, all_tables, strings, config)
    return [
        _render_frame(rng, geom, st, tab, t, textures, fibres, [s for s in strings if t in s.frames], illum,
                      config, extras)
        for t, (st, tab) in enumerate(zip(states, all_tables))
    ]
