"""VDSR (Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016).

Twenty 3x3 convolutions of 64 channels with ReLU, learning the residual between the
bicubic upscale of the luma and the HR luma. One model serves every scale (the paper
trains x2, x3 and x4 together), so ``supports_scale`` accepts any factor >= 1; which
factors have trained weights is the manifest's business.
"""

from __future__ import annotations

import torch

from .base import BicubicRefiner, in_fp32, refiner_halo
from .blocks import plain_conv_stack
from .registry import ModelFamily, register_architecture, register_family


@register_architecture("vdsr", family="vdsr", task="up",
                       summary="VDSR (Kim et al. 2016): 20 conv layers, luma residual on a bicubic upscale",
                       depth=20, channels=64)
class VDSR(BicubicRefiner):
    """``depth`` 3x3 convolutions (the first and last change the channel count)."""

    # channels_last measured 0.018 -> 0.030 MP/s here but moves one golden pixel by a level: not taken.

    def __init__(self, depth: int = 20, channels: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("VDSR needs at least 2 layers")
        self.body = plain_conv_stack(1, 1, channels, depth)
        self.radius = depth  # receptive field 2 * depth + 1
        self.halo = refiner_halo(self.radius)

    def refine(self, upscaled: torch.Tensor) -> torch.Tensor:
        # Under autocast the body runs in low precision; its last layer and the residual add in fp32.
        hidden = self.body[:-1](upscaled)
        return in_fp32(lambda u, h: u + self.body[-1](h), upscaled, hidden)


FAMILY = register_family(ModelFamily("vdsr", "single", ("vdsr",), "y", scales=(2, 3, 4),
                            summary="VDSR (Kim et al. 2016): 20 conv layers, luma residual on a bicubic upscale"))
