"""``csf train screen``: fit the frame screen on a store's val split, compare it on test with each stage alone.

Steps: collect the evidence table (:mod:`.evidence`), fit :class:`~.model.FrameScreen` on val, save it.
Then, on the **test** split (never seen by the screen), for each score (``autoencoder`` = the AE score
alone, ``string_peak``, ``best_region``, ``chain`` = the screen's probability):

- frame AUROC / AP (:func:`cs_features.metrics.binary_report`);
- what screening at a threshold chosen on val for the same target sensitivity keeps and skips
  (:func:`cs_features.metrics.sensitivity_threshold`, :func:`~.model.keep_report`): every score gets its own val
  threshold, so the chain is compared with the AE alone at equal val sensitivity;
- embryo AUROC of the max over frames and of the persistence score (:mod:`.embryo`).

The same figures on val are reported as the fit's own (optimistic) figures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cs_features.metrics import sensitivity_threshold
from cs_features.screening.embryo import embryo_scores_over_time
from cs_features.screening.evidence import EVIDENCE_COLUMNS, collect_evidence
from cs_features.screening.model import (
    FIT_SPLIT,
    FrameScreen,
    evidence_labels,
    keep_report,
    split_mask,
)
from cs_features.strings.peak import AUTO_REGION

EVAL_SPLIT = "test"
SCORE_NAMES = {"ae_score": "autoencoder", "string_peak": "string_peak", "best_region": "best_region"}


@dataclass
class ScreenResult:
    """What :func:`train_screen` did; ``to_dict()`` is what ``csf train screen --json`` prints."""

    store: str
    out: str
    sources: dict
    frames: dict
    screen: dict
    val: dict
    test: dict
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_columns(evidence, screen: FrameScreen) -> dict[str, np.ndarray]:
    """``{name: (N,) scores}``: each evidence column alone, and the chain (the screen's probability)."""
    columns = {SCORE_NAMES[c]: np.asarray(evidence[c].to_pylist(), np.float64) for c in EVIDENCE_COLUMNS}
    columns["chain"] = screen.predict_proba(evidence)
    return columns


def compare_scores(evidence, scores: dict[str, np.ndarray], split: str, thresholds: dict[str, float],
                   k: int = 2, reduce: str = "min") -> dict:
    """Frame AUROC/AP, keep/skip at each score's val threshold and embryo AUROC (max, persistence) on ``split``."""
    from cs_features.metrics import auroc, binary_report

    rows = split_mask(evidence, split)
    y = evidence_labels(evidence)[rows]
    embryo_ids = np.asarray(evidence["embryo_id"].to_pylist(), dtype=str)[rows]
    frame_index = [v for v, keep in zip(evidence["frame_index"].to_pylist(), rows) if keep]
    out = {}
    for name, values in scores.items():
        s = values[rows]
        report = binary_report(y, s, thresholds[name])
        embryos = embryo_scores_over_time(embryo_ids, frame_index, y, s, k, reduce)
        out[name] = {"frame_auroc": report["auroc"], "frame_ap": report["average_precision"],
                     "screening": keep_report(y, s, thresholds[name]),
                     "embryo_auroc_max": auroc(embryos.labels, embryos.max_score) if len(embryos) else None,
                     "embryo_auroc_persistence": auroc(embryos.labels, embryos.persistence) if len(embryos) else None,
                     "embryos": len(embryos), "cs_embryos": int(embryos.labels.sum())}
    return out


def train_screen(store, ae_dir: str | Path, strings_dir: str | Path, head_dir: str | Path, out_dir: str | Path,
                 screen: FrameScreen | None = None, k: int = 2, reduce: str = "min", percentile: float = 99.9,
                 region: str = AUTO_REGION, storage_options: dict | None = None,
                 progress: Callable[[int, int], None] | None = None, transient_peak: bool = True) -> ScreenResult:
    """Fit the frame screen on ``store``'s val evidence, save it to ``out_dir`` and compare it on test.

    ``transient_peak``: the string peak is read from what the embryo's other frames do not show (the
    default; :func:`cs_features.strings.maps.string_peaks`), or from the whole map.

    Raises:
        StoreError: missing store or evidence (the message names the command to run). WeightsError: a
            model folder is missing or of another kind. DatasetError: val lacks CS or CS-free frames.
    """
    start = time.perf_counter()
    evidence, sources = collect_evidence(store, ae_dir, strings_dir, head_dir, percentile, region,
                                         storage_options, progress, transient_peak=transient_peak)
    screen = (screen or FrameScreen()).fit(evidence)
    scores = score_columns(evidence, screen)
    y, val = evidence_labels(evidence), split_mask(evidence, FIT_SPLIT)
    thresholds = {name: sensitivity_threshold(y[val], s[val], screen.target_sensitivity, midgap=True)
                  for name, s in scores.items()}
    thresholds["chain"] = screen.threshold_
    val_figures = compare_scores(evidence, scores, FIT_SPLIT, thresholds, k, reduce)
    test_figures = compare_scores(evidence, scores, EVAL_SPLIT, thresholds, k, reduce)
    source_ids = {**sources.to_dict(),
                  "evidence": {"percentile": percentile, "region": region, "transient_peak": transient_peak},
                  "embryo": {"k": k, "reduce": reduce}}
    screen.save(out_dir, source_ids, {"val": val_figures, "test": test_figures})
    splits = np.asarray(evidence["split"].to_pylist(), dtype=str)
    frames = {s: {"frames": int((splits == s).sum()), "cs_frames": int(y[splits == s].sum())}
              for s in sorted(set(splits.tolist()))}
    uri = getattr(store, "uri", str(store))
    return ScreenResult(uri, str(out_dir), source_ids, frames, screen.learned(), val_figures, test_figures,
                        round(time.perf_counter() - start, 3))
