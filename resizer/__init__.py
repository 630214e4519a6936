"""resizer: image resizing with learned and classical downscalers and upscalers.

The Python API in a few names::

    from resizer import load_picture, save_picture, resize_picture, SizeSpec
    picture = load_picture("photo.png")
    small, method = resize_picture(picture, "down", SizeSpec(scale=4), method="lanczos")
    save_picture(small, "thumb.png")
"""

from __future__ import annotations

from ._version import __version__

from .errors import ImageReadError, ImageWriteError, ModelError, ResizerError, UsageError
from .image_io import Metadata, Picture, load_picture, save_picture
from .methods import get_method, list_methods, register_method
from .pipeline import BatchSettings, SizeSpec, resize_picture, run_batch

__all__ = [
    "__version__", "BatchSettings", "ImageReadError", "ImageWriteError", "Metadata", "ModelError", "Picture",
    "ResizerError", "SizeSpec", "UsageError", "get_method", "list_methods", "load_picture", "register_method",
    "resize_picture", "run_batch", "save_picture",
]
