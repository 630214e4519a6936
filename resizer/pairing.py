"""Pairing metadata: how a learned thumbnail says which upscaler restores it, and to what size.

A paired downscaler (CAR, DSN) writes these keys into the thumbnail's metadata
(``Metadata.text``: a PNG text chunk, XMP in JPEG and WebP; kept under ``--strip``):

- ``resizer:method``   the family (``car``), whose upscaler is the thumbnail's partner
- ``resizer:model``    the manifest entry of the downscaler that made it (``car-x4-down``)
- ``resizer:version``  the resizer version that wrote it
- ``resizer:scale``    the integer factor
- ``resizer:original_size``  ``WIDTHxHEIGHT`` of the image before downscaling

``resizer encode`` also records the pipeline it chose (:data:`ENCODE_KEYS`, read back by
:func:`encoded_pipeline`): ``resizer:pipeline`` is ``codec`` for the codec alone at full size
(``decode`` then keeps the decoded pixels) or ``<method>-x<scale>`` for a learned pair (which the
keys above restore). The quality is in the codec's own headers; no byte more is spent on it.
``resizer:restore`` (:func:`recorded_restorer`), when present, names the restoration family
``decode`` runs on the decoded thumbnail before its upscaler (``encode --max-bytes`` measured
that it helps); a file without it is upscaled as decoded, as before the key existed.

``resizer up`` without ``--method`` reads them (:func:`read_pairing`) and restores the
original size with the paired upscaler. This is the one pairing mechanism: every paired
family uses it, and codecs (``resizer encode``) carry the same keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import ResizerError
from .geometry import downscaled_size

__all__ = ["Pairing", "read_pairing", "PAIRING_KEYS", "ENCODE_KEYS", "CODEC_ONLY", "RESTORE_KEY", "encoded_pipeline",
           "recorded_restorer"]

PAIRING_KEYS = ("resizer:method", "resizer:model", "resizer:version", "resizer:scale", "resizer:original_size")
PIPELINE_KEY = "resizer:pipeline"
RESTORE_KEY = "resizer:restore"  # the restoration family run on a thumbnail before its upscaler
ENCODE_KEYS = (PIPELINE_KEY, RESTORE_KEY)
CODEC_ONLY = "codec"  # the pipeline of a file coded at full size, whose decode is the decoded file itself
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
# A family (a ``--method`` name) and a model: a manifest entry's name, or the file name of the
# ``--weights`` it was made with. Never a path: no separators, no leading dot, printable, short.
_METHOD = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_MODEL = re.compile(r"[A-Za-z0-9_][^/\\\x00-\x1f\x7f]{0,199}")


@dataclass(frozen=True)
class Pairing:
    """What a paired thumbnail records about its making."""

    method: str
    model: str
    version: str
    scale: float
    original_size: tuple[int, int]  # (width, height)

    def to_text(self) -> dict[str, str]:
        """The ``Metadata.text`` entries."""
        scale = str(int(self.scale)) if float(self.scale).is_integer() else f"{self.scale:g}"
        return {
            "resizer:method": self.method,
            "resizer:model": self.model,
            "resizer:version": self.version,
            "resizer:scale": scale,
            "resizer:original_size": f"{self.original_size[0]}x{self.original_size[1]}",
        }

    def fits(self, size: tuple[int, int]) -> bool:
        """True if a ``size`` (width, height) image can be this pairing's thumbnail (not resized since)."""
        width, height = self.original_size
        expected_height, expected_width = downscaled_size(height, width, self.scale)
        return tuple(size) == (expected_width, expected_height)


def read_pairing(text: dict[str, str], name: str | None = None) -> Pairing | None:
    """The pairing recorded in ``text`` (``Metadata.text``), or ``None`` if it has none.

    A thumbnail that has some keys but malformed values is an error (naming ``name``, if
    given): it was made by resizer, and guessing would restore it wrongly. So is a method
    or model that is no name at all (``../../../etc/passwd``: a path, control characters,
    over 200 characters): only a family name and a manifest entry's or weights file's name
    are valid.
    """
    method = text.get("resizer:method", "").strip().lower()
    if not method:
        return None
    where = f"{name}: " if name else ""
    model = text.get("resizer:model", "")
    for key, value, pattern in (("method", method, _METHOD), ("model", model, _MODEL)):
        if value and not pattern.fullmatch(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ResizerError(f"{where}resizer pairing metadata names no valid {key} ({shown!r}); "
                               "give --method and --scale explicitly")
    try:
        scale = float(text["resizer:scale"])
        match = _SIZE.match(text["resizer:original_size"])
        if match is None or not (math.isfinite(scale) and scale > 1):
            raise ValueError
        size = (int(match.group(1)), int(match.group(2)))
    except (KeyError, ValueError):
        raise ResizerError(f"{where}resizer pairing metadata is incomplete or malformed "
                           f"(method {method!r}); give --method and --scale explicitly") from None
    return Pairing(method, model, text.get("resizer:version", ""), scale, size)


def encoded_pipeline(text: dict[str, str]) -> str | None:
    """The pipeline ``resizer encode`` recorded in ``text`` (``codec``, ``dsn-x2``, ...), or ``None``."""
    value = text.get(PIPELINE_KEY, "").strip().lower()
    return value if value and _METHOD.fullmatch(value) else None


def recorded_restorer(text: dict[str, str], name: str | None = None) -> str | None:
    """The restoration family ``encode`` recorded to run before the upscaler (``resizer:restore``), or ``None``.

    A value that is no family name is an error (naming ``name``): the file was made by
    resizer, and upscaling it without the restoration it was measured with would be wrong.
    """
    value = text.get(RESTORE_KEY)
    if value is None:
        return None
    value = value.strip().lower()
    if not _METHOD.fullmatch(value):
        where = f"{name}: " if name else ""
        raise ResizerError(f"{where}resizer:restore names no valid restoration method ({value[:60]!r})")
    return value
