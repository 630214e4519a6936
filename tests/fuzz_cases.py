"""Seeds, mutations and the oracle of the fuzz test (``tests/test_fuzz.py``).

- **Seeds**: one small valid file per format and layout Pillow reads and writes (PNG 8/16-bit,
  grey, palette, RGBA, ICC, APNG, paired thumbnail; JPEG with EXIF, camera-style, CMYK; WebP;
  GIF; TIFF 8/16-bit, LZW, CMYK; BMP; PPM/PGM/PBM; TGA; ICO; DIB; DDS; PCX; SGI; QOI; IM; XBM;
  MSP; JPEG 2000 and AVIF where Pillow has them), made here from a synthetic 13x9 picture: no
  third-party corpus is committed. A seed this Pillow cannot write is left out.
- **Mutations**: bit flips, truncation, byte ranges duplicated or zeroed, whole chunks
  (PNG chunks, JPEG segments, RIFF chunks) duplicated or dropped, and absurd values written
  into the fields that size things (width, height, DPI, strip offsets...), found by parsing
  each seed. ``Mutant.ops`` says what was done, so a failure can be rebuilt with
  ``mutate(seed_bytes(name), ops)``.
- **Oracle**: :func:`problems` lists every broken promise of one ``resizer down/up`` run.
"""

from __future__ import annotations

import functools
import io
import json
import random
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, PngImagePlugin, TiffImagePlugin, features

from .conftest import synthetic_photo

WIDTH, HEIGHT = 13, 9
MAX_PIXELS = 4096  # ``--max-pixels``: absurd header sizes are refused before decoding


# --------------------------------------------------------------------------- seeds


def _rgb() -> np.ndarray:
    return synthetic_photo(HEIGHT, WIDTH, seed=21)


