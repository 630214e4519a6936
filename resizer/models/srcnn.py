"""SRCNN (Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016).

The 9-5-5 network (64 and 32 filters) on the luma of a bicubic upscale. "Same"
zero padding keeps the output the size of its input, unlike the paper's valid
convolutions, so the benchmark protocol scores every pixel the way it does for
bicubic; the engine's halo makes tiled results equal the whole-image ones anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import BicubicRefiner, in_fp32, refiner_halo
from .registry import ModelFamily, register_architecture, register_family


@register_architecture("srcnn", family="srcnn", task="up",
                       summary="SRCNN 9-5-5 (Dong et al. 2016), luma, on a bicubic upscale",
                       channels=(64, 32), kernels=(9, 5, 5))
class SRCNN(BicubicRefiner):
    """Patch extraction, non-linear mapping, reconstruction; one model per trained scale."""

    def __init__(self, channels: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 5, 5)) -> None:
        super().__init__()
        c1, c2 = channels
        k1, k2, k3 = kernels
        self.conv1 = nn.Conv2d(1, c1, k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2)
        self.conv3 = nn.Conv2d(c2, 1, k3, padding=k3 // 2)
        self.relu = nn.ReLU(inplace=True)
        self.radius = k1 // 2 + k2 // 2 + k3 // 2
        self.halo = refiner_halo(self.radius)

    def refine(self, upscaled: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(upscaled))
        out = self.relu(self.conv2(out))
        return in_fp32(self.conv3, out)  # the last layer in fp32 under autocast


FAMILY = register_family(ModelFamily("srcnn", "single", ("srcnn",), "y", scales=(3,),
                            summary="SRCNN 9-5-5 (Dong et al. 2016), luma, on a bicubic upscale"))
