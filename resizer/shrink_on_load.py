"""Shrink-on-load: large reductions of JPEGs decode fewer pixels (Pillow's DCT-domain ``draft``).

A JPEG decoder can produce 1/2, 1/4 or 1/8 of the image directly from the DCT
coefficients, far faster and in a fraction of the memory. Other formats get the same
margin once decoded: the filter first averages whole blocks (Pillow's ``reducing_gap``). The pipeline asks for it only
where the result stays close to the exact path: the decoded image keeps at least
``MARGIN`` times the output's size, and the classical filter then does the rest, from the
size the picture was decoded at to the size planned from the file's full size
(``Metadata.full_size``). ``benchmarks/bench_thumbnail.py`` measures the difference
(luma PSNR against the exact path) and the speed.
"""

from __future__ import annotations

import dataclasses
import math

from .errors import ResizerError
from .geometry import SizeSpec, plan_size
from .image_io import Picture
from .methods import RunOptions

SHRINKABLE_METHODS = frozenset({"bilinear", "bicubic", "lanczos", "box"})
MARGIN = 3.0  # decode at least this many times the output size: 2 lost up to 1.1 dB, 3 at most 0.39 (see the benchmark)
# Step reduction keeps this many times the output size: 3 and 4 lost up to 1.02 dB at x8, 5 at most 0.24 at x16
STEP_GAP = 5.0


def source_size(picture: Picture) -> tuple[int, int]:
    """The picture's (width, height) in its file: the full size even when decoded smaller."""
    return picture.metadata.full_size or (picture.width, picture.height)


def shrink_hint(direction: str, spec: SizeSpec, method: str, enabled: bool = True):
    """The ``shrink`` callable for :func:`resizer.image_io.load_picture`, or None where it never applies.

    Only ``down`` with a Pillow filter other than ``nearest`` (a learned or MATLAB downscaler
    is defined on every input pixel), and only reductions of at least ``2 * MARGIN``.
    """
    if not enabled or direction != "down" or method.strip().lower() not in SHRINKABLE_METHODS:
        return None

    def hint(width: int, height: int) -> tuple[int, int] | None:
        try:
            plan = plan_size(width, height, "down", spec)
        except ResizerError:
            return None  # the pipeline says why when it plans the same size
        if plan.keep or plan.scale < 2 * MARGIN:
            return None
        return (max(1, math.ceil(plan.size[0] * MARGIN)), max(1, math.ceil(plan.size[1] * MARGIN)))

    return hint


def with_step_reduction(run: RunOptions, direction: str, enabled: bool = True) -> RunOptions:
    """``run`` with Pillow's ``reducing_gap`` at ``STEP_GAP`` for ``down`` (the filters honour it).

    It changes only reductions of at least ``2 * STEP_GAP`` (Pillow reduces by whole factors
    of at least 2): at x16 it lost at most 0.24 dB of luma PSNR against the exact filter on
    Set5+Set14 and made the resize 3.7 times faster (``benchmarks/bench_thumbnail.py``).
    A drafted JPEG is already within ``2 * MARGIN`` of its output, so this is for other formats.
    """
    if not enabled or direction != "down" or run.reducing_gap is not None:
        return run
    return dataclasses.replace(run, reducing_gap=STEP_GAP)


def forget_full_size(picture: Picture) -> Picture:
    """A resized picture is its own full size: drop the source's ``full_size``."""
    if picture.metadata.full_size is not None:
        picture.metadata = dataclasses.replace(picture.metadata, full_size=None)
    return picture
