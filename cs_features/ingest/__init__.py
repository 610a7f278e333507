"""`csf ingest`: process a dataset once into the feature store.

- ``config``: what decides what is written (:class:`IngestConfig`) and what a run did (:class:`IngestSummary`);
- ``job``: the run (:func:`ingest`): scan, content ids, settings check, write, search space;
- ``workers``: frames through the frame pipeline in worker processes; ``stages``: one frame with its
  ground truth and weak labels;
- ``writer``: crash-safe batched writes (proposals, frames, then the ingest log).
"""

from cs_features.ingest.config import STAGES, IngestConfig, IngestSummary
from cs_features.ingest.job import hash_frames, ingest, record_settings
from cs_features.ingest.stages import FrameResult

__all__ = ["STAGES", "FrameResult", "IngestConfig", "IngestSummary", "hash_frames", "ingest", "record_settings"]
