"""Image reading and writing that loses nothing: orientation, ICC, EXIF, DPI, alpha, 16 bits.

CONTRACT (shared with the pipeline, the engine and the methods; do not change the
names or signatures without telling the lead):

- ``Picture.pixels`` is an ``(H, W, C)`` numpy array, ``uint8`` or ``uint16``,
  C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA). Alpha is always last.
- ``Metadata`` is carried from input to output; ``text`` holds key/value pairs that
  resizer itself writes (pairing metadata of learned down/up methods).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 200_000_000  # ~14k x 14k; refuse decompression bombs above this


@dataclass
class Metadata:
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset to 1
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)  # resizer's own keys
    source_format: str | None = None  # e.g. "PNG", "JPEG"
    frames: int = 1  # frames in the source; only the first is used


@dataclass
class Picture:
    pixels: np.ndarray
    metadata: Metadata = field(default_factory=Metadata)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8


IMAGE_SUFFIXES: frozenset[str] = frozenset()  # filled in below


def load_picture(source: str | Path | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None) -> Picture:
    """Read an image file (or its bytes) into a ``Picture``; raises ``ImageReadError``."""
    raise NotImplementedError


def save_picture(picture: Picture, path: str | Path, *, format: str | None = None, quality: int | None = None,
                 strip: bool = False, overwrite: bool = False) -> None:
    """Write atomically (temp file in the target folder, then rename); raises ``ImageWriteError``."""
    raise NotImplementedError


def encode_picture(picture: Picture, format: str, *, quality: int | None = None, strip: bool = False) -> bytes:
    """Encode to bytes in ``format`` (for standard output)."""
    raise NotImplementedError


def is_image_path(path: Path) -> bool:
    """True if the suffix is one resizer reads (used to pick files from folders)."""
    raise NotImplementedError
