"""The main job end to end on synthetic data, with local defaults (what `csf quickstart` runs).

synth -> ingest -> train + score the autoencoder -> bench the region heads, train the best ->
detect on the test split -> one similarity query. Every stage reads the store the ingest wrote.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from cs_features.errors import ConfigError
from cs_features.proposals.config import DEFAULT_SOURCES

STAGES = ("synth", "ingest", "autoencoder", "heads", "detect", "similar")
# What a quickstart writes into its folder: these, and the options of the run that wrote them.
OWN_ENTRIES = ("data", "store", "models", "bench", "detect", "similar")
OPTIONS_FILE = "quickstart.json"


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the demo: small enough for a laptop CPU in minutes."""

    embryos: int = 48
    seed: int = 0
    image_size: int = 500
    proposals: str = DEFAULT_SOURCES
    ae_epochs: int = 4
    ae_img_size: int = 256
    head_models: tuple[str, ...] = ("mlp", "lightgbm", "logreg", "knn")
    head_seeds: int = 1


def run_quickstart(out: str | Path, config: QuickstartConfig = QuickstartConfig(),
                   on_stage: Callable[[str, dict], None] | None = None,
                   progress: Callable[[str], Callable[[int, int], None] | None] | None = None,
                   fresh: bool = False) -> dict:
    """Run every stage into ``out`` (``data/``, ``store/``, ``models/``, ``bench/``, ``detect/``, ``similar/``).

    A folder holding a run with the same options is run again in place (the ingest adds nothing new); one
    with other options is refused, or with ``fresh`` cleared and rebuilt (:func:`prepare_folder`).

    Args:
        on_stage: called with ``(stage name, its result dict)`` after each stage, first ``"folder"`` with
            what :func:`prepare_folder` found and removed.
        progress: called with a stage name, returns that stage's ``progress(done, total)`` callback.
        fresh: delete an earlier run's data, store and models in ``out`` first.

    Returns:
        ``{stage: result dict}``, and ``"seconds"``: each stage's wall seconds and their ``"total"``
        (the autoencoder's training and scoring together; the heads' bench with the best head's save).

    Raises:
        ConfigError: ``out`` holds a run with other options (and not ``fresh``), or files a quickstart
            did not write.
    """
    from cs_features.autoencoder import AnomalyFilter, score_store, train_from_store
    from cs_features.detect import DetectConfig, detect
    from cs_features.heads.bench import BenchConfig, run_heads_bench
    from cs_features.ingest import IngestConfig, ingest
    from cs_features.proposals import ProposalConfig
    from cs_features.settings import StoreSettings
    from cs_features.synth import SynthConfig, generate_dataset

    out = Path(out)
    data, store, models = out / "data", str(out / "store"), out / "models"
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    started = clock = time.perf_counter()

    def done(stage: str, result: dict) -> None:
        nonlocal clock
        now = time.perf_counter()
        if stage != "folder":
            seconds[stage] = round(now - clock, 1)
        clock = now
        results[stage] = result
        if on_stage:
            on_stage(stage, result)

    def bar(stage: str):
        return progress(stage) if progress else None

    done("folder", prepare_folder(out, config, fresh=fresh))
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
    bench = run_heads_bench(store, out / "bench", save_best=models / "head", progress=bar("heads"),
                            config=BenchConfig(models=config.head_models, seeds=config.head_seeds,
                                               first_seed=config.seed))
    head = bench["saved"]
    done("heads", {"bench": bench, "best": head["model"], "table": str(out / "bench" / "heads.md"),
                   "model": str(models / "head"), "metrics": head["metrics"]})
    detected = detect([data / "test"], models / "ae", models / "head", out / "detect", DetectConfig(),
                      progress=bar("detect"))
    done("detect", detected.to_dict())
    done("similar", _similar_query(store, out / "similar"))
    results["seconds"] = {**seconds, "total": round(time.perf_counter() - started, 1)}
    return results


def prepare_folder(out: str | Path, config: QuickstartConfig, fresh: bool = False) -> dict:
    """Make ``out`` ready for a quickstart with ``config`` and record the options there.

    Data, store and models are rebuilt together or not at all: a run with other options would rewrite
    ``data/`` while ``store/`` kept the earlier frames (or refused the new settings).

    Returns:
        ``{"folder", "state": "new" | "same options" | "rebuilt", "removed": [names], "previous": options}``.

    Raises:
        ConfigError: ``out`` is a file, holds files a quickstart did not write, or holds a run with other
            (or unrecorded) options and ``fresh`` is false.
    """
    out = Path(out)
    options = _options(config)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"quickstart folder {str(out)!r} is a file; choose a new folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [name for name in entries if name not in (*OWN_ENTRIES, OPTIONS_FILE)]
    if foreign:
        raise ConfigError(f"{str(out)!r} holds files a quickstart did not write ({', '.join(foreign[:5])}); "
                          "choose a new or empty folder")
    previous = _read_options(out / OPTIONS_FILE)
    state, removed = "new", []
    if entries and previous == options:
        state = "same options"
    elif entries:
        if not fresh:
            raise ConfigError(f"{str(out)!r} holds a quickstart run with {_differences(previous, options)}: "
                              "its data/ would be rewritten while store/ kept the earlier frames. Run again with "
                              f"--fresh (fresh=True) to delete {', '.join(e + '/' for e in OWN_ENTRIES)} there "
                              "and rebuild all of them, or choose a new folder")
        for name in entries:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        state, removed = "rebuilt", entries
    out.mkdir(parents=True, exist_ok=True)
    (out / OPTIONS_FILE).write_text(json.dumps(options, indent=2, sort_keys=True) + "\n")
    return {"folder": str(out), "state": state, "removed": removed, "previous": previous}


def _options(config: QuickstartConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples as lists, as they read back from the file


def _read_options(path: Path) -> dict | None:
    try:
        options = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return options if isinstance(options, dict) else None


def _differences(previous: dict | None, options: dict) -> str:
    if previous is None:
        return "options it did not record"
    changed = [f"{key} {previous.get(key)!r} -> {value!r}" for key, value in options.items()
               if previous.get(key) != value]
    return "other options (" + ", ".join(changed) + ")"


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
