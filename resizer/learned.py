"""Learned networks as ``--method``s: one generic adapter for every registered model family.

The adapter reads a method's facts from its :class:`~resizer.models.ModelFamily` (kind,
directions, summary, colour, capabilities such as kernel pictures); the manifest
(``resizer.weights``) says which file serves which scale; the engine (``resizer.engine``)
runs the network tiled on any device, reading the model's own contract
(``resizer.models.base``). Everything the network does not see is resized with MATLAB
bicubic (``resizer.ops.imresize``), the same kernel the luma networks refine, so the
chroma and alpha line up with the network's output pixel for pixel.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .devices import resolve_device
from .engine import downscale_tensor, upscale_tensor
from .errors import ModelError, ResizerError, UsageError
from .geometry import anchor_to, fit_to_size, upscaled_size
from .image_io import Picture
from .methods import Method, ResizeRequest, RunOptions, register_method
from .models import ModelFamily, ResamplingModel, get_family, list_families
from .ops import imresize
from .precision import check_precision, choose_precision, int8_ranges
from .tensors import pixels_to_tensor, tensor_to_pixels

if TYPE_CHECKING:
    from .weights import LoadedModel

__all__ = ["LearnedMethod", "PairedMethod", "bicubic_to", "downscale_picture", "kernel_method", "kernel_picture",
           "method_for", "upscale_picture"]


# One network run at a time in this process: a run already uses every core (or the whole
# device), so files are pipelined instead (the next file decodes and the previous one
# encodes while this one computes: ``default_jobs``). Reentrant: a pair's up may call down.
NETWORK_SLOT = threading.RLock()
PIPELINED_FILES = 2  # one computing, one decoding or encoding beside it
_CHANNELS_LAST: "weakref.WeakKeyDictionary[ResamplingModel, ResamplingModel]" = weakref.WeakKeyDictionary()
_INT8: "weakref.WeakKeyDictionary[ResamplingModel, tuple[str, ResamplingModel]]" = weakref.WeakKeyDictionary()


def inference_model(model: ResamplingModel, device: torch.device, precision: str = "fp32",
                    ranges: Mapping[str, Any] | None = None) -> ResamplingModel:
    """``model`` as it runs fastest on ``device``: on the CPU a channels-last copy where its class asks.

    A copy, cached per network, because the loader's network is shared and must not change;
    channels-last is a per-class choice (``ResamplingModel.channels_last``) made by measurement.
    ``int8`` gets its own cached copy with int8 convolutions in the calibrated ``ranges``
    (:func:`resizer.models.int8.quantized_copy`; the manifest's, :func:`resizer.precision.int8_ranges`).
    """
    if device.type == "cpu" and precision == "int8":
        from .models.int8 import quantized_copy

        key = json.dumps(ranges or {}, sort_keys=True)  # re-measured ranges make a new copy
        cached = _INT8.get(model)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            fast = quantized_copy(model, ranges or {})
            _INT8[model] = (key, fast)
            return fast
        except ValueError as exc:
            raise UsageError(f"--precision int8 is not available for this network ({exc}); use fp32 or auto") from None
    if device.type != "cpu" or not getattr(model, "channels_last", False):
        return model
    return _cached_copy(_CHANNELS_LAST, model, lambda m: copy.deepcopy(m).to(memory_format=torch.channels_last))


def _cached_copy(cache: "weakref.WeakKeyDictionary[ResamplingModel, ResamplingModel]", model: ResamplingModel,
                 make: Callable[[ResamplingModel], Any]) -> ResamplingModel:
    """``make(model)``, made once per network and kept while the network lives."""
    fast = cache.get(model)
    if fast is None:
        fast = make(model)
        cache[model] = fast
    return fast


class LearnedMethod(Method):
    """A family of trained networks (e.g. ``srcnn``) as a resizing method; its facts come from ``family``."""

    concurrent_files = False  # one image already uses every core
    learned = True

    def default_jobs(self) -> int:
        """Two files at once: their decoding and encoding overlap the other's network run (``NETWORK_SLOT``)."""
        return PIPELINED_FILES

    def __init__(self, family: ModelFamily) -> None:
        self.family = family
        self.name = family.name
        self.directions = family.directions
        self.summary = family.summary

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        """Direction; with ``options`` also device, precision and weights, before any file is read.

        The manifest must have weights for the scale unless ``options.weights`` names a
        file (whose own metadata is checked when it is loaded). Without ``options`` only
        the direction is checked, since a ``--weights`` file may serve a scale the
        manifest does not; ``resize`` checks everything again with its options.
        """
        super().validate(request, options)
        if options is None:
            return
        check_precision(options.precision, resolve_device(options.device))
        if options.weights:
            return
        from .weights import choose_entry

        try:
            choose_entry(self.name, request.scale, task=request.direction, use=options.use,
                         paired_with=request.paired_with)
        except ModelError as exc:
            raise ModelError(f"{exc}; train them with 'resizer train {self.name}' or pass --weights FILE") from None

    def load_network(self, scale: float, options: RunOptions, task: str = "up",
                     paired_with: str | None = None) -> "LoadedModel":
        """The network for ``scale`` (the manifest's file, or ``options.weights``) with its name and source.

        The manifest entry is the one ``options.use`` may pick, or the partner of the downscaler
        ``paired_with`` names. Cached by the weights loader: callers share the network and must not modify it.
        """
        from .weights import load

        return load(self.name, scale, weights=options.weights, device=str(resolve_device(options.device)), task=task,
                    use=options.use, paired_with=paired_with)

    def run_settings(self, request: ResizeRequest, options: RunOptions) -> tuple[str, str]:
        """``(device, precision)`` this request runs with: ``auto`` resolved from the weights' measurements."""
        device, precision, _ = self._settings(request, options)
        return device, precision

    def network(self, request: ResizeRequest, options: RunOptions) -> tuple[str, str, "LoadedModel", ResamplingModel]:
        """``(device, precision, loaded weights, the network as it runs)`` for ``request``."""
        device, precision, loaded = self._settings(request, options)
        ranges = int8_ranges(loaded.entry.precision if loaded.entry is not None else None, torch.device(device))
        return device, precision, loaded, inference_model(loaded.model, torch.device(device), precision, ranges)

    def _settings(self, request: ResizeRequest, options: RunOptions) -> tuple[str, str, "LoadedModel"]:
        """Device, precision and the loaded weights whose measurements chose the precision (one load)."""
        device = resolve_device(options.device)
        loaded = self.load_network(request.scale, options, request.direction, request.paired_with)
        measured = loaded.entry.precision if loaded.entry is not None else None
        precision = choose_precision(options.precision, device, measured)
        if precision == "int8" and int8_ranges(measured, device) is None:
            raise UsageError(f"--precision int8 needs an int8 calibration of weights '{loaded.name}' in the manifest "
                             f"(benchmarks/measure_precision.py {loaded.name} --precision int8); use fp32 or auto")
        return str(device), precision, loaded

    @property
    def draws_kernels(self) -> bool:
        """True if this family's networks can picture their kernels (``resizer kernels``)."""
        return self.family.draws_kernels

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        """Load the network for ``request.scale`` (cached by the weights loader) and run it."""
        self.validate(request, options)
        with NETWORK_SLOT:
            device, precision, _, model = self.network(request, options)
            width, height = request.size
            return upscale_picture(model, picture, (height, width), request.scale, tile=options.tile,
                                   device=device, precision=precision, progress=options.progress)


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


def downscale_picture(
    model: ResamplingModel,
    picture: Picture,
    scale: int,
    *,
    tile: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
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
    run = dict(tile=tile, device=device, precision=precision, progress=progress)
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

    def validate(self, request: ResizeRequest, options: RunOptions | None = None) -> None:
        if request.scale is not None and not float(request.scale).is_integer():
            raise UsageError(f"method '{self.name}' works at integer scales (its trained pairs), "
                             f"not x{request.scale:g}; see 'resizer models list'")
        super().validate(request, options)

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        request = self._paired_request(picture, request)
        self.validate(request, options)
        with NETWORK_SLOT:
            return self._resize_pair(picture, request, options)

    def _paired_request(self, picture: Picture, request: ResizeRequest) -> ResizeRequest:
        """``up`` of this family's own thumbnail at its scale restores with the pair that made it
        (its ``resizer:model``), even when the caller did not read the pairing (``evaluate``)."""
        from .pairing import read_pairing

        if request.direction != "up" or request.paired_with is not None:
            return request
        try:
            pairing = read_pairing(picture.metadata.text)
        except ResizerError:
            return request
        if pairing is None or pairing.method != self.name or abs(pairing.scale - request.scale) > 1e-9:
            return request
        return dataclasses.replace(request, paired_with=pairing.model or None)

    def _resize_pair(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        """``resize`` with the network slot held."""
        from ._version import __version__
        from .pairing import Pairing

        device, precision, loaded, model = self.network(request, options)
        scale = int(request.scale)
        width, height = request.size
        if request.direction == "up":
            return upscale_picture(model, picture, (height, width), scale, tile=options.tile, device=device,
                                   precision=precision, anchored=True, progress=options.progress)
        natural = model.output_size(picture.height, picture.width, scale)
        if (natural[1], natural[0]) != (width, height):
            raise UsageError(f"method '{self.name}' makes {natural[1]}x{natural[0]} thumbnails of "
                             f"{picture.width}x{picture.height} at x{scale}, not {width}x{height}; use --scale {scale}")
        thumbnail = downscale_picture(model, picture, scale, tile=options.tile, device=device,
                                      precision=precision, progress=options.progress)
        pairing = Pairing(self.name, loaded.name, __version__, float(scale), (picture.width, picture.height))
        thumbnail.metadata.text.update(pairing.to_text())
        return thumbnail


def kernel_method(method: str) -> LearnedMethod:
    """The adapter of ``method`` if its family draws its kernels (``draws_kernels``), else a ``UsageError``.

    Commands check this before they read any input, so a wrong ``--method`` fails first.
    """
    drawing = sorted(f.name for f in list_families() if f.draws_kernels)
    key = method.strip().lower()
    if key not in drawing:
        raise UsageError(f"method '{method}' does not predict interpolation kernels "
                         f"(methods that do: {', '.join(drawing) or 'none'})")
    return method_for(get_family(key))


def kernel_picture(picture: Picture, scale: float, *, method: str = "dair", weights: str | None = None,
                   device: str = "auto") -> Picture:
    """A grey picture of the interpolation kernels ``method`` predicts for ``picture`` at ``scale``.

    Only families whose descriptor says ``draws_kernels`` (DAIR) have them; the network is
    the one ``resizer up --method METHOD --scale S`` runs (``weights`` overrides it). It
    sees what it sees when upscaling: the luma for luma families, alpha left out. How the
    grid of tap-weight maps is laid out is the network's ``kernel_image``.
    """
    adapter = kernel_method(method)
    if not scale > 1:
        raise UsageError(f"--scale must be greater than 1, not {scale:g}")
    out_h, out_w = upscaled_size(picture.height, picture.width, scale)
    options = RunOptions(device=device, weights=weights)
    adapter.validate(ResizeRequest("up", (out_w, out_h), scale), options)
    model = adapter.load_network(scale, options).model
    x = pixels_to_tensor(picture.pixels)
    colour = x[:, :-1] if x.shape[1] in (2, 4) else x
    if adapter.family.color == "y":
        seen = rgb_to_ycbcr(colour)[:, :1] if colour.shape[1] == 3 else colour
    else:
        seen = colour if colour.shape[1] == 3 else colour.expand(-1, 3, -1, -1)
    grid = model.kernel_image(seen.to(resolve_device(device)))  # promised by family.draws_kernels
    return Picture(grid[:, :, None])


def method_for(family: ModelFamily) -> LearnedMethod:
    """The ``--method`` adapter of ``family``: a :class:`PairedMethod` for pairs, else a :class:`LearnedMethod`."""
    return PairedMethod(family) if family.is_pair else LearnedMethod(family)


def _register_all() -> None:
    """One method per registered model family (srcnn, vdsr, asdn, car, ...).

    A family that some provider already registered as a method keeps that registration.
    """
    for family in list_families():
        try:
            register_method(method_for(family))
        except ValueError:
            pass


_register_all()
