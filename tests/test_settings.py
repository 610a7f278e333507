"""StoreSettings: frozen, validated, JSON round trip, one compatibility check, one error type."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cs_features.errors import ConfigError
from cs_features.preprocess import PreprocessConfig
from cs_features.proposals import FilamentConfig, ProposalConfig
from cs_features.settings import (
    FRAME_SECTIONS,
    SettingsMismatchError,
    StoreSettings,
    WeakLabelSettings,
    check_compatible,
    check_encoder_info,
)

# The default settings' hash as a schema-2 store's ingest log records it (schema 1 recorded 51221f4a852aaa8a,
# before the scale section and the strings source; schema 2 recorded 328358788128c218 while the default sources
# were filament,ss-fast, and d48c0870999cd09d with ss-grey at five k): resuming an ingest into a store depends on it.
DEFAULT_HASH = "7d2d90dc926f0157"


def test_round_trip_through_json_is_exact():
    settings = StoreSettings(proposals=ProposalConfig(method="filament", filament=FilamentConfig(pads=(2, 4))))
    data = json.loads(json.dumps(settings.to_dict()))
    assert StoreSettings.from_dict(data) == settings
    assert StoreSettings.from_dict(data).config_hash() == settings.config_hash()


def test_hash_is_pinned_and_changes_with_any_setting():
    assert StoreSettings().config_hash() == DEFAULT_HASH
    others = {StoreSettings(preprocess=PreprocessConfig(clahe_clip=3.0)).config_hash(),
              StoreSettings(weak_labels=WeakLabelSettings(positive_iou=0.3)).config_hash(),
              StoreSettings(proposals=ProposalConfig(max_proposals=100)).config_hash()}
    assert len(others) == 3 and DEFAULT_HASH not in others


def test_settings_are_frozen_and_validated():
    settings = StoreSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.preprocess = PreprocessConfig()  # type: ignore[misc]
    with pytest.raises(ConfigError, match="negative_iou"):
        WeakLabelSettings(positive_iou=0.2, negative_iou=0.5)
    with pytest.raises(TypeError, match="StoreSettings.texture must be a TextureConfig"):
        StoreSettings(texture={"window": 31})  # type: ignore[arg-type]


def test_merged_overrides_keys_and_names_what_is_unknown():
    merged = StoreSettings().merged({"texture": {"window": 21}, "proposals": {"filament": {"high_k": 6.0}}})
    assert merged.texture.window == 21 and merged.proposals.filament.high_k == 6.0
    assert merged.proposals.filament.low_k == FilamentConfig().low_k  # nested keys merged, not replaced
    with pytest.raises(ConfigError, match="unknown texture setting.*'windw'.*accepted"):
        StoreSettings().merged({"texture": {"windw": 3}})
    with pytest.raises(ConfigError, match="unknown settings section.*'colour'"):
        StoreSettings().merged({"colour": {}})
    with pytest.raises(ConfigError, match="unknown settings section"):
        StoreSettings.from_dict({"colour": {}})


def test_check_compatible_lists_each_difference_in_the_asked_sections_only():
    store = StoreSettings()
    model = StoreSettings(preprocess=PreprocessConfig(clahe_clip=3.0), proposals=ProposalConfig(method="filament"))
    check_compatible(model.to_dict(), store, sections=("texture",), expected_name="model", actual_name="store",
                     remedy="retrain")
    with pytest.raises(SettingsMismatchError, match=r"preprocess\.clahe_clip: 3\.0 vs 2\.0.*retrain") as info:
        check_compatible(model, store.to_dict(), sections=FRAME_SECTIONS, expected_name="model 'm'",
                         actual_name="store 's'", remedy="retrain")
    assert "proposals" not in str(info.value)  # only the sections asked for are compared
    assert isinstance(info.value, ConfigError)


def test_check_encoder_info_names_the_differing_key():
    check_encoder_info({"name": "classic", "dim": 104}, {"name": "classic", "dim": 104}, expected_name="a",
                       actual_name="b", remedy="r")
    with pytest.raises(SettingsMismatchError, match="weights_hash: 'x' vs 'y'"):
        check_encoder_info({"name": "dinov3", "weights_hash": "x"}, {"name": "dinov3", "weights_hash": "y"},
                           expected_name="store", actual_name="--weights", remedy="pass the same file")


def test_settings_recorded_before_a_new_key_compare_as_its_default():
    recorded = StoreSettings().to_dict()
    del recorded["proposals"]["strings_model"]  # a store ingested before the learned source existed
    check_compatible(recorded, StoreSettings(), expected_name="store", actual_name="run", remedy="")
    recorded["proposals"]["method"] = "filament"
    with pytest.raises(SettingsMismatchError, match="proposals.method"):
        check_compatible(recorded, StoreSettings(), expected_name="store", actual_name="run", remedy="")
