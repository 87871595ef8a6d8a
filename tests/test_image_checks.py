"""One image file's checks: content hash, full decode, what TensorFlow would misread, and the
conversion to an RGB PNG (the loaders' end-to-end cases are in test_data_cleaning.py)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from tltk.data.image_checks import check_file, tf_decode_problem, to_rgb_png


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_a_png_tensorflow_reads_is_hashed_and_not_converted():
    data = _encode(Image.new("L", (8, 8), 77), "PNG")
    check = check_file(data)
    assert check.digest == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert (check.kind, check.error, check.convert) == ("PNG/L", None, None)


def test_truncated_bytes_are_an_error_and_a_palette_bmp_is_to_be_converted():
    jpeg = _encode(Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)),
                   "JPEG")  # fmt: skip
    cut = check_file(jpeg[:200])
    assert cut.error and cut.digest == hashlib.blake2b(jpeg[:200], digest_size=16).hexdigest()
    bmp = check_file(_encode(Image.new("RGB", (8, 8), (200, 100, 50)).convert("P"), "BMP"))
    assert bmp.error is None and bmp.kind == "BMP/P"
    assert bmp.convert == "BMP with 8-bit pixels (compression 0)"
    assert tf_decode_problem("TIFF", b"") == "TIFF is not a format TensorFlow decodes"
    assert tf_decode_problem("BMP", _encode(Image.new("RGB", (4, 4)), "BMP")) is None  # 24-bit


def test_conversion_gives_the_pixels_tensorflow_would_see():
    solid = Image.new("RGB", (8, 8), (200, 100, 50)).convert("P", dither=Image.Dither.NONE)
    rgb = Image.open(io.BytesIO(to_rgb_png(_encode(solid, "BMP"))))
    assert (rgb.format, rgb.mode) == ("PNG", "RGB")
    pixels = np.asarray(rgb).reshape(-1, 3).astype(int)
    assert (pixels == pixels[0]).all()  # the palette colour, not its index read as gray
    assert np.abs(pixels[0] - (200, 100, 50)).max() <= 26  # the web palette's nearest colour
    gray16 = _encode(Image.fromarray(np.full((4, 4), 0x1234, np.uint16)), "PNG")
    assert np.asarray(Image.open(io.BytesIO(to_rgb_png(gray16)))).max() == 0x12  # high byte
