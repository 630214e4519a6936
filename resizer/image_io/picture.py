"""The in-memory picture: ``Picture``, its ``Metadata``, and the lossless bridges to Pillow.

``Picture.pixels`` is an ``(H, W, C)`` numpy array, ``uint8`` or ``uint16``, C = 1 (grey),
2 (grey + alpha), 3 (RGB) or 4 (RGBA); alpha is always last. Pictures decoded from 8-bit
files keep their pixels inside the Pillow image until someone reads ``.pixels`` (then a
read-only array is made once): load -> classical resize -> save never pays the ~45 ms per
12 MP array copy. ``to_8bit`` is the project's one uint16 -> uint8 rule.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import ImageReadError


@dataclass
class Metadata:
    """What travels from an input file to its output besides the pixels (see :mod:`.metadata`)."""

    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation already applied and reset to 1; starts with b"Exif\0\0"
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None  # without resizer's own block (that is in ``text``)
    text: dict[str, str] = field(default_factory=dict)  # resizer's own keys, "resizer:<name>"
    source_format: str | None = None  # e.g. "PNG", "JPEG"
    frames: int = 1  # frames in the source; only the first is used
    png_text: dict[str, str] = field(default_factory=dict)  # other PNG text chunks, written to PNG only
    full_size: tuple[int, int] | None = None  # (width, height) in the file when decoded smaller (shrink-on-load)
    jpeg_quality: int | None = None  # a JPEG's quality estimated from its tables (``resizer.jpeg_quality``)


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


def detach(image: Image.Image) -> Image.Image:
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
        return _PillowPicture(metadata=metadata, image=detach(image))
    result, _ = normalise_mode(image, "<image>")
    if isinstance(result, np.ndarray):
        return Picture(result, metadata)
    return _PillowPicture(metadata=metadata, image=detach(result))


def picture_to_pil(picture: Picture) -> Image.Image:
    """The picture as a Pillow image (L, LA, RGB, RGBA or I;16), shared when it already is one.

    Treat the result as read-only. 16-bit pictures with more than one channel have no
    Pillow mode and raise ``ValueError``.
    """
    if isinstance(picture, _PillowPicture) and picture._image is not None:
        return picture._image
    return array_to_pil(picture.pixels)


def array_to_pil(pixels: np.ndarray) -> Image.Image:
    """An ``(H, W, C)`` uint8 array (or single-channel uint16) as a Pillow image; ``ValueError`` otherwise."""
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

def normalise_mode(image: Image.Image, label: str, icc: bytes | None = None) -> tuple[Image.Image | np.ndarray, bytes | None]:
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
        grey = image.convert("L")
        if transparency is not None and not isinstance(transparency, (bytes, tuple)):  # PNG tRNS: 0 or 1
            alpha = grey.point(lambda v: 0 if v == (255 if int(transparency) else 0) else 255)
            grey = Image.merge("LA", (grey, alpha))
        return grey, icc
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
