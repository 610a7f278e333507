"""The main job end to end on synthetic data, with local defaults (what `csf quickstart` runs).

synth -> ingest -> train + score the autoencoder -> bench the region heads, train the best ->
detect on the test split -> one similarity query. Every stage reads the store the ingest wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STAGES = ("synth", "ingest", "autoencoder", "heads", "detect", "similar")


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the demo: small enough for a laptop CPU in minutes."""

    embryos: int = 48
    seed: int = 0
    image_size: int = 500
    proposals: str = "filament,ss-fast"
    ae_epochs: int = 4
    ae_img_size: int = 256
    head_models: tuple[str, ...] = ("mlp", "lightgbm", "logreg", "knn")
    head_seeds: int = 1


def run_quickstart(out: str | Path, config: QuickstartConfig = QuickstartConfig(),
                   on_stage: Callable[[str, dict], None] | None = None,
                   progress: Callable[[str], Callable[[int, int], None] | None] | None = None) -> dict:
    """Run every stage into ``out`` (``data/``, ``store/``, ``models/``, ``bench/``, ``detect/``, ``similar/``).

    Args:
        on_stage: called with ``(stage name, its result dict)`` after each stage.
        progress: called with a stage name, returns that stage's ``progress(done, total)`` callback.

    Returns:
        ``{stage: result dict}``.
    """
    from cs_features.autoencoder import AnomalyFilter, score_store, train_from_store
    from cs_features.detect import DetectConfig, detect
    from cs_features.heads.bench import BenchConfig, run_heads_bench
    from cs_features.heads.training import train_head
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import SynthConfig, generate_dataset

    out = Path(out)
    data, store, models = out / "data", str(out / "store"), out / "models"
    results: dict[str, dict] = {}

    def done(stage: str, result: dict) -> None:
        results[stage] = result
        if on_stage:
            on_stage(stage, result)

    def bar(stage: str):
        return progress(stage) if progress else None

    synth = generate_dataset(data, n_embryos=config.embryos, seed=config.seed,
                             config=SynthConfig(image_size=config.image_size), progress=bar("synth"))
    done("synth", synth.to_dict())
    ingested = ingest(data, store,
                      IngestConfig(settings=StoreSettings(proposals=ProposalConfig(method=config.proposals))),
                      progress=bar("ingest"))
    done("ingest", ingested.to_dict())
    ae = AnomalyFilter(variant="weighted", epochs=config.ae_epochs, img_size=config.ae_img_size, seed=config.seed)
    trained = train_from_store(store, models / "ae", ae, progress=bar("autoencoder"))
    scored = score_store(store, models / "ae")
    done("autoencoder", {"model": str(models / "ae"), "metrics": trained.metrics, "scored": scored.to_dict()})
    bench = run_heads_bench(store, out / "bench",
                            config=BenchConfig(models=config.head_models, seeds=config.head_seeds),
                            progress=bar("heads"))
    best = _best_head(bench)
    head = train_head(store, best, models / "head", seed=config.seed)
    done("heads", {"bench": bench, "best": best, "table": str(out / "bench" / "heads.md"),
                   "model": str(models / "head"), "metrics": head.get("metrics")})
    detected = detect([data / "test"], models / "ae", models / "head", out / "detect", DetectConfig(),
                      progress=bar("detect"))
    done("detect", detected.to_dict())
    done("similar", _similar_query(store, out / "similar"))
    return results


def _best_head(bench: dict) -> str:
    """The head with the highest mean frame-level hit@0.25 (ties: higher average precision)."""
    def key(item):
        summary = item[1].get("summary", {})
        return (summary.get("hit@0.25", {}).get("mean", 0.0), summary.get("average_precision", {}).get("mean", 0.0))

    return max(bench["heads"].items(), key=key)[0]


def _similar_query(store_uri: str, out: Path) -> dict:
    """Neighbours of one known string region of the validation split, with a contact sheet."""
    from cs_features.search import similar, similar_sheet
    from cs_features.store import FeatureStore, proposals_table_name

    store = FeatureStore(store_uri)
    rows = store.read(proposals_table_name("classic"), ["proposal_id", "max_iou"],
                      where="split = 'val' AND weak_label = 1")
    if rows.num_rows == 0:
        return {"skipped": "no positive region in the validation split"}
    best = max(rows.to_pylist(), key=lambda r: r["max_iou"])
    result = similar(store, proposal_id=best["proposal_id"], k=8, where="split = 'train'")
    sheet = similar_sheet(store, result, out / "similar.png")
    return {**result.to_dict(), "contact_sheet": str(sheet)}
