"""The string map: a pixel classifier learned from the user's string boxes (ilastik-style).

``features`` (the per-pixel filter bank), ``sampling`` (pixel labels from boxes), ``model``
(``StringMapModel``, LightGBM on the bank), ``data`` (the store's frames), ``training``
(``train_strings``), ``maps`` (the ``string_maps`` table, ``score_strings``), ``panels`` (pictures).
"""

from cs_features.strings.features import feature_names, line_response, relief_integral, string_features  # noqa: F401
from cs_features.strings.maps import (  # noqa: F401
    STRING_MAPS,
    read_string_map,
    score_strings,
    string_maps_schema,
)
from cs_features.strings.model import StringMapModel  # noqa: F401
from cs_features.strings.sampling import PixelSampling, sample_frame_pixels  # noqa: F401
from cs_features.strings.training import train_strings  # noqa: F401
