"""The contract every resampling network keeps, so one engine can run them all.

CONTRACT (the engine, the learned methods, training and the benchmark rely on it):

- ``forward(x, scale)`` takes ``(N, C, h, w)`` floats in [0, 1] and returns the
  resampled batch. ``scale`` is the request's factor (>= 1): upscalers return
  ``(N, C, round(h * scale), round(w * scale))`` with halves rounded up, as the
  pipeline sizes outputs (:func:`resizer.geometry.upscaled_size`); downscalers divide
  instead (:func:`resizer.geometry.downscaled_size`).
  Every model is fed LR in and gives HR out: networks that refine a bicubic upscale
  do that upscale inside ``forward`` (MATLAB bicubic, :func:`resizer.ops.imresize`),
  so training and inference never prepare inputs differently.
- ``color`` is ``"y"`` (the network sees MATLAB BT.601 luma only; chroma is resized
  by bicubic outside it) or ``"rgb"``.
- ``halo`` is how many input pixels of context on each side make an output pixel
  exactly what the whole-image run gives (the receptive field, in input pixels), at
  the worst supported scale. ``context(scale)`` may give a tighter value per scale;
  the engine uses ``context``.
- ``tile_multiple`` (default 1): tiles must start on multiples of it, in input pixels
  (a windowed transformer's window, a network that pads its input to a multiple).
- ``concurrent_tiles`` (default True): ``forward`` may run on several CPU tiles at once;
  False for networks that change their own state in ``forward``.
- ``supports_scale(scale)`` says whether the architecture can produce ``scale`` at all
  (which scales have trained weights is the manifest's business, not the model's).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, ClassVar, Iterator, Literal

import numpy as np
import torch
from torch import nn

from ..geometry import upscaled_size
from ..ops import imresize
from .int8 import int8_suspended

Color = Literal["y", "rgb"]


@contextlib.contextmanager
def fp32_section(x: torch.Tensor) -> Iterator[None]:
    """Autocast off for the numerically sensitive part of a network (a no-op when autocast is off).

    Under ``--precision bf16``/``fp16`` the engine runs a network under autocast (under
    ``int8``, with int8 convolutions: :mod:`resizer.models.int8`). The parts
    an 8-bit output is sensitive to (the bicubic base, the residual add, the last layer,
    resampling by predicted kernels or offsets) stay fp32: every model marks them with
    this (or :func:`in_fp32`) and widens its inputs (:func:`widen`). In fp32 runs it
    changes nothing, so fp32 outputs stay bit-identical.
    """
    device_type = x.device.type
    with int8_suspended():  # int8 convolutions (``--precision int8``) are off here as well
        if device_type in ("cpu", "cuda", "mps") and torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type, enabled=False):
                yield
        else:
            yield


def widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 if it is half precision (autocast's output), else unchanged (fp32 and fp64 stay)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def in_fp32(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)`` in float32 even under autocast (see :func:`fp32_section`)."""
    with fp32_section(tensors[0]):
        return fn(*(widen(t) for t in tensors))


