"""Benchmark: which evidence the frame screen reads, measured on the transfer protocol's worlds.

For each pair ``TRAIN:TEST`` already run by ``benchmarks/bench_transfer.py`` in ``--work`` (its worlds,
stores and models are reused; nothing is trained here but the screens), the evidence of the training
store and of the test world of each ``--test-seeds`` seed is collected under the pair's models
(:func:`cs_features.screening.collect_evidence`, as ``csf train screen`` does). Every screen variant is
fitted on the training world's val split only (:class:`cs_features.screening.FrameScreen`) and its frame
AUROC measured on the whole test world, beside each piece of evidence alone. A test seed whose world was
not rendered by ``bench_transfer.py`` (``--rescore --test-seed N``) is skipped with a note.

Variants are ``NAME=FEATURES@C``: FEATURES as ``csf train screen --features`` takes them, C its ``--c``.
``--peaks transient whole-map`` measures every variant again with the string peak read from the whole map
(``csf train screen --whole-map-peak``) beside the default, the peak of what the embryo's other frames do
not show.

Usage::

    python benchmarks/bench_transfer.py --pairs clean:hard hard:clean clean:hard-crop --embryos 24 \\
        --work /tmp/csf-transfer-v3-24
    python benchmarks/bench_transfer.py --rescore --test-seed 3 ... --work /tmp/csf-transfer-v3-24
    python benchmarks/bench_screen.py --work /tmp/csf-transfer-v3-24 --test-seeds 2 3

Writes ``benchmarks/results/screen.json`` and ``screen.md`` (``--name`` picks another name).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("default=all@1", "all, C 0.01=all@0.01",
            "rises, region=ae_score_rise,string_peak_rise,best_region,best_region_rise@1",
            "rises, region, C 0.01=ae_score_rise,string_peak_rise,best_region,best_region_rise@0.01",
            "region=best_region,best_region_rise@1")


def parse_variant(text: str) -> tuple[str, tuple[str, ...], float]:
    """``NAME=FEATURES@C`` -> (name, features, C)."""
    from cs_features.screening import screen_features

    name, _, rest = text.partition("=")
    features, _, c = rest.rpartition("@")
    if not name or not features or not c:
        raise SystemExit(f"variant {text!r} is not NAME=FEATURES@C")
    return name.strip(), screen_features(features), float(c)


def measure_pair(work: Path, train: str, test: str, seeds: list[int], variants: list,
                 peaks: tuple[str, ...] = ("transient",)) -> list[dict]:
    """One row per test seed: AUROC of each evidence alone and of each screen variant, for each way of
    reading the string peak (``transient``: what the embryo's other frames do not show, the default;
    ``whole-map``); the names of the second and later ways carry it in brackets."""
    from cs_features.errors import StoreError
    from cs_features.metrics import auroc
    from cs_features.screening import SCREEN_FEATURES, FrameScreen, collect_evidence, evidence_labels, evidence_matrix

    pair = work / f"{train}__{test}"
    models = [pair / "ae", pair / "strings", pair / "head"]
    train_store = str(work / f"{train}-train-s1" / "store")
    train_evidence = {peak: collect_evidence(train_store, *models, transient_peak=peak == "transient")[0]
                      for peak in peaks}
    rows = []
    for seed in seeds:
        store = work / f"{test}-test-s{seed}" / "store"
        if not store.is_dir():
            print(f"skipped {train} -> {test} seed {seed}: {store} not found (bench_transfer.py --rescore "
                  f"--test-seed {seed} renders it)")
            continue
        alone, screens = {}, {}
        for k, peak in enumerate(peaks):
            try:
                test_evidence, _ = collect_evidence(str(store), *models, transient_peak=peak == "transient")
            except StoreError as error:  # a shared test world scored under another pair's models only
                print(f"skipped {train} -> {test} seed {seed}: {error}")
                break
            y, tag = evidence_labels(test_evidence), f" ({peak} peak)" if k else ""
            for name in SCREEN_FEATURES:
                if k and not name.startswith("string_peak"):
                    continue  # the other evidence does not depend on how the peak is read
                values = evidence_matrix(test_evidence, (name,))[:, 0]
                # a frame without a time-lapse has no rise: it ranks as none at all
                alone[name + tag] = auroc(y, [v if v == v else 0.0 for v in values])
            for name, features, c in variants:
                screen = FrameScreen(C=c, features=features).fit(train_evidence[peak])
                screens[name + tag] = auroc(y, screen.predict_proba(test_evidence))
        if not screens:
            continue
        rows.append({"train": train, "test": test, "test_seed": seed, "frames": int(len(y)),
                     "cs_frames": int(y.sum()), "alone": alone, "screens": screens})
    return rows


def markdown(rows: list[dict], variants: list) -> str:
    names = list(rows[0]["alone"]) + list(rows[0]["screens"]) if rows else []
    head = ["variant", *(f"{r['train']} -> {r['test']} (seed {r['test_seed']})" for r in rows), "lowest"]
    lines = ["# Frame screen variants on the transfer protocol (frame AUROC on each test world)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        values = [r["alone"].get(name, r["screens"].get(name)) for r in rows]
        label = name if name in rows[0]["alone"] else f"screen: {name}"
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {min(values):.3f} |")
    lines += ["", "Screens: " + "; ".join(f"`{n}` = {', '.join(f)} at C {c:g}" for n, f, c in variants)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="bench_transfer.py's --work folder")
    parser.add_argument("--pairs", nargs="+", default=["clean:hard", "hard:clean", "clean:hard-crop"])
    parser.add_argument("--test-seeds", nargs="+", type=int, default=[2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="NAME=FEATURES@C")
    parser.add_argument("--peaks", nargs="+", default=["transient"], choices=["transient", "whole-map"],
                        help="how the string peak is read (the first is the table's plain rows)")
    parser.add_argument("--name", default="screen")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    start, rows = time.perf_counter(), []
    for pair in args.pairs:
        train, test = pair.split(":")
        if not (args.work / f"{train}__{test}" / "head").is_dir():
            raise SystemExit(f"{args.work / f'{train}__{test}'} holds no trained models: run bench_transfer.py "
                             f"--pairs {pair} --work {args.work} first")
        rows += measure_pair(args.work, train, test, args.test_seeds, variants, tuple(args.peaks))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, variants)
    (RESULTS / f"{args.name}.md").write_text(table)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(
        {"work": str(args.work), "rows": rows, "variants": [[n, list(f), c] for n, f, c in variants],
         "seconds": round(time.perf_counter() - start, 1)}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
