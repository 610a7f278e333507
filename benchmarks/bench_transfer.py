"""Transfer protocol: train every stage on one synthetic preset, measure it on another.

A figure measured on the frames a method was tuned on is not evidence; this is. For each pair
``TRAIN:TEST`` of synthetic presets (``csf synth --preset``), the training world is rendered with one
seed family and the test world with another, with every test embryo in the test split. Both are
ingested with the same settings; every model is trained on the training store only, and measured on
the whole test store:

- proposal recall of the test strings at IoU 0.25 / 0.5, per ingest source and for the learned
  proposals (string map trained on TRAIN, box padding learned from TRAIN's boxes), with boxes per frame;
- frame AUROC of the autoencoder score, of the string map's peak, and of the best region score;
- AP25 / AP50 of the region head's boxes (COCO matching);
- the chain frame score: a logistic model on [AE score, string-map peak, best region score], fitted on
  TRAIN's val split only, its frame AUROC on TEST.

Usage::

    python benchmarks/bench_transfer.py --pairs clean:hard hard:clean clean:hard-crop --embryos 16

Writes ``benchmarks/results/transfer.json`` and ``transfer.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def make_world(root: Path, preset: str, embryos: int, seed: int, test_only: bool, sources: str, scale: int) -> str:
    """Render a preset's dataset and ingest it; returns the store's path (reused when present)."""
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.scale import ScaleSettings
    from cs_features.settings import StoreSettings
    from cs_features.synth import generate_dataset, synth_preset

    name = f"{preset}-{'test' if test_only else 'train'}-s{seed}"
    data, store = root / name / "data", root / name / "store"
    if not (store / "frames.lance").exists():
        overrides = {"split_fractions": (0.0, 0.0, 1.0)} if test_only else {}
        generate_dataset(data, n_embryos=embryos, seed=seed, config=synth_preset(preset, **overrides))
        settings = StoreSettings(scale=ScaleSettings(embryo_diameter=scale),
                                 proposals=ProposalConfig(method=sources))
        ingest(data, store, IngestConfig(workers=2, settings=settings))
    return str(store)


def frame_table(store_uri: str) -> dict:
    """frame_id -> (label 0/1, scale, gt boxes in frame px) for every frame of a store."""
    from cs_features.store import FRAMES, FeatureStore

    rows = FeatureStore(store_uri).read(FRAMES, ["frame_id", "label", "scale", "gt_boxes", "split"]).to_pylist()
    return {r["frame_id"]: (int(r["label"] == "abnormal"), r["scale"] or 1.0,
                            np.asarray(r["gt_boxes"] or [], np.int32).reshape(-1, 4), r["split"]) for r in rows}


def ae_scores(train_store: str, test_store: str, work: Path, epochs: int) -> tuple[dict, dict]:
    """Autoencoder trained on the training store; frame scores on its val split and on the test store."""
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.autoencoder.data import load_frames
    from cs_features.store import FeatureStore

    model = AnomalyFilter(variant="weighted", epochs=epochs, img_size=256, seed=0)
    train_from_store(train_store, work / "ae", model)
    out = []
    for uri, where in ((train_store, "split = 'val'"), (test_store, None)):
        frames = load_frames(FeatureStore(uri), where, model.img_size)
        out.append(dict(zip(frames.frame_ids.tolist(), model.score(frames).tolist())))
    return out[0], out[1]


def string_peaks(train_store: str, test_store: str, work: Path) -> tuple[dict, dict, dict, object]:
    """String map trained on the training store: per-frame peak (val of train, test store) and test maps."""
    from cs_features.store import FeatureStore
    from cs_features.strings.data import frame_rows, iter_frames
    from cs_features.strings.model import StringMapModel
    from cs_features.strings.training import train_strings

    train_strings(train_store, work / "strings")
    model = StringMapModel.load(work / "strings")
    peaks_val, peaks_test, maps = {}, {}, {}
    for uri, where, sink in ((train_store, "split = 'val'", peaks_val), (test_store, None, peaks_test)):
        store = FeatureStore(uri)
        for frame in iter_frames(store, frame_rows(store, where)):
            prob = model.predict_map(frame.image)
            sink[frame.frame_id] = float(np.percentile(prob, 99.9))
            if sink is peaks_test:
                maps[frame.frame_id] = (prob, frame.boxes)
    return peaks_val, peaks_test, maps, model


def learned_recall(train_store: str, model, maps: dict, frames: dict) -> dict:
    """Recall of the test strings by boxes around the string map, padded as the training boxes are."""
    from cs_features.metrics import proposal_recall
    from cs_features.proposals.learned import learn_box_style, map_proposals
    from cs_features.store import FeatureStore
    from cs_features.strings.data import frame_rows, iter_frames

    store = FeatureStore(train_store)
    train = [(model.predict_map(f.image), f.boxes) for f in iter_frames(store, frame_rows(store, "split = 'train'"))
             if len(f.boxes)][:40]
    style = learn_box_style([m for m, _ in train], [b for _, b in train])
    pairs = []
    for frame_id, (prob, boxes) in maps.items():
        if frames[frame_id][0]:
            pairs.append((map_proposals(prob, style), boxes))  # both at the canonical scale
    out = proposal_recall(pairs)
    out["style"] = style.to_dict()
    return out


def head_scores(train_store: str, test_store: str, work: Path) -> tuple[dict, dict, dict]:
    """Region head trained on the training store: AP and hit rates on the test store, best box score per frame."""
    from cs_features.heads import get_head
    from cs_features.heads.base import region_score
    from cs_features.heads.training import evaluate_head, fit_head, load_head_data
    from cs_features.store import FeatureStore

    head = get_head("logreg", seed=0)
    fit_head(head, load_head_data(FeatureStore(train_store), "classic"))
    best = []
    for uri, split in ((train_store, "val"), (test_store, "test")):
        data = load_head_data(FeatureStore(uri), "classic") if split == "test" else None
        if data is None:
            from cs_features.heads.data import load_proposals

            rows = load_proposals(FeatureStore(uri), "classic", "val")
            X, frame_ids = rows.X, rows.frame_id
        else:
            X, frame_ids = data.test.X, data.test.frame_id
        p, iou = head.predict(X)
        score = region_score(p, iou, head.score_mode, head.alpha)
        per_frame: dict[str, float] = {}
        for fid, s in zip(frame_ids.tolist(), score.tolist()):
            per_frame[fid] = max(per_frame.get(fid, 0.0), s)
        best.append(per_frame)
    metrics, _ = evaluate_head(head, load_head_data(FeatureStore(test_store), "classic"))
    return metrics, best[0], best[1]


def auroc(labels: list[int], scores: list[float]) -> float | None:
    from cs_features.metrics import auroc as metric

    return metric(np.asarray(labels), np.asarray(scores))


def chain_auroc(val_features: np.ndarray, val_labels: np.ndarray, test_features: np.ndarray,
                test_labels: np.ndarray) -> float | None:
    """A logistic model on standardised stage scores, fitted on the training world's val split only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(val_labels.tolist())) < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(val_features, val_labels)
    return auroc(test_labels.tolist(), model.predict_proba(test_features)[:, 1].tolist())