def _rgba() -> np.ndarray:
    alpha = np.tile(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, 1))[..., None]
    return np.concatenate([_rgb(), alpha], axis=2)


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _quietly(make: Callable[[], bytes]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return make()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit colour PNG (Pillow cannot write one): IHDR, pHYs, IDAT, IEND."""
    height, width, channels = pixels.shape
    colour_type = {3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").reshape(height, width * channels).tobytes()
    stride = width * channels * 2
    raw = b"".join(b"\x00" + rows[y * stride:(y + 1) * stride] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
            + _png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
            + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def _exif() -> bytes:
    exif = Image.Exif()
    exif[274] = 6  # orientation: rotated
    exif[282] = TiffImagePlugin.IFDRational(300, 1)
    exif[283] = TiffImagePlugin.IFDRational(300, 1)
    exif[296] = 2
    return exif.tobytes()


def _paired_png() -> bytes:
    """A 13x9 thumbnail whose pairing metadata says 'car x2 of 26x18' (``up`` needs no size)."""
    info = PngImagePlugin.PngInfo()
    for key, value in {"resizer:method": "car", "resizer:model": "car-x2-down", "resizer:version": "0",
                       "resizer:scale": "2", "resizer:original_size": f"{2 * WIDTH}x{2 * HEIGHT}"}.items():
        info.add_text(key, value)
    return _save(Image.fromarray(_rgb()), "PNG", pnginfo=info)


def _camera_jpeg() -> bytes:
    """A JPEG as cameras write it: EXIF (APP1) and no JFIF segment, so the DPI comes from EXIF."""
    data = _save(Image.fromarray(_rgb()), "JPEG", quality=90, exif=_exif())
    start, end, _ = jpeg_segments(data)[0]  # Pillow always writes JFIF (APP0) first
    return data[:start] + data[end:]


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _tiff_cmyk16() -> bytes:
    import tifffile

    cmyk = np.asarray(Image.fromarray(_rgb()).convert("CMYK")).astype(np.uint16) * 257
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, cmyk, photometric="separated")
    return buffer.getvalue()


def _save_rgb(fmt: str) -> bytes:
    return _save(Image.fromarray(_rgb()), fmt)


def _tiff16(compression: str | None) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, _rgb().astype(np.uint16) * 257, photometric="rgb", compression=compression)
    return buffer.getvalue()


def _gif() -> bytes:
    first, second = Image.fromarray(_rgb()).convert("P"), Image.fromarray(_rgb()[::-1].copy()).convert("P")
    return _save(first, "GIF", save_all=True, append_images=[second], duration=50, loop=0)


def _seed_makers() -> dict[str, tuple[str, Callable[[], bytes]]]:
    """name -> (suffix, maker): every format and layout the fuzz test starts from."""
    rgb, rgba = (lambda: Image.fromarray(_rgb())), (lambda: Image.fromarray(_rgba()))
    grey = lambda: rgb().convert("L")  # noqa: E731
    makers: dict[str, tuple[str, Callable[[], bytes]]] = {
        "png-rgb": (".png", lambda: _save(rgb(), "PNG", dpi=(72, 72))),
        "png-rgba": (".png", lambda: _save(rgba(), "PNG")),
        "png-grey": (".png", lambda: _save(grey(), "PNG")),
        "png-grey16": (".png", lambda: _save(Image.fromarray(_rgb()[..., 0].astype(np.uint16) * 257), "PNG")),
        "png-palette": (".png", lambda: _save(rgb().convert("P"), "PNG", transparency=0)),
        "png-rgb16": (".png", lambda: _png16(_rgb().astype(np.uint16) * 257)),
        "png-rgba16": (".png", lambda: _png16(_rgba().astype(np.uint16) * 257)),
        "png-paired": (".png", _paired_png),
        "jpeg-exif": (".jpg", lambda: _save(rgb(), "JPEG", quality=90, exif=_exif())),
        "jpeg-grey": (".jpg", lambda: _save(grey(), "JPEG", quality=90, progressive=True)),
        "webp-lossy": (".webp", lambda: _save(rgb(), "WEBP", quality=80)),
        "webp-rgba": (".webp", lambda: _save(rgba(), "WEBP", lossless=True)),
        "gif-2frames": (".gif", _gif),
        "tiff-rgb": (".tif", lambda: _save(rgb(), "TIFF", dpi=(300, 300))),
        "tiff-lzw": (".tif", lambda: _save(rgba(), "TIFF", compression="tiff_lzw")),
        "tiff-rgb16": (".tif", lambda: _tiff16(None)),
        "bmp-rgb": (".bmp", lambda: _save(rgb(), "BMP")),
        "bmp-palette": (".bmp", lambda: _save(rgb().convert("P"), "BMP")),
        "ppm": (".ppm", lambda: _save(rgb(), "PPM")),
        "pgm": (".pgm", lambda: _save(grey(), "PPM")),
        "tga-rle": (".tga", lambda: _save(rgba(), "TGA", compression="tga_rle")),
        "ico": (".ico", lambda: _save(rgba(), "ICO", sizes=[(WIDTH, HEIGHT)])),
        "jpeg-camera": (".jpg", _camera_jpeg),
        "jpeg-cmyk": (".jpg", lambda: _save(rgb().convert("CMYK"), "JPEG", quality=90)),
        "png-icc": (".png", lambda: _save(rgb(), "PNG", icc_profile=_srgb_profile())),
        "tiff-cmyk16": (".tif", _tiff_cmyk16),
        "apng": (".png", lambda: _save(rgb(), "PNG", save_all=True, append_images=[Image.fromarray(_rgb()[::-1].copy())])),
        "pbm": (".pbm", lambda: _save(rgb().convert("1"), "PPM")),
        "dib": (".dib", lambda: _save(rgb(), "DIB")),
        "dds-rgba": (".dds", lambda: _save(rgba(), "DDS")),
        "dds-dxt1": (".dds", lambda: _save(rgba(), "DDS", pixel_format="DXT1")),
        "pcx": (".pcx", lambda: _save(rgb(), "PCX")),
        "sgi": (".sgi", lambda: _save(rgb(), "SGI")),
        "qoi": (".qoi", lambda: _save(rgba(), "QOI")),
        "im": (".im", lambda: _quietly(lambda: _save(rgb(), "IM"))),  # deprecated by Pillow, still read
        "xbm": (".xbm", lambda: _save(rgb().convert("1"), "XBM")),
        "msp": (".msp", lambda: _save(rgb().convert("1"), "MSP")),
    }
    for name, fmt, suffix in (("jp2", "jpg_2000", ".jp2"), ("avif", "avif", ".avif")):
        if features.check(fmt):
            makers[name] = (suffix, functools.partial(_save_rgb, "JPEG2000" if name == "jp2" else "AVIF"))
    try:
        import imagecodecs  # noqa: F401  (tifffile's LZW encoder)

        makers["tiff-rgb16-lzw"] = (".tif", lambda: _tiff16("lzw"))
    except ImportError:
        pass
    return makers


def _writable(make: Callable[[], bytes]) -> bool:
    try:
        make()
    except Exception:  # an older Pillow, or a codec it was built without
        return False
    return True


SEEDS = {name: entry for name, entry in _seed_makers().items() if _writable(entry[1])}
SEED_NAMES = tuple(SEEDS)
# Formats resizer writes under their own suffix: the valid neighbours in batches.
GOOD_NEIGHBOURS = ("png-rgb", "jpeg-exif", "webp-rgba", "bmp-rgb", "tiff-rgb", "png-rgb16")


@functools.lru_cache(maxsize=None)
def seed_bytes(name: str) -> bytes:
    return SEEDS[name][1]()


def suffix_of(name: str) -> str:
    return SEEDS[name][0]


# --------------------------------------------------------------------------- structure of the seeds


@dataclass(frozen=True)
class Field:
    """An integer in a seed's header: ``width`` bytes at ``offset`` (``text``: ASCII digits, any length)."""

    label: str
    offset: int
    width: int
    order: str = "big"  # "big", "little" or "text"
    length_at: int | None = None  # text in a PNG chunk: where the chunk's length is (it changes with the text)


def _ifd_fields(data: bytes, base: int, prefix: str) -> list[Field]:
    """The integer fields of a TIFF structure's first IFD (a TIFF file, or EXIF at ``base``)."""
    order = "little" if data[base:base + 2] == b"II" else "big"
    u16 = lambda at: int.from_bytes(data[at:at + 2], order)  # noqa: E731
    u32 = lambda at: int.from_bytes(data[at:at + 4], order)  # noqa: E731
    fields, ifd = [], base + u32(base + 4)
    for index in range(u16(ifd)):
        entry = ifd + 2 + 12 * index
        tag, kind, count = u16(entry), u16(entry + 2), u32(entry + 4)
        fields.append(Field(f"{prefix}tag{tag}.count", entry + 4, 4, order))
        if kind in (3, 4) and count == 1:
            fields.append(Field(f"{prefix}tag{tag}", entry + 8, 2 if kind == 3 else 4, order))
        elif kind == 5:
            where = base + u32(entry + 8)
            fields += [Field(f"{prefix}tag{tag}.num", where, 4, order), Field(f"{prefix}tag{tag}.den", where + 4, 4, order)]
        else:
            fields.append(Field(f"{prefix}tag{tag}.offset", entry + 8, 4, order))
    return fields


def _png_fields(data: bytes) -> list[Field]:
    fields = [Field("IHDR.width", 16, 4), Field("IHDR.height", 20, 4), Field("IHDR.depth", 24, 1),
              Field("IHDR.colour", 25, 1)]
    for start, end, kind in png_chunks(data):
        fields.append(Field(f"{kind}.length", start, 4))
        if kind == "pHYs":
            fields += [Field("pHYs.x", start + 8, 4), Field("pHYs.y", start + 12, 4)]
        if kind == "tEXt":  # the number in a text value, e.g. resizer:original_size=26x18 (the pairing)
            key, _, value = data[start + 8:end - 4].partition(b"\x00")
            digits = next((i for i, c in enumerate(value) if chr(c).isdigit()), None)
            if digits is not None:
                width = len(value[digits:]) - len(value[digits:].lstrip(b"0123456789"))
                fields.append(Field(f"tEXt.{key.decode('latin-1')}", start + 9 + len(key) + digits, width, "text", start))
    return fields


def _jpeg_fields(data: bytes) -> list[Field]:
    fields = []
    for start, _end, kind in jpeg_segments(data):
        fields.append(Field(f"{kind}.length", start + 2, 2))
        if kind in ("SOF0", "SOF2"):
            fields += [Field(f"{kind}.height", start + 5, 2), Field(f"{kind}.width", start + 7, 2),
                       Field(f"{kind}.components", start + 9, 1)]
        if kind == "APP1" and data[start + 4:start + 10] == b"Exif\x00\x00":
            fields += _ifd_fields(data, start + 10, "exif.")
    return fields


def _netpbm_fields(data: bytes) -> list[Field]:
    tokens, at = [], 2
    while len(tokens) < 3:
        while data[at:at + 1].isspace():
            at += 1
        end = at
        while data[end:end + 1].isdigit():
            end += 1
        tokens.append(Field(("width", "height", "maxval")[len(tokens)], at, end - at, "text"))
        at = end
    return tokens


def _gif_fields(data: bytes) -> list[Field]:
    fields = [Field("screen.width", 6, 2, "little"), Field("screen.height", 8, 2, "little")]
    at = data.index(b",", 13 + 3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 13)
    return fields + [Field(f"frame.{n}", at + 1 + 2 * i, 2, "little") for i, n in enumerate(("left", "top", "width", "height"))]


_FIXED_FIELDS: dict[str, list[Field]] = {
    ".bmp": [Field(n, o, w, "little") for n, o, w in (("file_size", 2, 4), ("pixel_offset", 10, 4), ("header_size", 14, 4),
             ("width", 18, 4), ("height", 22, 4), ("bpp", 28, 2), ("compression", 30, 4), ("image_size", 34, 4),
             ("x_ppm", 38, 4), ("colours", 46, 4))],
    ".tga": [Field(n, o, w, "little") for n, o, w in (("id_length", 0, 1), ("colormap_type", 1, 1), ("type", 2, 1),
             ("colormap_length", 5, 2), ("width", 12, 2), ("height", 14, 2), ("bpp", 16, 1), ("descriptor", 17, 1))],
    ".ico": [Field(n, o, w, "little") for n, o, w in (("count", 4, 2), ("width", 6, 1), ("height", 7, 1),
             ("bpp", 12, 2), ("bytes", 14, 4), ("offset", 18, 4))],
    ".dds": [Field(n, o, w, "little") for n, o, w in (("header_size", 4, 4), ("flags", 8, 4), ("height", 12, 4),
             ("width", 16, 4), ("pitch", 20, 4), ("depth", 24, 4), ("mipmaps", 28, 4), ("pf_flags", 80, 4),
             ("fourcc", 84, 4), ("bit_count", 88, 4))],
    ".pcx": [Field(n, o, w, "little") for n, o, w in (("bpp", 3, 1), ("xmax", 8, 2), ("ymax", 10, 2), ("planes", 65, 1),
             ("bytes_per_line", 66, 2))],
    ".sgi": [Field(n, o, w) for n, o, w in (("storage", 2, 1), ("bpc", 3, 1), ("dimension", 4, 2), ("xsize", 6, 2),
             ("ysize", 8, 2), ("zsize", 10, 2))],
    ".qoi": [Field(n, o, w) for n, o, w in (("width", 4, 4), ("height", 8, 4), ("channels", 12, 1))],
    ".msp": [Field(n, o, w, "little") for n, o, w in (("width", 4, 2), ("height", 6, 2))],
    ".dib": [Field(n, o, w, "little") for n, o, w in (("header_size", 0, 4), ("width", 4, 4), ("height", 8, 4),
             ("bpp", 14, 2), ("compression", 16, 4), ("colours", 32, 4))],
    ".webp": [Field(n, o, w, "little") for n, o, w in (("riff_size", 4, 4), ("chunk_size", 16, 4), ("dims_vp8l", 21, 4),
              ("vp8_width", 26, 2), ("vp8_height", 28, 2))],
}


@functools.lru_cache(maxsize=None)
def size_fields(name: str) -> tuple[Field, ...]:
    """The fields of seed ``name`` that size or place things: where absurd values are written."""
    data, suffix = seed_bytes(name), suffix_of(name)
    if suffix == ".png":
        found = _png_fields(data)
    elif suffix == ".jpg":
        found = _jpeg_fields(data)
    elif suffix == ".tif":
        found = _ifd_fields(data, 0, "")
    elif suffix in (".ppm", ".pgm", ".pbm"):
        found = _netpbm_fields(data)
    elif suffix == ".gif":
        found = _gif_fields(data)
    elif suffix in _FIXED_FIELDS:
        found = _FIXED_FIELDS[suffix]
    else:  # no parser (JPEG 2000, AVIF, IM, XBM): the first words, either byte order
        found = [Field(f"word{at}.{order}", at, 4, order) for at in range(0, 64, 4) for order in ("big", "little")]
    seen: dict[str, int] = {}
    unique = []
    for f in found:  # labels are the ops' keys: number repeats (``DQT.length#2``)
        if f.offset + f.width <= len(data):
            seen[f.label] = seen.get(f.label, 0) + 1
            unique.append(Field(f"{f.label}#{seen[f.label]}", f.offset, f.width, f.order, f.length_at)
                          if seen[f.label] > 1 else f)
    return tuple(unique)


def png_chunks(data: bytes) -> list[tuple[int, int, str]]:
    """(start, end, type) of each chunk of a PNG."""
    chunks, at = [], 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        end = min(len(data), at + 12 + length)
        chunks.append((at, end, data[at + 4:at + 8].decode("latin-1")))
        at = end
    return chunks


def jpeg_segments(data: bytes) -> list[tuple[int, int, str]]:
    """(start, end, name) of each marker segment of a JPEG before the entropy-coded data."""
    names = {0xC0: "SOF0", 0xC2: "SOF2", 0xC4: "DHT", 0xDB: "DQT", 0xDA: "SOS", 0xE0: "APP0", 0xE1: "APP1"}
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        segments.append((at, at + 2 + length, names.get(marker, f"FF{marker:02X}")))
        if marker == 0xDA:
            break
        at += 2 + length
    return segments


def riff_chunks(data: bytes) -> list[tuple[int, int, str]]:
    chunks, at = [], 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4:at + 8], "little")
        end = min(len(data), at + 8 + size + (size & 1))
        chunks.append((at, end, data[at:at + 4].decode("latin-1")))
        at = end
    return chunks


