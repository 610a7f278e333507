"""The evidence table: for every frame of a store, what each stage of the chain says about it.

Three numbers per frame, each read from the store under one named model:

- ``ae_score``: the autoencoder's frame score (``error_maps`` rows of the AE model's ``model_id``,
  written by ``csf score ae``);
- ``string_peak``: a robust peak of the string map (``string_maps`` rows of the string model's
  ``model_id``, written by ``csf score strings``): the ``percentile`` (99.9th by default) of the map
  inside the cavity (:func:`cs_features.embryo.cavity` of the stored low-texture mask; ``region`` also
  takes ``interior`` and ``frame``). Not the whole frame, because the zona rim and the cavity outline
  light up in the map (on ``csf synth --embryos 24 --seed 3`` the map's maximum is 1.0 in every frame);
  not the interior, whose dilated edge reaches into the zona where the hull's outline passes outside
  it (val AUROC of the peak there: frame 0.56, interior 0.98, cavity 1.00; our own synthetic frames, so
  a choice, not evidence); a high percentile, not the maximum, so a few noisy pixels make no peak.
  The map is first reduced to what the embryo's other frames do not show there (:func:`string_peaks`,
  with the transience prior's alignment and tolerance): a fibre of the medium, a membrane ridge or a
  surface cell boundary that the map lights in every frame drops out, a string that appears and snaps
  stays (on the transfer protocol's test worlds this raised the peak's frame AUROC on six of eight,
  e.g. 0.68 -> 0.83 from ``clean`` to ``hard-crop``, and lowered it on none: README, "Frame screening").
  That part is read in the embryo's interior rather than the cavity's core (``region`` ``auto``, the
  default, :func:`cs_features.strings.peak.auto_region`): the core leaves the trophectoderm's inner
  membrane out, which the transient part drops on its own, and cuts away the strings' ends with it
  (0.83 -> 0.92 on ``clean`` -> ``hard-crop``); a whole map is still read in the core;
- ``best_region``: the best region score (:func:`cs_features.heads.region_score` with the head's own
  mode, times the attachment prior of :mod:`cs_features.attachment` and the transience prior of
  :mod:`cs_features.transience`, as ``csf detect`` ranks boxes) over
  the frame's proposals in the store, under a saved head; 0 for a frame without proposals. It is the
  head's own ranking: where a store proposes with the learned ``strings`` source, ``csf detect`` also
  reads the string map's framing of each box (:mod:`cs_features.strings.framing`), which this evidence
  does not (on the transfer benchmark's stores it moved the best region's frame AUROC both ways, -0.04 to
  +0.07, so the screen keeps the evidence it was measured with).

One row per frame, sorted by (embryo_id, frame_index, stem), with the frame's split, label and place in
its time-lapse. Missing evidence is an error naming the table, the model and the command that writes it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from cs_features.attachment import AttachmentPrior
from cs_features.errors import ConfigError, StoreError
from cs_features.ids import short_hash
from cs_features.ranking import store_rank_factors
from cs_features.store import FRAMES, FeatureStore, require_frames
from cs_features.strings.maps import string_peaks
from cs_features.strings.peak import AUTO_REGION
from cs_features.transience import TransiencePrior

log = logging.getLogger(__name__)

EVIDENCE_COLUMNS = ("ae_score", "string_peak", "best_region")


def evidence_schema() -> pa.Schema:
    """Explicit schema of an evidence table (one row per frame)."""
    return pa.schema([
        pa.field("frame_id", pa.string(), nullable=False), pa.field("stem", pa.string()),
        pa.field("embryo_id", pa.string()), pa.field("frame_index", pa.int32()), pa.field("split", pa.string()),
        pa.field("label", pa.string()), *(pa.field(name, pa.float64()) for name in EVIDENCE_COLUMNS),
    ])


@dataclass(frozen=True)
class EvidenceSources:
    """The three models the evidence comes from: ids as the store's tables record them, and folders."""

    ae_model_id: str
    string_model_id: str
    head_id: str
    head_name: str
    encoder: str
    ae_dir: str
    strings_dir: str
    head_dir: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_sources(ae_dir: str | Path, strings_dir: str | Path, head_dir: str | Path) -> EvidenceSources:
    """Read the three model folders' configs (no weights loaded but the head's, later).

    The head has no ``model_id`` of its own; its id is ``short_hash(head name, weights sha256)``.

    Raises:
        WeightsError: a folder is missing or is not a model of the expected kind.
    """
    from cs_features.autoencoder.persist import read_config as read_ae_config
    from cs_features.heads.base import read_config as read_head_config
    from cs_features.strings.model import read_string_map_config

    ae, strings, head = read_ae_config(ae_dir), read_string_map_config(strings_dir), read_head_config(head_dir)
    if "model_id" not in ae:
        raise ConfigError(f"autoencoder config in {str(ae_dir)!r} records no model_id: retrain it with `csf train ae`")
    provenance = head.get("provenance", {})
    encoder = provenance.get("encoder") or (provenance.get("encoder_info") or {}).get("name") or "classic"
    head_id = short_hash(head["head"], sorted((head.get("weights_sha256") or {}).items()))
    return EvidenceSources(ae["model_id"], strings["model_id"], head_id, head["head"], encoder,
                           str(ae_dir), str(strings_dir), str(head_dir))


