"""What decides what ``csf ingest`` writes (:class:`IngestConfig`) and what a run did (:class:`IngestSummary`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cs_features.frame import MAX_PIXELS
from cs_features.frame import STAGES as FRAME_STAGES
from cs_features.settings import StoreSettings

STAGES = (*FRAME_STAGES, "write")


@dataclass(frozen=True)
class IngestConfig:
    """Everything that decides what ``csf ingest`` writes.

    ``settings`` (preprocessing, texture, proposals, weak labels) are store-wide: every frame of a store
    is processed the same way, and a run with other settings is refused. The encoder settings are per
    proposals table; ``workers``, ``batch_frames`` and the engine change only how fast rows are written.

    ``engine`` is where frames are processed: ``local`` (a process pool on this machine) or ``ray`` (Ray
    workers on the cluster at ``ray_address``, or a local Ray started for the run when None; each worker
    holds ``gpus_per_worker`` GPUs, CPUs only when 0).
    """

    encoder: str = "classic"
    weights: str | None = None
    pooling: str = "roi"
    device: str = "cpu"
    settings: StoreSettings = field(default_factory=StoreSettings)
    max_pixels: int = MAX_PIXELS
    workers: int = 0
    batch_frames: int = 16
    engine: str = "local"
    ray_address: str | None = None
    gpus_per_worker: float = 0.0


@dataclass
class IngestSummary:
    """What an ingest run did; ``to_dict()`` is what ``--json`` prints."""

    store: str
    encoder: str
    frames_found: int = 0
    frames_added: int = 0
    frames_skipped: int = 0
    frames_failed: int = 0
    proposals_added: int = 0
    positives: int = 0
    negatives: int = 0
    ignored: int = 0
    seconds: float = 0.0
    # wall seconds from the call until the first frame came back processed (scanning and hashing the files,
    # the encoder built here, the workers started with theirs); None when no frame was processed
    first_frame_seconds: float | None = None
    stage_seconds: dict = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    recall_counts: dict = field(default_factory=dict)
    search_space: dict = field(default_factory=dict)

    @property
    def proposal_recall(self) -> dict:
        """Per source: strings seen, recall at IoU >= 0.25 and >= 0.5 (frames added in this run)."""
        from cs_features.metrics import recall_summary

        return recall_summary(self.recall_counts)

    @property
    def frames_per_second(self) -> float:
        return self.frames_added / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frames_per_second"] = round(self.frames_per_second, 3)
        out["proposals_per_frame"] = round(self.proposals_added / self.frames_added, 1) if self.frames_added else 0.0
        out["proposal_recall"] = self.proposal_recall
        del out["recall_counts"]
        return out
