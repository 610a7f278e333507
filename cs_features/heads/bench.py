"""Compare region heads on one pinned snapshot of the feature store.

:func:`run_heads_bench` pins the store with a tag (``bench-<hash of the table versions>``) and trains and
evaluates every requested head for several seeds on exactly that snapshot, with the same metrics
(:func:`~cs_features.heads.training.evaluate_head`), then writes ``heads.md``, ``heads.json`` and
``pr.png``. Training one head for production is :func:`cs_features.heads.training.train_head`; a bench
asked to (``save_best``) saves its best head's first-seed model the same way, so a caller that benches and
then keeps the best (``csf quickstart``, ``csf bench heads --save-best``) does not train it twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cs_features.errors import StoreError
from cs_features.heads import get_head
from cs_features.heads.data import check_encoder, open_store
from cs_features.heads.training import (
    EvalSettings,
    Progress,
    check_classes,
    evaluate_head,
    fit_head,
    load_head_data,
    model_bytes,
    save_head,
    snapshot_recall,
    training_splits,
)
from cs_features.ids import short_hash
from cs_features.model_dir import json_default
from cs_features.store import FeatureStore, list_tags, proposals_table_name, tag_store

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("mlp", "lightgbm", "logreg", "knn")


def pin_store(store: FeatureStore, encoder: str) -> str:
    """Tag the current versions of the store's tables ``bench-<hash>`` (reused when nothing changed)."""
    names = ["frames", proposals_table_name(encoder)]
    versions = {name: store.table(name).version for name in names}
    tag = "bench-" + short_hash(*(f"{k}={v}" for k, v in sorted(versions.items())))[:12]
    for attempt in range(2):
        existing = list_tags(store).get(tag)
        if existing is not None:
            if any(existing.get(name) != version for name, version in versions.items()):
                raise StoreError(f"tag {tag!r} in {store.uri!r} points at {existing}, not {versions}")
            return tag
        try:
            tag_store(store, tag)
            return tag
        except StoreError:  # a concurrent bench tagged the same versions first
            if attempt:
                raise
    return tag


@dataclass
class BenchConfig:
    """What :func:`run_heads_bench` compares: heads, seeds, per-head hyperparameters, evaluation."""

    models: tuple = DEFAULT_MODELS
    seeds: int = 3
    first_seed: int = 0
    head_params: dict = field(default_factory=dict)
    sources: tuple = ()
    settings: EvalSettings = field(default_factory=EvalSettings)

    def to_dict(self) -> dict:
        return asdict(self)


def run_heads_bench(store: FeatureStore | str, out_dir: str | Path, encoder: str = "classic",
                    config: BenchConfig | None = None, storage_options: dict | None = None,
                    progress: Progress | None = None, save_best: str | Path | None = None) -> dict:
    """Train and evaluate every head of ``config`` for ``config.seeds`` seeds (``first_seed`` onwards) on
    one pinned snapshot.

    Writes ``out_dir/heads.md``, ``out_dir/heads.json`` and ``out_dir/pr.png``; with ``save_best``, the
    best head's (:func:`~cs_features.heads.report.chosen_head`) first-seed model is saved there as
    :func:`~cs_features.heads.training.train_head` saves one (the same model: same rows, same seed).

    Returns:
        the content of ``heads.json``: store, tag, encoder, rows, proposal recall, and per head the
        runs (one metrics dict per seed) and their ``{"mean", "std"}`` summary; with ``save_best``,
        ``"saved"``: what ``train_head`` returns for the saved head.
    """
    from cs_features.heads.report import chosen_head, summarise_runs, write_bench_report

    config = config or BenchConfig()
    if int(config.seeds) < 1:
        raise ValueError(f"seeds must be >= 1, got {config.seeds!r}")
    for model in config.models:
        get_head(model, **config.head_params.get(model, {}))  # unknown names fail before any work
    store = open_store(store, storage_options)
    check_encoder(store, encoder)
    tag = pin_store(store, encoder)
    data = load_head_data(store, encoder, version=tag, sources=tuple(config.sources) or None)
    check_classes(data)
    total, done, heads, curves, first = len(config.models) * int(config.seeds), 0, {}, {}, {}
    seeds = range(int(config.first_seed), int(config.first_seed) + int(config.seeds))
    for model in config.models:
        runs = []
        for seed in seeds:
            head = get_head(model, seed=seed, **config.head_params.get(model, {}))
            splits = training_splits(data, seed=seed)
            train_seconds = fit_head(head, data, splits)
            metrics, curve = evaluate_head(head, data, config.settings)
            metrics.update(seed=seed, train_seconds=train_seconds, model_bytes=model_bytes(head, data))
            runs.append(metrics)
            curves.setdefault(model, curve)
            if save_best is not None and model not in first:
                first[model] = (head, metrics, splits[2], seed)
            done += 1
            log.info("bench %s seed %d: %s", model, seed, {k: round(v, 4) for k, v in metrics.items()})
            if progress:
                progress(done, total)
        heads[model] = {"params": head.get_params(), "runs": runs, "summary": summarise_runs(runs)}
    result = {"store": store.uri, "tag": tag, "encoder": encoder, "encoder_info": data.encoder_info,
              "config": config.to_dict(), "rows": data.counts(),
              "proposal_recall": snapshot_recall(data, config.settings.hit_ious), "heads": heads}
    write_bench_report(result, curves, out_dir)
    if save_best is not None:
        head, metrics, early_stopping, seed = first[chosen_head(result)]
        result["saved"] = save_head(head, data, metrics, save_best, seed=seed, early_stopping=early_stopping,
                                    settings=config.settings, tag=tag)
    return json.loads(json.dumps(result, default=json_default))