@functools.lru_cache(maxsize=None)
def chunks_of(name: str) -> tuple[tuple[int, int, str], ...]:
    """The structural chunks of a seed (empty for formats without chunks)."""
    data, suffix = seed_bytes(name), suffix_of(name)
    split = {".png": png_chunks, ".jpg": jpeg_segments, ".webp": riff_chunks}.get(suffix)
    return tuple(split(data)) if split else ()


# --------------------------------------------------------------------------- mutations

ABSURD = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 10 ** 30)
OP_KINDS = ("flip", "truncate", "duplicate", "zero", "field", "chunk-dup", "chunk-drop", "fill")


def _put_field(data: bytearray, f: Field, value: int) -> bytearray:
    if f.order == "text":
        digits = str(value).encode()
        if f.length_at is not None:
            length = int.from_bytes(data[f.length_at:f.length_at + 4], "big") + len(digits) - f.width
            data[f.length_at:f.length_at + 4] = max(0, length).to_bytes(4, "big")
        return data[:f.offset] + digits + data[f.offset + f.width:]
    value = min(value, 256 ** f.width - 1)
    data[f.offset:f.offset + f.width] = value.to_bytes(f.width, f.order)  # type: ignore[arg-type]
    return data


def apply_op(name: str, data: bytearray, op: tuple) -> bytearray:
    """One mutation; ``op`` is ``(kind, ...)`` with positions already within ``data``."""
    kind = op[0]
    if kind == "flip":
        data[op[1]] ^= 1 << op[2]
    elif kind == "truncate":
        del data[op[1]:]
    elif kind == "duplicate":
        data[op[1]:op[1]] = data[op[1]:op[1] + op[2]]
    elif kind == "zero":
        data[op[1]:op[1] + op[2]] = bytes(len(data[op[1]:op[1] + op[2]]))
    elif kind == "fill":
        data[op[1]:op[1] + op[2]] = b"\xff" * len(data[op[1]:op[1] + op[2]])
    elif kind == "field":
        f = next(f for f in size_fields(name) if f.label == op[1])
        if f.offset + f.width <= len(data):
            data = _put_field(data, f, op[2])
    elif kind in ("chunk-dup", "chunk-drop"):
        start, end, _ = chunks_of(name)[op[1]]
        piece = bytes(data[start:end])
        data[start:end] = piece * 2 if kind == "chunk-dup" else b""
    elif kind == "fix-crc":
        data = bytearray(fix_png_crcs(bytes(data)))
    return data


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so that a mutation reaches the decoder instead of the CRC check."""
    out = bytearray(data)
    for start, end, _ in png_chunks(data):
        if end - start >= 12:
            out[end - 4:end] = struct.pack(">I", zlib.crc32(bytes(out[start + 4:end - 4])))
    return bytes(out)


def mutate(name: str, ops: tuple) -> bytes:
    data = bytearray(seed_bytes(name))
    for op in ops:
        data = apply_op(name, data, op)
    return bytes(data)


def random_op(name: str, length: int, draw_int: Callable[[int, int], int], kind: str) -> tuple:
    """A mutation of ``kind`` for a ``length``-byte file; ``draw_int(lo, hi)`` picks (inclusive)."""
    if length == 0 or kind in ("chunk-dup", "chunk-drop") and not chunks_of(name):
        kind = "field"
    if kind == "field":
        fields = size_fields(name)
        return ("field", fields[draw_int(0, len(fields) - 1)].label, ABSURD[draw_int(0, len(ABSURD) - 1)])
    if kind in ("chunk-dup", "chunk-drop"):
        return (kind, draw_int(0, len(chunks_of(name)) - 1))
    if kind == "flip":
        return ("flip", draw_int(0, length - 1), draw_int(0, 7))
    if kind == "truncate":
        return ("truncate", draw_int(0, length - 1))
    return (kind, draw_int(0, length - 1), draw_int(1, 64))


@dataclass(frozen=True)
class Mutant:
    """A mutated seed: the seed's name and the ops that rebuild it (``mutate(seed, ops)``; the bytes are ``data``)."""

    seed: str
    ops: tuple

    @property
    def data(self) -> bytes:
        return mutate(self.seed, self.ops)

    @property
    def suffix(self) -> str:
        return suffix_of(self.seed)


