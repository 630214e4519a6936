"""EXIF/XMP orientation: pixels are turned upright on load and the tags reset to 1.

Resetting edits the one IFD0 entry in place when it can, so every other EXIF byte (maker
notes included) survives.
"""

from __future__ import annotations

import re
import struct

import numpy as np
from PIL import Image

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation 1..8 of ``image`` (1 when missing or unreadable)."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block is not worth refusing the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient_array(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The numpy twin of ``ImageOps.exif_transpose`` for arrays Pillow cannot hold."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.transpose(1, 0, 2)  # TRANSPOSE: (x, y) -> (y, x)
    ops = {2: (False, True), 3: (True, True), 4: (True, False), 5: (False, False),
           6: (False, True), 7: (True, True), 8: (True, False)}
    flip_rows, flip_cols = ops.get(orientation, (False, False))
    if flip_rows:
        pixels = pixels[::-1]
    if flip_cols:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def reset_exif_orientation(exif: bytes) -> bytes:
    """Set the orientation entry of IFD0 to 1 in place, keeping every other byte (maker notes too)."""
    body = bytearray(exif[len(EXIF_PREFIX):] if exif.startswith(EXIF_PREFIX) else exif)
    try:
        endian = {b"II": "<", b"MM": ">"}[bytes(body[:2])]
        (offset,) = struct.unpack_from(endian + "I", body, 4)
        (count,) = struct.unpack_from(endian + "H", body, offset)
        for index in range(count):
            entry = offset + 2 + 12 * index
            tag, kind, number = struct.unpack_from(endian + "HHI", body, entry)
            if tag == ORIENTATION_TAG:
                if kind == 3 and number == 1:
                    struct.pack_into(endian + "H", body, entry + 8, 1)
                    return EXIF_PREFIX + bytes(body)
                break
        else:
            return EXIF_PREFIX + bytes(body)
    except (KeyError, struct.error):
        pass
    parsed = Image.Exif()
    parsed.load(exif)
    parsed[ORIENTATION_TAG] = 1
    return parsed.tobytes()


_XMP_ORIENTATION = (re.compile(rb'tiff:Orientation="[0-9]"'), re.compile(rb"<tiff:Orientation>[0-9]</tiff:Orientation>"))


def reset_xmp_orientation(xmp: bytes) -> bytes:
    """``xmp`` with ``tiff:Orientation`` set to 1, in either of its two spellings."""
    xmp = _XMP_ORIENTATION[0].sub(b'tiff:Orientation="1"', xmp)
    return _XMP_ORIENTATION[1].sub(b"<tiff:Orientation>1</tiff:Orientation>", xmp)
