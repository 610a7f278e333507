"""Transfer protocol: train every stage on one synthetic preset, measure it on another.

A figure measured on the frames a method was tuned on is not evidence; this is. For each pair
``TRAIN:TEST`` of synthetic presets (``csf synth --preset``), the training world is rendered with one
seed family and the test world with another, with every test embryo in the test split. Both are
ingested with the same settings; every model is trained on the training store only, through the
product's own code (``csf train ae``, ``csf train strings``, ``csf train head``, ``csf train screen``),
and measured on the whole test store:

- proposal recall of the test strings at IoU 0.25 / 0.5, per ingest source, and for the learned
  ``strings`` source added to a copy of the test store with the training world's string map
  (``csf add-source strings``), with boxes per frame;
- frame AUROC of the autoencoder score, of the string map's peak inside the cavity, of the best region
  score, and of the chain screen (fitted on the training world's val split only);
- AP25 / AP50 of the region head's boxes on the test store (COCO matching), and with the learned
  ``strings`` source in both worlds (added to a copy of the training store, a head trained there and
  measured on the test store's copy with the source), as a user runs the product once a string map is
  trained. There the string map ranks the boxes too (:mod:`cs_features.strings.framing`); the head's
  ranking alone is reported beside it;
- 95 % intervals of the recall with the learned source, of the chain's AUROC and of AP25 / AP50 (of the
  ingest's boxes, and with the source), with the test embryos resampled
  (:func:`cs_features.metrics.embryo_bootstrap`): how far a figure moves from one set of embryos to the next.

Usage::

    python benchmarks/bench_transfer.py --pairs clean:hard hard:clean clean:hard-crop --embryos 12

Writes ``benchmarks/results/transfer.json`` and ``transfer.md`` (``--name`` picks another name);
``--rescore`` measures the models already trained again (frame AUROC, detection AP, ingest recall, and the
recall and AP with the learned ``strings`` source added by today's code) after a change to ranking, screening or
the learned source, on the same test worlds or, with ``--test-seed 3``, on fresh ones that no
choice was made on (the figures replaced are kept as ``before_rescore``); with ``--reuse-learned-stores``
it keeps the copies with the learned source that an earlier ``--rescore`` made (valid while the learned
source itself is unchanged) and measures only the ranking and screening again. Worlds
and their stores are reused from ``--work`` (an interrupted ingest resumes), models are retrained per
pair. ``--unlabelled`` self-trains each string map (``csf train strings --unlabelled-store``) on the test
preset's world of the training seed family, its labels never read: the frames a lab has of its own camera
before it labels any. A pair of one preset (``hard:hard``: its own seed families) measures the world's own ceiling at
the same size, which tells a failure to transfer from a world too hard for this many labels.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def make_world(root: Path, preset: str, embryos: int, seed: int, test_only: bool, sources: str, scale: int) -> str:
    """Render a preset's dataset (once) and ingest it (resuming); returns the store's path."""
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.scale import ScaleSettings
    from cs_features.settings import StoreSettings
    from cs_features.synth import generate_dataset, synth_preset

    name = f"{preset}-{'test' if test_only else 'train'}-s{seed}"
    data, store = root / name / "data", root / name / "store"
    if not (data / "manifest.csv").is_file():
        overrides = {"split_fractions": (0.0, 0.0, 1.0)} if test_only else {}
        generate_dataset(data, n_embryos=embryos, seed=seed, config=synth_preset(preset, **overrides))
    settings = StoreSettings(scale=ScaleSettings(embryo_diameter=scale), proposals=ProposalConfig(method=sources))
    ingest(data, store, IngestConfig(workers=2, settings=settings))
    return str(store)


def model_paths(work: Path) -> dict[str, Path]:
    """Where a pair's models live under its work folder."""
    return {"ae": work / "ae", "strings": work / "strings", "head": work / "head"}


def frame_counts(test_store: str) -> dict:
    """Test frames and CS test frames of a store."""
    from cs_features.store import FeatureStore

    labels = FeatureStore(test_store).read("frames", ["label"]).column("label").to_pylist()
    return {"test": len(labels), "test_cs": int(sum(label == "abnormal" for label in labels))}


