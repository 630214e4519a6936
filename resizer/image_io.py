"""Image reading and writing that loses nothing: orientation, ICC, EXIF, DPI, alpha, 16 bits.

CONTRACT (shared with the pipeline, the engine and the methods; do not change the
names or signatures without telling the lead):

- ``Picture.pixels`` is an ``(H, W, C)`` numpy array, ``uint8`` or ``uint16``,
  C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA). Alpha is always last.
- ``Metadata`` is carried from input to output; ``text`` holds key/value pairs that
  resizer itself writes (pairing metadata of learned down/up methods).

Decisions worth knowing:

- Pillow decodes and encodes everything it can. It truncates 16-bit RGB/RGBA/LA PNG and
  TIFF to 8 bits, so those are read by decoding the same stream twice with Pillow (high
  bytes, then low bytes; exact and as fast as Pillow) and written by a small PNG chunk
  writer (metadata chunks still come from Pillow) or by ``tifffile`` for TIFF.
- Pixels loaded from 8-bit files stay inside the Pillow image until someone reads
  ``.pixels`` (then a read-only array is made once): load -> classical resize -> save
  never pays the ~45 ms per 12 MP array copy.
- Multi-frame inputs (GIF, APNG, animated WebP, multi-page TIFF, MPO): the first frame is
  used and ``metadata.frames`` says how many there were, so the caller can warn.
- 32-bit float images (mode ``F``) and 32-bit integer images with samples outside
  0..65535 are refused rather than mapped: any mapping would silently change the data.
- Alpha into a format without alpha (JPEG, PPM) is composited onto white.
- TIFF is written uncompressed (Pillow's and most editors' default): Pillow's compressing
  (libtiff) writer cannot write EXIF sub-IFDs, so compression would lose camera data.
- 16 bits into an 8-bit-only format is rounded (x / 257), never truncated.
- ``metadata.text`` is written to PNG text chunks, and to JPEG/WebP/AVIF/TIFF as an XMP
  block in the ``resizer`` namespace; it is read back from both. ``strip=True`` drops ICC,
  EXIF, DPI, XMP and foreign PNG text but keeps resizer's own ``text`` (pairing data).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError, features

from .errors import ImageReadError, ImageWriteError

DEFAULT_MAX_PIXELS = 200_000_000  # ~14k x 14k; refuse decompression bombs above this

RESIZER_XMP_NS = "http://ns.resizer.invalid/1.0/"
_TEXT_KEY = re.compile(r"^resizer:([A-Za-z_][A-Za-z0-9_.-]*)$")
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_QUALITY = 92
WEBP_QUALITY = 90
AVIF_QUALITY = 85


@dataclass
class Metadata:
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset to 1; starts with b"Exif\0\0"
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None  # without resizer's own block (that is in ``text``)
    text: dict[str, str] = field(default_factory=dict)  # resizer's own keys, "resizer:<name>"
    source_format: str | None = None  # e.g. "PNG", "JPEG"
    frames: int = 1  # frames in the source; only the first is used
    png_text: dict[str, str] = field(default_factory=dict)  # other PNG text chunks, written to PNG only


@dataclass
class Picture:
    """Pixels plus metadata. Pictures from ``load_picture`` (8-bit) and the classical methods
    may hand out read-only pixel arrays: copy before editing in place."""

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


class _PillowPicture(Picture):
    """A Picture whose 8-bit pixels still live in a Pillow image (L, LA, RGB or RGBA).

    The array is built on first access (read-only, so it can never drift from the image);
    assigning ``pixels`` drops the image. Construct it through ``picture_from_pil``.
    """

    def __init__(self, pixels: np.ndarray | None = None, metadata: Metadata | None = None, *,
                 image: Image.Image | None = None) -> None:
        self._image = image
        self._array: np.ndarray | None = None
        if pixels is not None:
            self.pixels = pixels
        self.metadata = metadata if metadata is not None else Metadata()

    @property  # type: ignore[override]
    def pixels(self) -> np.ndarray:
        if self._array is None:
            array = np.asarray(self._image)
            if array.ndim == 2:
                array = array[:, :, np.newaxis]
            array.flags.writeable = False
            self._array = array
        return self._array

    @pixels.setter
    def pixels(self, value: np.ndarray) -> None:
        self._array = value
        self._image = None

    @property
    def width(self) -> int:
        return self._image.width if self._image is not None else super().width

    @property
    def height(self) -> int:
        return self._image.height if self._image is not None else super().height

    @property
    def channels(self) -> int:
        return len(self._image.getbands()) if self._image is not None else super().channels

    @property
    def bit_depth(self) -> int:
        return 8 if self._image is not None else super().bit_depth


# --------------------------------------------------------------------------- formats

_WRITE_FORMATS: dict[str, str] = {
    "png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "jfif": "JPEG", "webp": "WEBP",
    "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP", "gif": "GIF", "ppm": "PPM", "pgm": "PPM", "pnm": "PPM",
}
if features.check("avif"):
    _WRITE_FORMATS["avif"] = "AVIF"
if features.check("jpg_2000"):
    _WRITE_FORMATS.update({"jp2": "JPEG2000", "j2k": "JPEG2000"})
WRITE_FORMATS: frozenset[str] = frozenset(_WRITE_FORMATS)  # names accepted by ``format=`` / suffixes

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {f".{name}" for name in _WRITE_FORMATS} | {".pbm", ".dib", ".tga", ".apng"}
)

_NO_ALPHA = {"JPEG", "PPM"}


def is_image_path(path: str | Path) -> bool:
    """True if the suffix is one resizer reads (used to pick files from folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def output_format(path: str | Path | None, format: str | None = None) -> str:
    """The Pillow format name for ``format`` (e.g. "jpg") or else ``path``'s suffix; raises ``ImageWriteError``."""
    key = (format or (Path(path).suffix if path is not None else "")).lower().lstrip(".")
    if key not in _WRITE_FORMATS:
        label = str(path) if path is not None else "<stdout>"
        known = ", ".join(sorted(_WRITE_FORMATS))
        what = f"format '{format}'" if format else f"suffix '{Path(label).suffix}'"
        raise ImageWriteError(f"{label}: unknown output {what} (known: {known})")
    return _WRITE_FORMATS[key]


# --------------------------------------------------------------------------- Pillow <-> Picture

def _detach(image: Image.Image) -> Image.Image:
    """A plain ``Image`` sharing ``image``'s pixel memory, with no file, no ``info`` and no TIFF tags.

    Pillow's savers fall back on ``im.info`` (and TIFF tags) for ICC, transparency...;
    a detached image makes the metadata we pass the only metadata written.
    """
    try:
        detached = image._new(image.im)  # shares the core image: no copy
    except AttributeError:  # pragma: no cover - a Pillow without Image._new
        detached = image.copy()
    detached.info = {}
    return detached


def picture_from_pil(image: Image.Image, metadata: Metadata | None = None) -> Picture:
    """Wrap an L/LA/RGB/RGBA/I;16 Pillow image without copying; other modes are converted.

    The picture shares the image's memory: do not modify the image afterwards.
    """
    metadata = metadata if metadata is not None else Metadata()
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return _PillowPicture(metadata=metadata, image=_detach(image))
    result, _ = _normalise(image, "<image>")
    if isinstance(result, np.ndarray):
        return Picture(result, metadata)
    return _PillowPicture(metadata=metadata, image=_detach(result))


def picture_to_pil(picture: Picture) -> Image.Image:
    """The picture as a Pillow image (L, LA, RGB, RGBA or I;16), shared when it already is one.

    Treat the result as read-only. 16-bit pictures with more than one channel have no
    Pillow mode and raise ``ValueError``.
    """
    if isinstance(picture, _PillowPicture) and picture._image is not None:
        return picture._image
    return _array_to_pil(picture.pixels)


def _array_to_pil(pixels: np.ndarray) -> Image.Image:
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise ValueError(f"pixels must be (H, W, C) with C in 1..4, not {pixels.shape}")
    if pixels.dtype == np.uint8:
        if pixels.shape[2] == 1:
            return Image.fromarray(pixels[:, :, 0])
        return Image.fromarray(pixels)  # LA, RGB or RGBA by shape
    if pixels.dtype == np.uint16:
        if pixels.shape[2] != 1:
            raise ValueError("16-bit pictures with more than one channel have no Pillow mode")
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]))  # I;16
    raise ValueError(f"pixels must be uint8 or uint16, not {pixels.dtype}")


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding x / 257 (exact inverse of x * 257); uint8 is returned as is."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


