"""One call to resize an image held in memory: ``resizer.resize`` and the reusable ``Resizer``.

The command line works on files; a program usually holds a Pillow image, a NumPy array,
a path or the bytes of a file. ``resize`` takes any of them and gives back the same kind,
so it drops into existing code::

    >>> import numpy as np, resizer
    >>> photo = np.zeros((40, 60, 3), np.uint8)
    >>> resizer.resize(photo, scale=0.5, method="lanczos").shape
    (20, 30, 3)

The direction follows from the size asked for (smaller: ``down``, larger: ``up``), and
the method defaults to the command line's (Lanczos down, ASDN up). ``Resizer`` keeps one
configuration (method, device, weights) for many images; networks are loaded once per
file and device and shared (:func:`resizer.weights.load` caches them). Every failure is
one of the project's exceptions (:class:`resizer.ResizerError` and its subclasses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

import numpy as np
from PIL import Image

from .errors import ImageReadError, ResizerError, UsageError
from .geometry import SizeSpec, fill_ratio, fit_ratio, parse_box
from .image_io import (DEFAULT_MAX_PIXELS, Picture, encode_picture, load_picture, picture_from_pil,
                       picture_to_pil, source_output_format, to_8bit)
from .image_io.metadata import read_metadata
from .methods import Direction, Method, RunOptions
from .resizing import resize_picture

Box = Union[str, tuple]  # "320x240", "320x", (320, 240), (320, None)
ImageLike = Union[Image.Image, np.ndarray, Picture, bytes, str, os.PathLike]
T = TypeVar("T", Image.Image, np.ndarray, Picture, bytes)

_FLOAT_LEVELS = 65535  # float arrays travel as 16-bit pixels: 1/65535 steps, finer than any 8-bit output


@dataclass(frozen=True)
class _Target:
    """What the caller asked for, reduced to a direction and the pipeline's size spec."""

    direction: Direction
    spec: SizeSpec


class Resizer:
    """A resizing configuration applied to many images: ``Resizer("asdn", device="cpu")(image, scale=2)``.

    ``method`` is any name of ``resizer methods`` (``None``: the default of the direction);
    ``device`` is as ``--device`` takes it (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``);
    ``precision``, ``tile`` and ``weights`` are those of the command line; ``max_output_pixels``
    refuses absurd outputs before any pixel is made (``None``: no limit); ``linear`` resamples
    in linear light (``--linear``, the classical filters only); ``restore`` is ``up``'s
    ``--restore/--no-restore``: a JPEG input (a path, file bytes or a Pillow image read from a
    JPEG) is first cleared of its compression artefacts by the learned restorer (``dejpeg``, up to
    estimated quality 65) before a learned upscaler, as the command line does by default (``None``);
    ``False`` turns it off, ``True`` restores before the classical filters too.
    """

    def __init__(self, method: str | None = None, *, device: str = "auto", precision: str = "auto",
                 tile: int | None = None, weights: str | None = None,
                 max_output_pixels: int | None = DEFAULT_MAX_PIXELS, linear: bool = False,
                 restore: bool | None = None) -> None:
        self.method = method.strip().lower() if method else None
        self.restore = restore
        self.options = RunOptions(device=device, tile=tile, precision=precision, weights=weights, linear_light=linear)
        self.max_output_pixels = max_output_pixels
        self.last_method: Method | None = None  # the method that served the latest call

    def __repr__(self) -> str:
        return f"Resizer(method={self.method!r}, options={self.options!r})"

    def __call__(self, image: T | str | os.PathLike, *, scale: float | None = None, width: int | None = None,
                 height: int | None = None, fit: Box | None = None, fill: Box | None = None,
                 gravity: str = "centre", direction: Direction | None = None) -> T | Picture:
        """Resize ``image``; the result is of the kind given (a path gives a :class:`Picture`).

        Give one of ``scale`` (the factor applied to both sides: 0.5 halves, 2 doubles),
        ``width`` or ``height`` (the other side keeps the aspect ratio), ``fit`` (the largest
        size inside a box: ``(320, 240)``, ``"320x240"``, or ``"320x"`` with a free side) or
        ``fill`` (cover the box, then crop to it where ``gravity`` says: ``centre``, a compass
        point such as ``north-east``, or ``attention`` for the most salient region). ``direction``
        (``"down"``/``"up"``) is only needed for a paired thumbnail's restore, which takes
        no size: ``direction="up"`` alone restores a ``down --method car`` thumbnail.
        """
        picture = as_picture(image)
        target = _target(picture, SizeAsked(scale, width, height, fit, fill, gravity), direction)
        resized, self.last_method = resize_picture(picture, target.direction, target.spec, self.method,
                                                   self.options, max_output_pixels=self.max_output_pixels,
                                                   restore=self.restore)
        return like(image, resized)