def write_results(args, results: list[dict]) -> None:
    """benchmarks/results/NAME.json and NAME.md, and the table on stdout."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"args": {**vars(args), "work": str(args.work)}, "results": results}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS / f"{args.name}.md").write_text(markdown(results, args))
    print(markdown(results, args), flush=True)


def train_models(train_store: str, work: Path, ae_epochs: int, unlabelled: str | None = None) -> dict[str, Path]:
    """Autoencoder, string map and region head trained on the training store, as the CLI trains them; with
    ``unlabelled``, the string map self-trained on that store's frames (``--unlabelled-store``)."""
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head
    from cs_features.strings.training import train_strings

    models = model_paths(work)
    train_from_store(train_store, models["ae"], AnomalyFilter(variant="weighted", epochs=ae_epochs, seed=0))
    train_strings(train_store, models["strings"], unlabelled=unlabelled)
    train_head(train_store, "logreg", models["head"])
    return models


def score_world(store: str, models: dict[str, Path]) -> None:
    """The stage maps the screen reads: error_maps and string_maps of the store under these models."""
    from cs_features.autoencoder import score_store
    from cs_features.strings.maps import score_strings

    score_store(store, models["ae"], device="cpu")
    score_strings(store, models["strings"])


def learned_test_store(work: Path, test_seed: int) -> Path:
    """Where a pair's copy of the test store with the learned 'strings' source lives."""
    return work / ("test_store_with_strings" if test_seed == 2 else f"test_store_with_strings_s{test_seed}")


def learned_recall(test_store: str, models: dict[str, Path], work: Path, test_seed: int = 2,
                   reuse: bool = False) -> dict:
    """Proposal recall on a copy of the test store with the learned 'strings' source added (``reuse``: the
    copy an earlier run made, when there is one)."""
    from cs_features.ingest.add_source import add_proposal_source
    from cs_features.store import FeatureStore, proposal_recall

    copy = learned_test_store(work, test_seed)
    if reuse and (copy / "frames.lance").exists():
        return {**proposal_recall(FeatureStore(str(copy)), "classic"), "reused_copy": True,
                "interval@0.5": recall_interval(str(copy))}
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(test_store, copy)
    start = time.perf_counter()
    added = add_proposal_source(str(copy), "strings", {"strings_model": str(models["strings"])})
    recall = proposal_recall(FeatureStore(str(copy)), "classic")
    recall["seconds_per_frame"] = round((time.perf_counter() - start) / max(added.frames, 1), 3)
    recall["interval@0.5"] = recall_interval(str(copy))
    return recall


def recall_interval(store_uri: str, threshold: float = 0.5) -> dict:
    """95 % interval of the recall of the test strings at IoU ``threshold`` by all the store's proposals,
    embryos resampled (:func:`cs_features.metrics.embryo_bootstrap`)."""
    from cs_features.metrics import embryo_bootstrap, string_best_iou
    from cs_features.store import FRAMES, FeatureStore, fixed_list_to_numpy, proposals_table_name

    store = FeatureStore(store_uri)
    frames = store.read(FRAMES, ["frame_id", "gt_boxes", "embryo_id"],
                        where="has_gt = true AND label = 'abnormal'").to_pylist()
    props = store.read(proposals_table_name("classic"), ["frame_id", "box"])
    frame_of = np.asarray(props.column("frame_id").to_pylist(), dtype=object)
    boxes = fixed_list_to_numpy(props.column("box"), 4)
    embryos, best = [], []
    for frame in frames:
        gt = np.asarray(frame["gt_boxes"] or [], np.int32).reshape(-1, 4)
        if len(gt):
            best.append(string_best_iou(gt, boxes[frame_of == frame["frame_id"]]))
            embryos += [frame["embryo_id"]] * len(gt)
    hits = np.concatenate(best) >= threshold
    return {"recall": float(hits.mean()), **embryo_bootstrap(embryos, lambda idx: hits[idx].mean())}


