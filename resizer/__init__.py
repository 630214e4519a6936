"""resizer: image resizing with learned and classical downscalers and upscalers.

One call, for images held in memory (a Pillow image, a NumPy array, a path or the bytes of
a file; the result is of the kind given)::

    >>> import numpy as np, resizer
    >>> resizer.resize(np.zeros((48, 64, 3), np.uint8), scale=0.25, method="lanczos").shape
    (12, 16, 3)

The names, by task:

- **Resize one image**: :func:`resize` (the direction follows from the size asked for),
  :class:`Resizer` (one configuration — method, ``device``, ``precision``, ``weights`` —
  for many images; networks load once and are shared).
- **Files and folders**, as ``resizer down`` / ``resizer up`` do them: :func:`run_batch`
  with :class:`BatchSettings` and :class:`SizeSpec` gives one :class:`FileResult` per input
  (never raises for one bad file); :func:`load_picture` / :func:`save_picture` read and
  write one file losslessly (orientation, ICC, EXIF, 16 bits, alpha) as a :class:`Picture`;
  :func:`resize_picture` resizes a :class:`Picture` in a given direction.
- **Methods**: :func:`list_methods`, :func:`get_method`, :func:`register_method` (add your
  own), :class:`RunOptions` (how learned methods run).
- **Errors**: every failure is a :class:`ResizerError`; :class:`UsageError` (the request is
  wrong), :class:`ImageReadError`, :class:`ImageWriteError`, :class:`ModelError`.

Learned methods need torch, imported only when one is used: ``import resizer`` is light.
The command line (``resizer --help``) is a thin layer over these names.
"""

from __future__ import annotations

from ._version import __version__

from .api import Resizer, resize
from .errors import ImageReadError, ImageWriteError, ModelError, ResizerError, UsageError
from .image_io import Metadata, Picture, load_picture, picture_from_pil, picture_to_pil, save_picture
from .methods import Method, RunOptions, get_method, list_methods, register_method
from .geometry import SizeSpec
from .pipeline import BatchSettings, FileResult, run_batch
from .resizing import resize_picture

__all__ = [
    "__version__", "BatchSettings", "FileResult", "ImageReadError", "ImageWriteError", "Metadata", "Method",
    "ModelError", "Picture", "Resizer", "ResizerError", "RunOptions", "SizeSpec", "UsageError", "get_method",
    "list_methods", "load_picture", "picture_from_pil", "picture_to_pil", "register_method", "resize",
    "resize_picture", "run_batch", "save_picture",
]
