"""The store-wide settings: how every frame of a store is processed, written once and checked once.

Every frame in a feature store is preprocessed, masked, proposed and weakly labelled the same way;
:class:`StoreSettings` holds those four stages' settings as frozen, validated dataclasses and
round-trips through the JSON kept in the store's ``meta`` table. Models record the settings of the
store they were trained on; :func:`check_compatible` is the one place where two sets of settings are
compared, and :class:`SettingsMismatchError` the one error a mismatch raises.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cs_features.config import check_fields, check_keys, coerce_number
from cs_features.errors import ConfigError
from cs_features.ids import config_hash
from cs_features.preprocess import PreprocessConfig
from cs_features.proposals.config import ProposalConfig
from cs_features.scale import ScaleSettings
from cs_features.texture import TextureConfig

SECTIONS = ("scale", "preprocess", "texture", "proposals", "weak_labels")
FRAME_SECTIONS = ("scale", "preprocess", "texture")  # what a frame-level model (the autoencoder) depends on


class SettingsMismatchError(ConfigError):
    """Two sets of settings that must agree (a model and a store, two models, a run and a store) differ."""


@dataclass(frozen=True)
class WeakLabelSettings:
    """A proposal is a positive when its best IoU with a string box is > ``positive_iou``, a negative
    when it is < ``negative_iou``, ignored in between."""

    positive_iou: float = 0.2
    negative_iou: float = 0.1

    def __post_init__(self) -> None:
        for name in ("positive_iou", "negative_iou"):
            object.__setattr__(self, name, coerce_number(self, name, float))
        check_fields(self, [("positive_iou", 0 <= self.positive_iou <= 1, "a number in [0, 1]"),
                            ("negative_iou", 0 <= self.negative_iou <= self.positive_iou,
                             f"a number in [0, positive_iou={self.positive_iou}]")])

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeakLabelSettings:
        check_keys(cls, data)
        return cls(**data)


_SECTION_TYPES = {"scale": ScaleSettings, "preprocess": PreprocessConfig, "texture": TextureConfig,
                  "proposals": ProposalConfig, "weak_labels": WeakLabelSettings}


@dataclass(frozen=True)
class StoreSettings:
    """Scale normalisation, preprocessing, texture mask, proposals and weak labels: what every frame of a
    store shares."""

    scale: ScaleSettings = field(default_factory=ScaleSettings)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    weak_labels: WeakLabelSettings = field(default_factory=WeakLabelSettings)

    def __post_init__(self) -> None:
        for name, kind in _SECTION_TYPES.items():
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"StoreSettings.{name} must be a {kind.__name__}, "
                                f"got {type(getattr(self, name)).__name__}")

    def to_dict(self) -> dict[str, dict]:
        """JSON-ready dict, as stored in the store's ``meta`` table (tuples become lists)."""
        return json.loads(json.dumps({name: getattr(self, name).to_dict() for name in SECTIONS}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreSettings:
        """Rebuild from :meth:`to_dict` output; a missing section takes its defaults (for ``scale``, settings
        recorded before it existed: frames at their own scale).

        Raises:
            ConfigError: an unknown section or key (naming it and listing the accepted ones), or an
                invalid value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"store settings must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown settings section(s) {unknown}; accepted: {', '.join(SECTIONS)}")
        return cls(**{name: _SECTION_TYPES[name].from_dict(data[name]) for name in SECTIONS if name in data})

    def merged(self, overrides: dict[str, Any]) -> StoreSettings:
        """A copy with some settings replaced: ``overrides`` is shaped like :meth:`to_dict`, any subset
        of sections and, within each, any subset of keys.

        Raises:
            ConfigError: an unknown section or key, naming it and listing the accepted ones.
        """
        if not isinstance(overrides, dict):
            raise ConfigError(f"settings overrides must be a JSON object, got {type(overrides).__name__}")
        current = self.to_dict()
        unknown = sorted(set(overrides) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown settings section(s) {unknown}; accepted: {', '.join(SECTIONS)}")
        merged = {}
        for name in SECTIONS:
            given = overrides.get(name) or {}
            extra = sorted(set(given) - set(current[name]))
            if extra:
                raise ConfigError(f"unknown {name} setting(s) {extra}; accepted: {sorted(current[name])}")
            merged[name] = _merge(current[name], given)
        return StoreSettings.from_dict(merged)

    def config_hash(self) -> str:
        """16 hex digits identifying these settings; the ingest log records it per frame."""
        return config_hash(self.to_dict())



def _merge(current: dict, given: dict) -> dict:
    """``current`` with ``given`` laid over it, nested dicts merged key by key."""
    out = dict(current)
    for key, value in given.items():
        out[key] = (_merge(current[key], value) if isinstance(value, dict) and isinstance(current.get(key), dict)
                    else value)
    return out


def settings_dict(settings: StoreSettings | dict | None) -> dict:
    """Settings as the JSON dict they are stored as (``{}`` for None), each section given completed with the
    defaults of keys added since it was recorded: a store or model from before a new setting existed
    behaves as that setting's default, so it is compared as such."""
    if settings is None:
        return {}
    if isinstance(settings, StoreSettings):
        return settings.to_dict()
    out = json.loads(json.dumps(settings))
    for name, section in out.items():
        if name in _SECTION_TYPES and isinstance(section, dict):
            try:
                out[name] = json.loads(json.dumps(_SECTION_TYPES[name].from_dict(section).to_dict()))
            except ConfigError:
                pass  # keys this version does not know: compared as recorded, so the difference is named
    return out


def settings_differences(expected: StoreSettings | dict | None, actual: StoreSettings | dict | None,
                         sections: tuple[str, ...] = SECTIONS) -> list[str]:
    """``"section.key: expected vs actual"`` for every setting of ``sections`` that differs."""
    ours, theirs = settings_dict(expected), settings_dict(actual)
    out = []
    for section in sections:
        a, b = ours.get(section) or {}, theirs.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{section}.{key}: {a.get(key)!r} vs {b.get(key)!r}")
    return out


def check_compatible(expected: StoreSettings | dict | None, actual: StoreSettings | dict | None, *,
                     sections: tuple[str, ...] = SECTIONS, expected_name: str, actual_name: str,
                     remedy: str) -> None:
    """Raise :class:`SettingsMismatchError` when the ``sections`` of two sets of settings differ.

    Args:
        expected, actual: the two sets (``StoreSettings`` or their stored dicts).
        expected_name, actual_name: what they belong to, for the message (e.g. ``"head 'models/head'"``,
            ``"store 'demo/store'"``); differences are listed as ``section.key: expected vs actual``.
        remedy: what the user should do, appended to the message.
    """
    diffs = settings_differences(expected, actual, sections)
    if diffs:
        raise SettingsMismatchError(f"{expected_name} and {actual_name} process frames differently "
                                    f"({expected_name} vs {actual_name}): {'; '.join(diffs)}. {remedy}")


def _difference(key: str, expected: Any, actual: Any) -> str:
    """``key: a vs b``; for two dicts (encoder settings) only their differing entries."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        inner = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
        return "; ".join(f"{key}.{k}: {expected.get(k)!r} vs {actual.get(k)!r}" for k in inner)
    return f"{key}: {expected!r} vs {actual!r}"


ENCODER_IDENTITY = ("name", "weights_hash", "settings")  # what makes two encoders' vectors the same kind


def check_encoder_info(expected: dict, actual: dict, *, expected_name: str, actual_name: str, remedy: str,
                       keys: tuple[str, ...] | None = None) -> None:
    """Raise :class:`SettingsMismatchError` when two encoders' info (name, dim, pooling, weights hash) differ.

    ``keys``: compare only these entries (e.g. :data:`ENCODER_IDENTITY`), ``settings`` only where
    ``expected`` records it (heads and stores written before encoder settings were recorded have none).
    """
    if keys is not None:
        keys = tuple(k for k in keys if k != "settings" or "settings" in expected)
        expected, actual = ({k: info.get(k) for k in keys} for info in (expected, actual))
    # Compared as JSON would store them (a tuple read back from a store is a list).
    expected, actual = (json.loads(json.dumps(info, default=str)) for info in (expected, actual))
    keys = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
    if keys:
        detail = "; ".join(_difference(k, expected.get(k), actual.get(k)) for k in keys)
        raise SettingsMismatchError(f"{expected_name} and {actual_name} use different {expected.get('name')} "
                                    f"vectors ({expected_name} vs {actual_name}): {detail}. {remedy}")