def learned_detection(train_store: str, models: dict[str, Path], work: Path, test_seed: int = 2,
                      reuse: bool = False) -> dict:
    """The head's figures with the learned 'strings' source in both worlds, as a user runs the product once a
    string map is trained: the source added to a copy of the training store, a head trained there
    (``head_strings``), measured on the test store's copy that :func:`learned_recall` made."""
    from cs_features.heads.training import train_head
    from cs_features.ingest.add_source import add_proposal_source

    copy = work / "train_store_with_strings"
    if not (reuse and (copy / "frames.lance").exists()):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(train_store, copy)
        add_proposal_source(str(copy), "strings", {"strings_model": str(models["strings"])})
    head = work / "head_strings"
    shutil.rmtree(head, ignore_errors=True)
    train_head(str(copy), "logreg", head)
    return head_detection(str(learned_test_store(work, test_seed)), {"head": head})


def screen_scores(train_store: str, test_store: str, models: dict[str, Path]) -> dict:
    """Frame AUROC on the test store of each stage's evidence and of the chain screen fitted on train's val."""
    from cs_features.metrics import auroc, embryo_bootstrap
    from cs_features.screening import FrameScreen
    from cs_features.screening.evidence import EVIDENCE_COLUMNS, collect_evidence
    from cs_features.screening.model import evidence_labels, evidence_matrix

    train_evidence, _ = collect_evidence(train_store, models["ae"], models["strings"], models["head"])
    test_evidence, _ = collect_evidence(test_store, models["ae"], models["strings"], models["head"])
    screen = FrameScreen().fit(train_evidence)
    y = evidence_labels(test_evidence)
    X = evidence_matrix(test_evidence, EVIDENCE_COLUMNS)
    out = {name: auroc(y, X[:, k]) for k, name in enumerate(EVIDENCE_COLUMNS)}
    chain = screen.predict_proba(test_evidence)
    out["chain"] = auroc(y, chain)
    embryos = test_evidence.column("embryo_id").to_pylist()
    out["chain_interval"] = embryo_bootstrap(embryos, lambda idx: auroc(y[idx], chain[idx]))
    kept = chain[y == 1] >= screen.threshold_
    out["chain_keeps_cs"] = float(kept.mean()) if kept.size else None
    out["chain_skips_cs_free"] = float((chain[y == 0] < screen.threshold_).mean()) if (y == 0).any() else None
    return out


def head_detection(test_store: str, models: dict[str, Path]) -> dict:
    """The head's figures on the test store, boxes ranked as ``csf detect`` ranks them (with the attachment
    and transience priors, and with the string map's framing where the store proposes with the learned
    source), and AP25 / AP50 with the attachment prior alone, without either, and (where the map ranks)
    by the head alone beside them."""
    from cs_features.attachment import AttachmentPrior
    from cs_features.heads import load_head
    from cs_features.heads.training import EvalSettings, evaluate_head, load_head_data
    from cs_features.store import FeatureStore
    from cs_features.strings.framing import MapFraming
    from cs_features.transience import TransiencePrior

    head, data = load_head(models["head"]), load_head_data(FeatureStore(test_store), "classic")
    metrics, _ = evaluate_head(head, data)
    off = TransiencePrior(enabled=False)
    attached, _ = evaluate_head(head, data, EvalSettings(transience=off))
    plain, _ = evaluate_head(head, data, EvalSettings(attachment=AttachmentPrior(enabled=False), transience=off))
    out = {k: metrics.get(k) for k in ("ap25", "ap50", "hit@0.25", "hit@0.5", "average_precision", "auroc")}
    out["attachment_only"] = {k: attached.get(k) for k in ("ap25", "ap50")}
    out["without_priors"] = {k: plain.get(k) for k in ("ap25", "ap50")}
    if data.test_framing(MapFraming()) is not None:
        unframed, _ = evaluate_head(head, data, EvalSettings(framing=MapFraming(enabled=False)))
        out["without_framing"] = {k: unframed.get(k) for k in ("ap25", "ap50")}
    out["intervals"] = ap_intervals(test_store, head, data, metrics)
    out["frame_decision"] = decision_figures(head, data)
    return out


