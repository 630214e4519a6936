"""Learned networks as ``--method``s: one generic adapter for every registered "up" architecture.

The adapter knows a method only by its family name. The manifest (``resizer.weights``)
says which file serves which scale; the model contract (``resizer.models.base``) says
whether the network sees luma or RGB; the engine (``resizer.engine``) runs it tiled on
any device. Everything the network does not see is resized with MATLAB bicubic
(``resizer.ops.imresize``), the same kernel the luma networks refine, so the chroma
and alpha line up with the network's output pixel for pixel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .engine import downscale_tensor, fit_to_size, resolve_device, resolve_precision, upscale_tensor
from .errors import ModelError, UsageError
from .image_io import Picture
from .methods import Method, ResizeRequest, RunOptions, register_method
from .models import ResamplingModel, list_architectures
from .models.base import upscaled_size
from .ops import imresize
from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .tensors import pixels_to_tensor, tensor_to_pixels

__all__ = ["LearnedMethod", "PairedMethod", "anchor_to", "bicubic_to", "downscale_picture", "upscale_picture"]


class LearnedMethod(Method):
    """A family of trained networks (e.g. ``srcnn``) as a resizing method."""

    concurrent_files = False  # one image already uses every core

    def __init__(self, family: str, directions: frozenset[str] | set[str] = frozenset({"up"}), summary: str = "") -> None:
        self.name = family.strip().lower()
        self.family = self.name
        self.directions = frozenset(directions)
        self.summary = summary

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        """Direction; with ``options`` also device, precision and weights, before any file is read.

        The manifest must have weights for the scale unless ``options.weights`` names a
        file (whose own metadata is checked when it is loaded). Without ``options`` only
        the direction is checked, since a ``--weights`` file may serve a scale the
        manifest does not; ``resize`` checks everything again with its options.
        """
        super().validate(request)
        if options is None:
            return
        resolve_precision(options.precision, resolve_device(options.device))
        if options.weights:
            return
        from .weights import find_entry

        try:
            find_entry(self.family, request.scale, task=request.direction)
        except ModelError as exc:
            raise ModelError(f"{exc}; train them with 'resizer train {self.family}' or pass --weights FILE") from None

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        """Load the network for ``request.scale`` (cached by ``weights.load_model``) and run it."""
        from .weights import load_model

        self.validate(request, options)
        device = resolve_device(options.device)
        model, _entry = load_model(self.family, request.scale, weights=options.weights, device=str(device),
                                   task=request.direction)
        width, height = request.size
        if options.kernels:
            _draw_kernels(model, picture, options.kernels, self.name)
        return upscale_picture(model, picture, (height, width), request.scale, tile=options.tile, device=device,
                               precision=options.precision)

    @property
    def draws_kernels(self) -> bool:
        """True if this family's networks can picture their kernels (``--kernels``)."""
        return any(hasattr(arch.builder, "kernel_image") for arch in list_architectures(self.family))


def _draw_kernels(model: ResamplingModel, picture: Picture, path: str, family: str) -> None:
    """Save ``model.kernel_image`` of ``picture``'s luma (grey as it is) as a PNG at ``path``."""
    from .image_io import save_picture

    draw = getattr(model, "kernel_image", None)
    if draw is None:
        raise UsageError(f"--kernels: method '{family}' does not predict interpolation kernels (dair does)")
    x = pixels_to_tensor(picture.pixels)
    colour = x[:, :-1] if x.shape[1] in (2, 4) else x
    luma = rgb_to_ycbcr(colour)[:, :1] if colour.shape[1] == 3 else colour
    save_picture(Picture(draw(luma)[:, :, None]), path, format="png", overwrite=True)


def bicubic_to(x: torch.Tensor, scale: float, out_size: tuple[int, int]) -> torch.Tensor:
    """MATLAB bicubic upscale of ``x`` by ``scale``, brought to ``out_size`` the way the engine does.

    The same kernel, phase and size fix-up as a luma network's own bicubic, so a Y model's
    chroma (and any alpha) is aligned with its luma.
    """
    natural = upscaled_size(int(x.shape[-2]), int(x.shape[-1]), scale)
    return fit_to_size(imresize(x, scale=scale, size=natural), out_size)


def upscale_picture(
    model: ResamplingModel,
    picture: Picture,
    out_size: tuple[int, int],
    scale: float,
    *,
    tile: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    anchored: bool = False,
) -> Picture:
    """Upscale ``picture`` to ``out_size`` ``(height, width)`` with ``model``; metadata is carried.

    Luma models get MATLAB BT.601 Y (grey pictures as they are) and the chroma is
    bicubic; RGB models get RGB (grey replicated to three channels, averaged back).
    Alpha is bicubic. 16-bit pictures go through the same float path and stay 16-bit.
    ``anchored`` (paired thumbnails, whose pixel grid starts at the original's top-left
    corner): the model's natural output is cropped or edge-padded at the bottom/right to
    ``out_size`` (:func:`anchor_to`) instead of stretched to it.
    """
    if anchored:
        natural = model.output_size(picture.height, picture.width, scale)
        restored = upscale_picture(model, picture, natural, scale, tile=tile, device=device, precision=precision,
                                   batch=batch, progress=progress)
        pixels = anchor_to(pixels_to_tensor(restored.pixels), out_size)
        return Picture(np.ascontiguousarray(tensor_to_pixels(pixels, dtype=restored.pixels.dtype)), restored.metadata)
    pixels = picture.pixels
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected (H, W, C) pixels with 1 to 4 channels, got shape {pixels.shape}")
    x = pixels_to_tensor(pixels)
    channels = x.shape[1]
    alpha = x[:, -1:] if channels in (2, 4) else None
    colour = x[:, :-1] if alpha is not None else x
    run = dict(tile=tile, device=device, precision=precision, batch=batch, progress=progress)

    if model.color == "y":
        if colour.shape[1] == 3:
            ycbcr = rgb_to_ycbcr(colour)
            luma = upscale_tensor(model, ycbcr[:, :1], scale, out_size, **run)
            chroma = bicubic_to(ycbcr[:, 1:], scale, out_size)
            del ycbcr
            out = ycbcr_to_rgb(torch.cat([luma, chroma], dim=1))
            del luma, chroma
        else:
            out = upscale_tensor(model, colour, scale, out_size, **run)
    elif colour.shape[1] == 1:
        out = upscale_tensor(model, colour.expand(-1, 3, -1, -1), scale, out_size, **run).mean(dim=1, keepdim=True)
    else:
        out = upscale_tensor(model, colour, scale, out_size, **run)

    if alpha is not None:
        out = torch.cat([out, bicubic_to(alpha, scale, out_size)], dim=1)
    result = tensor_to_pixels(out.clamp_(0, 1), dtype=pixels.dtype)
    metadata = dataclasses.replace(picture.metadata, text=dict(picture.metadata.text))
    return Picture(np.ascontiguousarray(result), metadata)


