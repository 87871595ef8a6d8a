"""What one image file's bytes are: their content hash, whether Pillow decodes them fully
(a truncated or random file does not), whether `tf.io.decode_image(..., channels=3)` (the
decode the pipeline and the SavedModel share) reads them correctly, and their conversion to an
RGB PNG when it would not. The measurements behind that split, per kind of file, are in
docs/MEASURED.md.

Both places that check images call these: the file checks of a split (tltk/data/cleaning.py)
and the shard writer's checks of streamed records (tltk/data/stream_checks.py).
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

TF_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP"})
"""Pillow format names of files `tf.io.decode_image` can decode (BMP only partly: see
`tf_decode_problem`)."""


@dataclass
class FileCheck:
    """What inspecting one file found."""

    digest: str = ""
    kind: str = ""
    """Pillow `format/mode`, e.g. `PNG/RGB`."""
    error: str | None = None
    convert: str | None = None
    """Why TensorFlow would decode it wrongly (then it is converted), or None."""


def check_file(data: bytes) -> FileCheck:
    """Hash the bytes and fully decode them with Pillow (a truncated file fails here)."""
    check = FileCheck(digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            check.kind = f"{im.format}/{im.mode}"
            check.convert = tf_decode_problem(im.format, data)
    except Exception as e:  # Pillow raises many types for bad files; all mean "cannot decode"
        check.error = f"{type(e).__name__}: {e}"
    return check


def tf_decode_problem(fmt: str | None, data: bytes) -> str | None:
    """Why `tf.io.decode_image` would fail on or misread a file Pillow decodes; None if fine."""
    if fmt not in TF_FORMATS:
        return f"{fmt} is not a format TensorFlow decodes"
    if fmt == "BMP":
        # TF's BMP decoder handles uncompressed 24/32-bit pixels only; lower depths are
        # palette indices it reads as gray (8-bit) or rejects (1/4-bit).
        header_size = struct.unpack_from("<I", data, 14)[0]
        bits_at, compression = (
            (24, 0) if header_size == 12 else (28, struct.unpack_from("<I", data, 30)[0])
        )
        bits = struct.unpack_from("<H", data, bits_at)[0]
        if bits not in (24, 32) or compression != 0:
            return f"BMP with {bits}-bit pixels (compression {compression})"
    return None


def to_rgb_png(data: bytes) -> bytes:
    """Re-encode any image Pillow reads as an 8-bit RGB PNG, scaled the way TensorFlow does."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode.startswith("I"):
            # 16-bit gray: keep the high byte, as TF does for 16-bit PNGs. 32-bit ints have no
            # fixed range: treat them as 16-bit when they exceed 8 bits.
            array = np.asarray(im).astype(np.int64)
            if im.mode.startswith("I;16") or array.max() > 255:
                array = array >> 8
            rgb = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")
        elif im.mode == "F":
            rgb = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8)).convert("RGB")
        else:
            rgb = im.convert("RGB")  # drops alpha, applies palettes and CMYK, as TF does
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG")
        return buffer.getvalue()