def decision_figures(head, data) -> dict:
    """Share of the test CS and CS-free frames `csf detect` calls CS (best box p, without the autoencoder's gate)
    at 0.5 and at the decision the head chose on its training world's val split."""
    from cs_features.heads.decision import DEFAULT_POSITIVE_P, frame_scores
    from cs_features.heads.training import EvalSettings

    scores = frame_scores(head, data, EvalSettings())
    cs = np.array([f["label"] == "abnormal" for f in data.frames])
    chosen = (getattr(head, "frame_decision_", None) or {}).get("positive_p", DEFAULT_POSITIVE_P)

    def called(threshold: float) -> dict:
        return {"cs_called": float((scores[cs] >= threshold).mean()) if cs.any() else None,
                "cs_free_called": float((scores[~cs] >= threshold).mean()) if (~cs).any() else None}

    return {"positive_p": chosen, "at_decision": called(chosen), "at_0.5": called(0.5)}


def ap_intervals(test_store: str, head, data, metrics: dict) -> dict:
    """95 % intervals of AP25 and AP50 of the head's boxes, ranked as :func:`head_detection` ranks them first,
    embryos resampled (every frame of an embryo drawn, CS-free frames included)."""
    from cs_features.heads.training import EvalSettings, frame_detections
    from cs_features.metrics import coco_average_precision, embryo_bootstrap, nms_detections
    from cs_features.store import FRAMES, FeatureStore

    settings = EvalSettings()
    frames = FeatureStore(test_store).read(FRAMES, ["frame_id", "embryo_id"]).to_pylist()
    embryo_of = {row["frame_id"]: row["embryo_id"] for row in frames}
    triples = frame_detections(head, data, settings)
    detections = [nms_detections(boxes, scores, settings.nms_iou, settings.max_detections, settings.nms_inside)
                  for boxes, scores, _ in triples]
    truth = [gt for _, _, gt in triples]
    embryos = [embryo_of[frame["frame_id"]] for frame in data.frames]
    out = {}
    for threshold in settings.ap_ious:
        key = f"ap{round(threshold * 100)}"

        def ap(idx, threshold=threshold):
            return coco_average_precision([detections[i] for i in idx], [truth[i] for i in idx], threshold,
                                          settings.max_detections)

        whole = ap(np.arange(len(triples)))
        if abs(whole - metrics[key]) > 1e-9:  # the interval must be of the very figure reported
            raise RuntimeError(f"{key} recomputed for its interval is {whole}, the head's figure {metrics[key]}")
        out[key] = embryo_bootstrap(embryos, ap)
    return out


def pair_work(root: Path, train: str, test: str, args) -> Path:
    """A pair's work folder (its models and store copies); the self-trained protocol's apart."""
    return root / f"{train}__{test}{'__unlabelled' if args.unlabelled else ''}"


def run_pair(root: Path, train: str, test: str, args) -> dict:
    from cs_features.store import FeatureStore, proposal_recall

    start = time.perf_counter()
    train_store = make_world(root, train, args.embryos, 1, False, args.proposals, args.embryo_diameter)
    test_store = make_world(root, test, args.embryos, args.test_seed, True, args.proposals, args.embryo_diameter)
    # the user's own unlabelled time-lapses: the test preset rendered with the training seed family
    unlabelled = make_world(root, test, args.embryos, 1, False, args.proposals, args.embryo_diameter) \
        if args.unlabelled else None
    work = pair_work(root, train, test, args)
    work.mkdir(parents=True, exist_ok=True)
    models = train_models(train_store, work, args.ae_epochs, unlabelled)
    for store in (train_store, test_store):
        score_world(store, models)
    recall = proposal_recall(FeatureStore(test_store), "classic")
    recall["learned"] = learned_recall(test_store, models, work, args.test_seed)
    return {"train": train, "test": test, "proposal_recall": recall,
            "frame_auroc": screen_scores(train_store, test_store, models),
            "detection": head_detection(test_store, models),
            "detection_with_strings": learned_detection(train_store, models, work, args.test_seed),
            "frames": frame_counts(test_store),
            "seconds": round(time.perf_counter() - start, 1)}


