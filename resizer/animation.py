"""Animated GIF, WebP and APNG: every frame resized, with its duration and the loop count.

Pillow hands out each frame composited onto the canvas (GIF and APNG disposal and
blending applied, libwebp's decoder for WebP), so every frame is resized as a whole
picture with the same plan as the first, and written back as full frames (GIF with
disposal 2, so transparent areas never show the frame before). Durations and the loop
count are kept (a GIF without a loop count still plays once).

Only methods that treat frames independently (``Method.animations``: the classical ones)
resize animations. Learned methods refuse them, one line naming the file: their output
would flicker from frame to frame, and a 100-frame GIF would take 100 network runs. An
animation written to a format that cannot animate (JPEG, TIFF...) is its first frame,
with a warning, as before; so is a GIF or WebP written as ``.png`` (only an APNG stays one).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageSequence

from .errors import ImageReadError, ImageWriteError, UsageError
from .files import atomic_path
from .image_io import Picture, picture_from_pil, picture_to_pil, to_8bit
from .image_io.picture import array_to_pil

ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})  # Pillow's names; PNG means APNG here
DEFAULT_DURATION_MS = 100


def plays(picture: Picture, output_format: str) -> bool:
    """True if ``picture`` is an animation and ``output_format`` (a Pillow name) can keep it one."""
    source = picture.metadata.source_format or ""
    if picture.metadata.frames <= 1 or source not in ANIMATED_FORMATS or output_format not in ANIMATED_FORMATS:
        return False
    return output_format != "PNG" or source == "PNG"  # a .png of a GIF or WebP stays a still PNG


def check_method(method, label: str) -> None:
    """``UsageError`` for a method that cannot resize animations frame by frame."""
    if not getattr(method, "animations", False):
        raise UsageError(f"{label}: an animation; the learned method '{method.name}' resizes single images "
                         "(use a classical method such as -m lanczos, or a still output format such as .png "
                         "for the first frame)")


def resize_frames(source: str | bytes, first: Picture, resize: Callable[[Picture], Picture],
                  label: str) -> tuple[list[Picture], list[int], int | None]:
    """Every frame of ``source`` resized (``first`` is frame 0, already resized), durations (ms), loop count."""
    frames, durations = [first], []
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            loop = image.info.get("loop")
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                frame.load()  # WebP sets the frame's duration when it is decoded
                durations.append(int(frame.info.get("duration") or DEFAULT_DURATION_MS))
                if index:
                    rgba = frame.convert("RGBA")
                    frames.append(resize(picture_from_pil(rgba, first.metadata)))
    except (OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{label}: cannot read its frames ({exc})") from None
    return frames, durations, loop


def encode_frames(frames: Sequence[Picture], durations: Sequence[int], loop: int | None, fmt: str,
                  handle, *, quality: int | None, strip: bool, lossless: bool = False) -> None:
    """Write ``frames`` as one animation in ``fmt`` (GIF, WEBP or PNG) into ``handle``."""
    images = [_rgba(frame) for frame in frames]
    params: dict = {"save_all": True, "append_images": images[1:], "duration": list(durations)}
    if loop is not None:
        params["loop"] = loop
    if fmt == "GIF":
        params["disposal"] = 2
    if fmt == "WEBP":
        from .image_io import WEBP_QUALITY

        params.update(quality=quality if quality is not None else WEBP_QUALITY, lossless=lossless)
    icc = None if strip else frames[0].metadata.icc_profile
    if icc and fmt in ("WEBP", "PNG"):
        params["icc_profile"] = icc
    images[0].save(handle, fmt, **params)


def save_frames(frames: Sequence[Picture], durations: Sequence[int], loop: int | None, fmt: str, path: str,
                *, quality: int | None, strip: bool, overwrite: bool, lossless: bool = False) -> None:
    """:func:`encode_frames` into ``path``, atomically and (without ``overwrite``) exclusively."""
    target = Path(path)
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ImageWriteError(f"{path}: exists (use --overwrite)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".part", replace=overwrite) as temp:
            with open(temp, "wb") as handle:
                encode_frames(frames, durations, loop, fmt, handle, quality=quality, strip=strip, lossless=lossless)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise ImageWriteError(f"{path}: cannot encode the animation as {fmt} ({exc})") from None


def _rgba(picture: Picture) -> Image.Image:
    if picture.bit_depth == 16:
        return array_to_pil(to_8bit(picture.pixels)).convert("RGBA")
    return picture_to_pil(picture).convert("RGBA")
