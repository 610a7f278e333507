"""Pictures for the review page, read from the store only: frames, region crops, error-map heat maps.

Frames are found by their content id in the ``frames`` table (the page never names a file); a stored
frame's PNG blob is returned as it is stored.
"""

from __future__ import annotations

import numpy as np

from cs_features.errors import InputError, StoreError
from cs_features.io import encode_png
from cs_features.store import FRAMES, FeatureStore, sql_quote

CROP_SIZE = 112
CROP_PAD = 0.35


def frame_png(store: FeatureStore, frame_id: str) -> bytes:
    """The stored grey frame of ``frame_id`` as PNG bytes.

    Raises:
        StoreError: no such frame.
    """
    rows = store.read(FRAMES, ["frame_id"], where=f"frame_id = '{sql_quote(frame_id)}'", with_row_id=True)
    if rows.num_rows == 0:
        raise StoreError(f"no frame {frame_id!r} in {store.uri!r}")
    return store.table(FRAMES).fetch_blobs("image", rows.column("_rowid").to_pylist()).to_pylist()[0]


def crop_png(frame: np.ndarray, box, size: int = CROP_SIZE, pad: float = CROP_PAD) -> bytes:
    """A ``size`` x ``size`` PNG of ``box`` ``[x1, y1, x2, y2]`` in the ``(H, W)`` uint8 ``frame``, with a
    margin of ``pad`` times the box's longer side and the box outlined (red).

    Raises:
        InputError: the box is empty or outside the frame.
    """
    import cv2

    height, width = frame.shape
    x1, y1, x2, y2 = (int(v) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InputError(f"box {[x1, y1, x2, y2]} is empty or outside the {width}x{height} frame")
    side = max(x2 - x1, y2 - y1) * (1 + 2 * pad)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    span = max(int(round(side)), 1)
    canvas = np.zeros((span, span), np.uint8)
    sx1, sy1, sx2, sy2 = max(left, 0), max(top, 0), min(left + span, width), min(top + span, height)
    canvas[sy1 - top:sy2 - top, sx1 - left:sx2 - left] = frame[sy1:sy2, sx1:sx2]
    scale = size / span
    picture = cv2.cvtColor(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else
                                      cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR)
    corners = [int(round((x1 - left) * scale)), int(round((y1 - top) * scale)),
               int(round((x2 - left) * scale)) - 1, int(round((y2 - top) * scale)) - 1]
    cv2.rectangle(picture, tuple(corners[:2]), tuple(corners[2:]), (40, 40, 230), 1)
    return encode_png(picture)


def error_map_png(store: FeatureStore, frame_id: str, model_id: str) -> bytes:
    """The autoencoder's residual map of a frame as an inferno heat map PNG (brightest: largest residual).

    Raises:
        StoreError: no error map of this frame and model.
    """
    import cv2

    from cs_features.ids import short_hash
    from cs_features.io import decode_png

    key = sql_quote(short_hash(frame_id, model_id))
    rows = store.read("error_maps", ["residual_png"], where=f"error_map_id = '{key}'")
    if rows.num_rows == 0:
        raise StoreError(f"no error map of frame {frame_id!r} under model {model_id!r} in {store.uri!r}")
    quantised = decode_png(rows.column("residual_png")[0].as_py())  # uint8, its own maximum at 255
    return encode_png(cv2.applyColorMap(quantised, cv2.COLORMAP_INFERNO))
