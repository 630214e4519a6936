"""Shrink-on-load: large reductions of JPEGs decode fewer pixels (Pillow's DCT-domain ``draft``).

A JPEG decoder can produce 1/2, 1/4 or 1/8 of the image directly from the DCT
coefficients, far faster and in a fraction of the memory. The pipeline asks for it only
where the result stays close to the exact path: the decoded image keeps at least
``MARGIN`` times the output's size, and the classical filter then does the rest, from the
size the picture was decoded at to the size planned from the file's full size
(``Metadata.full_size``). ``benchmarks/bench_thumbnail.py`` measures the difference
(luma PSNR against the exact path) and the speed.
"""

from __future__ import annotations

from .image_io import Picture

MARGIN = 2.0  # decode at least this many times the output size (Pillow's thumbnail uses reducing_gap=2 too)


def source_size(picture: Picture) -> tuple[int, int]:
    """The picture's (width, height) in its file: the full size even when decoded smaller."""
    return picture.metadata.full_size or (picture.width, picture.height)
