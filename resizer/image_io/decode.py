"""Reading image files into pictures: the pixel limit, every Pillow mode, 16-bit colour, CMYK.

Pillow decodes everything it can. It truncates 16-bit RGB/RGBA/LA PNG and TIFF to 8 bits,
so those are read by decoding the same stream twice with Pillow (high bytes, then low
bytes; exact and as fast as Pillow), or by ``tifffile`` for TIFF layouts Pillow cannot
handle. Multi-frame inputs: the first frame is used and ``metadata.frames`` says how many
there were. 32-bit float images, and 32-bit integers outside 0..65535, are refused rather
than mapped: any mapping would silently change the data.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import warnings
import zlib
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageReadError
from .heif import HEIF_EXTRA_HINT, heif_available, is_heif_header
from .metadata import read_metadata, split_xmp
from .orientation import orient_array, orientation_of
from .picture import Metadata, Picture, _PillowPicture, detach, normalise_mode

DEFAULT_MAX_PIXELS = 200_000_000  # ~14k x 14k; refuse decompression bombs above this


# ``shrink(width, height)`` -> the smallest (width, height) worth decoding, or None for every pixel
ShrinkHint = Callable[[int, int], "tuple[int, int] | None"]


def load_picture(source: str | Path | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None,
                 shrink: ShrinkHint | None = None) -> Picture:
    """Read an image file (or its bytes) into a ``Picture``; raises ``ImageReadError``.

    ``name`` labels messages (e.g. "<stdin>" for bytes). The image size is checked against
    ``max_pixels`` from the header, before any pixel is decoded (None: no limit).
    ``shrink`` (shrink-on-load, :mod:`resizer.shrink_on_load`) is asked with the upright
    size; JPEGs are then decoded in the DCT domain at 1/2, 1/4 or 1/8 of it, never below the
    size it returns, and ``metadata.full_size`` keeps the file's size.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<stdin>"
        data = bytes(source)
        if not data:
            raise ImageReadError(f"{label}: empty file (0 bytes)")
        return _load(io.BytesIO(data), label, max_pixels, shrink)
    path = Path(source)
    label = name or str(source)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise ImageReadError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{label}: is a directory, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{label}: permission denied") from None
    except OSError as exc:
        raise ImageReadError(f"{label}: cannot open ({exc.strerror or exc})") from None
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError:  # pragma: no cover
            size = -1
        if size == 0:
            raise ImageReadError(f"{label}: empty file (0 bytes)")
        if path.is_dir():  # pragma: no cover - platforms where open() succeeds on folders
            raise ImageReadError(f"{label}: is a directory, not an image")
        return _load(handle, label, max_pixels, shrink)


_LIMIT_LOCK = threading.Lock()
# resizer applies its own limit (max_pixels) before decoding, so Pillow's warning is noise. A
# process-wide filter because ``warnings.catch_warnings`` is not thread-safe (the pipeline
# loads files from several threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _open(fp: IO[bytes], label: str) -> Image.Image:
    """``Image.open`` (header only) that leaves the pixel limit to us.

    Pillow's own guard (an error above 2 x ``Image.MAX_IMAGE_PIXELS``) would refuse
    images that ``--max-pixels`` allows, so when it fires the header is read again with
    the guard off, and the caller applies ``max_pixels``.
    """
    try:
        return Image.open(fp)
    except Image.DecompressionBombError:
        fp.seek(0)
        with _LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                return Image.open(fp)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        fp.seek(0)
        if is_heif_header(fp.read(12)):
            fp.seek(0)
            if not heif_available():
                raise ImageReadError(f"{label}: HEIC/HEIF {HEIF_EXTRA_HINT}") from None
            return Image.open(fp)
        raise ImageReadError(f"{label}: not an image (or a format resizer cannot read)") from None


def _limit_message(label: str, width: int, height: int, max_pixels: int) -> str:
    return f"{label}: {width}x{height} pixels exceeds the limit of {max_pixels} (--max-pixels)"


