"""Image input: read any frame a microscope or an export tool writes into ``(H, W)`` uint8 grayscale.

Supported: PNG, JPEG, BMP and TIFF, 8- or 16-bit, grayscale, colour, palette or with alpha.

Conversion, in this order:

1. **Bit depth.** 8-bit values are kept. 16-bit values are mapped linearly from the full 16-bit range,
   ``round(v / 257)`` (65535 -> 255), so a frame's grey levels mean the same whatever its container.
   1-bit images become 0/255. Floating-point and 32-bit integer images are refused (their range is not
   defined by the file).
2. **Alpha.** Colour or grey with alpha is composited onto black (``v * alpha / max``): transparent
   pixels carry no image content, and black is what a viewer shows for "nothing".
3. **Colour.** RGB becomes luma with the ITU-R BT.601 weights ``0.299 R + 0.587 G + 0.114 B``
   (what OpenCV and Pillow use), rounded to the nearest integer.

Multi-page TIFFs yield their first page. Every failure raises :class:`~cs_features.errors.ImageReadError`
naming the path and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cs_features.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_LUMA = np.array([0.299, 0.587, 0.114])


def is_image_path(path: str | Path) -> bool:
    """True when ``path`` has one of the supported image suffixes (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as grayscale.

    Args:
        path: a PNG, JPEG, BMP or TIFF file.

    Returns:
        ``(H, W)`` uint8 array (conversion documented in the module docstring).

    Raises:
        ImageReadError: missing, unreadable, empty, truncated, not an image, zero-sized, or an
            unsupported pixel type; the message names the path and the reason.
    """
    path = Path(path)
    data = _read_bytes(path)
    if path.suffix.lower() in _TIFF_SUFFIXES or data[:4] in (b"II*\x00", b"MM\x00*"):
        array = _decode_tiff(path, data)
    else:
        array = _decode_pillow(path, data)
    return to_gray_uint8(array, path)


def decode_gray(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF) into ``(H, W)`` uint8 grayscale."""
    if not data:
        raise ImageReadError(name, "the file is empty (0 bytes)")
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        array = _decode_tiff(Path(name), data)
    else:
        array = _decode_pillow(Path(name), data)
    return to_gray_uint8(array, name)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageReadError(path, f"unreadable ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return data


def _decode_pillow(path: Path, data: bytes) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully; a truncated file raises here
            return _pillow_to_array(path, image)
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image (no PNG, JPEG, BMP or TIFF header)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc)
        if "truncated" in reason or "broken data stream" in reason:
            raise ImageReadError(path, f"truncated or corrupt image data ({reason})") from exc
        raise ImageReadError(path, f"corrupt image ({reason})") from exc


def _pillow_to_array(path: Path, image) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("F",) or mode.startswith("I;32") or mode == "I" and image.getextrema()[1] > 65535:
        raise ImageReadError(path, f"unsupported pixel type {mode!r}: save frames as 8- or 16-bit")
    array = np.asarray(image)
    if image.mode == "I":  # 16-bit PNG decodes as int32 holding 0..65535
        array = array.astype(np.uint16)
    return array


def _decode_tiff(path: Path, data: bytes) -> np.ndarray:
    import io

    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not tif.pages:
                raise ImageReadError(path, "TIFF has no pages")
            page = tif.pages[0]
            array = page.asarray()
            photometric = getattr(page.photometric, "name", str(page.photometric))
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many types for bad files
        if "imagecodecs" in str(exc):
            # a compression (LZW, as OpenCV and many microscopes write) tifffile decodes only with the optional
            # imagecodecs package: Pillow decodes those itself
            return _decode_pillow(path, data)
        raise ImageReadError(path, f"truncated or corrupt TIFF ({type(exc).__name__}: {exc})") from exc
    if photometric == "MINISWHITE" and array.ndim == 2 and array.dtype.kind == "u":
        array = np.iinfo(array.dtype).max - array
    return array


def to_gray_uint8(array: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Convert a decoded image array to ``(H, W)`` uint8 grayscale.

    Args:
        array: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)`` (grey+alpha), ``(H, W, 3)`` (RGB) or
            ``(H, W, 4)`` (RGBA); dtype bool, uint8 or uint16.
        path: used in error messages only.

    Returns:
        ``(H, W)`` uint8.
    """
    if array.size == 0:
        raise ImageReadError(path, f"zero-sized image (shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageReadError(path, f"unsupported image shape {array.shape}: expected (H, W) or (H, W, 1|2|3|4)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(path, f"zero-sized image {array.shape[1]}x{array.shape[0]}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(path, f"unsupported pixel type {array.dtype}: save frames as 8- or 16-bit")
    full = float(np.iinfo(array.dtype).max)
    if array.ndim == 2:
        gray = array.astype(np.float64)
    else:
        colour = array[:, :, :-1] if array.shape[2] in (2, 4) else array
        gray = colour.astype(np.float64) if colour.shape[2] == 1 else colour.astype(np.float64) @ _LUMA
        gray = gray[:, :, 0] if gray.ndim == 3 else gray
        if array.shape[2] in (2, 4):
            gray = gray * (array[:, :, -1].astype(np.float64) / full)
    return np.clip(np.rint(gray * (255.0 / full)), 0, 255).astype(np.uint8)


def write_gray(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W)`` uint8 frame as PNG (or any suffix OpenCV knows), creating parent folders."""
    import cv2

    path = Path(path)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"write_gray expects (H, W) or (H, W, 3) uint8, got {image.dtype} {image.shape}")
    os.makedirs(path.parent, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise ImageReadError(path, "OpenCV could not write this file (unknown suffix or unwritable folder)")
    return path


def encode_png(image: np.ndarray) -> bytes:
    """Losslessly encode an ``(H, W)`` uint8 frame, an ``(H, W, 3)`` uint8 BGR picture, or a bool mask
    (stored as 0/255) as PNG bytes."""
    import cv2

    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"encode_png expects an (H, W) or (H, W, 3) uint8 or bool array, got {image.dtype} "
                         f"{image.shape}")
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV fails only on invalid input, checked above
        raise ValueError("OpenCV could not encode the frame as PNG")
    return buffer.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes written by :func:`encode_png` into ``(H, W)`` uint8."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError("<stored image>", "stored PNG bytes could not be decoded")
    return image