# --------------------------------------------------------------------------- reading

def load_picture(source: str | Path | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None) -> Picture:
    """Read an image file (or its bytes) into a ``Picture``; raises ``ImageReadError``.

    ``name`` labels messages (e.g. "<stdin>" for bytes). The image size is checked against
    ``max_pixels`` from the header, before any pixel is decoded (None: no limit).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<stdin>"
        data = bytes(source)
        if not data:
            raise ImageReadError(f"{label}: empty file (0 bytes)")
        return _load(io.BytesIO(data), label, max_pixels)
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
        return _load(handle, label, max_pixels)


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
        raise ImageReadError(f"{label}: not an image (or a format resizer cannot read)") from None


def _limit_message(label: str, width: int, height: int, max_pixels: int) -> str:
    return f"{label}: {width}x{height} pixels exceeds the limit of {max_pixels} (--max-pixels)"


def _load(fp: IO[bytes], label: str, max_pixels: int | None) -> Picture:
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
        return _decode(image, fp, label)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{label}: a frame exceeds Pillow's pixel limit ({exc})") from None
    except MemoryError:
        raise ImageReadError(f"{label}: {width}x{height} pixels do not fit in memory") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error) as exc:
        raise ImageReadError(f"{label}: truncated or corrupt {image.format or 'image'} data ({exc})") from None


def _count_frames(image: Image.Image) -> int:
    try:
        frames = int(getattr(image, "n_frames", 1))
    except Exception:  # a broken later frame must not stop us using the first one
        frames = 1
    if frames > 1 or image.tell() != 0:
        image.seek(0)
    return frames


def _decode(image: Image.Image, fp: IO[bytes], label: str) -> Picture:
    source_format = image.format
    frames = _count_frames(image)
    wide = _wide_layout(image)
    if wide is not None:
        fp.seek(0)
        pixels, image = _read_wide(fp.read(), wide, label)
        orientation = _orientation_of(image)
        pixels = _orient_array(pixels, orientation)
        result: Image.Image | np.ndarray = pixels
        icc = image.info.get("icc_profile")
    else:
        image.load()
        orientation = _orientation_of(image)
        oriented = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        result, icc = _normalise(oriented, label, image.info.get("icc_profile"))
    metadata = _read_metadata(image, icc, orientation, source_format, frames)
    if isinstance(result, np.ndarray):
        return Picture(result, metadata)
    return _PillowPicture(metadata=metadata, image=_detach(result))


def _normalise(image: Image.Image, label: str, icc: bytes | None = None) -> tuple[Image.Image | np.ndarray, bytes | None]:
    """Bring any Pillow mode to L/LA/RGB/RGBA (8 bits) or a uint16 array; returns (result, icc)."""
    mode = image.mode
    transparency = image.info.get("transparency")
    if mode in ("L", "RGB") and transparency is not None:
        return image.convert("LA" if mode == "L" else "RGBA"), icc
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image, icc
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        array = np.asarray(image)
        if mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(f"{label}: 32-bit integer samples outside 0..65535 are not supported")
        grey = array.astype(np.uint16)[:, :, np.newaxis]
        if transparency is not None and not isinstance(transparency, (bytes, tuple)):
            alpha = np.where(grey == int(transparency), 0, 65535).astype(np.uint16)
            grey = np.concatenate([grey, alpha], axis=2)
        return grey, icc
    if mode == "F":
        raise ImageReadError(f"{label}: 32-bit floating-point images are not supported (convert to 16-bit first)")
    if mode == "1":
        return image.convert("L"), icc
    if mode in ("P", "PA"):
        return image.convert("RGBA" if mode == "PA" or image.has_transparency_data else "RGB"), icc
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc), None  # the CMYK profile no longer applies
    target = {"RGBX": "RGB", "RGBa": "RGBA", "La": "LA", "YCbCr": "RGB"}.get(mode)
    try:
        return image.convert(target or ("RGBA" if image.has_transparency_data else "RGB")), icc
    except ValueError:
        raise ImageReadError(f"{label}: unsupported image mode {mode}") from None


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Through the embedded profile when LittleCMS accepts it (what print files need), else Pillow's naive formula."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(image, source, target, outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:  # ImageCms missing, a broken or non-CMYK profile
            pass
    return image.convert("RGB")


# ---- 16-bit colour: Pillow keeps only the high byte, so decode high and low bytes separately

_SWAPPED = {";16B": ";16L", ";16L": ";16B", ";16N": ";16B" if sys.byteorder == "little" else ";16L"}


def _tile_rawmode(tile: Any) -> str | None:
    args = tile[3]
    rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else None)
    return rawmode if isinstance(rawmode, str) else None


def _wide_layout(image: Image.Image) -> str | None:
    """How to read a 16-bit multi-channel image that Pillow would truncate: "la", "bytes", "tifffile" or None."""
    if image.mode not in ("RGB", "RGBA") or not image.tile:
        return None
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
        swappable = all(m is not None and m.startswith(("RGB;", "RGBA;", "RGBX;")) and m[-4:] in _SWAPPED
                        for m in rawmodes)
        if tags.get(284, 1) == 1 and swappable:
            return "bytes"
        return "tifffile"
    return None


def _reopen(data: bytes, rawmode_for: Any) -> Image.Image:
    image = _open(io.BytesIO(data), "<image>")
    tiles = []
    for tile in image.tile:
        args = tile[3]
        new = rawmode_for(_tile_rawmode(tile))
        args = new if isinstance(args, str) else (new,) + tuple(args[1:])
        tiles.append(tile._replace(args=args) if hasattr(tile, "_replace") else (tile[0], tile[1], tile[2], args))
    image.tile = tiles
    image.load()
    return image


def _read_wide(data: bytes, layout: str, label: str) -> tuple[np.ndarray, Image.Image]:
    """Exact uint16 pixels plus a loaded Pillow image of the same file for its metadata."""
    if layout == "tifffile":
        image = _open(io.BytesIO(data), label)
        return _tifffile_pixels(data, label)[0], image
    if layout == "la":  # grey+alpha 16-bit PNG: 4 bytes a pixel, read raw as "RGBA"
        image = _reopen(data, lambda _: "RGBA")
        raw = np.asarray(image).astype(np.uint16)
        pixels = np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=-1)
    else:
        high = np.asarray(_reopen(data, lambda m: m))
        image = _reopen(data, lambda m: m[:-4] + _SWAPPED[m[-4:]])
        pixels = high.astype(np.uint16) << 8 | np.asarray(image).astype(np.uint16)
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
    pixels = _orient_array(pixels, int(orientation) if isinstance(orientation, int) else 1)
    metadata = Metadata(icc_profile=_as_bytes(tags.get(34675)), source_format="TIFF", frames=tags["frames"])
    xmp = _as_bytes(tags.get(700))
    if xmp:
        metadata.xmp, metadata.text = _split_xmp(xmp)
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


# ---- orientation

def _orientation_of(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block is not worth refusing the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient_array(pixels: np.ndarray, orientation: int) -> np.ndarray:
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


def _reset_exif_orientation(exif: bytes) -> bytes:
    """Set the orientation entry of IFD0 to 1 in place, keeping every other byte (maker notes too)."""
    body = bytearray(exif[len(_EXIF_PREFIX):] if exif.startswith(_EXIF_PREFIX) else exif)
    try:
        endian = {b"II": "<", b"MM": ">"}[bytes(body[:2])]
        (offset,) = struct.unpack_from(endian + "I", body, 4)
        (count,) = struct.unpack_from(endian + "H", body, offset)
        for index in range(count):
            entry = offset + 2 + 12 * index
            tag, kind, number = struct.unpack_from(endian + "HHI", body, entry)
            if tag == _ORIENTATION:
                if kind == 3 and number == 1:
                    struct.pack_into(endian + "H", body, entry + 8, 1)
                    return _EXIF_PREFIX + bytes(body)
                break
        else:
            return _EXIF_PREFIX + bytes(body)
    except (KeyError, struct.error):
        pass
    parsed = Image.Exif()
    parsed.load(exif)
    parsed[_ORIENTATION] = 1
    return parsed.tobytes()


_XMP_ORIENTATION = (re.compile(rb'tiff:Orientation="[0-9]"'), re.compile(rb"<tiff:Orientation>[0-9]</tiff:Orientation>"))


def _reset_xmp_orientation(xmp: bytes) -> bytes:
    xmp = _XMP_ORIENTATION[0].sub(b'tiff:Orientation="1"', xmp)
    return _XMP_ORIENTATION[1].sub(b"<tiff:Orientation>1</tiff:Orientation>", xmp)


# ---- metadata

_TIFF_EXIF_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)  # description, make, model, software, date, artist, copyright


def _read_metadata(image: Image.Image, icc: bytes | None, orientation: int, source_format: str | None,
                   frames: int) -> Metadata:
    info = image.info
    metadata = Metadata(icc_profile=icc or None, source_format=source_format, frames=frames)
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(float(v) > 0 for v in dpi):
        metadata.dpi = (float(dpi[0]), float(dpi[1]))
    metadata.exif = _read_exif(image, orientation)
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if not xmp and source_format == "JPEG2000" and b"<x:xmpmeta" in bytes(info.get("comment") or b""):
        xmp = info["comment"]  # resizer writes its XMP packet into the codestream comment
    if xmp:
        xmp = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
        if orientation != 1:
            xmp = _reset_xmp_orientation(xmp)
        metadata.xmp, metadata.text = _split_xmp(xmp)
    if source_format == "PNG":
        for key, value in (getattr(image, "text", None) or {}).items():
            if key.startswith("resizer:"):
                metadata.text[key] = str(value)
            elif key != "XML:com.adobe.xmp" and not key.startswith("Raw profile type"):
                metadata.png_text[key] = str(value)
    return metadata


def _read_exif(image: Image.Image, orientation: int) -> bytes | None:
    raw = image.info.get("exif")
    try:
        if raw:
            raw = bytes(raw)
            if not raw.startswith(_EXIF_PREFIX):
                raw = _EXIF_PREFIX + raw  # WebP stores the TIFF block bare
            return _reset_exif_orientation(raw) if orientation != 1 else raw
        exif = image.getexif()
        if not len(exif):
            return None
        if image.format == "TIFF":  # IFD0 of a TIFF is its own structure: keep only the descriptive tags
            clean = Image.Exif()
            for tag in _TIFF_EXIF_TAGS:
                if tag in exif:
                    clean[tag] = exif[tag]
            for pointer in (0x8769, 0x8825):  # Exif and GPS sub-IFDs
                sub = exif.get_ifd(pointer)
                if sub:
                    clean[pointer] = dict(sub)
            exif = clean
            if not len(exif):
                return None
        elif _ORIENTATION in exif:  # e.g. PNG "Raw profile type exif"
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception:  # unreadable EXIF: drop it rather than refuse the picture
        return None


def _split_xmp(xmp: bytes) -> tuple[bytes | None, dict[str, str]]:
    """(XMP without resizer's block, resizer's keys). The block is rewritten from ``text`` on save."""
    text: dict[str, str] = {}
    try:
        root = ElementTree.fromstring(xmp.strip(b"\x00 \r\n\t"))
    except ElementTree.ParseError:
        return xmp, text
    prefix = "{" + RESIZER_XMP_NS + "}"
    for element in root.iter():
        for key, value in element.attrib.items():
            if key.startswith(prefix):
                text["resizer:" + key[len(prefix):]] = value
        if isinstance(element.tag, str) and element.tag.startswith(prefix):
            text["resizer:" + element.tag[len(prefix):]] = element.text or ""
    if not text:
        return xmp, text
    rest = _RESIZER_BLOCK.sub(b"", xmp)
    if b"<rdf:Description" not in rest:  # nothing but our own block: no XMP to carry
        return None, text
    return rest, text


# resizer's block: the compact form (``.../>``, attributes) or the element form of older files.
_RESIZER_BLOCK = re.compile(
    rb"\s*<rdf:Description[^>]*xmlns:resizer=\"" + re.escape(RESIZER_XMP_NS.encode())
    + rb"\"(?:[^>]*?/>|[^>]*>.*?</rdf:Description>)",
    re.DOTALL,
)


def _check_text(text: dict[str, str]) -> None:
    for key in text:
        if not _TEXT_KEY.match(key):
            raise ValueError(f"metadata.text key {key!r} must look like 'resizer:name'")


def _xmp_with_text(xmp: bytes | None, text: dict[str, str]) -> bytes | None:
    """``xmp`` with a resizer block holding ``text`` (a fresh packet if there is no usable XMP).

    The block is written compactly (keys as attributes; a fresh packet has no ``xpacket``
    wrapper, which XMP makes optional): its bytes count in every coded thumbnail, where
    ``resizer encode`` competes with the plain codec bit for bit.
    """
    if not text:
        return xmp
    attributes = "".join(f' resizer:{_TEXT_KEY.match(k).group(1)}="{escape(v, {chr(34): "&quot;"})}"'
                         for k, v in text.items())
    block = f'<rdf:Description rdf:about="" xmlns:resizer="{RESIZER_XMP_NS}"{attributes}/>'.encode()
    if xmp and b"</rdf:RDF>" in xmp:
        at = xmp.rindex(b"</rdf:RDF>")
        return xmp[:at] + block + xmp[at:]
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            + block + b'</rdf:RDF></x:xmpmeta>')


# --------------------------------------------------------------------------- writing

_UMASK = os.umask(0)
os.umask(_UMASK)


def save_picture(picture: Picture, path: str | Path, *, format: str | None = None, quality: int | None = None,
                 strip: bool = False, overwrite: bool = False) -> None:
    """Write atomically (temp file in the target folder, then rename); raises ``ImageWriteError``.

    The format comes from ``format`` or the suffix. Missing folders are created. On any
    failure, Ctrl-C included, the temp file is removed and the target is untouched.
    """
    path = Path(path)
    fmt = output_format(path, format)
    if path.is_dir():
        raise ImageWriteError(f"{path}: is a directory")
    exists = path.exists() or path.is_symlink()
    if exists and not overwrite:
        raise ImageWriteError(f"{path}: exists (use --overwrite)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot create folder {folder} ({exc.strerror or exc})") from None
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write into {folder} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            _encode_into(picture, fmt, handle, quality=quality, strip=strip, label=str(path))
        mode = stat.S_IMODE(os.stat(path).st_mode) if exists and path.is_file() else 0o666 & ~_UMASK
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise ImageWriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def encode_picture(picture: Picture, format: str, *, quality: int | None = None, strip: bool = False) -> bytes:
    """Encode to bytes in ``format`` (for standard output)."""
    fmt = output_format(None, format)
    buffer = io.BytesIO()
    _encode_into(picture, fmt, buffer, quality=quality, strip=strip, label="<stdout>")
    return buffer.getvalue()


def _encode_into(picture: Picture, fmt: str, handle: IO[bytes], *, quality: int | None, strip: bool,
                 label: str) -> None:
    meta = picture.metadata
    _check_text(meta.text)
    if quality is not None and not 1 <= quality <= 100:
        raise ImageWriteError(f"{label}: quality must be 1..100, not {quality}")
    params = _save_params(meta, fmt, quality, strip)
    try:
        if picture.bit_depth == 16 and picture.channels > 1 and fmt == "PNG":
            _write_png16(picture.pixels, handle, params)
            return
        if picture.bit_depth == 16 and picture.channels > 1 and fmt == "TIFF":
            _write_tiff16(picture.pixels, handle, meta, strip, label)
            return
        image = _image_for(picture, fmt)
        image.save(handle, fmt, **params)
    except (ValueError, KeyError, TypeError, RuntimeError, struct.error, zlib.error) as exc:
        raise ImageWriteError(f"{label}: cannot encode as {fmt} ({exc})") from None


def _image_for(picture: Picture, fmt: str) -> Image.Image:
    """A Pillow image the format can hold: 16 -> 8 bits where needed, alpha composited on white where unsupported."""
    keep16 = picture.bit_depth == 16 and picture.channels == 1 and fmt in ("PNG", "TIFF", "PPM")
    if picture.bit_depth == 16 and not keep16:
        image = _array_to_pil(to_8bit(picture.pixels))
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
    if fmt in ("JPEG", "WEBP", "AVIF", "TIFF"):
        xmp = _xmp_with_text(xmp, meta.text)
        if icc:
            params["icc_profile"] = icc
        if fmt == "TIFF":  # Pillow ignores ``exif`` when ``tiffinfo`` is given: one mapping for both
            tags = Image.Exif()
            if exif:
                tags.load(exif)
                tags.pop(_ORIENTATION, None)  # a TIFF's orientation is its own tag; pixels are upright
            if xmp:
                tags[700] = xmp
            if len(tags):
                params["tiffinfo"] = tags
        else:
            if exif:
                params["exif"] = exif
            if xmp:
                params["xmp"] = xmp
        default_quality = {"JPEG": JPEG_QUALITY, "WEBP": WEBP_QUALITY, "AVIF": AVIF_QUALITY}.get(fmt)
        if default_quality is not None:
            params["quality"] = quality if quality is not None else default_quality
        if fmt == "JPEG":  # optimized Huffman tables: the same pixels in 4-12 % fewer bytes
            params["optimize"] = True
    if fmt == "JPEG2000":
        # Pillow writes no XMP box for JPEG 2000: the packet (resizer's keys included) goes in the
        # codestream comment, where ``_read_metadata`` looks for it.
        packet = _xmp_with_text(xmp, meta.text)
        if packet:
            params["comment"] = packet
        params.update(_jpeg2000_quality(quality if quality is not None else JPEG_QUALITY))
    if dpi and fmt in ("JPEG", "TIFF", "BMP"):
        params["dpi"] = tuple(round(v) for v in dpi) if fmt == "JPEG" else dpi
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
    xmp = _xmp_with_text(None if strip else meta.xmp, meta.text)
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
