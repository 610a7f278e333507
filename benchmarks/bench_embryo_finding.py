"""How well the embryo circle is found, against the circle the synthetic renderer drew.

For each preset and seed, ``--embryos`` time-lapses are rendered (``cs_features.synth.render_embryo``, CS and
CS-free alternating) and every ``--every``-th frame is searched with :func:`cs_features.embryo.find_embryo`,
once as ingest does (the local gradient capped at its ``TEXTURE_CAP_QUANTILE`` quantile) and once with the
reference in the same run (``cap_quantile=1.0``: scaled by its maximum, as before the cap). The truth is the
renderer's embryo circle (``cs_features.synth.embryo_circle``: centre and radius in the frame's pixels).

Per preset and method: frames searched, frames whose embryo was found, frames whose radius and centre both
lie within ``--tolerance`` of the true radius, and the 50th / 95th percentiles of the radius and centre
errors (as shares of the true radius) over the frames found.

    python benchmarks/bench_embryo_finding.py --presets clean hard hard-crop --seeds 6 7 --embryos 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def measure(preset: str, seeds: list[int], embryos: int, every: int, tolerance: float) -> dict:
    from cs_features.embryo import TEXTURE_CAP_QUANTILE, find_embryo
    from cs_features.synth import embryo_circle, render_embryo, synth_preset

    methods = {f"capped at q{TEXTURE_CAP_QUANTILE:g}": TEXTURE_CAP_QUANTILE, "uncapped (reference)": 1.0}
    errors: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    config = synth_preset(preset)
    for seed in seeds:
        for index in range(embryos):
            cx, cy, radius = embryo_circle(index, seed, config)
            for frame in render_embryo(index, seed, index % 2 == 0, config)[::every]:
                for name, quantile in methods.items():
                    found = find_embryo(frame.image, cap_quantile=quantile)
                    errors[name].append((abs(found.radius - radius) / radius,
                                         float(np.hypot(found.cx - cx, found.cy - cy)) / radius)
                                        if found.found else (np.nan, np.nan))
    out = {}
    for name, rows in errors.items():
        table = np.array(rows, float)
        found = ~np.isnan(table[:, 0])
        within = found & (np.nan_to_num(table, nan=np.inf) < tolerance).all(axis=1)
        out[name] = {"frames": len(table), "found": int(found.sum()), "within_tolerance": int(within.sum()),
                     "radius_error_q50_q95": _quantiles(table[found, 0]),
                     "centre_error_q50_q95": _quantiles(table[found, 1])}
    return out


def _quantiles(values: np.ndarray) -> list[float | None]:
    """The 50th and 95th percentiles of ``values`` (None where there are none)."""
    if not len(values):
        return [None, None]
    return [round(float(v), 4) for v in np.quantile(values, [0.5, 0.95])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["clean", "hard", "hard-crop"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[6, 7])
    parser.add_argument("--embryos", type=int, default=30)
    parser.add_argument("--every", type=int, default=2, help="search every n-th frame of each time-lapse")
    parser.add_argument("--tolerance", type=float, default=0.08, help="share of the true radius")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embryo_finding.json"))
    args = parser.parse_args()
    results = {}
    for preset in args.presets:
        results[preset] = measure(preset, args.seeds, args.embryos, args.every, args.tolerance)
        for name, row in results[preset].items():
            print(f"{preset:10s} {name:22s} found {row['found']}/{row['frames']}, within "
                  f"{args.tolerance:.0%}: {row['within_tolerance']}, radius error q50/q95 "
                  f"{row['radius_error_q50_q95']}, centre error q50/q95 {row['centre_error_q50_q95']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                    "results": results}, indent=2))


if __name__ == "__main__":
    main()
