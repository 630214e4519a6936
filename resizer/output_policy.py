"""What the outputs of ``resizer down/up`` carry besides pixels: sRGB conversion, GPS, stripping.

Applied to each resized picture just before it is written (after resizing: converting the
thumbnail is cheaper than converting the photo, and resampling is done in the file's own
encoding either way).

- ``srgb``: convert from the embedded ICC profile to sRGB (:mod:`resizer.image_io.profiles`)
  and tag the output sRGB, or leave it untagged with ``strip``.
- ``strip`` without ``srgb`` on a picture whose profile is not sRGB: a warning, since the
  colours then shift (an Adobe RGB photo looks dull untagged).
- ``strip_gps`` (the default of ``resizer down/up``): outputs carry no location (EXIF GPS IFD,
  XMP ``exif:GPS*``). A thumbnail on a web page is public; its location is personal data,
  and the rest of the EXIF (camera, exposure, copyright) is what web teams keep.
"""

from __future__ import annotations

import copy
import dataclasses

from .image_io import Picture
from .image_io.metadata import without_gps
from .image_io.profiles import is_srgb, profile_description, to_srgb


def apply_output_policy(picture: Picture, *, srgb: bool, strip: bool, strip_gps: bool,
                        label: str) -> tuple[Picture, list[str]]:
    """The picture to write, and the warnings (each naming ``label``); the input's metadata is not changed."""
    warnings: list[str] = []
    icc = picture.metadata.icc_profile
    if srgb:
        picture, problem = to_srgb(picture)
        if problem:
            warnings.append(f"{label}: {problem}")
    elif strip and icc and not is_srgb(icc):
        name = profile_description(icc) or "non-sRGB"
        warnings.append(f"{label}: --strip drops its {name} profile without converting, so colours shift; "
                        "add --srgb to convert to sRGB first")
    if strip_gps and not strip:
        exif, xmp = without_gps(picture.metadata.exif, picture.metadata.xmp)
        if exif != picture.metadata.exif or xmp != picture.metadata.xmp:
            picture = _with_metadata(picture, exif=exif, xmp=xmp)
    return picture, warnings


def _with_metadata(picture: Picture, **changes) -> Picture:
    result = copy.copy(picture)
    result.metadata = dataclasses.replace(picture.metadata, **changes)
    return result
