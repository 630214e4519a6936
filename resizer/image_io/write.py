"""Writing pictures: atomic saves, format parameters, and the 16-bit colour PNG/TIFF writers.

Decisions worth knowing: alpha into a format without alpha (JPEG, PPM) is composited onto
white; 16 bits into an 8-bit-only format is rounded (``to_8bit``), never truncated; TIFF is
written uncompressed (Pillow's compressing libtiff writer cannot write EXIF sub-IFDs, so
compression would lose camera data); Pillow cannot write 16-bit colour, so PNG gets a small
chunk writer (metadata chunks still come from Pillow) and TIFF goes through ``tifffile``.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import ImageWriteError
from ..files import atomic_path
from .formats import output_format
from .heif import HEIF_EXTRA_HINT, HEIF_QUALITY, heif_available
from .metadata import check_text, text_comment, xmp_with_text
from .orientation import ORIENTATION_TAG
from .picture import Metadata, Picture, array_to_pil, picture_to_pil, to_8bit

@dataclass(frozen=True)
class EncodeOptions:
    """Per-format choices users ask for; each is ignored by formats it does not apply to."""

    progressive: bool = False  # JPEG: progressive scans (a blurry whole first, on slow links)
    subsampling: str | None = None  # JPEG chroma: "4:4:4", "4:2:2" or "4:2:0" (None: libjpeg's 4:2:0)
    lossless: bool = False  # WebP: lossless (``quality`` is then the compression effort)
    compact_text: bool = False  # JPEG without other XMP: resizer's keys in a comment, not XMP (``encode --max-bytes``)


SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NO_ALPHA = {"JPEG", "PPM"}
JPEG_QUALITY = 92
WEBP_QUALITY = 90
AVIF_QUALITY = 85


def save_picture(picture: Picture, path: str | Path, *, format: str | None = None, quality: int | None = None,
                 strip: bool = False, overwrite: bool = False, options: EncodeOptions | None = None) -> None:
    """Write atomically (:func:`resizer.files.atomic_path`); raises ``ImageWriteError``.

    The format comes from ``format`` or the suffix. Missing folders are created. On any
    failure, Ctrl-C included, the temp file is removed and the target is untouched; a
    replaced file keeps its permissions, a new one gets the umask's.
    """
    path = Path(path)
    fmt = output_format(path, format)
    _save_atomically(path, overwrite, lambda handle: _encode_into(picture, fmt, handle, quality=quality, strip=strip,
                                                                  label=str(path), options=options))


def save_encoded(data: bytes, path: str | Path, *, overwrite: bool = False) -> None:
    """Write an already encoded file (``encode_picture``'s bytes, exactly) with :func:`save_picture`'s rules."""
    _save_atomically(Path(path), overwrite, lambda handle: handle.write(data))


def _save_atomically(path: Path, overwrite: bool, write: Callable[[IO[bytes]], Any]) -> None:
    if path.is_dir():
        raise ImageWriteError(f"{path}: is a directory")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ImageWriteError(f"{path}: exists (use --overwrite)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot create folder {folder} ({exc.strerror or exc})") from None
    temp_made = False
    try:
        with atomic_path(path, suffix=".part", replace=overwrite) as temp:
            temp_made = True
            with open(temp, "wb") as handle:
                write(handle)
    except OSError as exc:
        where = "write" if temp_made else f"write into {folder}"
        raise ImageWriteError(f"{path}: cannot {where} ({exc.strerror or exc})") from None


def encode_picture(picture: Picture, format: str, *, quality: int | None = None, strip: bool = False,
                   options: EncodeOptions | None = None, label: str = "<stdout>") -> bytes:
    """Encode to bytes in ``format`` (standard output, object storage); ``label`` names the target in errors."""
    fmt = output_format(None, format)
    buffer = io.BytesIO()
    _encode_into(picture, fmt, buffer, quality=quality, strip=strip, label=label, options=options)
    return buffer.getvalue()


def _encode_into(picture: Picture, fmt: str, handle: IO[bytes], *, quality: int | None, strip: bool,
                 label: str, options: EncodeOptions | None = None) -> None:
    meta = picture.metadata
    check_text(meta.text)
    if quality is not None and not 1 <= quality <= 100:
        raise ImageWriteError(f"{label}: quality must be 1..100, not {quality}")
    params = _save_params(meta, fmt, quality, strip)
    params.update(_option_params(fmt, options))
    if fmt == "JPEG" and options is not None and options.compact_text and (strip or not meta.xmp):
        comment = text_comment(meta.text)
        if comment is not None:
            params.pop("xmp", None)
            params["comment"] = comment
    try:
        if picture.bit_depth == 16 and picture.channels > 1 and fmt == "PNG":
            _write_png16(picture.pixels, handle, params)
            return
        if picture.bit_depth == 16 and picture.channels > 1 and fmt == "TIFF":
            _write_tiff16(picture.pixels, handle, meta, strip, label)
            return
        if fmt == "HEIF" and not heif_available():
            raise ImageWriteError(f"{label}: writing HEIC/HEIF {HEIF_EXTRA_HINT}")
        image = _image_for(picture, fmt)
        image.save(handle, fmt, **params)
    except (ValueError, KeyError, TypeError, RuntimeError, struct.error, zlib.error) as exc:
        raise ImageWriteError(f"{label}: cannot encode as {fmt} ({exc})") from None


def _image_for(picture: Picture, fmt: str) -> Image.Image:
    """A Pillow image the format can hold: 16 -> 8 bits where needed, alpha composited on white where unsupported."""
    keep16 = picture.bit_depth == 16 and picture.channels == 1 and fmt in ("PNG", "TIFF", "PPM")
    if picture.bit_depth == 16 and not keep16:
        image = array_to_pil(to_8bit(picture.pixels))
    else:
        image = picture_to_pil(picture)
    if fmt in _NO_ALPHA and image.mode in ("LA", "RGBA"):
        opaque = "L" if image.mode == "LA" else "RGB"
        background = Image.new(image.mode, image.size, (255, 255) if opaque == "L" else (255, 255, 255, 255))
        image = Image.alpha_composite(background.convert("RGBA"), image.convert("RGBA")).convert(opaque)
    elif image.mode == "LA" and fmt in ("BMP", "GIF"):
        image = image.convert("RGBA")
    return image


def _save_params(meta: Metadata, fmt: str, quality: int | None, strip: bool) -> dict[str, Any]:
    icc = None if strip else meta.icc_profile
    exif = None if strip else meta.exif
    dpi = None if strip else meta.dpi
    xmp = None if strip else meta.xmp
    params: dict[str, Any] = {}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in ({} if strip else meta.png_text).items():
            info.add_itxt(key, value)
        for key, value in meta.text.items():
            info.add_itxt(key, value)
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        params.update(pnginfo=info, icc_profile=icc)
        if exif:
            params["exif"] = exif
        if dpi:
            params["dpi"] = dpi
        return params
    if fmt in ("JPEG", "WEBP", "AVIF", "TIFF", "HEIF"):
        xmp = xmp_with_text(xmp, meta.text)
        if icc:
            params["icc_profile"] = icc
        if fmt == "TIFF":  # Pillow ignores ``exif`` when ``tiffinfo`` is given: one mapping for both
            tags = Image.Exif()
            if exif:
                tags.load(exif)
                tags.pop(ORIENTATION_TAG, None)  # a TIFF's orientation is its own tag; pixels are upright
            if xmp:
                tags[700] = xmp
            if len(tags):
                params["tiffinfo"] = tags
        else:
            if exif:
                params["exif"] = exif
            if xmp:
                params["xmp"] = xmp
        default_quality = {"JPEG": JPEG_QUALITY, "WEBP": WEBP_QUALITY, "AVIF": AVIF_QUALITY, "HEIF": HEIF_QUALITY}.get(fmt)
        if default_quality is not None:
            params["quality"] = quality if quality is not None else default_quality
        if fmt == "JPEG":  # optimized Huffman tables: the same pixels in 4-12 % fewer bytes
            params["optimize"] = True
    if fmt == "JPEG2000":
        # Pillow writes no XMP box for JPEG 2000: the packet (resizer's keys included) goes in the
        # codestream comment, where ``read_metadata`` looks for it.
        packet = xmp_with_text(xmp, meta.text)
        if packet:
            params["comment"] = packet
        params.update(_jpeg2000_quality(quality if quality is not None else JPEG_QUALITY))
    if dpi and fmt in ("JPEG", "TIFF", "BMP"):
        params["dpi"] = tuple(round(v) for v in dpi) if fmt == "JPEG" else dpi
    return params


def _option_params(fmt: str, options: EncodeOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    params: dict[str, Any] = {}
    if fmt == "JPEG":
        if options.progressive:
            params["progressive"] = True
        if options.subsampling is not None:
            params["subsampling"] = options.subsampling
    if fmt == "WEBP" and options.lossless:
        params["lossless"] = True
    return params


def _jpeg2000_quality(quality: int) -> dict[str, Any]:
    """Quality 1..100 as a JPEG 2000 compression ratio of ``80 * exp(-0.026 Q)``; 100 is lossless.

    The curve follows JPEG's bits per pixel on photographs at the same quality (about 0.5
    bpp at 20, 1.1 at 50 and 3.5 at 95), so ``--quality`` means roughly the same size in
    both codecs.
    """
    if quality >= 100:
        return {"irreversible": False}
    return {"irreversible": True, "quality_mode": "rates", "quality_layers": [80.0 * math.exp(-0.026 * quality)]}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _write_png16(pixels: np.ndarray, handle: IO[bytes], params: dict[str, Any]) -> None:
    """16-bit LA/RGB/RGBA PNG: Pillow writes the metadata chunks around a 1x1 stand-in, we write IHDR and IDAT."""
    height, width, channels = pixels.shape
    stand_in = io.BytesIO()
    Image.new("L", (1, 1)).save(stand_in, "PNG", **params)
    rows = np.ascontiguousarray(pixels, dtype=">u2").reshape(height, width * channels).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # "Up" filter: the byte minus the one above, modulo 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    compressed = zlib.compress(memoryview(filtered).cast("B"), 6)
    header = struct.pack(">IIBBBBB", width, height, 16, {2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    data = stand_in.getvalue()
    handle.write(_PNG_SIGNATURE)
    position, wrote_pixels = len(_PNG_SIGNATURE), False
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            handle.write(_png_chunk(kind, header))
        elif kind == b"IDAT":
            if not wrote_pixels:
                step = 1 << 24
                for start in range(0, max(len(compressed), 1), step):
                    handle.write(_png_chunk(b"IDAT", compressed[start:start + step]))
                wrote_pixels = True
        else:
            handle.write(_png_chunk(kind, body))


def _write_tiff16(pixels: np.ndarray, handle: IO[bytes], meta: Metadata, strip: bool, label: str) -> None:
    """16-bit LA/RGB/RGBA TIFF through tifffile (Pillow cannot write them). EXIF is not carried here."""
    try:
        import tifffile
    except ImportError:
        raise ImageWriteError(f"{label}: writing 16-bit colour TIFF needs the 'tifffile' package") from None
    channels = pixels.shape[2]
    xmp = xmp_with_text(None if strip else meta.xmp, meta.text)
    kwargs: dict[str, Any] = {
        "photometric": "rgb" if channels >= 3 else "minisblack",
        "metadata": None,
        "software": "resizer",
    }
    if channels in (2, 4):
        kwargs["extrasamples"] = ["unassalpha"]
    if not strip and meta.icc_profile:
        kwargs["iccprofile"] = meta.icc_profile
    if not strip and meta.dpi:
        kwargs["resolution"] = meta.dpi
        kwargs["resolutionunit"] = "INCH"
    if xmp:
        kwargs["extratags"] = [(700, 1, len(xmp), xmp, True)]
    buffer = io.BytesIO()  # tifffile wants a named file or a BytesIO, not an fd-backed handle
    tifffile.imwrite(buffer, np.ascontiguousarray(pixels), **kwargs)
    handle.write(buffer.getbuffer())