def resize(image: T | str | os.PathLike, *, scale: float | None = None, width: int | None = None,
           height: int | None = None, fit: Box | None = None, fill: Box | None = None, gravity: str = "centre",
           direction: Direction | None = None, method: str | None = None,
           device: str = "auto", precision: str = "auto", tile: int | None = None,
           weights: str | None = None, max_output_pixels: int | None = DEFAULT_MAX_PIXELS,
           linear: bool = False, restore: bool | None = None) -> T | Picture:
    """Resize a Pillow image, NumPy array, :class:`Picture`, path or file bytes; return the same kind.

    - Pillow image in, Pillow image out (mode L, LA, RGB, RGBA or I;16; ``info`` keeps the
      ICC profile, EXIF and DPI, as the command line keeps them);
    - array in (``HxW`` or ``HxWxC``, C in 1..4, ``uint8``, ``uint16`` or float in [0, 1]),
      array of the same shape layout and dtype out;
    - bytes of an image file in, bytes of the same format out (PNG for formats resizer reads
      but does not write); a path in, a :class:`Picture` out (save it with ``save_picture``).

    All metadata is kept, GPS included: the command line's output policy (``--strip-gps`` by
    default, ``--srgb``) applies where files are written, not to images handed back.

    See :class:`Resizer` for the options and the size arguments.

    >>> from PIL import Image
    >>> resize(Image.new("RGB", (64, 48)), width=32, method="bicubic").size
    (32, 24)
    """
    return Resizer(method, device=device, precision=precision, tile=tile, weights=weights,
                   max_output_pixels=max_output_pixels, linear=linear, restore=restore)(image, scale=scale, width=width, height=height, fit=fit,
                                                        fill=fill, gravity=gravity, direction=direction)


# --------------------------------------------------------------------------- direction and size


@dataclass(frozen=True)
class SizeAsked:
    """The size arguments of one call, before the direction is known."""

    scale: float | None = None
    width: int | None = None
    height: int | None = None
    fit: Box | None = None
    fill: Box | None = None
    gravity: str = "centre"


def _box(value: Box | None, name: str, partial: bool) -> tuple[int | None, int | None] | None:
    """``"320x240"`` or ``(320, 240)`` (a free side: ``"320x"`` / ``(320, None)``, for ``fit`` only)."""
    if value is None or isinstance(value, str):
        return parse_box(value, name, partial=partial)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise UsageError(f"{name} is (width, height) or 'WIDTHxHEIGHT', not {value!r}")
    return parse_box("x".join("" if v is None else str(int(v)) for v in value), name, partial=partial)


def _target(picture: Picture, asked: SizeAsked, direction: Direction | None) -> _Target:
    """The direction implied by the size asked for (``direction`` must agree) and the pipeline's spec."""
    if direction is not None and direction not in ("down", "up"):
        raise UsageError(f"direction must be 'down' or 'up', not {direction!r}")
    given = [v for v in (asked.scale, asked.width, asked.height, asked.fit, asked.fill) if v is not None]
    if len(given) > 1:
        raise UsageError("give only one of scale, width, height, fit and fill")
    if not given:
        if direction is None:
            raise UsageError("give one of scale, width, height, fit or fill "
                             "(or direction='up' to restore a paired thumbnail)")
        return _Target(direction, SizeSpec())
    ratio, spec = _ratio_and_spec(picture, asked)
    implied: Direction | None = "down" if ratio < 1 else "up" if ratio > 1 else None
    if asked.scale is not None and implied == "down":
        spec = SizeSpec(scale=1.0 / asked.scale)  # the pipeline's factor is >= 1; the direction says which way
    if implied is None:
        implied = direction or "up"  # the same size: either direction gives the input's size back
    if direction is not None and direction != implied:
        raise UsageError(f"the size asked for makes the image {'smaller' if implied == 'down' else 'larger'}, "
                         f"which is not direction {direction!r}")
    return _Target(implied, spec)


