"""Cropping a resized picture to its ``--fill`` box, at a compass gravity or where the picture draws the eye.

``attention`` works like libvips' smart crop (``vips_smartcrop`` with ``interesting=attention``):
it scores every pixel of a small copy of the picture and keeps the window with the highest
total score. The score, in [0, 3] a pixel, is the sum of three cues, each in [0, 1]:

- edges: the absolute Laplacian of luma, divided by its 99th percentile (texture and detail);
- saturation: ``max(R, G, B) - min(R, G, B)`` (colourful objects against dull backgrounds);
- skin: 1 where the colour is in a simple RGB skin-tone range (Kovac et al. 2003), else 0.

Ties go to the window nearest the centre, so a flat picture crops like ``centre``. The
scoring runs on a copy at most ``_SCORE_SIDE`` pixels a side: milliseconds for any input.
"""

from __future__ import annotations

import copy

import numpy as np
from PIL import Image

from .geometry import crop_origin
from .image_io import Picture, picture_from_pil
from .image_io.picture import _PillowPicture

_SCORE_SIDE = 128


def crop_picture(picture: Picture, crop: tuple[int, int], gravity: str = "centre") -> Picture:
    """``picture`` cut to ``crop`` (width, height), placed by ``gravity``; metadata carried over."""
    size = (picture.width, picture.height)
    crop = (min(crop[0], size[0]), min(crop[1], size[1]))
    if crop == size:
        return picture
    x, y = attention_origin(picture, crop) if gravity == "attention" else crop_origin(size, crop, gravity)
    image = getattr(picture, "_image", None)
    if isinstance(picture, _PillowPicture) and image is not None:
        return picture_from_pil(image.crop((x, y, x + crop[0], y + crop[1])), picture.metadata)
    result = copy.copy(picture)
    result.pixels = np.ascontiguousarray(picture.pixels[y:y + crop[1], x:x + crop[0]])
    return result


def saliency(rgb: np.ndarray) -> np.ndarray:
    """The attention score (H, W) float32 of an (H, W, 3) float32 RGB array in [0, 1] (see the module)."""
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    padded = np.pad(luma, 1, mode="edge")
    laplacian = np.abs(4 * luma - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2] - padded[1:-1, 2:])
    scale = float(np.percentile(laplacian, 99))
    edges = np.minimum(laplacian / scale, 1.0) if scale > 1e-6 else np.zeros_like(luma)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    r, g, b = rgb[..., 0] * 255, rgb[..., 1] * 255, rgb[..., 2] * 255
    skin = ((r > 95) & (g > 40) & (b > 20) & (r > g) & (r > b) & (np.abs(r - g) > 15)
            & (rgb.max(axis=2) * 255 - rgb.min(axis=2) * 255 > 15))
    return (edges + saturation + skin).astype(np.float32)


def attention_origin(picture: Picture, crop: tuple[int, int]) -> tuple[int, int]:
    """Top-left ``(x, y)`` of the ``crop`` window with the most :func:`saliency` in ``picture``."""
    width, height = picture.width, picture.height
    factor = max(width, height) / _SCORE_SIDE if max(width, height) > _SCORE_SIDE else 1.0
    small = _small_rgb(picture, (max(1, round(width / factor)), max(1, round(height / factor))))
    score = saliency(small)
    h, w = score.shape
    win_w = min(w, max(1, round(crop[0] * w / width)))
    win_h = min(h, max(1, round(crop[1] * h / height)))
    table = np.pad(score.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[win_h:, win_w:] - table[:-win_h, win_w:] - table[win_h:, :-win_w] + table[:-win_h, :-win_w]
    best = np.argwhere(sums >= sums.max() - 1e-9 * max(1.0, float(sums.max())))
    centre = np.array([(h - win_h) / 2, (w - win_w) / 2])
    top, left = best[np.argmin(((best - centre) ** 2).sum(axis=1))]
    return _place(left, w - win_w, width - crop[0]), _place(top, h - win_h, height - crop[1])


def _place(start: int, spare_small: int, spare: int) -> int:
    """The full-size offset of a window at ``start`` of ``spare_small`` in the scoring copy (the middle stays the middle)."""
    if spare_small <= 0 or abs(start - spare_small / 2) <= 0.5:
        return spare // 2
    return int(min(spare, round(start / spare_small * spare)))


def _small_rgb(picture: Picture, size: tuple[int, int]) -> np.ndarray:
    """A (h, w, 3) float32 RGB copy in [0, 1] at ``size``; transparent pixels count as black."""
    pixels = picture.pixels
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    planes = []
    for index in range(pixels.shape[2]):
        plane = Image.fromarray(pixels[:, :, index].astype(np.float32) / peak)
        planes.append(np.asarray(plane.resize(size, Image.Resampling.BOX)))
    stack = np.stack(planes, axis=-1)
    colour = stack[..., :3] if stack.shape[2] >= 3 else np.repeat(stack[..., :1], 3, axis=2)
    if stack.shape[2] in (2, 4):
        colour = colour * stack[..., -1:]
    return np.ascontiguousarray(colour, np.float32)
