"""spandrel's networks in resizer's model contract, with the tile overlap their structure implies.

Tile overlap (``halo``, in input pixels) is an upper bound of the receptive field: the sum
of every convolution's (and pooling's) radius, plus one window per windowed-attention
block, plus 2 for an interpolation inside ``forward``. Within the architecture's default
(``DEFAULT_HALO``: 32 input pixels for convolutional networks, 64 for windowed
transformers) tiles equal the whole image; past it (a full-size ESRGAN's bound is 353) the
default is used and tiles are close but not equal; networks with global pooling or
global attention (RCAN, HAT's channel attention, ...) are never exact when tiled.
``--tile 0`` runs the whole image. Tiles start on multiples of the network's windows and
padding multiple (``tile_multiple``), so the padding it does itself is the whole image's.
Nothing here imports spandrel: the descriptor comes from :mod:`resizer.weights.community`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import ResamplingModel

SCALE_TOLERANCE = 1e-6
DEFAULT_HALO_CONV = 32
DEFAULT_HALO_WINDOWED = 64
DEFAULT_HALO: dict[str, int] = {}  # per spandrel architecture id, where one differs from the two above


@dataclass(frozen=True)
class Receptive:
    """A network's tile overlap: ``halo`` input pixels, ``exact`` if it bounds the receptive field."""

    halo: int
    exact: bool
    multiple: int  # tiles start on multiples of this (windows, padding)
    bound: int  # the structural bound (sum of radii), whatever the default


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (int(value), int(value))


def receptive_field(descriptor: Any) -> Receptive:
    """The overlap tiles of ``descriptor``'s network need (see the module docstring)."""
    radius, windows, global_context = 2, [], False  # 2: an interpolation inside forward
    for module in descriptor.model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, dilation = _pair(module.kernel_size), _pair(getattr(module, "dilation", 1))
            radius += max(d * (k - 1) - (d * (k - 1)) // 2 for k, d in zip(kernel, dilation))
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            global_context = True
        window = getattr(module, "window_size", None)
        if isinstance(window, (int, tuple, list)) and not isinstance(window, bool):
            windows.append(max(_pair(window)))
            radius += max(_pair(window))
        elif "attention" in type(module).__name__.lower():
            global_context = True
    arch = descriptor.architecture.id
    default = DEFAULT_HALO.get(arch, DEFAULT_HALO_WINDOWED if windows else DEFAULT_HALO_CONV)
    multiple = math.lcm(int(descriptor.size_requirements.multiple_of), *windows) if windows else \
        int(descriptor.size_requirements.multiple_of)
    exact = not global_context and radius <= default
    return Receptive(radius if exact else default, exact, max(1, multiple), radius)


class CommunityNet(ResamplingModel):
    """A spandrel network at its own scale: RGB (or grey as luma), with its receptive field as halo."""

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.net = descriptor.model  # a submodule: ``.to(device)`` moves it
        self.descriptor = descriptor
        self.arch: str = descriptor.architecture.id
        self.native_scale = int(descriptor.scale)
        self.color = "y" if descriptor.input_channels == 1 else "rgb"  # type: ignore[misc]
        field = receptive_field(descriptor)
        self.halo, self.exact_tiles, self.tile_multiple = field.halo, field.exact, field.multiple
        self.concurrent_tiles = False  # some (SPAN) re-fuse their weights inside forward

    def supports_scale(self, scale: float) -> bool:
        return abs(scale - self.native_scale) <= SCALE_TOLERANCE

    def supports(self, dtype: torch.dtype | None) -> bool:
        """Whether the network may run under autocast to ``dtype`` (``None``: float32)."""
        if dtype == torch.float16:
            return bool(self.descriptor.supports_half)
        if dtype == torch.bfloat16:
            return bool(self.descriptor.supports_bfloat16)
        return True

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return self.descriptor(x)  # pads to the network's size multiple and crops back
