"""Named synthetic worlds (``SynthConfig`` presets), so a method tuned on one can be measured on another.

- ``clean``: the original generator (``SynthConfig()``), byte for byte.
- ``hard``: what an independent renderer and real EmbryoScope frames show and ``clean`` does not:
  strings as Hoffman-modulation-contrast doublets (a directional derivative of a soft band 1.5-5 px
  wide, polarity random) of 5-25 grey levels between their two sides after blur, often beaded, fading
  along their length and visible over 20-60 % of their path (real boxes are short); distractors drawn
  with the same filament model (membrane ridges along the TE, out-of-focus fibres that may cross the
  embryo, out-of-focus TE cell boundaries of the upper surface over the cavity); any shear direction,
  stronger defocus and vignetting, Poisson-like shot noise, JPEG at quality 60-90 (frames are
  compressed, decoded and written as PNG).
- ``clean-crop``, ``hard-crop``: the same worlds as blastocyst-centred crops whose side varies per embryo
  (250-450 px) with the embryo filling 75-95 % of it, as real frames are cut before annotation.

The transfer protocol tunes on one preset and measures on another (e.g. tune on ``clean``, test on
``hard-crop``).
"""

from __future__ import annotations

import dataclasses

from cs_features.errors import ConfigError
from cs_features.synth.dataset import SynthConfig

_HARD = SynthConfig(
    string_style="doublet",
    string_contrast=(5.0, 25.0),
    string_width=(1.5, 5.0),
    bead_fraction=0.5,
    fade_fraction=0.5,
    fade_ramp=(0.2, 0.7),
    string_span=(0.2, 0.6),
    shear_angle=(0.0, 360.0),
    blur_sigma=(0.6, 2.5),
    noise_sigma=(1.0, 2.5),
    vignetting=(0.15, 0.45),
    shot_noise=(0.02, 0.08),
    jpeg_quality=(60, 90),
    membrane_ridges=(1, 3),
    extra_fibres=(0, 2),
    surface_boundaries=True,
)

_CROP = {"frame_size": (250, 450), "embryo_fill": (0.75, 0.95)}

SYNTH_PRESETS: dict[str, SynthConfig] = {
    "clean": SynthConfig(),
    "hard": _HARD,
    "clean-crop": dataclasses.replace(SynthConfig(), **_CROP),
    "hard-crop": dataclasses.replace(_HARD, **_CROP),
}


def synth_preset(name: str, **overrides) -> SynthConfig:
    """The ``SynthConfig`` of preset ``name`` with ``overrides`` (SynthConfig fields) applied.

    An ``image_size`` override also clears the preset's ``frame_size``, so every frame is that size.

    Raises:
        ConfigError: an unknown preset (the message lists the known ones), an unknown field or a bad value.
    """
    if name not in SYNTH_PRESETS:
        raise ConfigError(f"unknown synth preset {name!r}; known: {', '.join(SYNTH_PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown SynthConfig field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    if "image_size" in overrides:
        overrides = {"frame_size": None, **overrides}
    return dataclasses.replace(SYNTH_PRESETS[name], **overrides)