def _ratio_and_spec(picture: Picture, asked: SizeAsked) -> tuple[float, SizeSpec]:
    """How much the request scales this picture (< 1: smaller) and its size spec."""
    if asked.scale is not None:
        if isinstance(asked.scale, bool) or not isinstance(asked.scale, (int, float)) \
                or not np.isfinite(asked.scale) or asked.scale <= 0:
            raise UsageError(f"scale must be a positive number, not {asked.scale!r}")
        return float(asked.scale), SizeSpec(scale=float(asked.scale))
    if asked.width is not None or asked.height is not None:
        spec = SizeSpec(width=asked.width, height=asked.height)
        ratio = asked.width / picture.width if asked.width is not None else asked.height / picture.height
        return ratio, spec  # type: ignore[operator]
    if asked.fit is not None:
        box = _box(asked.fit, "fit", partial=True)
        return fit_ratio(picture.width, picture.height, box), SizeSpec(fit=box)  # type: ignore[arg-type]
    box = _box(asked.fill, "fill", partial=False)
    assert box is not None and box[0] is not None and box[1] is not None
    fill = (box[0], box[1])
    return fill_ratio(picture.width, picture.height, fill), SizeSpec(fill=fill, gravity=asked.gravity)


# --------------------------------------------------------------------------- kinds of image


def as_picture(image: ImageLike) -> Picture:
    """The :class:`Picture` of any image kind ``resize`` accepts (``UsageError`` for other objects)."""
    if isinstance(image, Picture):
        return image
    if isinstance(image, Image.Image):
        return _picture_of_pil(image)
    if isinstance(image, np.ndarray):
        return Picture(_pixels_of_array(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return load_picture(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        return load_picture(Path(image))
    raise UsageError(f"cannot resize a {type(image).__name__}: give a PIL image, a NumPy array, a Picture, "
                     "a path or the bytes of an image file")


def like(original: ImageLike, picture: Picture) -> Any:
    """``picture`` as the kind of ``original`` (see :func:`resize`)."""
    if isinstance(original, Picture) or isinstance(original, (str, os.PathLike)):
        return picture
    if isinstance(original, Image.Image):
        return _pil_of_picture(picture)
    if isinstance(original, np.ndarray):
        return _array_like(original, picture.pixels)
    source = picture.metadata.source_format
    return encode_picture(picture, source_output_format(source))


def _picture_of_pil(image: Image.Image) -> Picture:
    """The Pillow image's pixels as they are (no EXIF rotation: the caller's pixels are the truth)."""
    try:
        image.load()  # an image from Image.open is decoded lazily
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"the Pillow image cannot be decoded: {exc}") from None
    # the file reader's own rules (EXIF prefix, DPI checks, XMP, resizer's pairing text), orientation untouched
    metadata = read_metadata(image, image.info.get("icc_profile"), 1, image.format, 1)
    try:
        return picture_from_pil(image, metadata)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot resize a Pillow image of mode {image.mode}: {exc}") from None


def _pil_of_picture(picture: Picture) -> Image.Image:
    try:
        image = picture_to_pil(picture).copy()  # the caller owns the result: no shared memory
    except ValueError as exc:
        raise ResizerError(f"the result has no Pillow mode ({exc}); resize a NumPy array instead") from None
    meta = picture.metadata
    for key, value in (("icc_profile", meta.icc_profile), ("exif", meta.exif), ("dpi", meta.dpi), ("xmp", meta.xmp)):
        if value:
            image.info[key] = value
    return image


def _pixels_of_array(array: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8/uint16 pixels of an HxW or HxWxC array (floats in [0, 1] become 16-bit)."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4 or 0 in array.shape:
        raise UsageError(f"an image array is HxW or HxWxC with C in 1..4, not of shape {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UsageError("the image array has NaN or infinite values")
        return np.rint(np.clip(array, 0.0, 1.0) * _FLOAT_LEVELS).astype(np.uint16)
    raise UsageError(f"an image array is uint8, uint16 or float in [0, 1], not {array.dtype}")


def _array_like(original: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The resized pixels in ``original``'s dtype and layout (HxW in, HxW out)."""
    if np.issubdtype(original.dtype, np.floating):
        result = (pixels.astype(np.float64) / _FLOAT_LEVELS).astype(original.dtype)
    elif original.dtype == np.uint8 and pixels.dtype == np.uint16:
        result = to_8bit(pixels)
    elif original.dtype == np.uint16 and pixels.dtype == np.uint8:  # no method does this today
        result = pixels.astype(np.uint16) * 257
    else:
        result = np.array(pixels)  # writable, and no longer shared with any Pillow image
    return result[:, :, 0] if original.ndim == 2 else result
