"""The non-learned methods: Pillow's filters and MATLAB bicubic (``matlab-bicubic``).

Pillow does the arithmetic for nearest, bilinear, bicubic, lanczos and box; this module
only adapts pixel formats (alpha, 16 bits) and registers the methods. Never re-implement
these filters. ``matlab-bicubic`` wraps the operator :func:`resizer.ops.imresize` (the
benchmark protocol's resampler) and imports torch only when it runs, so the classical
path loads without torch.

- 8-bit L/LA/RGB/RGBA goes straight to ``Image.resize`` (which premultiplies alpha
  itself), on the Pillow image the loader already holds: no array round trip.
- 16-bit has no multi-channel Pillow mode (and Pillow's own ``I;16`` resampling is not
  exact), so each channel is resampled in mode ``F`` (float32) and rounded back, with
  colour premultiplied by alpha here, as Pillow does for 8 bits: one channel at a time,
  so memory stays near the picture's own size (see ``benchmarks/bench_memory.py``).
- ``--linear`` (``RunOptions.linear_light``) takes the same per-channel float path, with
  colour decoded from sRGB to linear light before Pillow resamples it and encoded after.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np
from PIL import Image

from .errors import UsageError
from .image_io import Picture, picture_from_pil, picture_to_pil
from .methods import Method, ResizeRequest, RunOptions, register_method

FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise UsageError(f"output size {width}x{height} is empty")
    return width, height


def _resample(filter_name: str) -> Image.Resampling:
    try:
        return FILTERS[filter_name]
    except KeyError:
        raise UsageError(f"unknown classical filter '{filter_name}' (available: {', '.join(FILTERS)})") from None


# Rows per band when premultiplying (bounds the temporaries to a few MB whatever the image size).
_BAND_PIXELS = 1 << 20


@dataclasses.dataclass(frozen=True)
class _Coding:
    """How stored samples become the floats Pillow resamples, and back (``peak``: the samples' maximum).

    ``decode``/``encode`` of ``None`` keep the values as they are (16-bit resampling of the
    stored values); linear light passes colour through the sRGB transfer function.
    """

    peak: float
    decode: Callable[[np.ndarray], np.ndarray] | None = None
    encode: Callable[[np.ndarray], np.ndarray] | None = None


def _plane(pixels: np.ndarray, index: int, premultiply: bool, coding: _Coding) -> Image.Image:
    """Channel ``index`` as a mode ``F`` image, times alpha / peak if ``premultiply``; built in row bands.

    The arithmetic is the same float32 arithmetic element by element as on the whole
    image at once (``colour * (alpha / peak)``), so results do not depend on the bands;
    only the Pillow image (4 bytes a pixel) and one band exist at a time.
    """
    height, width = pixels.shape[:2]
    plane = Image.new("F", (width, height))
    rows = max(1, _BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        samples = pixels[top:top + rows, :, index]
        band = coding.decode(samples) if coding.decode is not None else samples.astype(np.float32)
        if premultiply:
            band *= pixels[top:top + rows, :, -1].astype(np.float32) / np.float32(coding.peak)
        plane.paste(Image.fromarray(band), (0, top))
    return plane


def _resize_plane(plane: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    return np.asarray(plane.resize(size, resample))


def _resize_planes(pixels: np.ndarray, size: tuple[int, int], resample: Image.Resampling,
                   coding: _Coding, colour_channels: int) -> np.ndarray:
    """(H, W, C) samples -> (h, w, C) of the same dtype, one channel at a time in float32 (mode ``F``).

    Colour is premultiplied by alpha (no colour bleeds out of transparent pixels) and
    divided again after resampling, as Pillow does for 8 bits. One float32 input plane
    lives at a time: about 6 bytes per input pixel on top of the picture itself. The
    first ``colour_channels`` go through ``coding``; the rest (alpha) are resampled as stored.
    """
    channels = pixels.shape[2]
    premultiply = channels in (2, 4) and resample != Image.Resampling.NEAREST
    out = np.empty((size[1], size[0], channels), pixels.dtype)

    def store(index: int, values: np.ndarray, encode: bool) -> None:
        if encode and coding.encode is not None:
            values = coding.encode(values)
        np.rint(values, out=values)
        np.clip(values, 0.0, coding.peak, out=values)
        out[:, :, index] = values

    inverse = None
    if premultiply:
        alpha = np.clip(_resize_plane(_plane(pixels, channels - 1, False, _Coding(coding.peak)), size, resample),
                        0.0, coding.peak)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.float32(coding.peak) / alpha
    for index in range(channels - 1 if premultiply else channels):
        plain = _Coding(coding.peak) if index >= colour_channels else coding
        values = _resize_plane(_plane(pixels, index, premultiply, plain), size, resample)
        if inverse is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(alpha > 0, values * inverse, np.float32(0.0))
        store(index, np.array(values, np.float32), index < colour_channels)
    if premultiply:
        store(channels - 1, alpha, False)
    return out


def _resize16(pixels: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """uint16 (H, W, C) -> uint16 (h, w, C): the stored values resampled in float32 (mode ``F``)."""
    return _resize_planes(pixels, size, resample, _Coding(65535.0), pixels.shape[2])


@functools.lru_cache(maxsize=2)
def _srgb_coding(dtype: np.dtype) -> _Coding:
    """sRGB-encoded samples to linear light in [0, peak] (a table per sample value) and back (IEC 61966-2-1)."""
    peak = float(np.iinfo(dtype).max)
    encoded = np.arange(peak + 1, dtype=np.float64) / peak
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    table = (linear * peak).astype(np.float32)

    def encode(values: np.ndarray) -> np.ndarray:
        v = np.clip(values / np.float32(peak), 0.0, 1.0)
        return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32) * peak

    return _Coding(peak, decode=lambda samples: table[samples], encode=encode)


def resize_linear_light(picture: Picture, size: tuple[int, int], filter_name: str) -> Picture:
    """Resize in linear light: colour decoded from sRGB, resampled by Pillow in float32, encoded again.

    Averaging encoded values darkens fine light-on-dark detail (a 1-pixel black and white
    checkerboard halves to grey 128 instead of the 188 it looks like); in linear light it
    does not. Alpha is resampled as stored and colour is premultiplied by it. The sRGB
    curve is assumed whatever the ICC profile says (others, such as Adobe RGB, are close to it).
    """
    size = _check_size(size)
    pixels = picture.pixels
    colour = pixels.shape[2] - 1 if pixels.shape[2] in (2, 4) else pixels.shape[2]
    resized = _resize_planes(pixels, size, _resample(filter_name), _srgb_coding(pixels.dtype), colour)
    return Picture(resized, picture.metadata)


def resize_pixels(pixels: np.ndarray, size: tuple[int, int], filter_name: str) -> np.ndarray:
    """Resize an (H, W, C) uint8/uint16 array to ``size`` = (width, height) with a Pillow filter.

    8-bit results are read-only views of Pillow's output (copy before editing in place).
    """
    size = _check_size(size)
    resample = _resample(filter_name)
    if pixels.dtype == np.uint16:
        return _resize16(pixels, size, resample)
    return resize_picture(Picture(pixels), size, filter_name).pixels


def resize_picture(picture: Picture, size: tuple[int, int], filter_name: str,
                   reducing_gap: float | None = None) -> Picture:
    """A new picture of ``size`` carrying the same metadata object.

    ``reducing_gap`` (8-bit only; Pillow's own argument): large reductions first average
    whole blocks (``Image.reduce``) down to that many times the output size, then filter.
    """
    size = _check_size(size)
    resample = _resample(filter_name)
    if picture.bit_depth == 16:
        return Picture(_resize16(picture.pixels, size, resample), picture.metadata)
    image = picture_to_pil(picture)
    return picture_from_pil(image.resize(size, resample, reducing_gap=reducing_gap), picture.metadata)


class PillowMethod(Method):
    """A classical method: one Pillow resampling filter."""

    animations = True
    linear_light = True

    def __init__(self, name: str, summary: str) -> None:
        self.name = name
        self.summary = summary
        self.resample = FILTERS[name]

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        super().validate(request, options)
        _check_size(request.size)

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        if options.linear_light:
            return resize_linear_light(picture, request.size, self.name)
        return resize_picture(picture, request.size, self.name, options.reducing_gap)


METHODS: tuple[PillowMethod, ...] = (
    PillowMethod("nearest", "copies the closest pixel: pixel art, masks and labels (no new colours; blocky)"),
    PillowMethod("bilinear", "2x2 linear blend: fast and smooth, a little soft; previews"),
    PillowMethod("bicubic", "cubic filter: the usual all-rounder for photos, sharper than bilinear"),
    PillowMethod("lanczos", "Lanczos-3: the sharpest classical filter for photos; slight ringing at hard edges"),
    PillowMethod("box", "area average: clean downscaling by large or integer factors, no ringing"),
)

# Samples per float64 pass in matlab-bicubic (~128 MB).
_PLANE_BUDGET = 1 << 24


class MatlabBicubic(Method):
    animations = True
    """The benchmark protocol's resampler, as a ``--method``."""

    name = "matlab-bicubic"
    directions = frozenset({"down", "up"})
    summary = "MATLAB imresize bicubic (the benchmark protocol; differs from Pillow's bicubic at the borders)"

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        """Resize every channel (alpha too) and round like MATLAB's uint8/uint16 conversion.

        Works on raw sample values in float64 rather than through ``pixels_to_tensor`` /
        ``tensor_to_pixels`` (float32 in [0, 1], round half to even): at x2 and x4 the
        weights are dyadic, exact .5 results do occur, and MATLAB rounds them up; the
        float32 path flips about one pixel in 20,000 away from MATLAB's LR images.
        ``auto`` is CUDA, else CPU: never MPS, which lacks float64.
        """
        import torch  # only here: the classical path loads without torch

        from .devices import resolve_device
        from .ops import imresize

        self.validate(request)
        width, height = request.size
        device = resolve_device(options.device, allow_mps=False)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        pixels = picture.pixels
        peak = float(np.iinfo(pixels.dtype).max)
        channels = pixels.shape[2]
        # Channels go through together on small images; large ones a few planes at a time
        # so that float64 copies of 12 MP images stay bounded.
        group = max(1, min(channels, _PLANE_BUDGET // max(1, pixels.shape[0] * pixels.shape[1], width * height)))
        parts = []
        with torch.no_grad():
            for start in range(0, channels, group):
                planes = np.ascontiguousarray(pixels[:, :, start : start + group].transpose(2, 0, 1))
                x = torch.from_numpy(planes.astype(np.float64)).to(device=device, dtype=dtype)
                out = imresize(x, size=(height, width))
                out = torch.floor(out + 0.5).clamp_(0, peak)  # MATLAB's conversion: half away from zero
                parts.append(out.cpu().numpy().astype(pixels.dtype))
        result = np.ascontiguousarray(np.concatenate(parts, axis=0).transpose(1, 2, 0))
        metadata = dataclasses.replace(picture.metadata, text=dict(picture.metadata.text))
        return Picture(result, metadata)


for _method in (*METHODS, MatlabBicubic()):
    register_method(_method)
