"""HEIC/HEIF (every iPhone photo) through the optional ``pillow-heif`` package (extra ``heif``).

``pillow-heif`` is imported only when a HEIF file is read or written, so other runs pay
nothing for it. Without it, both are one-line errors naming the extra.
"""

from __future__ import annotations

import functools

HEIF_EXTRA_HINT = "needs the optional 'heif' extra (pip install 'resizer[heif]')"
# ISO-BMFF major brands of HEIF stills and sequences (HEVC, and the generic image brands)
_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
HEIF_QUALITY = 85


def is_heif_header(head: bytes) -> bool:
    """True for the first 12 bytes of a HEIF file (``....ftypheic``)."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _BRANDS


@functools.lru_cache(maxsize=1)
def heif_available() -> bool:
    """Register pillow-heif's opener and saver with Pillow; False when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True
