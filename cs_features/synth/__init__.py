"""Synthetic blastocyst time-lapse datasets, so every command can be tried before real data is at hand.

- ``dataset``: plans embryos into splits and writes frames, YOLO labels, the manifest and a contact sheet;
- ``render``: one Hoffman-modulation-contrast embryo time-lapse; ``geometry``: its shape and boundary tables;
- ``lines``: strings in the cavity, fibres in the medium and other filament distractors;
- ``presets``: named worlds (``SYNTH_PRESETS``: clean, hard, clean-crop, hard-crop) for transfer tests.
"""

from cs_features.synth.dataset import (
    RenderedFrame,
    SynthConfig,
    SynthSummary,
    boxes_from_masks,
    embryo_circle,
    generate_dataset,
    plan_embryos,
    read_synth_manifest,
    render_embryo,
    write_contact_sheet,
)
from cs_features.synth.presets import SYNTH_PRESETS, synth_preset

__all__ = ["SYNTH_PRESETS", "RenderedFrame", "SynthConfig", "SynthSummary", "boxes_from_masks", "embryo_circle",
           "generate_dataset", "plan_embryos", "read_synth_manifest", "render_embryo", "synth_preset",
           "write_contact_sheet"]
