"""Settings of the proposal stage (recorded in the store with the other store-wide settings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cs_features.config import check_keys

DEFAULT_SOURCES = "filament,ss-grey"
"""The default proposal sources (``benchmarks/bench_proposals.py`` and ``bench_ingest.py`` measure why)."""


@dataclass(frozen=True)
class FilamentConfig:
    """Settings of the filament source (recorded in the store with the proposal settings)."""

    sigmas: tuple[float, ...] = (1.0, 1.5, 2.0)
    high_k: float = 8.0
    low_k: float = 4.0
    min_length: int = 12
    link_distance: float = 30.0
    link_angle_deg: float = 35.0
    sub_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    pads: tuple[int, ...] = (2,)
    pair_distance: float = 30.0
    max_paths: int = 40

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of the proposal stage (recorded in the store).

    Attributes:
        method: a registered source (``ss-grey``, ``ss-fast``, ``ss-quality``, ``ss-single``,
            ``filament``, ``strings``) or several joined by commas, e.g. ``"filament,ss-grey"``.
        max_proposals: cap per frame. Within a source the cap keeps a uniform sample chosen by a hash of
            each box (the size and position mix of all proposals, independent of OpenCV's order); a union
            shares the cap equally between sources, handing unused shares on.
        min_area: boxes smaller than this many pixels are dropped.
        min_side: boxes thinner than this many pixels on either side are dropped.
        nms_iou: in a union, a box overlapping an already kept box (of an earlier source) by more than
            this IoU is dropped as a duplicate.
        ss_sigma, ss_k: the graph segmentation's Gaussian sigma (every mode but ``ss-fast`` /
            ``ss-quality``, which fix theirs) and k of the single-strategy mode.
        grey_max_side, grey_ks, grey_min_size: the ``ss-grey`` source: the frame is shrunk (never
            enlarged) so its long side is at most ``grey_max_side`` px, segmented once per k in
            ``grey_ks``, components smaller than ``grey_min_size`` px (of the shrunk frame) merged.
        filament: settings of the filament source.
        strings_model: the string-map model folder (``csf train strings``) the ``strings`` source boxes
            the map of; recorded with the store, so detection proposes with the same model.
    """

    method: str = DEFAULT_SOURCES
    max_proposals: int = 300
    min_area: int = 64
    min_side: int = 4
    nms_iou: float = 0.9
    ss_sigma: float = 0.8
    ss_k: int = 150
    grey_max_side: int = 300
    grey_ks: tuple[int, ...] = (50, 300)
    grey_min_size: int = 40
    filament: FilamentConfig = field(default_factory=FilamentConfig)
    strings_model: str = ""

    @property
    def sources(self) -> list[str]:
        return [name.strip() for name in self.method.split(",") if name.strip()]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProposalConfig":
        """Rebuild from :meth:`to_dict` output (also after a JSON round trip: lists become tuples).

        Raises:
            ConfigError: an unknown key, naming it and listing the accepted ones.
        """
        check_keys(cls, data)
        check_keys(FilamentConfig, data.get("filament") or {})
        filament = FilamentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in (data.get("filament") or {}).items()})
        return cls(**{**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "filament"},
                      "filament": filament})
