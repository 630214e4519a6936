"""Reference architectures for the benchmark only: speed yardsticks, never a ``--method``.

EDSR-baseline (Lim et al. 2017: 16 residual blocks x 64 channels, pixel-shuffle
upsampler) and Real-ESRGAN's RRDBNet (Wang et al. 2018/2021: 23 RRDB, 64 features,
growth 32, x4) are what most published upscalers are compared against, so the
benchmark reports our speeds as ratios to them measured in the same process. They
run with random weights (speed does not depend on the values) and are deliberately
kept out of the architecture registry so they never show up as methods or in
``resizer models``; :data:`REFERENCE_MODELS` is how the benchmark finds them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .base import ResamplingModel

# EDSR's DIV2K mean, subtracted before and added after the network (as in the paper's code).
_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class _ResBlock(nn.Module):
    def __init__(self, feats: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv2 = nn.Conv2d(feats, feats, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class EDSRBaseline(ResamplingModel):
    """EDSR-baseline for one integer scale (2, 3 or 4), RGB."""

    color = "rgb"

    def __init__(self, scale: int = 2, blocks: int = 16, feats: int = 64) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError("EDSR-baseline is built for x2, x3 or x4")
        self.scale = scale
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(feats) for _ in range(blocks)], nn.Conv2d(feats, feats, 3, padding=1))
        stages = [(2, 2)] * 2 if scale == 4 else [(scale, scale)]
        up: list[nn.Module] = []
        for factor, _ in stages:
            up += [nn.Conv2d(feats, feats * factor * factor, 3, padding=1), nn.PixelShuffle(factor)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(feats, 3, 3, padding=1)
        self.register_buffer("mean", torch.tensor(_DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        # head + body convolutions at LR, each upsampler convolution (at most 1 LR pixel each),
        # and the tail (1 output pixel, which may straddle two LR pixels).
        self.halo = 1 + (2 * blocks + 1) + len(stages) + 1

    def supports_scale(self, scale: float) -> bool:
        return scale == self.scale

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if scale != self.scale:
            raise ValueError(f"this EDSR-baseline was built for x{self.scale}, not x{scale}")
        feat = self.head(x - self.mean)
        feat = feat + self.body(feat)
        return self.tail(self.upsample(feat)) + self.mean


class _DenseBlock(nn.Module):
    """Residual dense block: five 3x3 convolutions, each seeing all earlier features."""

    def __init__(self, feats: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(feats + i * growth, growth if i < 4 else feats, 3, padding=1) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(features, dim=1))
            if i < 4:
                features.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out


class _RRDB(nn.Module):
    def __init__(self, feats: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[_DenseBlock(feats, growth) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(ResamplingModel):
    """Real-ESRGAN's x4 generator (``RealESRGAN_x4plus``), RGB.

    Its receptive field is about 350 LR pixels, so exact tiling needs a halo wider than
    any sensible tile: the engine effectively runs it whole-image (the benchmark gives
    it a small input). Real-ESRGAN's own tiling uses a 10-pixel pad and accepts seams.
    """

    color = "rgb"

    def __init__(self, blocks: int = 23, feats: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(*[_RRDB(feats, growth) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_up2 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_hr = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv_last = nn.Conv2d(feats, 3, 3, padding=1)
        # 1 + 15 per RRDB + 1 at LR, then four convolutions at 2x/4x: at most 1 LR pixel each.
        self.halo = 2 + 15 * blocks + 4

    def supports_scale(self, scale: float) -> bool:
        return scale == 4

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if scale != 4:
            raise ValueError(f"RRDBNet is built for x4, not x{scale}")
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def _edsr(scale: float) -> ResamplingModel:
    return EDSRBaseline(int(scale))


def _rrdbnet(scale: float) -> ResamplingModel:
    return RRDBNet()


# name -> (builder for a scale, scales it is built for)
REFERENCE_MODELS: dict[str, tuple[Callable[[float], ResamplingModel], tuple[float, ...]]] = {
    "edsr-baseline": (_edsr, (2.0, 3.0, 4.0)),
    "rrdbnet": (_rrdbnet, (4.0,)),
}


def build_reference(name: str, scale: float) -> ResamplingModel:
    """A randomly initialised reference model for ``scale`` (``ValueError`` if unsupported)."""
    builder, scales = REFERENCE_MODELS[name]
    if not any(math.isclose(scale, s) for s in scales):
        raise ValueError(f"{name} is built for x{', x'.join(f'{s:g}' for s in scales)}, not x{scale:g}")
    return builder(scale)
