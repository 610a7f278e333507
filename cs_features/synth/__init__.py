"""Synthetic blastocyst time-lapse datasets: the dataset writer (``dataset``), the frame renderer
(``render``), strings and fibres (``lines``).
"""

from cs_features.synth.dataset import (  # noqa: F401
    SPLITS, LABELS, MANIFEST_FIELDS, SynthConfig, RenderedFrame, boxes_from_masks, render_embryo,
    plan_embryos, yolo_lines, SynthSummary, read_manifest, generate_dataset, write_contact_sheet,
)
