"""Image reading and writing that loses nothing: orientation, ICC, EXIF, DPI, alpha, 16 bits.

This package owns every byte between a file and a :class:`Picture`. Its modules, one
concern each:

- ``picture``: ``Picture``, ``Metadata``, the Pillow bridges and ``to_8bit`` (uint16 -> uint8).
- ``formats``: the image-file rule (``IMAGE_SUFFIXES``, ``is_image_path``, ``is_image_file``)
  and the output formats (``writable_format_for``: PNG for inputs whose format is read-only).
- ``decode``: ``load_picture`` (pixel limit, every Pillow mode, 16-bit colour, CMYK).
- ``orientation``: EXIF/XMP orientation applied on load.
- ``metadata``: EXIF/ICC/XMP/PNG-text reading and resizer's own XMP block.
- ``write``: ``save_picture`` (atomic) and ``encode_picture``, with the 16-bit PNG/TIFF writers.

CONTRACT (shared with the pipeline, the engine and the methods): ``Picture.pixels`` is an
``(H, W, C)`` ``uint8`` or ``uint16`` array with C in 1..4, alpha last; ``Metadata`` is
carried from input to output. Nothing here imports torch.
"""

from __future__ import annotations

from .decode import DEFAULT_MAX_PIXELS, load_picture
from .formats import (
    DEFAULT_WRITE_FORMAT, IMAGE_SUFFIXES, WRITE_FORMATS, is_image_file, is_image_path, output_format,
    source_output_format, writable_format_for,
)
from .metadata import RESIZER_XMP_NS
from .picture import Metadata, Picture, picture_from_pil, picture_to_pil, to_8bit
from .write import AVIF_QUALITY, JPEG_QUALITY, WEBP_QUALITY, EncodeOptions, encode_picture, save_encoded, save_picture

__all__ = [
    "AVIF_QUALITY", "DEFAULT_MAX_PIXELS", "DEFAULT_WRITE_FORMAT", "EncodeOptions", "IMAGE_SUFFIXES", "JPEG_QUALITY", "RESIZER_XMP_NS",
    "WEBP_QUALITY", "WRITE_FORMATS", "Metadata", "Picture", "encode_picture", "is_image_file", "is_image_path",
    "load_picture", "output_format", "picture_from_pil", "picture_to_pil", "save_encoded", "save_picture", "source_output_format", "to_8bit",
    "writable_format_for",
]