class ResamplingModel(nn.Module):
    """Base class of every network behind a learned ``--method``."""

    color: ClassVar[Color] = "rgb"
    halo: int = 0  # a class default; configurable models set it per instance
    tile_multiple: int = 1  # tiles start on multiples of this many input pixels
    concurrent_tiles: bool = True  # forward is safe to call from several threads at once
    # Inference on the CPU with weights in channels-last order (``learned.inference_model``): set
    # where it measured faster; it slowed other networks (DAIR), so it is a per-class choice.
    channels_last: ClassVar[bool] = False

    def supports_scale(self, scale: float) -> bool:
        """True if this architecture can produce ``scale``."""
        return scale >= 1

    def context(self, scale: float) -> int:
        """Input pixels of context needed on each side at ``scale`` (default: ``halo``)."""
        return self.halo

    def output_size(self, h: int, w: int, scale: float) -> tuple[int, int]:
        """The natural ``(height, width)`` of ``forward`` on an ``h x w`` input (upscalers: :func:`upscaled_size`)."""
        return upscaled_size(h, w, scale)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class BicubicRefiner(ResamplingModel):
    """A network that refines a MATLAB-bicubic upscale of its input (SRCNN, VDSR).

    Subclasses set ``radius`` (the body's receptive radius in *output* pixels) and
    implement ``refine``. The context in input pixels follows from the radius and the
    bicubic kernel's support: an output pixel ``radius`` away from a tile's kept area
    samples input within ``(radius - 0.5) / scale + 1.5`` pixels of the area's edge.
    """

    color: ClassVar[Color] = "y"
    radius: int = 0

    def refine(self, upscaled: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def context(self, scale: float) -> int:
        return math.ceil((self.radius - 0.5) / scale + 1.5 - 1e-9)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        # ``scale`` sets the kernel and ``size`` the shape, so a tile starting at an input
        # offset ``a`` samples exactly where the whole image does, shifted by ``a * scale``.
        size = upscaled_size(x.shape[-2], x.shape[-1], scale)
        return self.refine(in_fp32(lambda t: imresize(t, scale=scale, size=size), x))


def refiner_halo(radius: int, min_scale: float = 1.0) -> int:
    """``BicubicRefiner.context`` at its worst (smallest) scale, for the ``halo`` attribute."""
    return math.ceil((radius - 0.5) / min_scale + 1.5 - 1e-9)


class ResamplingPair(nn.Module):
    """A downscaler and the upscaler trained with it (CAR, DSN): one module for training.

    Training, checkpoints and ``--resume`` treat the pair like any single network
    (parameters ``down.*`` and ``up.*``); export writes the two halves as separate files.
    The down network supplies the joint objective through ``pair_loss_weights(**terms)``
    (its configurable loss weights, refusing unknown names) and ``pair_loss(up, hr,
    weights) -> (loss, {term: value})``.
    """

    color: ClassVar[Color] = "rgb"

    def __init__(self, down: ResamplingModel, up: ResamplingModel) -> None:
        super().__init__()
        self.down, self.up = down, up

    def loss(self, hr: torch.Tensor, weights: object) -> tuple[torch.Tensor, dict[str, float]]:
        return self.down.pair_loss(self.up, hr, weights)  # type: ignore[operator]

    def codec_loss(self, hr: torch.Tensor, scale: float, fmt: str, qualities: list[int], *,
                   joint: bool = False, rate: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 of the upscaler restoring codec-decoded thumbnails (one quality per patch).

        The codec has no gradient. By default only the upscaler learns from these batches:
        it learns to remove the codec's artefacts while it enlarges (DSN's codec fine-tune).
        ``joint`` (JPEG) trains the downscaler through the codec too: the forward pass uses
        the real decoded thumbnail, the backward pass the gradient of the differentiable
        approximation (:func:`resizer.ops.jpeg_approximation`), and ``rate`` weighs its
        bits-per-HR-pixel proxy, so that the thumbnail also learns to cost fewer bits.
        """
        from ..image_io import Picture, encode_picture, load_picture
        from ..tensors import pixels_to_tensor, tensor_to_pixels

        if joint and fmt not in ("jpeg", "jpg"):
            raise ValueError(f"training through the codec needs its differentiable approximation: jpeg only, not {fmt}")
        with torch.set_grad_enabled(joint and torch.is_grad_enabled()):
            lr = self.down(hr, scale)
        real = []
        for sample, quality in zip(lr.detach().clamp(0, 1).float().cpu(), qualities):
            data = encode_picture(Picture(tensor_to_pixels(sample[None], dtype=np.uint8)), fmt, quality=quality)
            real.append(pixels_to_tensor(load_picture(data).pixels))
        decoded = torch.cat(real).to(device=hr.device, dtype=lr.dtype)
        terms: dict[str, torch.Tensor] = {}
        if joint:
            from ..ops import jpeg_approximation

            approx, bits = jpeg_approximation(lr.float(), qualities)
            decoded = approx + (decoded - approx).detach()  # real values, the approximation's gradient
            if rate:
                terms["rate"] = rate * bits.mean() / float(scale) ** 2
        terms["l1"] = torch.nn.functional.l1_loss(self.up(decoded, scale), hr)
        total = sum(terms.values())
        return total, {name: float(value.detach()) for name, value in terms.items()}

    @torch.no_grad()
    def round_trip(self, hr: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(thumbnail, restored)``: the thumbnail rounded to 8 bits as a stored file is."""
        lr = torch.floor(self.down(hr, scale).clamp(0, 1) * 255.0 + 0.5) / 255.0
        return lr, self.up(lr, scale)