def _load(fp: IO[bytes], label: str, max_pixels: int | None, shrink: ShrinkHint | None = None) -> Picture:
    head = fp.read(4)
    fp.seek(0)
    try:
        image = _open(fp, label)
    except ImageReadError:
        if head in (b"II*\x00", b"MM\x00*"):  # TIFF layouts Pillow cannot open (16-bit grey + alpha)
            return _load_tiff_only(fp, label, max_pixels)
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise ImageReadError(f"{label}: corrupt image header ({exc})") from None

    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(_limit_message(label, width, height, max_pixels))
    try:
        full_size = _draft(image, shrink) if shrink is not None else None
        picture = _decode(image, fp, label)
        if full_size is not None:
            picture.metadata.full_size = full_size
        return picture
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{label}: a frame exceeds Pillow's pixel limit ({exc})") from None
    except MemoryError:
        raise ImageReadError(f"{label}: {width}x{height} pixels do not fit in memory") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error) as exc:
        raise ImageReadError(f"{label}: truncated or corrupt {image.format or 'image'} data ({exc})") from None


def _draft(image: Image.Image, shrink: ShrinkHint) -> tuple[int, int] | None:
    """Let a JPEG decode at a reduced size (DCT scaling); the upright full size if it will, else None."""
    if image.format not in ("JPEG", "MPO") or image.mode not in ("L", "RGB", "CMYK"):
        return None
    turned = orientation_of(image) in (5, 6, 7, 8)
    upright = (image.height, image.width) if turned else image.size
    wanted = shrink(*upright)
    if wanted is None:
        return None
    stored = (wanted[1], wanted[0]) if turned else wanted
    before = image.size
    image.draft(image.mode, stored)
    return upright if image.size != before else None


def _count_frames(image: Image.Image) -> int:
    """Frames in the file, leaving ``image`` on the frame Pillow opened it at.

    That is frame 0, except for PSD, where Pillow opens the flattened composite (its
    layers are frames 1..n): the composite is the whole picture, so it counts as one.
    """
    if image.format == "PSD":
        return 1
    opened = image.tell()
    try:
        frames = int(getattr(image, "n_frames", 1))
    except Exception:  # a broken later frame must not stop us using the first one
        frames = 1
    if image.tell() != opened:
        image.seek(opened)
    return frames


def _decode(image: Image.Image, fp: IO[bytes], label: str) -> Picture:
    source_format = image.format
    frames = _count_frames(image)
    wide = _wide_layout(image)
    if wide is not None:
        pixels, image = _read_wide(fp, wide, label)
        orientation = orientation_of(image)
        pixels = orient_array(pixels, orientation)
        icc = image.info.get("icc_profile")
        if image.mode == "CMYK":  # 16-bit CMYK without a profile: the naive formula at 16 bits
            pixels, icc = cmyk16_to_rgb(pixels), None
        result: Image.Image | np.ndarray = pixels
    else:
        tiles = list(image.tile)
        image.load()
        orientation = orientation_of(image)
        oriented = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        result, icc = normalise_mode(oriented, label, image.info.get("icc_profile"))
        if image.format in ("BMP", "DIB") and isinstance(result, Image.Image):
            result = _bmp_alpha(result, image, tiles, fp)
    metadata = read_metadata(image, icc, orientation, source_format, frames)
    if isinstance(result, np.ndarray):
        return Picture(result, metadata)
    return _PillowPicture(metadata=metadata, image=detach(result))


# ---- 16-bit colour: Pillow keeps only the high byte, so decode high and low bytes separately

_SWAPPED = {";16B": ";16L", ";16L": ";16B", ";16N": ";16B" if sys.byteorder == "little" else ";16L"}


def _tile_rawmode(tile: Any) -> str | None:
    args = tile[3]
    rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else None)
    return rawmode if isinstance(rawmode, str) else None