def make_mutant(seed: str, kinds: list[str], draw_int: Callable[[int, int], int], fix_crc: bool = False) -> Mutant:
    """Apply one mutation per entry of ``kinds``, each drawn against the current bytes."""
    ops: list[tuple] = []
    data = bytearray(seed_bytes(seed))
    for kind in kinds:
        op = random_op(seed, len(data), draw_int, kind)
        ops.append(op)
        data = apply_op(seed, data, op)
    if fix_crc and suffix_of(seed) == ".png":
        ops.append(("fix-crc",))
    return Mutant(seed, tuple(ops))


def random_corpus(count: int, rng: random.Random) -> list[Mutant]:
    """``count`` mutants from a seeded RNG, every seed in turn (the real-process corpus)."""
    draw_int = rng.randint
    return [make_mutant(SEED_NAMES[i % len(SEED_NAMES)], rng.choices(OP_KINDS, k=rng.randint(1, 3)), draw_int,
                        fix_crc=rng.random() < 0.5) for i in range(count)]


# --------------------------------------------------------------------------- the oracle


@dataclass
class Input:
    """One input of a run: ``good`` inputs must be processed; others may fail, in one line."""

    path: Path
    data: bytes
    good: bool


def _outputs(out_dir: Path, stem: str) -> list[Path]:
    return [p for p in out_dir.rglob(f"{stem}.*") if not p.name.startswith(".")] if out_dir.is_dir() else []


