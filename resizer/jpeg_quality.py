"""The quality a JPEG was saved at, estimated from its quantization tables.

Almost every encoder (libjpeg, libjpeg-turbo, mozjpeg's defaults, Pillow, ImageMagick,
browsers) scales the IJG standard tables (ITU T.81 Annex K) by the quality ``q``:
``scale = 5000 / q`` below 50, ``200 - 2 q`` from 50, each entry ``(t * scale + 50) // 100``
clamped to 1..255. The estimate is the ``q`` whose scaled tables are nearest to the file's
(exact for such encoders; the nearest IJG quality for others, e.g. Photoshop's own tables).
It sets how strongly the file is restored, and whether at all (:mod:`resizer.restoration`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

__all__ = ["estimate_quality", "quality_from_tables", "scaled_tables"]

# ITU T.81 Annex K, K.1 (luminance) and K.2 (chrominance), in row-major (natural) order as Pillow gives them.
_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)
_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=np.int64)


def scaled_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The IJG ``(luma, chroma)`` tables at ``quality`` (1..100), baseline (entries 1..255)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(np.clip((t * scale + 50) // 100, 1, 255) for t in (_LUMA, _CHROMA))  # type: ignore[return-value]


_ALL = {q: scaled_tables(q) for q in range(1, 101)}


def quality_from_tables(tables: Mapping[int, Sequence[int]]) -> int | None:
    """The IJG quality nearest to ``tables`` (Pillow's ``image.quantization``); None without a luma table.

    Nearness is the mean absolute difference over the luma table and, if present, the first
    chroma table; ties go to the higher quality (the milder restoration).
    """
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    luma = np.asarray(tables[0], dtype=np.int64)
    chroma = np.asarray(tables[1], dtype=np.int64) if 1 in tables and len(tables[1]) == 64 else None

    def distance(q: int) -> float:
        ref_luma, ref_chroma = _ALL[q]
        d = float(np.abs(luma - ref_luma).mean())
        return d if chroma is None else (d + float(np.abs(chroma - ref_chroma).mean())) / 2

    return min(range(100, 0, -1), key=distance)


def estimate_quality(source: str | Path | Image.Image) -> int | None:
    """The estimated JPEG quality of a file or open Pillow image; None for anything but a JPEG."""
    if isinstance(source, Image.Image):
        return _image_quality(source)
    try:
        with Image.open(source) as image:
            return _image_quality(image)
    except (OSError, ValueError):
        return None


def _image_quality(image: Image.Image) -> int | None:
    if image.format not in ("JPEG", "MPO"):
        return None
    return quality_from_tables(getattr(image, "quantization", None) or {})