def run_pair(root: Path, train: str, test: str, args) -> dict:
    start = time.perf_counter()
    train_store = make_world(root, train, args.embryos, 1, False, args.proposals, args.embryo_diameter)
    test_store = make_world(root, test, args.embryos, 2, True, args.proposals, args.embryo_diameter)
    work = root / f"{train}__{test}"
    work.mkdir(parents=True, exist_ok=True)
    frames_test, frames_train = frame_table(test_store), frame_table(train_store)
    from cs_features.store import FeatureStore, proposal_recall

    result = {"train": train, "test": test, "proposal_recall": proposal_recall(FeatureStore(test_store), "classic")}
    ae_val, ae_test = ae_scores(train_store, test_store, work, args.ae_epochs)
    sm_val, sm_test, maps, model = string_peaks(train_store, test_store, work)
    result["proposal_recall"]["learned"] = learned_recall(train_store, model, maps, frames_test)
    head_metrics, head_val, head_test = head_scores(train_store, test_store, work)
    ids = sorted(frames_test)
    labels = [frames_test[f][0] for f in ids]
    result["frame_auroc"] = {
        "autoencoder": auroc(labels, [ae_test[f] for f in ids]),
        "string_map_peak": auroc(labels, [sm_test[f] for f in ids]),
        "best_region": auroc(labels, [head_test.get(f, 0.0) for f in ids]),
    }
    val_ids = sorted(f for f in frames_train if frames_train[f][3] == "val")

    def features(source_ae, source_sm, source_head, frame_ids):
        return np.array([[source_ae[f], source_sm[f], source_head.get(f, 0.0)] for f in frame_ids])

    result["frame_auroc"]["chain"] = chain_auroc(
        features(ae_val, sm_val, head_val, val_ids), np.array([frames_train[f][0] for f in val_ids]),
        features(ae_test, sm_test, head_test, ids), np.array(labels))
    result["detection"] = {k: head_metrics.get(k) for k in ("ap25", "ap50", "hit@0.25", "hit@0.5",
                                                             "average_precision", "auroc")}
    result["frames"] = {"train": len(frames_train), "test": len(frames_test), "test_cs": int(sum(labels))}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def markdown(results: list[dict], args) -> str:
    def cell(value):
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"# Transfer protocol ({args.embryos} embryos per world, proposals `{args.proposals}`, "
             f"embryo diameter {args.embryo_diameter or 'as rendered'})", "",
             "| train -> test | recall@0.5 ingest (all) | recall@0.5 learned | boxes/frame ingest | "
             "boxes/frame learned | AUROC AE | AUROC string map | AUROC best region | AUROC chain | AP25 | AP50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        recall, auc, det = r["proposal_recall"], r["frame_auroc"], r["detection"]
        everything, learned = recall.get("all", {}), recall.get("learned", {})
        lines.append(f"| {r['train']} -> {r['test']} | {cell(everything.get('recall@0.5'))} | "
                     f"{cell(learned.get('recall@0.5'))} | {everything.get('proposals_per_frame', 0):.0f} | "
                     f"{learned.get('proposals_per_frame', 0):.0f} | {cell(auc['autoencoder'])} | "
                     f"{cell(auc['string_map_peak'])} | {cell(auc['best_region'])} | {cell(auc['chain'])} | "
                     f"{cell(det['ap25'])} | {cell(det['ap50'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["clean:hard", "hard:clean", "clean:hard-crop"])
    parser.add_argument("--embryos", type=int, default=16)
    parser.add_argument("--proposals", default="filament,ss-fast")
    parser.add_argument("--embryo-diameter", type=int, default=0, help="scale normalisation (0 = off)")
    parser.add_argument("--ae-epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/csf-transfer"))
    args = parser.parse_args()
    results = []
    for pair in args.pairs:
        train, test = pair.split(":")
        results.append(run_pair(args.work, train, test, args))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "transfer.json").write_text(json.dumps({"args": vars(args) | {"work": str(args.work)},
                                                           "results": results}, indent=2, default=str))
        (RESULTS / "transfer.md").write_text(markdown(results, args))
        print(markdown(results, args))


if __name__ == "__main__":
    main()