def readable(source: Path | bytes) -> bool:
    """True if resizer reads ``source`` (a file or bytes) back as a whole image."""
    from resizer.image_io import load_picture

    try:
        load_picture(source, max_pixels=None)
    except Exception:
        return False
    return True


def problems(exit_code: int, stdout: str, stderr: str, inputs: list[Input], out_dir: Path, root: Path,
             as_json: bool = False) -> list[str]:
    """Every broken promise of one run, as short sentences (empty: all kept).

    Promises: exit status 0, 1 or 2, and 0 exactly when every input was written; stderr holds
    only resizer's own lines (no traceback or library warning); a failed input gets exactly
    one stderr line, naming it, and no output; a written output is a whole, readable image;
    good inputs are written whatever their neighbours are; inputs are untouched; no hidden
    temporary file (``.*.part``, ``.*.tmp``) is left anywhere under ``root``.
    """
    found = []
    if exit_code not in (0, 1, 2):
        found.append(f"exit status {exit_code}")
    lines = stderr.splitlines()
    found += [f"foreign stderr line: {line[:160]!r}" for line in lines if not line.startswith("resizer: ")]
    failed = []
    for item in inputs:
        stem, outputs = item.path.stem, _outputs(out_dir, item.path.stem)
        naming = [line for line in lines if stem in line]
        if not outputs:
            failed.append(stem)
            if item.good:
                found.append(f"good input {item.path.name} was not written")
            if len(naming) != 1 or "error" not in naming[0]:
                found.append(f"failed input {item.path.name}: {len(naming)} stderr lines name it, not one error: {naming}")
        else:
            found += [f"unreadable output {p.name}" for p in outputs if not readable(p)]
            found += [f"error line for written {item.path.name}: {line!r}" for line in naming if "error" in line]
        if item.path.read_bytes() != item.data:
            found.append(f"input {item.path.name} was changed")
    if exit_code == 0 and failed:
        found.append(f"exit 0 but {failed} not written")
    if exit_code != 0 and not failed:
        found.append(f"exit {exit_code} but every input was written")
    found += [f"leftover {p.relative_to(root)}" for p in root.rglob(".*")]
    if as_json:
        found += _json_problems(stdout, inputs, failed)
    return found


def _json_problems(stdout: str, inputs: list[Input], failed: list[str]) -> list[str]:
    try:
        records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    except ValueError:
        return [f"--json stdout is not JSON lines: {stdout[:200]!r}"]
    if len(records) != len(inputs):
        return [f"--json printed {len(records)} objects for {len(inputs)} inputs"]
    found = [f"--json status disagrees with the files for {r['input']}" for r in records
             if (r.get("status") == "ok") == (Path(r["input"]).stem in failed)]
    return found + [f"--json error does not name {r['input']}: {r.get('error')!r}" for r in records
                    if r.get("status") == "error" and Path(r["input"]).stem not in str(r.get("error"))]
