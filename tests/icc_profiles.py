"""ICC profiles built by the tests: a matrix/TRC RGB display profile (v2) with any primaries.

``adobe_rgb()`` gives Adobe RGB (1998): its D50-adapted colorants and gamma 563/256, as in
Adobe's own profile; LittleCMS reads it like the real one (it converts only with these tags).
"""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)
ADOBE_RGB_COLORANTS = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))


def _s15(value: float) -> bytes:
    return struct.pack(">i", int(round(value * 65536)))


def _xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (4 + 4 + 2 + 1 + 67)


def _curve(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def rgb_profile(description: str, colorants=ADOBE_RGB_COLORANTS, gamma: float = 563 / 256) -> bytes:
    """A v2 display-class RGB profile: description, white point, three colorants and tone curves."""
    curve = _curve(gamma)
    tags = [(b"desc", _desc(description)), (b"cprt", b"text" + b"\0" * 4 + b"made by the tests\0"),
            (b"wtpt", _xyz(D50)), (b"rXYZ", _xyz(colorants[0])), (b"gXYZ", _xyz(colorants[1])),
            (b"bXYZ", _xyz(colorants[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    body = table + data
    size = 128 + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 8 + b"\0" * 8
              + b"\0" * 4 + b"".join(_s15(v) for v in D50) + b"lcms" + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + body


def adobe_rgb() -> bytes:
    return rgb_profile("Adobe RGB (1998) (test)")
