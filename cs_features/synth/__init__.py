"""Synthetic blastocyst time-lapse datasets, so every command can be tried before real data is at hand.

- ``dataset``: plans embryos into splits and writes frames, YOLO labels, the manifest and a contact sheet;
- ``render``: one Hoffman-modulation-contrast embryo time-lapse; ``geometry``: its shape and boundary tables;
- ``lines``: strings in the cavity and fibres in the medium.
"""

from cs_features.synth.dataset import (
    RenderedFrame,
    SynthConfig,
    SynthSummary,
    boxes_from_masks,
    generate_dataset,
    plan_embryos,
    read_synth_manifest,
    render_embryo,
    write_contact_sheet,
)

__all__ = ["RenderedFrame", "SynthConfig", "SynthSummary", "boxes_from_masks", "generate_dataset", "plan_embryos",
           "read_synth_manifest", "render_embryo", "write_contact_sheet"]