def _wide_layout(image: Image.Image) -> str | None:
    """How to read a 16-bit multi-channel image that Pillow would truncate: "la", "bytes", "tifffile" or None."""
    if image.mode not in ("RGB", "RGBA", "CMYK") or not image.tile:
        return None
    if image.mode == "CMYK" and (image.format != "TIFF" or image.info.get("icc_profile")):
        return None  # LittleCMS (through Pillow) converts 8-bit images only: a CMYK profile wins over depth
    rawmodes = {_tile_rawmode(tile) for tile in image.tile}
    if image.format == "PNG":
        if rawmodes == {"LA;16B"}:
            return "la"
        return "bytes" if rawmodes <= {"RGB;16B", "RGBA;16B"} else None
    if image.format == "TIFF":
        tags = image.tag_v2
        bits = tags.get(258)
        if not isinstance(bits, tuple) or len(bits) < 3 or set(bits) != {16}:
            return None
        sample_format = tags.get(339, 1)
        if set(sample_format if isinstance(sample_format, tuple) else (sample_format,)) != {1}:  # unsigned only
            return None
        swappable = all(m is not None and m.startswith(("RGB;", "RGBA;", "RGBX;", "CMYK;")) and m[-4:] in _SWAPPED
                        for m in rawmodes)
        if tags.get(284, 1) == 1 and swappable:
            return "bytes"
        return "tifffile"
    return None


def _reopen(fp: IO[bytes], rawmode_for: Any) -> Image.Image:
    fp.seek(0)
    image = _open(fp, "<image>")
    tiles = []
    for tile in image.tile:
        args = tile[3]
        new = rawmode_for(_tile_rawmode(tile))
        args = new if isinstance(args, str) else (new,) + tuple(args[1:])
        tiles.append(tile._replace(args=args) if hasattr(tile, "_replace") else (tile[0], tile[1], tile[2], args))
    image.tile = tiles
    image.load()
    return image


_BAND_PIXELS = 1 << 20  # pixels per band when copying out of a Pillow image


def _or_bands(pixels: np.ndarray, image: Image.Image, shift: int) -> None:
    """``pixels = image << shift`` (shift 8: the first pass) or ``pixels |= image`` (shift 0), in row bands."""
    rows = max(1, _BAND_PIXELS // max(1, image.width))
    for top in range(0, image.height, rows):
        band = np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))))
        band = band.reshape(band.shape[0], band.shape[1], -1)
        if shift:
            np.left_shift(band, shift, out=pixels[top:top + rows], dtype=np.uint16)
        else:
            pixels[top:top + rows] |= band


def _read_wide(fp: IO[bytes], layout: str, label: str) -> tuple[np.ndarray, Image.Image]:
    """Exact uint16 pixels plus a loaded Pillow image of the same file (``fp``, read again) for its metadata."""
    if layout == "tifffile":
        fp.seek(0)
        data = fp.read()
        image = _open(io.BytesIO(data), label)
        return _tifffile_pixels(data, label)[0], image
    if layout == "la":  # grey+alpha 16-bit PNG: 4 bytes a pixel, read raw as "RGBA"
        image = _reopen(fp, lambda _: "RGBA")
        raw = np.asarray(image).astype(np.uint16)
        pixels = np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=-1)
    else:  # high bytes, then low bytes, row band by row band: ~12 bytes a pixel at the peak, not ~33
        high = _reopen(fp, lambda m: m)
        pixels = np.empty((high.height, high.width, len(high.getbands())), np.uint16)
        _or_bands(pixels, high, 8)
        del high
        image = _reopen(fp, lambda m: m[:-4] + _SWAPPED[m[-4:]])
        _or_bands(pixels, image, 0)
    transparency = image.info.get("transparency")
    if isinstance(transparency, tuple) and pixels.shape[2] == 3:  # 16-bit colour key (PNG tRNS)
        alpha = np.where(np.all(pixels == np.array(transparency, np.uint16), axis=2), 0, 65535)
        pixels = np.concatenate([pixels, alpha.astype(np.uint16)[:, :, None]], axis=2)
    return np.ascontiguousarray(pixels), image


