"""ICC profiles: is a picture sRGB, and converting it to sRGB (``--srgb``) through LittleCMS.

The web assumes sRGB: a browser shows an untagged image as sRGB, and a tagged one only as
well as its colour management allows. ``to_srgb`` converts with Pillow's ``ImageCms``
(LittleCMS) from the embedded profile with the perceptual intent, and tags the result with
LittleCMS' own sRGB profile (588 bytes). A profile counts as sRGB when its description
names sRGB (``sRGB IEC61966-2.1``, ``sRGB built-in``): what camera, phone and editor
profiles say. 16-bit pictures are left as they are (LittleCMS through Pillow converts 8-bit
images only), with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import io

from PIL import ImageCms

from .picture import Picture, picture_from_pil, picture_to_pil


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The bytes of LittleCMS' sRGB profile, embedded in converted outputs."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def profile_description(icc: bytes) -> str | None:
    """The profile's description (``Adobe RGB (1998)``), or None when it cannot be read."""
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or None
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def is_srgb(icc: bytes | None) -> bool:
    """True for no profile (the web's assumption) or a profile whose description names sRGB."""
    if not icc:
        return True
    description = profile_description(icc)
    return description is not None and "srgb" in description.lower()


def to_srgb(picture: Picture) -> tuple[Picture, str | None]:
    """``picture`` converted from its embedded profile to sRGB, and a warning when it could not be.

    Grey pictures with a grey profile become RGB. Pictures without a profile, or already
    sRGB, are returned as they are.
    """
    icc = picture.metadata.icc_profile
    if is_srgb(icc):
        return picture, None
    if picture.bit_depth != 8:
        return picture, "16-bit pictures are not converted to sRGB (its profile is kept)"
    image = picture_to_pil(picture)
    modes = {"L": "RGB", "LA": "RGBA", "RGB": "RGB", "RGBA": "RGBA"}
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    source_mode = "L" if image.mode in ("L", "LA") else "RGB"
    target_mode = modes[image.mode]
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        transform = ImageCms.buildTransform(source, target, source_mode, "RGB",
                                            renderingIntent=ImageCms.Intent.PERCEPTUAL)
        converted = ImageCms.applyTransform(image.convert(source_mode), transform)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        return picture, f"its ICC profile cannot be converted to sRGB ({exc}); kept as it is"
    if alpha is not None:
        converted.putalpha(alpha)
    if converted.mode != target_mode:
        converted = converted.convert(target_mode)
    metadata = dataclasses.replace(picture.metadata, icc_profile=srgb_profile())
    return picture_from_pil(converted, metadata), None
