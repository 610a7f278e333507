"""Embryo id and frame index from a frame's file name.

Time-lapse exports name frames ``<embryo>_<...>_<frame index>``, e.g. EmbryoScope's
``D2020.01.01_S0001_I0123_W3_F0_0123`` (slide date, slide, instrument, well, focal plane, frame) or
``EMB17_run2_045``. The default rule:

* a stem ending in ``_<digits>``: the digits are the frame index and everything before them is the
  embryo, less a trailing focal-plane token ``_F<n>`` (``F0``, ``F-15``, ``F+15``): the same well at
  another focal plane is the same embryo, and must never land in another split;
* any other stem (``E0001_f03``, what ``csf synth`` writes): the embryo is the text before the first
  ``_`` and the frame index the trailing digits (0 when there are none).

A user regex replaces the embryo rule: its first group (or whole match) is the embryo id; the frame
index is still the stem's trailing digits.
"""

from __future__ import annotations

import re

from cs_features.errors import DatasetError

DEFAULT_EMBRYO_REGEX = r"^([^_]+)"  # the rule for stems without a trailing "_<digits>" group
_TIME_LAPSE_NAME = re.compile(r"^(?P<embryo>.+?)(?:_F[+-]?\d+)?_(?P<frame>\d+)$")
_TRAILING_DIGITS = re.compile(r"(\d+)$")
_FIRST_TOKEN = re.compile(DEFAULT_EMBRYO_REGEX)


def compile_embryo_regex(embryo_regex: str | None) -> re.Pattern | None:
    """The compiled ``--embryo-regex`` (None keeps the default rule).

    Raises:
        DatasetError: not a valid regular expression (the message quotes it).
    """
    if embryo_regex is None:
        return None
    try:
        return re.compile(embryo_regex)
    except re.error as exc:
        raise DatasetError(f"--embryo-regex {embryo_regex!r} is not a valid regular expression: {exc}") from exc


def parse_frame_name(stem: str, embryo_pattern: re.Pattern | None = None) -> tuple[str, int]:
    """``(embryo_id, frame_index)`` of a frame stem (file name without suffix), by the module's rules."""
    trailing = _TRAILING_DIGITS.search(stem)
    frame_index = int(trailing.group(1)) if trailing else 0
    if embryo_pattern is not None:
        match = embryo_pattern.search(stem)
        if match is None:
            return stem, frame_index
        return (match.group(1) if match.groups() else match.group(0)), frame_index
    named = _TIME_LAPSE_NAME.match(stem)
    if named is not None:
        return named.group("embryo"), int(named.group("frame"))
    return _FIRST_TOKEN.search(stem).group(1) if stem and not stem.startswith("_") else stem, frame_index