def anchor_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop, or pad by repeating the last row/column, at the bottom/right to ``size`` ``(height, width)``."""
    x = x[..., : size[0], : size[1]]
    pad_h, pad_w = size[0] - int(x.shape[-2]), size[1] - int(x.shape[-1])
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x.contiguous()


def downscale_picture(
    model: ResamplingModel,
    picture: Picture,
    scale: int,
    *,
    tile: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
) -> Picture:
    """Downscale ``picture`` with an RGB downscaler; alpha by MATLAB bicubic; metadata carried.

    Grey pictures are replicated to three channels and averaged back; 16-bit stays 16-bit.
    The size is the model's natural one (``model.output_size``).
    """
    pixels = picture.pixels
    x = pixels_to_tensor(pixels)
    alpha = x[:, -1:] if x.shape[1] in (2, 4) else None
    colour = x[:, :-1] if alpha is not None else x
    grey = colour.shape[1] == 1
    run = dict(tile=tile, device=device, precision=precision)
    out = downscale_tensor(model, colour.expand(-1, 3, -1, -1) if grey else colour, scale, **run)
    if grey:
        out = out.mean(dim=1, keepdim=True)
    if alpha is not None:
        size = (int(out.shape[-2]), int(out.shape[-1]))
        out = torch.cat([out, imresize(alpha, scale=1.0 / scale, size=size).clamp_(0, 1)], dim=1)
    result = tensor_to_pixels(out.clamp_(0, 1), dtype=pixels.dtype)
    metadata = dataclasses.replace(picture.metadata, text=dict(picture.metadata.text))
    return Picture(np.ascontiguousarray(result), metadata)


class PairedMethod(LearnedMethod):
    """A family whose downscaler and upscaler were trained together (CAR, DSN).

    ``down`` writes the pairing metadata (:mod:`resizer.pairing`) into the thumbnail;
    ``up`` runs the partner upscaler and, given the original size, restores it exactly
    (the thumbnail's grid is anchored at the top-left, so odd sizes are cropped or
    edge-padded, never stretched).
    """

    def __init__(self, family: str, summary: str = "") -> None:
        super().__init__(family, {"down", "up"}, summary)

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        if request.scale is not None and not float(request.scale).is_integer():
            raise UsageError(f"method '{self.name}' works at integer scales (its trained pairs), "
                             f"not x{request.scale:g}; see 'resizer models list'")
        super().validate(request, options)

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        from ._version import __version__
        from .pairing import Pairing
        from .weights import load_model

        self.validate(request, options)
        device = resolve_device(options.device)
        scale = int(request.scale)
        model, entry = load_model(self.family, scale, weights=options.weights, device=str(device),
                                  task=request.direction)
        width, height = request.size
        if request.direction == "up":
            return upscale_picture(model, picture, (height, width), scale, tile=options.tile, device=device,
                                   precision=options.precision, anchored=True)
        natural = model.output_size(picture.height, picture.width, scale)
        if (natural[1], natural[0]) != (width, height):
            raise UsageError(f"method '{self.name}' makes {natural[1]}x{natural[0]} thumbnails of "
                             f"{picture.width}x{picture.height} at x{scale}, not {width}x{height}; use --scale {scale}")
        thumbnail = downscale_picture(model, picture, scale, tile=options.tile, device=device,
                                      precision=options.precision)
        model_name = entry.name if entry is not None else Path(options.weights or "").name
        pairing = Pairing(self.family, model_name, __version__, float(scale), (picture.width, picture.height))
        thumbnail.metadata.text.update(pairing.to_text())
        return thumbnail


def _register_all() -> None:
    """One method per family of registered architectures (srcnn, vdsr, asdn, car, ...).

    Families with a down network (CAR, DSN) become :class:`PairedMethod`s serving both
    directions; the others up-only :class:`LearnedMethod`s. A family that some provider
    already registered as a method keeps that registration.
    """
    summaries: dict[str, str] = {}
    paired = {arch.family for arch in list_architectures() if arch.task == "down"}
    for arch in list_architectures():  # sorted by name: a pair's summary is its downscaler's
        summaries.setdefault(arch.family, arch.summary)
    for family, summary in sorted(summaries.items()):
        method = PairedMethod(family, summary) if family in paired else LearnedMethod(family, {"up"}, summary)
        try:
            register_method(method)
        except ValueError:
            pass


_register_all()
