"""DeJPEG: a small residual network that removes JPEG artefacts from the luma, at scale 1.

In the style of ARCNN/DnCNN, sized for a CPU the way FFDNet is: the luma is folded 2x2
into four channels (``pixel_unshuffle``), ``depth`` 3x3 convolutions of ``channels``
features run at half resolution (a quarter of the work per pixel, and a receptive field
of ``4 * depth + 2`` pixels, several 8x8 blocks wide), and the last layer's residual is
unfolded and added to the decoded luma. The output layer starts near zero, so an
untrained network is the identity (the decoded file). Blind: one network for every
quality; ``resizer.jpeg_quality`` estimates the quality to decide whether to run it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import ResamplingModel, in_fp32
from .blocks import plain_conv_stack, shrink_
from .registry import ModelFamily, register_architecture, register_family

SUMMARY = "DeJPEG: 10-layer luma residual CNN at half resolution removing JPEG artefacts (scale 1)"


@register_architecture("dejpeg", family="dejpeg", task="up", summary=SUMMARY, depth=10, channels=64)
class DeJPEG(ResamplingModel):
    """``depth`` 3x3 convolutions on the 2x2-folded luma; the output is the decoded luma plus a residual."""

    color = "y"
    tile_multiple = 2  # the 2x2 fold must see the whole image's pixel pairs

    def __init__(self, depth: int = 10, channels: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("DeJPEG needs at least 2 layers")
        self.body = plain_conv_stack(4, 4, channels, depth)
        shrink_(self.body[-1], 0.1)  # start near the identity: the decoded file
        self.halo = 2 * depth + 2  # receptive radius: depth half-resolution pixels, plus the fold

    def supports_scale(self, scale: float) -> bool:
        """Restoration keeps the size: scale 1 only."""
        return abs(float(scale) - 1.0) < 1e-9

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        padded = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate") if (height % 2 or width % 2) else x
        hidden = self.body[:-1](F.pixel_unshuffle(padded, 2))
        out = in_fp32(lambda p, h: p + F.pixel_shuffle(self.body[-1](h), 2), padded, hidden)
        return out[..., :height, :width]


FAMILY = register_family(ModelFamily("dejpeg", "single", ("dejpeg",), "y", scales=(1,), summary=SUMMARY,
                                     restores="jpeg"))