def frame_rows(store: FeatureStore) -> pa.Table:
    """The store's frames (id, stem, embryo, frame index, split, label) sorted by embryo, frame index, stem."""
    rows = store.read(FRAMES, ["frame_id", "stem", "embryo_id", "frame_index", "split", "label"])
    if rows.num_rows == 0:
        raise StoreError(f"store {store.uri!r} has no frames: ingest a dataset with `csf ingest` first")
    return rows.sort_by([("embryo_id", "ascending"), ("frame_index", "ascending"), ("stem", "ascending")])


def ae_scores(store: FeatureStore, model_id: str, ae_dir: str, frame_ids: list[str]) -> np.ndarray:
    """``(N,)`` float64 AE score of each frame under ``model_id`` (``error_maps``).

    Raises:
        StoreError: no ``error_maps`` table or no row for some frame; the message names the command.
    """
    from cs_features.autoencoder.scoring import ERROR_MAPS, read_scores

    command = f"csf score ae --store {store.uri} --model {ae_dir}"
    if not store.has_table(ERROR_MAPS):
        raise StoreError(f"store {store.uri!r} has no {ERROR_MAPS} table: run `{command}` first")
    rows = read_scores(store, model_id)
    found = dict(zip(rows.column("frame_id").to_pylist(), rows.column("score").to_pylist()))
    require_frames(store, frame_ids, found, f"{ERROR_MAPS} row of AE model {model_id!r}", command)
    return np.array([found[f] for f in frame_ids], np.float64)


def best_region_scores(store: FeatureStore, head_dir: str, encoder: str, frame_ids: list[str],
                       splits: list[str], attachment: AttachmentPrior | None = None,
                       transience: TransiencePrior | None = None) -> np.ndarray:
    """``(N,)`` float64 best region score over each frame's proposals under the head in ``head_dir``,
    each times its attachment and transience factors (None: the default priors).

    A frame without proposals scores 0 (region scores are in [0, 1]).

    Raises:
        StoreError: the store has no vectors of the head's encoder. ConfigError / SettingsMismatchError:
            the head was trained on other vectors or preprocessing (see :func:`cs_features.heads.load_head`).
    """
    from cs_features.heads import load_head
    from cs_features.heads.data import load_proposals

    head = load_head(head_dir, store, encoder)
    ids, boxes, scores = [], [], []
    for split in sorted(set(splits)):  # vectors one split at a time; only ids, boxes and scores are kept
        proposals = load_proposals(store, encoder, split)
        if len(proposals):
            ids.append(proposals.frame_id)
            boxes.append(proposals.box)
            scores.append(head.score(proposals.X).astype(np.float64))
    best: dict[str, float] = {}
    if ids:
        owners, boxes = np.concatenate(ids), np.concatenate(boxes)
        # the stored frames are read once for every split's proposals and both priors
        attached, transient = store_rank_factors(store, owners, boxes, attachment, transience)
        score = np.concatenate(scores) * attached * transient
        unique, inverse = np.unique(owners, return_inverse=True)
        peak = np.zeros(len(unique))
        np.maximum.at(peak, inverse, score)
        best = dict(zip(unique.tolist(), peak.tolist()))
    without = sum(f not in best for f in frame_ids)
    if without:
        log.info("%d of %d frames have no %s proposals: best region score 0", without, len(frame_ids), encoder)
    return np.array([best.get(f, 0.0) for f in frame_ids], np.float64)


def build_evidence(store: FeatureStore, sources: EvidenceSources, percentile: float = 99.9,
                   region: str = AUTO_REGION, progress: Callable[[int, int], None] | None = None,
                   transience: TransiencePrior | None = None, transient_peak: bool = True) -> pa.Table:
    """The evidence table of every frame of ``store`` (schema :func:`evidence_schema`). ``transience``
    (default: the default prior) is the transience prior of the best region score and, with
    ``transient_peak``, of the string peak (read from the part of the map the embryo's other frames do not
    show, :func:`string_peaks`); ``transient_peak=False`` reads the peak of the whole map.

    Raises:
        StoreError: no frames, or a frame without AE score or string map (message names the command);
            see also :func:`best_region_scores`.
    """
    frames = frame_rows(store)
    ids = frames.column("frame_id").to_pylist()
    columns = {name: frames.column(name).to_pylist() for name in ("frame_id", "stem", "embryo_id", "frame_index",
                                                                 "split", "label")}
    columns["embryo_id"] = [e or "" for e in columns["embryo_id"]]
    columns["ae_score"] = ae_scores(store, sources.ae_model_id, sources.ae_dir, ids)
    columns["string_peak"] = string_peaks(store, sources.string_model_id, sources.strings_dir, ids, percentile,
                                          region, progress, columns["embryo_id"] if transient_peak else None,
                                          transience)
    columns["best_region"] = best_region_scores(store, sources.head_dir, sources.encoder, ids,
                                                columns["split"], transience=transience)
    return pa.Table.from_pydict(columns, schema=evidence_schema())


def collect_evidence(store: FeatureStore | str, ae_dir: str | Path, strings_dir: str | Path, head_dir: str | Path,
                     percentile: float = 99.9, region: str = AUTO_REGION, storage_options: dict | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     transience: TransiencePrior | None = None,
                     transient_peak: bool = True) -> tuple[pa.Table, EvidenceSources]:
    """:func:`read_sources` then :func:`build_evidence` for a store (an open FeatureStore or a URI)."""
    if not isinstance(store, FeatureStore):
        store = FeatureStore(str(store), storage_options=storage_options)
    sources = read_sources(ae_dir, strings_dir, head_dir)
    return build_evidence(store, sources, percentile, region, progress, transience, transient_peak), sources
