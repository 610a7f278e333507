"""Image input: every supported format and every kind of bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from cs_features.errors import ImageReadError
from cs_features.io import decode_gray, read_gray, to_gray_uint8, write_gray


@pytest.fixture()
def gray8() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(40, 56), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8bit_gray_round_trips(tmp_path, gray8, suffix):
    path = tmp_path / f"frame{suffix}"
    Image.fromarray(gray8).save(path)
    out = read_gray(path)
    assert out.dtype == np.uint8 and out.shape == (40, 56)
    np.testing.assert_array_equal(out, gray8)


def test_jpeg_gray_is_close(tmp_path, gray8):
    smooth = np.tile(np.linspace(20, 230, 56).astype(np.uint8), (40, 1))
    path = tmp_path / "frame.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    out = read_gray(path)
    assert out.shape == (40, 56)
    assert np.abs(out.astype(int) - smooth.astype(int)).max() <= 4


def test_rgb_png_uses_bt601_luma(tmp_path):
    rgb = np.zeros((4, 3, 3), np.uint8)
    rgb[:, 0] = (255, 0, 0)
    rgb[:, 1] = (0, 255, 0)
    rgb[:, 2] = (0, 0, 255)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    out = read_gray(path)
    np.testing.assert_array_equal(out[0], [76, 150, 29])  # round(255 * 0.299 / 0.587 / 0.114)


def test_rgba_is_composited_onto_black(tmp_path):
    rgba = np.full((2, 2, 4), 200, np.uint8)
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 255
    rgba[1, :, 3] = 128
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = read_gray(path)
    assert out[0, 0] == 0
    assert out[0, 1] == 200
    assert out[1, 0] == round(200 * 128 / 255)


def test_gray_alpha_png(tmp_path):
    la = np.zeros((3, 3, 2), np.uint8)
    la[..., 0] = 100
    la[..., 1] = 255
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    np.testing.assert_array_equal(read_gray(path), np.full((3, 3), 100, np.uint8))


def test_palette_png(tmp_path, gray8):
    path = tmp_path / "p.png"
    Image.fromarray(gray8).convert("P").save(path)
    out = read_gray(path)
    assert out.shape == gray8.shape
    assert np.abs(out.astype(int) - gray8.astype(int)).max() <= 8


def test_16bit_tiff_maps_full_range(tmp_path):
    frame = np.array([[0, 257, 65535], [32768, 1000, 60000]], np.uint16)
    path = tmp_path / "frame16.tif"
    tifffile.imwrite(path, frame)
    out = read_gray(path)
    np.testing.assert_array_equal(out, np.rint(frame / 257.0).astype(np.uint8))


def test_16bit_rgb_tiff(tmp_path):
    frame = np.zeros((2, 2, 3), np.uint16)
    frame[..., 1] = 65535
    path = tmp_path / "rgb16.tiff"
    tifffile.imwrite(path, frame, photometric="rgb")
    np.testing.assert_array_equal(read_gray(path), np.full((2, 2), 150, np.uint8))


def test_16bit_png(tmp_path):
    frame = np.array([[0, 65535], [257 * 10, 257 * 200]], np.uint16)
    path = tmp_path / "frame16.png"
    Image.fromarray(frame).save(path)
    np.testing.assert_array_equal(read_gray(path), [[0, 255], [10, 200]])


def test_multipage_tiff_reads_first_page(tmp_path):
    pages = np.stack([np.full((5, 5), 10, np.uint8), np.full((5, 5), 99, np.uint8)])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages)
    np.testing.assert_array_equal(read_gray(path), np.full((5, 5), 10, np.uint8))


def test_decode_gray_from_bytes(gray8):
    buffer = io.BytesIO()
    Image.fromarray(gray8).save(buffer, format="PNG")
    np.testing.assert_array_equal(decode_gray(buffer.getvalue()), gray8)


def test_write_gray_round_trip(tmp_path, gray8):
    path = write_gray(tmp_path / "sub" / "out.png", gray8)
    np.testing.assert_array_equal(read_gray(path), gray8)


# ---- bad files: each raises ImageReadError naming the path and the reason ----


def _assert_read_error(path, *fragments):
    with pytest.raises(ImageReadError) as info:
        read_gray(path)
    message = str(info.value)
    assert str(path) in message
    assert info.value.path == str(path)
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_missing_file(tmp_path):
    _assert_read_error(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    _assert_read_error(tmp_path / "dir.png", "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_read_error(path, "empty")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a frame\n")
    _assert_read_error(path, "not an image")


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp")])
def test_truncated(tmp_path, gray8, fmt, suffix):
    buffer = io.BytesIO()
    big = np.random.default_rng(0).integers(0, 256, size=(200, 200), dtype=np.uint8)
    Image.fromarray(big).save(buffer, format=fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _assert_read_error(path, "truncated")


def test_truncated_tiff(tmp_path):
    big = np.random.default_rng(0).integers(0, 65535, size=(200, 200), dtype=np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, big)
    path = tmp_path / "cut.tif"
    path.write_bytes(full.read_bytes()[:5000])
    _assert_read_error(path, "truncated or corrupt TIFF")


@pytest.mark.filterwarnings("ignore:.*zero-size array")
def test_zero_sized(tmp_path):
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, np.zeros((0, 10), np.uint8))
    _assert_read_error(path, "zero-sized")


def test_zero_sized_array():
    with pytest.raises(ImageReadError, match="zero-sized"):
        to_gray_uint8(np.zeros((0, 4), np.uint8))


def test_float_image_refused(tmp_path):
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.float32))
    _assert_read_error(path, "unsupported pixel type")


def test_unreadable(tmp_path, gray8, monkeypatch):
    # Tests run as root in CI, where chmod 0 does not stop reads: simulate the OS refusing.
    import cs_features.io as csf_io

    path = tmp_path / "locked.png"
    Image.fromarray(gray8).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(csf_io, "open", refuse, raising=False)
    _assert_read_error(path, "unreadable", "Permission denied")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lzw_compressed_tiff_as_opencv_writes_it_is_read(tmp_path, dtype):
    import cv2

    ramp = (np.arange(64 * 48).reshape(48, 64) % 256).astype(np.uint8)
    image = ramp.astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / "lzw.tif"
    assert cv2.imwrite(str(path), image)  # OpenCV writes LZW-compressed TIFF
    np.testing.assert_array_equal(read_gray(path), ramp)