def _tifffile_pixels(data: bytes, label: str) -> tuple[np.ndarray, Any]:
    try:
        import tifffile
    except ImportError:
        raise ImageReadError(f"{label}: this 16-bit TIFF layout needs the 'tifffile' package") from None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            page = tiff.pages[0]
            pixels = page.asarray()
            axes = page.axes
            extrasamples = tuple(page.extrasamples or ())
            tags = {tag.code: tag.value for tag in page.tags.values()}
            tags["frames"] = len(tiff.pages)
    except Exception as exc:
        if "imagecodecs" in str(exc):
            raise ImageReadError(f"{label}: this TIFF's compression needs the optional 'imagecodecs' package "
                                 "(pip install 'resizer[tiff]')") from None
        raise ImageReadError(f"{label}: cannot decode this TIFF ({exc})") from None
    if axes.startswith("S"):
        pixels = np.moveaxis(pixels, 0, -1)
    elif pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.ndim != 3 or pixels.dtype not in (np.uint8, np.uint16) or not 1 <= pixels.shape[2] <= 4:
        raise ImageReadError(f"{label}: unsupported TIFF layout {axes} {pixels.dtype}")
    pixels = np.ascontiguousarray(pixels)
    if extrasamples and extrasamples[0] == 1:  # associated alpha -> straight alpha
        peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
        colour = pixels[..., :-1].astype(np.float64)
        alpha = pixels[..., -1:].astype(np.float64)
        straight = np.where(alpha > 0, colour * peak / np.maximum(alpha, 1), 0)
        pixels[..., :-1] = np.clip(np.round(straight), 0, peak).astype(pixels.dtype)
    return pixels, tags


def cmyk16_to_rgb(pixels: np.ndarray) -> np.ndarray:
    """uint16 CMYK (H, W, 4) -> uint16 RGB: ``(1 - C)(1 - K)``, Pillow's CMYK formula at 16 bits, rounded."""
    inverse = 65535 - pixels.astype(np.uint32)
    rgb = (inverse[..., :3] * inverse[..., 3:] + 32767) // 65535
    return np.ascontiguousarray(rgb.astype(np.uint16))


def _bmp_alpha(result: Image.Image, image: Image.Image, tiles: list[Any], fp: IO[bytes]) -> Image.Image:
    """A 32-bit uncompressed (BI_RGB) BMP whose fourth bytes are not all zero carries alpha there
    (Pillow, and many tools, write RGBA that way); Pillow reads those bytes as padding. All zero:
    padding, the image is opaque. BI_BITFIELDS files say where alpha is, and Pillow follows them."""
    if (result.mode != "RGB" or image.info.get("compression", 0) != 0 or len(tiles) != 1
            or tiles[0][0] != "raw" or _tile_rawmode(tiles[0]) != "BGRX"):
        return result
    _, extents, offset, args = tiles[0]
    stride, direction = (args[1], args[2]) if isinstance(args, tuple) and len(args) >= 3 else (0, 1)
    width, height = extents[2] - extents[0], extents[3] - extents[1]
    fp.seek(offset)
    data = fp.read(abs(stride or width * 4) * height)
    rgba = Image.frombytes("RGBA", (width, height), data, "raw", "BGRA", stride, direction)
    if rgba.getchannel("A").getextrema() == (0, 0):
        return result
    return rgba


def _load_tiff_only(fp: IO[bytes], label: str, max_pixels: int | None) -> Picture:
    """TIFFs Pillow cannot open at all (e.g. 16-bit grey + alpha): pixels and basic tags via tifffile."""
    fp.seek(0)
    data = fp.read()
    try:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            shape, axes = tiff.pages[0].shape, tiff.pages[0].axes
    except ImportError:
        raise ImageReadError(f"{label}: not an image (or a format resizer cannot read)") from None
    except Exception:
        raise ImageReadError(f"{label}: not an image (or a format resizer cannot read)") from None
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(_limit_message(label, width, height, max_pixels))
    pixels, tags = _tifffile_pixels(data, label)
    orientation = tags.get(274, 1)
    pixels = orient_array(pixels, int(orientation) if isinstance(orientation, int) else 1)
    metadata = Metadata(icc_profile=_as_bytes(tags.get(34675)), source_format="TIFF", frames=tags["frames"])
    xmp = _as_bytes(tags.get(700))
    if xmp:
        metadata.xmp, metadata.text = split_xmp(xmp)
    if 282 in tags and 283 in tags and tags.get(296, 2) in (2, 3):
        to_inch = 1.0 if tags.get(296, 2) == 2 else 2.54
        xres, yres = (_rational(tags[282]), _rational(tags[283]))
        if xres and yres:
            metadata.dpi = (xres * to_inch, yres * to_inch)
    return Picture(pixels, metadata)


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return value[0] / value[1] if value[1] else 0.0
    return float(value)


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return bytes(value) if value else None
