"""Tests of the drawing helpers (cs_features.viz)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cs_features.viz import CAPTION_HEIGHT, contact_sheet, draw_boxes, save_png, to_bgr, zoom_crop


def test_to_bgr_accepts_gray_float_and_bgr():
    gray = np.full((4, 5), 7, np.uint8)
    assert to_bgr(gray).shape == (4, 5, 3) and (to_bgr(gray) == 7).all()
    assert (to_bgr(np.full((4, 5), 0.5, np.float32)) == 128).all()
    bgr = np.zeros((4, 5, 3), np.uint8)
    out = to_bgr(bgr)
    out[0, 0] = 9
    assert bgr[0, 0, 0] == 0  # a copy, not a view
    with pytest.raises(ValueError, match=r"\(4, 5, 2\)"):
        to_bgr(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(TypeError, match="int64"):
        to_bgr(np.zeros((4, 5), np.int64))


def test_draw_boxes_uses_exclusive_end_and_pad():
    frame = np.zeros((40, 50), np.uint8)
    out = draw_boxes(frame, np.array([[10, 5, 20, 15]], np.int32), color=(0, 0, 255))
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    red = out[..., 2] == 255
    assert red[5, 10] and red[14, 19] and red[5, 19] and red[14, 10]
    assert not red[15, 20] and not red[10, 15]  # exclusive end; inside stays untouched
    padded = draw_boxes(frame, [[10, 5, 20, 15]], pad=2)[..., 2] == 255
    assert padded[3, 8] and padded[16, 21] and not padded[5, 10]
    assert frame.max() == 0  # input untouched


def test_draw_boxes_captions_must_match_boxes():
    frame = np.zeros((60, 60), np.uint8)
    out = draw_boxes(frame, [[20, 30, 40, 50]], captions=["cs 0.93"])
    assert (out[14:30, 20:60] == 255).any()  # caption text above the box
    with pytest.raises(ValueError, match="2 captions for 1 boxes"):
        draw_boxes(frame, [[1, 1, 5, 5]], captions=["a", "b"])


def test_contact_sheet_shape_and_placement():
    tiles = [np.full((30, 60), 200, np.uint8), np.full((50, 50, 3), 90, np.uint8), np.zeros((10, 10), np.float32)]
    sheet = contact_sheet(tiles, ["a", "b", "c"], columns=2, tile_size=40, gap=3)
    assert sheet.shape == (2 * (40 + CAPTION_HEIGHT) + 3, 2 * 40 + 3, 3)
    assert (sheet[20, 20] == 200).all()  # first tile, aspect kept: 40 x 20 centred
    assert (sheet[2, 20] == 0).all()  # letterbox above the wide first tile
    assert (sheet[20, 43 + 20] == 90).all()  # second tile, after the gap
    with pytest.raises(ValueError, match="3 tiles and 2 captions"):
        contact_sheet(tiles, ["a", "b"], columns=2, tile_size=40)
    with pytest.raises(ValueError, match="columns=0"):
        contact_sheet(tiles, ["a", "b", "c"], columns=0, tile_size=40)


def test_zoom_crop_and_save_png_round_trip(tmp_path):
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = zoom_crop(image, (2, 3, 5, 6), scale=2, margin=1)
    assert crop.shape == (10, 10)  # rows 2..6, cols 1..5, doubled
    assert crop[0, 0] == image[2, 1] and crop[-1, -1] == image[6, 5]
    with pytest.raises(ValueError, match="outside"):
        zoom_crop(image, (20, 20, 30, 30), margin=0)
    path = save_png(tmp_path / "sub" / "x.png", crop)
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), crop)