def markdown(results: list[dict], args) -> str:
    def cell(value):
        return "n/a" if value is None or value != value else f"{value:.3f}"

    self_trained = ", string maps self-trained on the test preset, unlabelled" if args.unlabelled else ""
    lines = [f"# Transfer protocol ({args.embryos} embryos per world, ingest proposals `{args.proposals}`, "
             f"embryo diameter {args.embryo_diameter or 'as rendered'}{self_trained})",
             "",
             "| train -> test | recall@0.5 ingest | recall@0.5 +strings | recall@0.5 strings alone "
             "| boxes/frame +strings | AUROC AE | AUROC string map | AUROC best region | AUROC chain "
             "| chain keeps CS | AP25 | AP50 | AP25 / AP50 attachment prior only | AP25 / AP50 without priors "
             "| AP25 / AP50 + strings | AP25 / AP50 + strings, head alone |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        recall, auc, det = r["proposal_recall"], r["frame_auroc"], r["detection"]
        learned, attached, plain = recall["learned"], det.get("attachment_only", {}), det.get("without_priors", {})
        both = r.get("detection_with_strings", {})
        unframed = both.get("without_framing", {})
        lines.append(f"| {r['train']} -> {r['test']} | {cell(recall.get('all', {}).get('recall@0.5'))} | "
                     f"{cell(learned.get('all', {}).get('recall@0.5'))} | "
                     f"{cell(learned.get('strings', {}).get('recall@0.5'))} | "
                     f"{learned.get('all', {}).get('proposals_per_frame', 0):.0f} | {cell(auc['ae_score'])} | "
                     f"{cell(auc['string_peak'])} | {cell(auc['best_region'])} | {cell(auc['chain'])} | "
                     f"{cell(auc['chain_keeps_cs'])} | {cell(det['ap25'])} | {cell(det['ap50'])} | "
                     f"{cell(attached.get('ap25'))} / {cell(attached.get('ap50'))} | "
                     f"{cell(plain.get('ap25'))} / {cell(plain.get('ap50'))} | "
                     f"{cell(both.get('ap25'))} / {cell(both.get('ap50'))} | "
                     f"{cell(unframed.get('ap25'))} / {cell(unframed.get('ap50'))} |")

    def interval(figure, bounds):
        bounds = bounds or {}
        return f"{cell(figure)} ({cell(bounds.get('low'))}-{cell(bounds.get('high'))})"

    lines += ["", "Frame decision (`csf detect`'s best box p, without the autoencoder's gate; the head trained with "
              "the learned source): share of the test CS / CS-free frames called CS", "",
              "| train -> test | decision chosen on the training world's val | called at it | called at 0.5 |",
              "|---|---|---|---|"]
    for r in results:
        decision = r.get("detection_with_strings", {}).get("frame_decision")
        if decision:
            at, half = decision["at_decision"], decision["at_0.5"]
            lines.append(f"| {r['train']} -> {r['test']} | {cell(decision['positive_p'])} | "
                         f"{cell(at['cs_called'])} / {cell(at['cs_free_called'])} | "
                         f"{cell(half['cs_called'])} / {cell(half['cs_free_called'])} |")
    lines += ["", "95 % intervals, embryos resampled (`cs_features.metrics.embryo_bootstrap`, 1000 resamples):", "",
              "| train -> test | recall@0.5 +strings | AUROC chain | AP25 + strings | AP50 + strings |",
              "|---|---|---|---|---|"]
    for r in results:
        learned, auc = r["proposal_recall"]["learned"], r["frame_auroc"]
        both = r.get("detection_with_strings", {})
        spans = both.get("intervals", {})
        lines.append(f"| {r['train']} -> {r['test']} | "
                     f"{interval(learned.get('all', {}).get('recall@0.5'), learned.get('interval@0.5'))} | "
                     f"{interval(auc['chain'], auc.get('chain_interval'))} | "
                     f"{interval(both.get('ap25'), spans.get('ap25'))} | "
                     f"{interval(both.get('ap50'), spans.get('ap50'))} |")
    return "\n".join(lines) + "\n"


def rescore(args) -> None:
    """``--rescore``: the models already trained in ``--work`` measured again on the test world of
    ``--test-seed`` (rendered, ingested and scored by the AE and the string map when missing): ingest
    recall, recall with the learned source added (on a fresh copy of the test store), frame AUROC,
    detection AP, and AP with the learned source in both worlds (:func:`learned_detection`). Where
    NAME.json holds the pair for the same test seed, the figures replaced are kept as ``before_rescore``."""
    from cs_features.errors import StoreError
    from cs_features.store import FeatureStore, proposal_recall

    path = RESULTS / f"{args.name}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"results": []}
    same_seed = saved.get("args", {}).get("test_seed", 2) == args.test_seed
    old_rows = {(r["train"], r["test"]): r for r in saved["results"]} if same_seed else {}
    results = []
    for pair in args.pairs:
        train, test = pair.split(":")
        work = pair_work(args.work, train, test, args)
        train_store = args.work / f"{train}-train-s1" / "store"
        models = model_paths(work)
        missing = [str(p) for p in [train_store, *models.values()] if not p.exists()]
        if missing:
            raise SystemExit(f"pair {pair}: its training world or models are missing under {args.work} "
                             f"({missing[:2]}); run the whole protocol first (without --rescore)")
        test_store = make_world(args.work, test, args.embryos, args.test_seed, True, args.proposals,
                                args.embryo_diameter)
        try:
            screen = screen_scores(str(train_store), test_store, models)
        except StoreError:  # a fresh test world: no AE scores or string maps under these models yet
            score_world(test_store, models)
            screen = screen_scores(str(train_store), test_store, models)
        old = old_rows.get((train, test))
        recall = proposal_recall(FeatureStore(test_store), "classic")
        recall["learned"] = learned_recall(test_store, models, work, args.test_seed, args.reuse_learned_stores)
        row = {"train": train, "test": test, "test_seed": args.test_seed, "proposal_recall": recall,
               "frame_auroc": screen, "detection": head_detection(test_store, models),
               "detection_with_strings": learned_detection(str(train_store), models, work, args.test_seed,
                                                           args.reuse_learned_stores),
               "frames": frame_counts(test_store)}
        if old:
            row["before_rescore"] = {"frame_auroc": old["frame_auroc"], "detection": old["detection"],
                                     "learned_recall": old["proposal_recall"].get("learned", {})}
        results.append(row)
        print(pair, json.dumps({"frame_auroc": row["frame_auroc"], "detection": row["detection"]}), flush=True)
    write_results(args, results)


def main() -> None:
    from cs_features.proposals.config import DEFAULT_SOURCES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=["clean:hard", "hard:clean", "clean:hard-crop"])
    parser.add_argument("--embryos", type=int, default=12)
    parser.add_argument("--proposals", default=DEFAULT_SOURCES)
    parser.add_argument("--embryo-diameter", type=int, default=0, help="scale normalisation (0 = off)")
    parser.add_argument("--ae-epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/csf-transfer"))
    parser.add_argument("--name", default="transfer", help="writes benchmarks/results/NAME.json and .md")
    parser.add_argument("--test-seed", type=int, default=2, help="seed family of the test worlds (2)")
    parser.add_argument("--rescore", action="store_true",
                        help="measure the models already trained in --work again (frame AUROC, detection AP, "
                             "ingest recall, recall and AP with the learned source added) on the test worlds of "
                             "--test-seed, after a change to ranking, screening or the learned source")
    parser.add_argument("--reuse-learned-stores", action="store_true",
                        help="with --rescore: keep the copies with the learned source an earlier --rescore made "
                             "(valid while the learned source is unchanged; ranking and screening are measured again)")
    parser.add_argument("--unlabelled", action="store_true",
                        help="self-train each string map on the test preset's world of the training seed family "
                             "(its labels never read: the user's own unlabelled time-lapses); models in "
                             "TRAIN__TEST__unlabelled")
    args = parser.parse_args()
    if args.reuse_learned_stores and not args.rescore:
        parser.error("--reuse-learned-stores goes with --rescore")
    if args.rescore:
        rescore(args)
        return
    results = []
    for pair in args.pairs:
        train, test = pair.split(":")
        results.append(run_pair(args.work, train, test, args))
        write_results(args, results)


if __name__ == "__main__":
    main()
